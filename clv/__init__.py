"""Customer lifetime value: BG/NBD + Gamma-Gamma fitted by maximum likelihood, RFM segments,
discounted CLV, an HTML report, and the MySQL edge (point-in-time input, ``customer_clv``).

Heavy or service-bound parts (``clv.store`` imports mysql-connector, ``clv.report``) are
imported where used, not here.
"""

from clv.bgnbd import BetaGeoFit, BetaGeoParams, ModelFitError
from clv.data import CustomerSummary, PurchaseLog, read_purchases_csv, summarise
from clv.gamma_gamma import GammaGammaFit, GammaGammaParams
from clv.pipeline import ClvOptions, ClvResult, run

__all__ = [
    "BetaGeoFit",
    "BetaGeoParams",
    "ClvOptions",
    "ClvResult",
    "CustomerSummary",
    "GammaGammaFit",
    "GammaGammaParams",
    "ModelFitError",
    "PurchaseLog",
    "read_purchases_csv",
    "run",
    "summarise",
]
