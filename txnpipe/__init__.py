"""txnpipe: the composition root that wires the stages into one command line."""

__version__ = "0.1.0"
