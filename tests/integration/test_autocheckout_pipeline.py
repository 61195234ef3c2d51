"""The AutoCheckout fixture end to end: import, edge weight detection, store server, receipts."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim_data.importers.autocheckout import import_autocheckout
from sim_data.pipeline import run_dataset

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "autocheckout"

pytestmark = pytest.mark.integration


@pytest.mark.integration
def test_the_autocheckout_fixture_gives_the_exact_receipt(tmp_path: Path, mosquitto_url: str) -> None:
    # The tissue box stands on two plates (60/40, sampled a few ms apart, resampled by the importer):
    # the edge detector must report it as one -260 g change, or neither half can be explained.
    result = import_autocheckout(
        FIXTURE / "weights",
        FIXTURE / "products.csv",
        tmp_path / "autocheckout",
        ground_truth=FIXTURE / "ground_truth.json",
    )
    metrics = run_dataset(result.path, mosquitto_url, timeout_s=60)
    assert metrics["exact_receipts"] == 1.0, metrics
    assert metrics["items"]["fp"] == 0 and metrics["items"]["fn"] == 0, metrics
