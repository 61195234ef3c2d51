"""The AutoCheckout importer on the small fixture in tests/fixtures/autocheckout (make_fixture.py)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from edge import contracts as c
from sim_data.dataset import Dataset, SimMessage
from sim_data.importers import AutoCheckoutError, ImportResult, import_autocheckout
from sim_data.importers.autocheckout import ean13_check_digit, make_barcode, make_sku, resample
from sim_data.importers.cli import import_autocheckout_command
from store_server.domain.layout import load_layout

FIXTURE = Path(__file__).parents[1] / "fixtures" / "autocheckout"
WEIGHTS = FIXTURE / "weights"
PRODUCTS = FIXTURE / "products.csv"
TRUTH = FIXTURE / "ground_truth.json"


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImportResult, Dataset, list[SimMessage]]:
    out = tmp_path_factory.mktemp("ac") / "ds"
    result = import_autocheckout(WEIGHTS, PRODUCTS, out, TRUTH)
    ds = Dataset.open(out)
    return result, ds, list(ds.messages())


def _csv(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The plate file parsed independently of the importer (valid rows only, sorted)."""
    rows = []
    for line in (WEIGHTS / name).read_text().splitlines():
        parts = line.strip().split(",")
        try:
            rows.append((float(parts[0]), float(parts[1])))
        except (ValueError, IndexError):
            continue
    rows.sort()
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])


def _samples_of(messages: list[SimMessage], shelf: str) -> list[dict[str, Any]]:
    return [m.payload for m in messages if m.payload["kind"] == "samples" and m.payload["shelf_id"] == shelf]


