"""A simulated run written in the AutoCheckout layout reads back through the importer unchanged:
the same plates, the same samples, the same products and the same items per shopper."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from sim_data.cli import DEMO_STORE, sim_command
from sim_data.dataset import Dataset
from sim_data.importers.autocheckout import find_weight_files, import_autocheckout, plate_id
from sim_data.importers.autocheckout_writer import (
    AutoCheckoutRun,
    AutoCheckoutWriteError,
    autocheckout_keys,
    plate_series,
    write_autocheckout,
)
from sim_data.simulator import SimResult, simulate
from store_server.domain.layout import StoreLayout, load_layout

Trip = tuple[SimResult, AutoCheckoutRun, Dataset]


@pytest.fixture(scope="module")
def layout() -> StoreLayout:
    return load_layout(DEMO_STORE)


@pytest.fixture(scope="module")
def trip(layout: StoreLayout, tmp_path_factory: pytest.TempPathFactory) -> Trip:
    # Two shoppers who put some of it back: picks, put-backs and two sessions in under a minute.
    sim = simulate(layout, "putbacks", seed=5, shoppers=2, fidelity="signal")
    tmp = tmp_path_factory.mktemp("ac")
    run = write_autocheckout(tmp / "ac", layout, sim.messages, sim.ground_truth)
    result = import_autocheckout(run.weights_dir, run.products_csv, tmp / "imported", run.ground_truth)
    assert result.summary.malformed_rows == result.summary.out_of_order_rows == 0
    assert result.summary.duplicate_rows == 0 and result.summary.gaps == []
    return sim, run, Dataset.open(result.path)


def test_plates_are_numbered_gondola_shelf_plate_from_one(layout: StoreLayout) -> None:
    keys = autocheckout_keys(layout)
    assert len(keys) == len(layout.plates)
    assert len(set(keys.values())) == len(keys)
    # The demo store's ids already follow the rule, so the importer's ids are ours.
    assert all(plate_id(key) == plate for plate, key in keys.items())
    assert keys["g4-s2-p3"] == (4, 2, 3)


def test_shelves_are_ranked_by_level_not_file_order(layout: StoreLayout) -> None:
    data = layout.model_dump()
    data["gondolas"][0]["shelves"].reverse()  # top shelf listed first
    keys = autocheckout_keys(StoreLayout.model_validate(data))
    assert keys["g1-s1-p2"] == (1, 1, 2) and keys["g1-s4-p1"] == (1, 4, 1)


def test_one_file_per_plate_the_importer_finds(layout: StoreLayout, trip: Trip) -> None:
    _, run, ds = trip
    files = find_weight_files(run.weights_dir)
    assert len(files) == run.weight_files == len(layout.plates)
    assert {plate_id(k) for k in files} == set(ds.layout.plates) == set(layout.plates)
    assert run.rows == sum(len(f.read_text().splitlines()) for f in files.values())


def test_the_imported_samples_are_the_simulated_ones(layout: StoreLayout, trip: Trip) -> None:
    sim, _, ds = trip
    keys = autocheckout_keys(layout)
    ours, theirs = plate_series(sim.messages), plate_series(ds.messages())
    assert {plate_id(keys[p]) for p in ours} == set(theirs)
    diffs = []
    for plate, (t, g) in ours.items():
        t2, g2 = theirs[plate_id(keys[plate])]
        assert len(t2) == len(t)
        assert np.max(np.abs(t2 - t)) < 2e-6
        diffs.append(np.abs(g2 - g))
    diff = np.concatenate(diffs)
    # Rows carry time to 1 us, grams to 1 mg; resampling between two rows 1 us off the importer's grid
    # moves a sample by (step to the next sample) x 6e-5: a few mg on the steepest steps, nothing elsewhere.
    assert float(np.mean(diff <= 1e-3 + 1e-9)) > 0.999
    assert float(diff.max()) < 0.05


def test_the_products_are_the_catalogue_on_the_planogram(layout: StoreLayout, trip: Trip) -> None:
    _, _, ds = trip
    imported = {p.name: p for p in ds.layout.catalog}
    assert set(imported) == {p.name for p in layout.catalog}
    for product in layout.catalog:
        other = imported[product.name]
        assert other.unit_weight_g == product.unit_weight_g and other.price_cents == product.price_cents
        assert ds.layout.plates_of_sku.get(other.sku, []) == layout.plates_of_sku.get(product.sku, [])


def test_every_shopper_keeps_their_items_and_events(layout: StoreLayout, trip: Trip) -> None:
    sim, run, ds = trip
    name = {p.sku: p.name for p in layout.catalog}
    written = json.loads(run.ground_truth.read_text())
    truth = sim.ground_truth
    assert len(written["sessions"]) == len(truth["sessions"]) == 2
    for ours, theirs in zip(truth["sessions"], written["sessions"], strict=True):
        assert theirs["items"] == {name[sku]: q for sku, q in ours["items"].items()}
        assert theirs["shopper"] == ours["account_token"] and theirs["track_ids"] == ours["track_ids"]
        events = [e for e in truth["events"] if e["track_id"] in ours["track_ids"]]
        assert [(e["kind"], name[e["sku"]], e["quantity"], e["t_start"]) for e in events] == [
            (e["kind"], e["product"], e["quantity"], e["t_start"]) for e in theirs["events"]]
        keys = autocheckout_keys(layout)
        assert [[list(keys[p]) for p in e["plate_ids"]] for e in events] == [
            e["plates"] for e in theirs["events"]]
    assert sum(len(s["events"]) for s in written["sessions"]) == run.events == len(truth["events"])
    assert {e["kind"] for e in truth["events"]} == {"pick", "putback"}
    # The importer has no gate data: one session holding everybody's items, by the imported SKUs.
    sku_of = {p.name: p.sku for p in ds.layout.catalog}
    total: Counter[str] = Counter()
    for s in truth["sessions"]:
        total.update({sku_of[name[sku]]: q for sku, q in s["items"].items()})
    [session] = ds.ground_truth["sessions"]
    assert session["items"] == dict(sorted(total.items())) and ds.ground_truth["items_known"] is True
    # ... and every shelf event, the one session's now, so a report can explain each miss.
    imported = ds.ground_truth["events"]
    assert ds.ground_truth["events_known"] is True and len(imported) == len(truth["events"])
    assert {e["track_id"] for e in imported} == {session["track_id"]}
    got = sorted((e["kind"], e["sku"], e["quantity"], tuple(e["plate_ids"]), e["t_start"]) for e in imported)
    assert got == sorted(
        (e["kind"], sku_of[name[e["sku"]]], e["quantity"], tuple(e["plate_ids"]), e["t_start"])
        for e in truth["events"]
    )


def test_an_event_level_run_is_refused(layout: StoreLayout, tmp_path: Path) -> None:
    sim = simulate(layout, "basic", seed=3, shoppers=1)
    with pytest.raises(AutoCheckoutWriteError, match="--fidelity signal"):
        write_autocheckout(tmp_path / "ac", layout, sim.messages, sim.ground_truth)
    assert not (tmp_path / "ac").exists()


def test_two_products_of_one_name_are_refused(layout: StoreLayout, trip: Trip, tmp_path: Path) -> None:
    sim = trip[0]
    data = layout.model_dump()
    data["catalog"][1]["name"] = data["catalog"][0]["name"].upper()
    twins = StoreLayout.model_validate(data)
    with pytest.raises(AutoCheckoutWriteError, match="by name only"):
        write_autocheckout(tmp_path / "ac", twins, sim.messages, sim.ground_truth)


def test_an_earlier_export_is_replaced_anything_else_refused(layout: StoreLayout, trip: Trip,
                                                             tmp_path: Path) -> None:
    sim = trip[0]
    out = tmp_path / "ac"
    write_autocheckout(out, layout, sim.messages, sim.ground_truth)
    (out / "weights" / "stale.csv").write_text("1,2\n")
    write_autocheckout(out, layout, sim.messages, sim.ground_truth)
    assert not (out / "weights" / "stale.csv").exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(AutoCheckoutWriteError, match="no earlier AutoCheckout export"):
        write_autocheckout(other, layout, sim.messages, sim.ground_truth)
    assert (other / "notes.txt").read_text() == "keep me"


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("sim")(sim_command)
    app.command("noop")(lambda: None)
    return app


def test_cli_writes_autocheckout_files_at_signal_fidelity(tmp_path: Path) -> None:
    out = tmp_path / "ac"
    res = CliRunner().invoke(_app(), ["sim", "--scenario", "basic", "--shoppers", "1", "--seed", "2",
                                      "--format", "autocheckout", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "walkout import autocheckout --weights" in res.output
    files: dict[Any, Path] = find_weight_files(out / "weights")
    assert len(files) == len(load_layout(DEMO_STORE).plates)
    written = json.loads((out / "ground_truth.json").read_text())
    assert written["sessions"][0]["items"] and written["source"]["seed"] == 2
    assert written["source"]["fidelity"] == "signal" and written["source"]["scenario"] == "basic"


@pytest.mark.parametrize("args,message", [
    (["--format", "csv"], "unknown format 'csv'"),
    (["--format", "autocheckout", "--video"], "AutoCheckout files hold no video"),
])
def test_cli_format_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    res = CliRunner().invoke(_app(), ["sim", "--shoppers", "1", "--out", str(tmp_path / "x"), *args])
    assert res.exit_code == 2 and message in res.output
    assert not (tmp_path / "x").exists()
