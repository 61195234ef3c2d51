"""A dataset through real Mosquitto into a real store server: receipts, speed, bad input, duplicates."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from sim_data.dataset import Dataset, SimMessage, write_dataset
from sim_data.pipeline import StoreUnderTest, run_dataset
from sim_data.simulator import simulate
from store_server.domain.layout import load_layout
from store_server.settings import DEFAULT_STORE
from tests.e2e.helpers import charges_per_account, stored_receipts

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_basic_scenario_gives_exact_receipts(basic_dataset, mosquitto_url, database, request, tmp_path):
    url = (
        f"sqlite:///{tmp_path / 'run.db'}"
        if database == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    metrics = run_dataset(basic_dataset, mosquitto_url, url, timeout_s=60)
    assert metrics["sessions"] == 8
    assert metrics["exact_receipts"] == 1.0, metrics["mismatches"]
    assert metrics["items"]["fp"] == metrics["items"]["fn"] == 0
    receipts = stored_receipts(url)
    tokens = [a["token"] for a in Dataset.open(basic_dataset).ground_truth["accounts"]]
    assert set(charges_per_account(url, tokens).values()) <= {0, 1}
    assert len(receipts) == sum(1 for s in Dataset.open(basic_dataset).ground_truth["sessions"] if s["items"])


def test_walkout_run_prints_the_documented_json(basic_dataset, mosquitto_url):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "store_server.cli",
            "run",
            str(basic_dataset),
            "--json",
            "--broker",
            mosquitto_url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    metrics = json.loads(out.stdout)
    assert isinstance(metrics["dataset"], str) and metrics["sessions"] == 8
    assert metrics["exact_receipts"] == 1.0
    assert set(metrics["items"]) >= {"tp", "fp", "fn", "precision", "recall", "f1"}
    assert metrics["items"]["f1"] == 1.0
    assert set(metrics["receipt_latency_ms"]) == {"p50", "p99"}
    assert 0 < metrics["receipt_latency_ms"]["p50"] <= metrics["receipt_latency_ms"]["p99"]


@pytest.fixture(scope="module")
def short_dataset(tmp_path_factory) -> Path:
    """Three shoppers in about a minute: short enough to replay in real time."""
    result = simulate(load_layout(DEFAULT_STORE), "basic", seed=3, shoppers=3)
    return write_dataset(
        tmp_path_factory.mktemp("short") / "basic-3",
        result.manifest(),
        DEFAULT_STORE.read_text(),
        result.messages,
        result.ground_truth,
    )


def test_real_time_and_full_speed_replays_give_identical_receipts(short_dataset, mosquitto_url, tmp_path):
    fast, slow = f"sqlite:///{tmp_path / 'fast.db'}", f"sqlite:///{tmp_path / 'slow.db'}"
    assert run_dataset(short_dataset, mosquitto_url, fast, speed=None)["exact_receipts"] == 1.0
    assert run_dataset(short_dataset, mosquitto_url, slow, speed=1.0, timeout_s=30)["exact_receipts"] == 1.0
    assert stored_receipts(fast) == stored_receipts(slow) != {}


MALFORMED = [
    ("weight", b"{not json"),
    ("weight", json.dumps({"v": 1, "node_id": "shelf-g1", "seq": 1, "ts": 5.0}).encode()),
    (
        "tracks",
        json.dumps(
            {
                "v": 1,
                "node_id": "cam-ceiling",
                "seq": 7,
                "ts": 5.0,
                "camera_id": "c",
                "tracks": [{"track_id": "t1", "x_m": "far", "y_m": 1}],
            }
        ).encode(),
    ),
    ("detections", json.dumps({"v": 1, "node_id": "cam-ceiling", "seq": 8, "ts": 5.0}).encode()),
    (
        "gate",
        json.dumps(
            {"v": 1, "node_id": "gate-in", "seq": 9, "ts": 5.0, "gate_id": "gate-in", "direction": "entry"}
        ).encode(),
    ),
    ("heartbeat", json.dumps({"v": 4, "node_id": "gate-in", "seq": 10, "ts": 5.0}).encode()),
    ("status", json.dumps({"v": 1, "node_id": "gate-in", "state": "sleepy"}).encode()),
    ("firmware", b"{}"),
]


def test_malformed_payloads_on_every_topic_are_dead_lettered_while_valid_traffic_goes_on(
    basic_dataset, mosquitto_url, postgres_url
):
    dataset = Dataset.open(basic_dataset)
    messages = list(dataset.messages())
    with StoreUnderTest(dataset, mosquitto_url, postgres_url) as store:
        node = {
            "weight": "shelf-g1",
            "tracks": "cam-ceiling",
            "detections": "cam-ceiling",
            "gate": "gate-in",
            "heartbeat": "gate-in",
            "status": "gate-in",
            "firmware": "gate-in",
        }
        third = len(messages) // 3
        store.publish(messages[:third])
        for feature, payload in MALFORMED:
            store.publisher.publish_raw(
                f"{store.prefix}/{dataset.layout.store_id}/{node[feature]}/{feature}", payload
            )
        store.publish(messages[third:])
        store.wait_for_exits(60)
        metrics = store.metrics()
        with store.server.uow_factory() as uow:
            letters = uow.dead_letters.list(100)
    assert metrics["exact_receipts"] == 1.0
    assert len(letters) == len(MALFORMED)
    assert {letter.payload for letter in letters} == {payload for _, payload in MALFORMED}
    assert all(letter.reason for letter in letters)
    fields = {letter.topic.rsplit("/", 1)[1]: letter.field for letter in letters}
    assert fields["weight"] in {"payload", "gondola_id"} and fields["tracks"] == "tracks.0.x_m"
    assert fields["gate"] == "account_token" and fields["heartbeat"] == "v" and fields["firmware"] == "topic"


def test_a_duplicated_exit_charges_once(basic_dataset, mosquitto_url, postgres_url):
    dataset = Dataset.open(basic_dataset)
    messages: list[SimMessage] = []
    extra_seq = 10_000_000
    for m in dataset.messages():
        messages.append(m)
        if m.topic.endswith("/gate") and m.payload["direction"] == "exit":
            messages.append(m)  # the same message delivered twice
            extra_seq += 1  # and a second pass of the same shopper through the gate, a new message
            messages.append(replace(m, t=m.t + 0.2, payload={**m.payload, "seq": extra_seq, "ts": m.t + 0.2}))
    messages.sort(key=lambda m: m.t)
    with StoreUnderTest(dataset, mosquitto_url, postgres_url) as store:
        store.publish(messages)
        store.wait_for_exits(60)
        metrics = store.metrics()
    tokens = [a["token"] for a in dataset.ground_truth["accounts"]]
    charges = charges_per_account(postgres_url, tokens)
    paying = [s["account_token"] for s in dataset.ground_truth["sessions"] if s["items"]]
    assert metrics["exact_receipts"] == 1.0
    assert {t: charges[t] for t in paying} == {t: 1 for t in paying}
    assert len(stored_receipts(postgres_url)) == len(paying)