def _copy_fixture(tmp_path: Path) -> Path:
    dst = tmp_path / "in"
    shutil.copytree(FIXTURE, dst, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return dst


def test_dataset_opens_with_a_valid_layout_and_manifest(imported: Any) -> None:
    result, ds, messages = imported
    m = ds.manifest
    assert (m["source"], m["scenario"], m["fidelity"], m["store_id"]) == (
        "autocheckout", "autocheckout", "signal", "autocheckout")
    assert m["message_count"] == len(messages) == result.summary.messages
    assert m["t0"] == messages[0].t
    assert m["duration_s"] == pytest.approx(messages[-1].t - m["t0"], abs=1e-3)
    assert any("tax" in note for note in m["notes"])
    layout = load_layout(ds.layout_path)
    assert layout == ds.layout == result.layout
    assert layout.currency == "USD" and layout.tax_rates == {"standard": 0.0}
    assert [g.node_id for g in layout.gondolas] == ["shelf-g1", "shelf-g2"]
    assert {g.node_id for g in layout.gates} == {"gate-in", "gate-out"}
    assert [cam.node_id for cam in layout.cameras] == ["cam-ceiling"]
    assert len(layout.plates) == 12 and "g2-s2-p3" in layout.plates
    assert all(e.stock == 10 for e in layout.planogram)


def test_every_message_fits_the_contract_and_is_ordered(imported: Any) -> None:
    _, _, messages = imported
    seqs: dict[str, list[int]] = defaultdict(list)
    last_ts: dict[str, float] = {}
    for i, msg in enumerate(messages):
        parsed = c.parse(msg.topic, json.dumps(msg.payload))
        assert msg.t == msg.payload["ts"]
        assert i == 0 or messages[i - 1].t <= msg.t
        node = parsed.node_id
        assert msg.topic == f"walkout/autocheckout/{node}/{parsed.kind}"
        seqs[node].append(msg.payload["seq"])
        assert msg.payload["ts"] >= last_ts.get(node, 0.0)
        last_ts[node] = msg.payload["ts"]
    assert set(seqs) == {"shelf-g1", "shelf-g2", "gate-in", "gate-out", "cam-ceiling"}
    for node, numbers in seqs.items():
        assert numbers == list(range(len(numbers))), node


def test_samples_are_batches_of_12_at_60hz_covering_every_plate(imported: Any) -> None:
    _, _, messages = imported
    batches = _samples_of(messages, "g1-s1")
    assert batches[0]["plate_ids"] == ["g1-s1-p1", "g1-s1-p2", "g1-s1-p3"]
    assert all(b["rate_hz"] == 60.0 and b["node_id"] == "shelf-g1" for b in batches)
    assert all(len(row) == 12 for b in batches[:-1] for row in b["grams"])
    for a, b in zip(batches, batches[1:], strict=False):
        assert b["t0"] - a["t0"] == pytest.approx(0.2, abs=2e-6)
    assert batches[0]["ts"] == pytest.approx(batches[0]["t0"] + 11 / 60, abs=2e-6)


@pytest.mark.parametrize("shelf,index,name", [
    ("g1-s1", 0, "gondola_1_shelf_1_plate_1.csv"),  # header row, CRLF
    ("g1-s1", 1, "gondola_1_shelf_1_plate_2.csv"),  # the chips pick at 4 s
    ("g2-s2", 0, "gondola_2_shelf_2_plate_1.csv"),  # two malformed rows
    ("g2-s2", 2, "gondola_2_shelf_2_plate_3.csv"),  # two cans picked at 11 s
])
def test_sample_values_are_the_csv_values_interpolated(imported: Any, shelf: str, index: int,
                                                       name: str) -> None:
    _, _, messages = imported
    ts, grams = _csv(name)
    checked = 0
    for batch in _samples_of(messages, shelf)[::7]:
        for j, value in enumerate(batch["grams"][index]):
            t = batch["t0"] + j / 60
            if ts[0] <= t <= ts[-1]:
                assert value == pytest.approx(np.interp(t, ts, grams), abs=2e-3)
                checked += 1
    assert checked > 100
    # at a time that is a CSV row's own time, the value is that row's
    assert resample(ts, grams, ts[100:101])[0] == grams[100]


def test_a_pick_is_visible_as_a_step_of_the_product_weight(imported: Any) -> None:
    _, _, messages = imported

    def level(shelf: str, index: int, lo: float, hi: float) -> float:
        t0 = messages[0].t
        vals = [v for b in _samples_of(messages, shelf) for j, v in enumerate(b["grams"][index])
                if lo <= b["t0"] + j / 60 - t0 < hi]
        return float(np.mean(vals))

    assert level("g1-s1", 1, 2.5, 3.5) - level("g1-s1", 1, 5.5, 6.5) == pytest.approx(35, abs=2)
    assert level("g2-s2", 2, 9.5, 10.5) - level("g2-s2", 2, 12.5, 13.5) == pytest.approx(1040, abs=2)
    both = [level("g2-s1", i, 6, 7) - level("g2-s1", i, 9, 10) for i in (0, 1)]
    assert sum(both) == pytest.approx(260, abs=2)


def test_a_gap_holds_the_last_value_and_is_reported(imported: Any) -> None:
    result, _, messages = imported
    gaps = result.summary.gaps
    assert len(gaps) == 1 and "g1-s2-p3" in gaps[0] and "gondola_1_shelf_2_plate_3.csv" in gaps[0]
    ts, grams = _csv("gondola_1_shelf_2_plate_3.csv")
    hole = int(np.argmax(np.diff(ts)))
    assert ts[hole + 1] - ts[hole] > 0.5
    inside = [v for b in _samples_of(messages, "g1-s2") for j, v in enumerate(b["grams"][2])
              if ts[hole] < b["t0"] + j / 60 < ts[hole + 1]]
    assert len(inside) > 40 and set(inside) == {grams[hole]}


def test_malformed_rows_are_counted_and_named(imported: Any) -> None:
    result, ds, _ = imported
    s = result.summary
    assert s.malformed_rows == 2
    assert [m.split(":")[:2] for m in s.malformed] == [["gondola_2_shelf_2_plate_1.csv", "52"],
                                                       ["gondola_2_shelf_2_plate_1.csv", "303"]]
    assert s.out_of_order_rows == 1 and s.weight_files == 12 and s.plates == 12
    assert ds.manifest["import_summary"]["malformed_rows"] == 2


def test_catalog_planogram_and_codes(imported: Any) -> None:
    result, _, _ = imported
    layout = result.layout
    assert layout.plates_of_sku["AC-kleenex-tissue-box"] == ["g2-s1-p1", "g2-s1-p2"]
    chips = layout.products["AC-lays-classic-potato-chips-1-oz"]
    assert (chips.price_cents, chips.unit_weight_g, chips.tax_class) == (129, 35.0, "standard")
    assert layout.products["AC-snickers-1-86-oz"].name == "Snickers, 1.86 oz"
    assert "AC-fresh-banana" in layout.products and "AC-fresh-banana" not in layout.plates_of_sku
    assert "g1-s2-p3" not in layout.sku_on_plate  # a plate with samples but no product is fine
    assert (result.summary.products_on_shelf, result.summary.products_off_shelf) == (10, 1)
    for p in layout.catalog:
        assert len(p.barcode) == 13 and int(p.barcode[-1]) == ean13_check_digit(p.barcode[:12])
    assert make_barcode("Fresh Banana", set()) == layout.products["AC-fresh-banana"].barcode
    assert ean13_check_digit("400638133393") == 1  # a well-known valid EAN-13: 4006381333931
    taken: set[str] = set()
    assert [make_sku("A b", taken), make_sku("a-B", taken)] == ["AC-a-b", "AC-a-b-2"]


def test_one_session_with_gates_and_a_track_in_the_gate_zones(imported: Any) -> None:
    result, ds, messages = imported
    truth = ds.ground_truth
    (session,) = truth["sessions"]
    gates = [m.payload for m in messages if m.payload["kind"] == "gate"]
    entry, exit_ = gates
    assert (entry["node_id"], entry["direction"], entry["account_token"]) == (
        "gate-in", "entry", "autocheckout-shopper")
    assert (exit_["node_id"], exit_["direction"]) == ("gate-out", "exit")
    assert entry["ts"] == pytest.approx(messages[0].t + 0.5)
    assert session["entry_msg_id"] == f"gate-in:{entry['seq']}"
    assert (session["entered_at"], session["exited_at"]) == (entry["ts"], exit_["ts"])
    assert truth["accounts"][0]["token"] == "autocheckout-shopper"
    assert truth["accounts"][0]["balance_cents"] >= 1_000_000
    assert truth["events"] == [] and truth["events_known"] is False

    layout = result.layout
    tracks = {m.payload["ts"]: m.payload["tracks"] for m in messages if m.payload["kind"] == "tracks"}
    times = sorted(tracks)
    assert all(b - a == pytest.approx(0.2, abs=1e-5) for a, b in zip(times, times[1:], strict=False))

    def where(t: float) -> list[dict[str, Any]]:
        return tracks[min(times, key=lambda x: abs(x - t))]

    for t, gate in ((entry["ts"], layout.gate("gate-in")), (exit_["ts"], layout.gate("gate-out"))):
        (point,) = where(t)
        assert gate is not None and point["track_id"] == "t1"
        assert gate.zone.contains(point["x_m"], point["y_m"])
    assert where((entry["ts"] + exit_["ts"]) / 2) == []  # the shopper's position in between is unknown
    assert times[-1] >= exit_["ts"] + 0.8  # the camera's watermark passes the exit's due time


def test_gate_nodes_send_heartbeats_when_idle(imported: Any) -> None:
    _, _, messages = imported
    end = messages[-1].t
    for node in ("gate-in", "gate-out", "shelf-g1"):
        times = [m.t for m in messages if m.payload["node_id"] == node]
        assert times[0] == messages[0].t and end - times[-1] < 0.25 + 1e-6
        assert max(b - a for a, b in zip(times, times[1:], strict=False)) <= 0.25 + 1e-6
    kinds = {m.payload["kind"] for m in messages if m.payload["node_id"] == "gate-in"}
    assert kinds == {"heartbeat", "gate"}


def test_ground_truth_items_are_mapped_to_skus(imported: Any) -> None:
    _, ds, _ = imported
    assert ds.ground_truth["sessions"][0]["items"] == {
        "AC-kleenex-tissue-box": 1, "AC-lays-classic-potato-chips-1-oz": 1, "AC-monster-energy-16-fl-oz": 2}
    assert ds.ground_truth["items_known"] is True


def test_without_ground_truth_the_cart_is_unknown(tmp_path: Path) -> None:
    import_autocheckout(WEIGHTS, PRODUCTS, tmp_path / "ds")
    truth = Dataset.open(tmp_path / "ds").ground_truth
    assert truth["sessions"][0]["items"] == {} and truth["items_known"] is False


def test_several_truth_sessions_are_summed_with_a_warning(tmp_path: Path) -> None:
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"sessions": [{"items": {"Kleenex Tissue Box": 1}},
                                           {"items": {"kleenex tissue box": 2, "Fresh Banana": 0}}]}))
    result = import_autocheckout(WEIGHTS, PRODUCTS, tmp_path / "ds", gt)
    truth = Dataset.open(result.path).ground_truth
    assert len(truth["sessions"]) == 1 and truth["sessions"][0]["items"] == {"AC-kleenex-tissue-box": 3}
    assert result.summary.truth_sessions == 2
    assert any("2 sessions" in w for w in result.summary.warnings)


