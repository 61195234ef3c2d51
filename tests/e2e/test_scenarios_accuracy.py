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


def dataset(tmp_path, scenario: str, seed: int = 7, fidelity: str = "event", profile: str = "realistic"):
    layout = load_layout(DEFAULT_STORE)
    result = simulate(layout, scenario, seed=seed, fidelity=fidelity, signal_profile=profile)
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
def test_ideal_signals_give_exact_receipts_through_the_edge_detector(scenario, mosquitto_url, tmp_path):
    """Gentle raw 60 Hz samples (profile ideal) -> the edge weight-event detector -> MQTT -> receipts."""
    path, _ = dataset(tmp_path, scenario, fidelity="signal", profile="ideal")
    metrics = run_dataset(path, mosquitto_url, timeout_s=60)
    assert metrics["exact_receipts"] == 1.0, metrics["mismatches"]


# Floors at the realistic profile (coupling, ringing, hand pressure, spikes, items across plates), seed 7,
# as measured when they were set: basic, putbacks, crowded-shelf, same-weight and hands had every receipt
# exact, misplaced 7 of 8 (one pick fragmented into two events), review items <= 0.25 per visit; the
# floors leave one receipt of margin. The goal is 0.99 / 0.995 / 0.05: raise them as accuracy improves.
REALISTIC_FLOORS = {
    "basic": (0.875, 0.95),
    "putbacks": (0.875, 0.95),
    "misplaced": (0.75, 0.9),
    "crowded-shelf": (0.875, 0.95),
    "same-weight": (0.875, 0.95),
    "hands": (0.875, 0.95),
}


@pytest.mark.parametrize("scenario", sorted(REALISTIC_FLOORS))
def test_realistic_signals_reach_their_floor_and_every_miss_is_explained(scenario, mosquitto_url, tmp_path):
    exact, f1 = REALISTIC_FLOORS[scenario]
    path, _ = dataset(tmp_path, scenario, fidelity="signal")
    metrics = run_dataset(path, mosquitto_url, timeout_s=120)
    assert metrics["exact_receipts"] >= exact, metrics["explanations"]
    assert metrics["items"]["f1"] >= f1, metrics["explanations"]
    problems = sum(len(m["problems"]) for m in metrics["mismatches"])
    assert len(metrics["explanations"]) == problems
    assert all(x["why"] and x["true_events"] for x in metrics["explanations"] if x["truth"])
    assert metrics["vanished_events"] == 0  # every weight change made a decision or a review item
    # Staff are asked about doubtful decisions only, never about every plate fragment.
    assert metrics["review_items_per_visit"] <= 0.375
