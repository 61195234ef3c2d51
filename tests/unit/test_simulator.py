"""The demo store and the event-fidelity simulator: contracts, determinism and the "basic" promises."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edge.contracts import parse
from sim_data.cli import DEMO_STORE, sim_command
from sim_data.dataset import Dataset
from sim_data.paths import WalkGrid, path_length
from sim_data.scenarios import CATALOG, ScenarioError, get_scenario
from sim_data.simulator import SimResult, simulate
from store_server.domain.layout import StoreLayout, load_layout


@pytest.fixture(scope="module")
def layout() -> StoreLayout:
    return load_layout(DEMO_STORE)


@pytest.fixture(scope="module")
def result(layout: StoreLayout) -> SimResult:
    return simulate(layout, "basic", seed=7)


def _tracks(result: SimResult) -> list[tuple[float, dict[str, tuple[float, float]]]]:
    return [(m.t, {p["track_id"]: (p["x_m"], p["y_m"]) for p in m.payload["tracks"]})
            for m in result.messages if m.payload["kind"] == "tracks"]


def _ean13_ok(code: str) -> bool:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(code[:12]))
    return len(code) == 13 and (10 - total % 10) % 10 == int(code[12])


# -- the demo store ----------------------------------------------------------------------------------
def test_demo_store_counts(layout: StoreLayout) -> None:
    assert len(layout.gondolas) >= 4
    for g in layout.gondolas:
        assert g.node_id == f"shelf-{g.id}"
        assert 3 <= len(g.shelves) <= 4
        assert all(3 <= len(s.plates) <= 4 for s in g.shelves)
    assert len(layout.catalog) >= 40
    assert set(layout.tax_rates) == {"standard", "reduced"}
    assert layout.tax_rates["reduced"] == 0.055 and layout.tax_rates["standard"] == 0.20
    for p in layout.catalog:
        assert _ean13_ok(p.barcode), p.sku
        assert 0.0099 <= p.weight_std_g / p.unit_weight_g <= 0.031, p.sku
    assert len(set(p.barcode for p in layout.catalog)) == len(layout.catalog)
    assert all(12 <= e.stock <= 30 for e in layout.planogram)
    assert {e.sku for e in layout.planogram} == {p.sku for p in layout.catalog}
    assert sum(len(e.plates) == 2 for e in layout.planogram) >= 3
    # Hard cases: neighbouring plates of one shelf holding near-identical unit weights.
    hard = 0
    for _, shelf in layout.shelves.values():
        skus = [layout.sku_on_plate[p] for p in shelf.plates]
        for a, b in zip(skus, skus[1:], strict=False):
            if a != b and abs(layout.products[a].unit_weight_g - layout.products[b].unit_weight_g) <= 3:
                hard += 1
    assert hard >= 3


def test_demo_store_geometry(layout: StoreLayout) -> None:
    assert (layout.floor.width_m, layout.floor.depth_m) == (16.0, 12.0)
    boxes = [g.footprint() for g in layout.gondolas]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            gap = max(b[0] - a[2], a[0] - b[2], b[1] - a[3], a[1] - b[3])
            assert gap >= 1.2, "aisles must be at least 1.2 m wide"
    gates = {g.direction: g for g in layout.gates}
    assert gates["entry"].node_id == "gate-in" and gates["exit"].node_id == "gate-out"
    for gate in gates.values():
        z = gate.zone
        assert z.y_min < 1.0 and math.isclose(z.x_max - z.x_min, 1.2) and math.isclose(z.y_max - z.y_min, 1.2)
        assert layout.walkable(*z.centre, clearance=1.0)
    cam = layout.cameras[0]
    assert cam.id == cam.node_id == "cam-ceiling"
    assert cam.to_floor(640, 480) == pytest.approx((16.0, 12.0))


def test_paths_avoid_gondolas(layout: StoreLayout) -> None:
    grid = WalkGrid(layout)
    a, b = (4.0, 9.0), (4.0, 4.5)  # either side of the snacks island: must go round
    path = grid.path(a, b)
    assert path[0] == a and path[-1] == b
    assert path_length(path) > 4.5
    for p, q in zip(path, path[1:], strict=False):
        for k in range(21):
            x, y = p[0] + (q[0] - p[0]) * k / 20, p[1] + (q[1] - p[1]) * k / 20
            assert layout.walkable(x, y, clearance=0.2)


# -- the simulator -----------------------------------------------------------------------------------
def test_basic_seed_7_is_pinned(result: SimResult) -> None:
    """The end-to-end tests rely on these numbers: a change to "basic" output is a breaking change."""
    assert len(result.ground_truth["sessions"]) == 8 and len(result.messages) == 5011
    assert result.ground_truth["scenario"] == "basic"
    assert all(e["observable"] for e in result.ground_truth["events"])
    assert {m.payload["kind"] for m in result.messages} == {"heartbeat", "tracks", "gate", "weight"}


def test_deterministic_per_seed(layout: StoreLayout, result: SimResult) -> None:
    again = simulate(layout, "basic", seed=7)
    assert again.messages == result.messages
    assert again.ground_truth == result.ground_truth
    other = simulate(layout, "basic", seed=8)
    assert other.messages != result.messages


def test_every_message_fits_the_contract(result: SimResult) -> None:
    assert [m.t for m in result.messages] == sorted(m.t for m in result.messages)
    for m in result.messages:
        msg = parse(m.topic, json.dumps(m.payload))
        assert m.topic.startswith("walkout/demo/")
        assert m.t == msg.ts  # type: ignore[union-attr]


def test_per_node_seq_and_time(result: SimResult) -> None:
    by_node: dict[str, list[dict]] = defaultdict(list)
    for m in result.messages:
        by_node[m.payload["node_id"]].append(m.payload)
    assert set(by_node) == {"cam-ceiling", "gate-in", "gate-out"} | {f"shelf-g{i}" for i in range(1, 6)}
    end = result.t_end
    for node, payloads in by_node.items():
        assert [p["seq"] for p in payloads] == list(range(len(payloads))), node
        ts = [p["ts"] for p in payloads]
        assert ts == sorted(ts), node
        assert ts[0] == result.t0 and ts[-1] > end - 0.3
        gaps = [b - a for a, b in zip(ts, ts[1:], strict=False)]
        if node == "cam-ceiling":
            assert all(p["kind"] == "tracks" for p in payloads)
            assert max(gaps) == pytest.approx(0.2, abs=2e-3)
        else:
            assert max(gaps) <= 0.25 + 2e-3, node  # heartbeats fill every silence


def test_tracks_stay_out_of_gondolas(layout: StoreLayout, result: SimResult) -> None:
    boxes = [g.footprint() for g in layout.gondolas]
    seen = set()
    for _, tracks in _tracks(result):
        for tid, (x, y) in tracks.items():
            seen.add(tid)
            assert not any(b[0] < x < b[2] and b[1] < y < b[3] for b in boxes), (tid, x, y)
    assert seen == {f"t{n}" for n in range(1, 9)}


def test_walking_speed_is_human(result: SimResult) -> None:
    seen: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for t, tracks in _tracks(result):
        for tid, (x, y) in tracks.items():
            seen[tid].append((t, x, y))
    fastest = 0.0
    for points in seen.values():
        for (t0, x0, y0), (t1, x1, y1) in zip(points, points[5:], strict=False):  # over 1 s
            fastest = max(fastest, math.hypot(x1 - x0, y1 - y0) / (t1 - t0))
    assert 1.0 <= fastest < 1.3 + 0.4  # 1.0-1.3 m/s, plus track noise at both ends


def test_gates_bind_tracks_and_tokens(layout: StoreLayout, result: SimResult) -> None:
    truth = result.ground_truth
    zones = {g.direction: g.zone for g in layout.gates}
    ticks = _tracks(result)
    gate_msgs = {f"{m.payload['node_id']}:{m.payload['seq']}": m.payload
                 for m in result.messages if m.payload["kind"] == "gate"}
    assert [a["token"] for a in truth["accounts"]] == [f"acct-7-{n}" for n in range(1, 9)]
    for s in truth["sessions"]:
        entry = gate_msgs[s["entry_msg_id"]]
        assert entry["direction"] == "entry" and entry["account_token"] == s["account_token"]
        at_entry = next(tr for t, tr in ticks if t >= s["entered_at"])
        assert zones["entry"].contains(*at_entry[s["track_id"]], margin=0.1)
        at_exit = next(tr for t, tr in ticks if t >= s["exited_at"])
        assert zones["exit"].contains(*at_exit[s["track_id"]], margin=0.1)
        gone = next(tr for t, tr in ticks if t >= s["exited_at"] + 1.2)
        assert s["track_id"] not in gone
    exits = [p for p in gate_msgs.values() if p["direction"] == "exit"]
    assert len(exits) == 8 and all(p.get("account_token") is None for p in exits)


def test_ground_truth_items_are_picks_minus_putbacks(layout: StoreLayout, result: SimResult) -> None:
    truth = result.ground_truth
    weights = {f"{m.payload['node_id']}:{m.payload['seq']}": m.payload
               for m in result.messages if m.payload["kind"] == "weight"}
    assert {e["msg_id"] for e in truth["events"]} == set(weights)
    expected: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e in truth["events"]:
        w = weights[e["msg_id"]]
        assert w["plate_ids"] == e["plate_ids"] and layout.sku_on_plate[e["plate_ids"][0]] == e["sku"]
        unit = layout.products[e["sku"]].unit_weight_g
        sign = -1 if e["kind"] == "pick" else 1
        assert sign * w["delta_g"] > 0
        assert abs(abs(w["delta_g"]) - e["quantity"] * unit) < 6 * layout.products[e["sku"]].weight_std_g + 3
        assert w["ts"] == pytest.approx(w["t_end"] + 0.3, abs=2e-3)
        expected[e["track_id"]][e["sku"]] += -sign * e["quantity"]
    for s in truth["sessions"]:
        assert s["items"] == {k: v for k, v in expected[s["track_id"]].items() if v}
        assert all(v > 0 for v in s["items"].values())
    kinds = {e["kind"] for e in truth["events"]}
    assert kinds == {"pick", "putback"}


def test_nobody_else_near_a_shelf_event(result: SimResult) -> None:
    ticks = _tracks(result)
    for e in result.ground_truth["events"]:
        during = [tr for t, tr in ticks if e["t_start"] <= t <= e["t_end"]]
        assert during and all(e["track_id"] in tr for tr in during)
        for tr in during:
            me = tr[e["track_id"]]
            for tid, p in tr.items():
                if tid != e["track_id"]:
                    assert math.dist(me, p) >= 2.0, (e["msg_id"], tid)


def test_shoppers_and_duration_overrides(layout: StoreLayout) -> None:
    empty = simulate(layout, shoppers=0, duration_s=3.0)
    assert empty.ground_truth["sessions"] == []
    assert {m.payload["kind"] for m in empty.messages} == {"heartbeat", "tracks"}
    assert all(m.payload["tracks"] == [] for m in empty.messages if m.payload["kind"] == "tracks")
    three = simulate(layout, shoppers=3, seed=11)
    assert len(three.ground_truth["sessions"]) == 3
    windowed = simulate(layout, duration_s=40.0, seed=11)
    assert all(s["entered_at"] <= windowed.t0 + 41.0 for s in windowed.ground_truth["sessions"])
    with pytest.raises(ValueError):
        simulate(layout, shoppers=-1)


def test_scenario_catalog_refuses_planned_and_unknown(layout: StoreLayout) -> None:
    assert get_scenario("basic").default_shoppers == 8
    assert [s.name for s in CATALOG if s.built][0] == "basic"
    planned = r"scenario 'node-outage' is planned, not built yet; available: basic,"
    with pytest.raises(ScenarioError, match=planned):
        simulate(layout, "node-outage")
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'"):
        simulate(layout, "nope")


def test_cli_writes_a_dataset(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("sim")(sim_command)
    app.command("noop")(lambda: None)  # a second command keeps "sim" a subcommand
    runner = CliRunner()
    out = tmp_path / "ds"
    res = runner.invoke(app, ["sim", "--shoppers", "2", "--seed", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "2 sessions" in res.output
    ds = Dataset.open(out)
    assert ds.manifest["seed"] == 3 and ds.manifest["scenario"] == "basic"
    assert ds.manifest["message_count"] == sum(1 for _ in ds.messages())
    listed = runner.invoke(app, ["sim", "--list"])
    assert listed.exit_code == 0 and "busy" in listed.output
    bad = runner.invoke(app, ["sim", "--scenario", "node-outage", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2
    assert not (tmp_path / "x").exists()