def test_the_same_input_gives_the_same_dataset(imported: Any, tmp_path: Path) -> None:
    result, _, _ = imported
    again = import_autocheckout(WEIGHTS, PRODUCTS, tmp_path / "again", TRUTH)
    for name in ("messages.jsonl.gz", "store.yaml", "ground_truth.json"):
        assert (again.path / name).read_bytes() == (result.path / name).read_bytes(), name


def test_fixture_script_is_deterministic_and_matches_the_files(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_fixture", FIXTURE / "make_fixture.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_fixture(tmp_path)
    for path in sorted(FIXTURE.rglob("*.csv")) + [TRUTH]:
        assert (tmp_path / path.relative_to(FIXTURE)).read_bytes() == path.read_bytes(), path.name
    assert sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file()) < 300_000


# ------------------------------------------------------------------------------------------------ errors
def test_missing_weights_dir(tmp_path: Path) -> None:
    with pytest.raises(AutoCheckoutError, match="does not exist") as exc:
        import_autocheckout(tmp_path / "nope", PRODUCTS, tmp_path / "ds")
    assert "--weights" in exc.value.hint


def test_no_matching_weight_files(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "plate1.csv").write_text("1,2\n")
    with pytest.raises(AutoCheckoutError, match="expected files named gondola_G_shelf_S_plate_P.csv"):
        import_autocheckout(tmp_path / "w", PRODUCTS, tmp_path / "ds")


