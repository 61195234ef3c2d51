"""A simulated scenario written as AutoCheckout files, imported, and run through Mosquitto.

Only what holds at any accuracy is asserted here (the importer's one session leaves, it gets a receipt,
the figures are computed); the accuracy floor of this path is set elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sim_data.cli import DEMO_STORE
from sim_data.dataset import Dataset
from sim_data.importers.autocheckout import import_autocheckout
from sim_data.importers.autocheckout_writer import write_autocheckout
from sim_data.pipeline import StoreUnderTest, charged_items, edge_messages
from sim_data.simulator import simulate
from store_server.domain.layout import load_layout

pytestmark = pytest.mark.integration


@pytest.mark.integration
def test_a_scenario_exported_as_autocheckout_runs_to_a_receipt(tmp_path: Path, mosquitto_url: str) -> None:
    layout = load_layout(DEMO_STORE)
    sim = simulate(layout, "putbacks", seed=5, shoppers=2, fidelity="signal")
    run = write_autocheckout(tmp_path / "ac", layout, sim.messages, sim.ground_truth)
    result = import_autocheckout(run.weights_dir, run.products_csv, tmp_path / "imported", run.ground_truth)
    dataset = Dataset.open(result.path)
    with StoreUnderTest(dataset, mosquitto_url) as store:
        store.publish(edge_messages(dataset), total=int(dataset.manifest["message_count"]))
        store.publisher.flush()
        assert store.wait_for_exits(timeout_s=60) == 1
        charged = charged_items(store.server, store.truth_sessions)
        metrics = store.metrics()
    assert metrics["sessions"] == 1 and set(charged) == {store.truth_sessions[0]["entry_msg_id"]}
    truth_items = sum(dataset.ground_truth["sessions"][0]["items"].values())
    assert truth_items == sum(sum(s["items"].values()) for s in sim.ground_truth["sessions"]) > 0
    assert 0.0 <= metrics["items"]["f1"] <= 1.0 and metrics["exact_receipts"] in (0.0, 1.0)
