"""Every simulated scenario through real Mosquitto into the store server: the accuracy it reaches.

These floors are what the store server achieves today (see the closing notes); a change that lowers
one is a regression. sensor-faults has a dead plate: its picks cannot be seen by weight, so the only
misses allowed there are events the ground truth marks unobservable.
"""

from __future__ import annotations

import pytest

from sim_data.dataset import write_dataset
from sim_data.pipeline import run_dataset
from sim_data.simulator import simulate
from store_server.domain.layout import load_layout
from store_server.settings import DEFAULT_STORE

pytestmark = pytest.mark.e2e

EXACT = ["putbacks", "misplaced", "crowded-shelf", "same-weight", "groups", "hands"]


def dataset(tmp_path, scenario: str, seed: int = 7, fidelity: str = "event"):
    result = simulate(load_layout(DEFAULT_STORE), scenario, seed=seed, fidelity=fidelity)
    return write_dataset(
        tmp_path / scenario,
        result.manifest(),
        DEFAULT_STORE.read_text(),
        result.messages,
        result.ground_truth,
    ), result.ground_truth


@pytest.mark.parametrize("scenario", EXACT)
def test_scenario_receipts_are_exact(scenario, mosquitto_url, tmp_path):
    path, _ = dataset(tmp_path, scenario)
    metrics = run_dataset(path, mosquitto_url, timeout_s=60)
    assert metrics["exact_receipts"] == 1.0, metrics["mismatches"]
    assert metrics["items"]["f1"] == 1.0


def test_sensor_faults_only_miss_what_no_sensor_saw(mosquitto_url, tmp_path):
    path, truth = dataset(tmp_path, "sensor-faults")
    metrics = run_dataset(path, mosquitto_url, timeout_s=60)
    unseen = {e["sku"] for e in truth["events"] if not e.get("observable", True)}
    assert unseen, "the scenario should have a dead plate"
    assert metrics["items"]["fp"] == 0
    for mismatch in metrics["mismatches"]:
        assert {p["sku"] for p in mismatch["problems"]} <= unseen, mismatch
    assert metrics["exact_receipts"] >= 0.75


@pytest.mark.parametrize("scenario", ["basic", "crowded-shelf", "same-weight"])
def test_signal_level_receipts_are_exact_through_the_edge_detector(scenario, mosquitto_url, tmp_path):
    """Raw 60 Hz load-cell samples -> the edge weight-event detector -> MQTT -> receipts."""
    path, _ = dataset(tmp_path, scenario, fidelity="signal")
    metrics = run_dataset(path, mosquitto_url, timeout_s=60)
    assert metrics["exact_receipts"] == 1.0, metrics["mismatches"]
