"""clv package."""