def test_wrong_products_header_names_the_expected_one(tmp_path: Path) -> None:
    bad = tmp_path / "p.csv"
    bad.write_text("name,gondola,shelf,plate,weight,price\nX,1,1,1,10,1.00\n")
    with pytest.raises(AutoCheckoutError, match="Name,Gondola,Shelf,Plate,Weight,Price,Image"):
        import_autocheckout(WEIGHTS, bad, tmp_path / "ds")
    with pytest.raises(AutoCheckoutError, match="does not exist"):
        import_autocheckout(WEIGHTS, tmp_path / "missing.csv", tmp_path / "ds")


def test_unknown_product_in_ground_truth(tmp_path: Path) -> None:
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"sessions": [{"items": {"Unicorn Milk": 1}}]}))
    with pytest.raises(AutoCheckoutError, match="Unicorn Milk"):
        import_autocheckout(WEIGHTS, PRODUCTS, tmp_path / "ds", gt)


def test_product_on_a_plate_without_weight_file_warns(tmp_path: Path) -> None:
    src = _copy_fixture(tmp_path)
    (src / "weights" / "gondola_1_shelf_1_plate_1.csv").unlink()
    with (src / "products.csv").open("a") as fh:
        fh.write("Bad Row,1,1,x,10,1.00,img.jpg\nFree Sample,2,2,2,5,abc,img.jpg\n")
    result = import_autocheckout(src / "weights", src / "products.csv", tmp_path / "ds")
    assert any("g1-s1-p1" in w and "no weight file" in w for w in result.summary.warnings)
    assert result.summary.product_rows_skipped == 2
    assert any(m.startswith("products.csv:14:") for m in result.summary.malformed)
    layout = Dataset.open(result.path).layout
    assert layout.plates_of_sku["AC-coca-cola-12-fl-oz-can"] == ["g1-s1-p1"]  # still on the planogram
    assert _samples_of(list(Dataset.open(result.path).messages()), "g1-s1")[0]["plate_ids"] == [
        "g1-s1-p2", "g1-s1-p3"]


# --------------------------------------------------------------------------------------------------- CLI
def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("autocheckout")(import_autocheckout_command)
    app.command("noop")(lambda: None)  # two commands, so typer keeps the subcommand name
    return app


def test_cli_imports_and_prints_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    res = CliRunner().invoke(_cli(), ["autocheckout", "--weights", str(WEIGHTS), "--products", str(PRODUCTS),
                                      "--out", str(out), "--ground-truth", str(TRUTH)])
    assert res.exit_code == 0, res.output
    assert "malformed rows skipped" in res.output and "gondola_2_shelf_2_plate_1.csv:52" in res.output
    assert "walkout run" in res.output
    assert Dataset.open(out).manifest["source"] == "autocheckout"


def test_cli_errors_exit_2_and_say_what_to_do(tmp_path: Path) -> None:
    bad = tmp_path / "p.csv"
    bad.write_text("Product,Price\n")
    res = CliRunner().invoke(_cli(), ["autocheckout", "--weights", str(WEIGHTS), "--products", str(bad),
                                      "--out", str(tmp_path / "ds")])
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "Name,Gondola,Shelf,Plate,Weight,Price,Image" in text and "next:" in text
