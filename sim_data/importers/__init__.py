"""Importers: turn public recordings of other stores into Walkout datasets (docs/DATASETS.md).

``autocheckout`` reads the AiFi AutoCheckout (CPS-IoT Week 2020) load-cell recordings; see
docs/AUTOCHECKOUT.md. The CLI commands live in :mod:`sim_data.importers.cli`.
"""

from sim_data.importers.autocheckout import (
    AutoCheckoutError,
    ImportResult,
    ImportSummary,
    import_autocheckout,
)

__all__ = ["AutoCheckoutError", "ImportResult", "ImportSummary", "import_autocheckout"]
