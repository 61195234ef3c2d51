"""The dataset format: atomic writes, faithful round trips, and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim_data.cli import DEMO_STORE
from sim_data.dataset import Dataset, DatasetError, SimMessage, write_dataset
from sim_data.simulator import simulate
from store_server.domain.layout import load_layout

MANIFEST = {"source": "sim", "scenario": "basic", "seed": 1, "store_id": "demo", "t0": 100.0,
            "duration_s": 2.0, "fidelity": "event", "created_utc": "2026-01-01T00:00:00Z"}
TRUTH = {"store_id": "demo", "t0": 100.0, "accounts": [], "sessions": [], "events": []}


def _msgs() -> list[SimMessage]:
    return [SimMessage(100.0 + i * 0.25, "walkout/demo/gate-in/heartbeat",
                       {"v": 1, "kind": "heartbeat", "node_id": "gate-in", "seq": i, "ts": 100.0 + i * 0.25})
            for i in range(9)]


def _write(path: Path, manifest: dict | None = None) -> Path:
    return write_dataset(path, manifest or MANIFEST, DEMO_STORE.read_text(), _msgs(), TRUTH)


def test_round_trip(tmp_path: Path) -> None:
    out = _write(tmp_path / "ds")
    ds = Dataset.open(out)
    assert list(ds.messages()) == _msgs()
    assert ds.manifest["format"] == "walkout-dataset" and ds.manifest["format_version"] == "1.0"
    assert ds.manifest["message_count"] == 9 and ds.manifest["seed"] == 1
    assert ds.ground_truth == TRUTH
    assert ds.layout == load_layout(DEMO_STORE)
    assert ds.layout_path.read_text() == DEMO_STORE.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temp directory left behind


def test_simulated_round_trip_is_exact(tmp_path: Path) -> None:
    result = simulate(load_layout(DEMO_STORE), shoppers=2, seed=5)
    out = write_dataset(tmp_path / "sim", result.manifest(), DEMO_STORE.read_text(), result.messages,
                        result.ground_truth)
    ds = Dataset.open(out)
    assert list(ds.messages()) == result.messages
    assert ds.ground_truth == result.ground_truth
    assert ds.manifest["duration_s"] == result.duration_s and ds.manifest["fidelity"] == "event"


def test_messages_file_is_reproducible(tmp_path: Path) -> None:
    a, b = _write(tmp_path / "a"), _write(tmp_path / "b")
    assert (a / "messages.jsonl.gz").read_bytes() == (b / "messages.jsonl.gz").read_bytes()


def test_newer_major_version_is_refused(tmp_path: Path) -> None:
    out = _write(tmp_path / "ds", {**MANIFEST, "format_version": "2.3"})
    with pytest.raises(DatasetError) as err:
        Dataset.open(out)
    assert str(err.value) == "dataset format 2.x is newer than this Walkout reads (1.x): upgrade walkout"
    newer_minor = _write(tmp_path / "ok", {**MANIFEST, "format_version": "1.7"})
    assert Dataset.open(newer_minor).manifest["format_version"] == "1.7"


def test_missing_directory_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such dataset directory.*walkout sim --out"):
        Dataset.open(tmp_path / "nope")


def test_not_a_dataset_and_incomplete(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="not a Walkout dataset"):
        Dataset.open(tmp_path / "empty")
    out = _write(tmp_path / "ds")
    (out / "ground_truth.json").unlink()
    with pytest.raises(DatasetError, match="ground_truth.json is missing"):
        Dataset.open(out)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="is a file"):
        Dataset.open(tmp_path / "file")


def test_write_is_atomic_and_refuses_to_clobber(tmp_path: Path) -> None:
    def broken():  # type: ignore[no-untyped-def]
        yield _msgs()[0]
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_dataset(tmp_path / "ds", MANIFEST, "x", broken(), TRUTH)
    assert list(tmp_path.iterdir()) == []
    out_of_order = list(reversed(_msgs()))
    with pytest.raises(DatasetError, match="before the previous"):
        write_dataset(tmp_path / "ds", MANIFEST, "x", out_of_order, TRUTH)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="not a Walkout dataset"):
        _write(tmp_path / "mine")
    # An existing dataset is replaced whole.
    first = _write(tmp_path / "ds")
    write_dataset(first, {**MANIFEST, "seed": 2}, "x", _msgs()[:3], TRUTH)
    assert Dataset.open(first).manifest["seed"] == 2
    assert Dataset.open(first).manifest["message_count"] == 3


def test_schema_lists_the_manifest_keys(tmp_path: Path) -> None:
    schema = json.loads((Path(__file__).parents[2] / "sim_data/schemas/dataset.schema.json").read_text())
    manifest = Dataset.open(_write(tmp_path / "ds")).manifest
    assert set(schema["$defs"]["manifest"]["required"]) <= set(manifest)
    assert set(schema["$defs"]["ground_truth"]["required"]) <= set(TRUTH)
