"""The scenario catalog at event fidelity: every scenario is real, deterministic, on contract, and shows
the hard case it is named after."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from edge.contracts import parse
from sim_data.behaviour import near_identical_plates
from sim_data.cli import DEMO_STORE, sim_command
from sim_data.dataset import Dataset
from sim_data.hands import count_behaviours, two_hand_spots
from sim_data.scenarios import CATALOG, ScenarioError
from sim_data.simulator import SimResult, simulate
from store_server.domain.layout import StoreLayout, load_layout

NEW = ["putbacks", "misplaced", "crowded-shelf", "same-weight", "groups", "busy", "sensor-faults", "hands"]
SMALL = {"busy": {"shoppers": 15, "duration_s": 400.0}, "sensor-faults": {"shoppers": 20}}
Ticks = list[tuple[float, dict[str, tuple[float, float]]]]
Runs = dict[str, SimResult]


@pytest.fixture(scope="module")
def layout() -> StoreLayout:
    return load_layout(DEMO_STORE)


@pytest.fixture(scope="module")
def runs(layout: StoreLayout) -> dict[str, SimResult]:
    return {name: simulate(layout, name, seed=7, **SMALL.get(name, {})) for name in NEW}  # type: ignore[arg-type]


def _tracks(result: SimResult) -> Ticks:
    return [
        (m.t, {p["track_id"]: (p["x_m"], p["y_m"]) for p in m.payload["tracks"]})
        for m in result.messages
        if m.payload["kind"] == "tracks"
    ]


def _by_id(result: SimResult, kind: str) -> dict[str, dict[str, Any]]:
    return {
        f"{m.payload['node_id']}:{m.payload['seq']}": m.payload
        for m in result.messages
        if m.payload["kind"] == kind
    }


def _during(ticks: Ticks, a: float, b: float) -> list[dict[str, tuple[float, float]]]:
    return [tr for t, tr in ticks if a <= t <= b]


# -- every scenario -----------------------------------------------------------------------------------
def test_catalog_lists_every_scenario_with_defaults() -> None:
    built = [s.name for s in CATALOG if s.built]
    assert built == ["basic", *NEW]
    busy = next(s for s in CATALOG if s.name == "busy")
    assert (busy.default_shoppers, busy.default_duration_s) == (120, 3600.0)
    assert all(s.description and s.default_shoppers > 0 for s in CATALOG)


@pytest.mark.parametrize("name", NEW)
def test_messages_fit_the_contract_in_node_order(name: str, runs: Runs) -> None:
    result = runs[name]
    assert [m.t for m in result.messages] == sorted(m.t for m in result.messages)
    by_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in result.messages:
        msg = parse(m.topic, json.dumps(m.payload))
        assert m.t == msg.ts  # type: ignore[union-attr]
        by_node[m.payload["node_id"]].append(m.payload)
    assert {"cam-ceiling", "gate-in", "gate-out"} <= set(by_node)
    for node, payloads in by_node.items():
        assert [p["seq"] for p in payloads] == list(range(len(payloads))), node
        ts = [p["ts"] for p in payloads]
        assert ts == sorted(ts), node
        if node != "cam-ceiling":  # heartbeat rules as in basic
            assert max(b - a for a, b in zip(ts, ts[1:], strict=False)) <= 0.25 + 2e-3, node


@pytest.mark.parametrize("name", NEW)
def test_deterministic_per_seed(name: str, layout: StoreLayout) -> None:
    size = {"shoppers": 6, "duration_s": 200.0} if name == "busy" else {"shoppers": 6}
    a = simulate(layout, name, seed=3, **size)  # type: ignore[arg-type]
    b = simulate(layout, name, seed=3, **size)  # type: ignore[arg-type]
    assert a.messages == b.messages and a.ground_truth == b.ground_truth
    assert simulate(layout, name, seed=4, **size).messages != a.messages  # type: ignore[arg-type]


@pytest.mark.parametrize("name", NEW)
def test_ground_truth_matches_the_messages(name: str, layout: StoreLayout, runs: Runs) -> None:
    result = runs[name]
    truth = result.ground_truth
    assert truth["scenario"] == name
    weights = _by_id(result, "weight")
    observable = [e for e in truth["events"] if e["observable"]]
    assert {e["msg_id"] for e in observable} == set(weights)
    assert all(e["msg_id"] is None for e in truth["events"] if not e["observable"])
    sessions_of = {t: s["entry_msg_id"] for s in truth["sessions"] for t in s["track_ids"]}
    expected: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e in truth["events"]:
        assert set(e) == {
            "msg_id",
            "t_start",
            "t_end",
            "kind",
            "sku",
            "quantity",
            "plate_ids",
            "track_id",
            "observable",
        }
        sign = 1 if e["kind"] == "pick" else -1
        expected[sessions_of[e["track_id"]]][e["sku"]] += sign * e["quantity"]
        if e["observable"]:
            w = weights[e["msg_id"]]
            assert w["plate_ids"] == e["plate_ids"] and -sign * w["delta_g"] > 0
            unit = layout.products[e["sku"]]
            assert abs(abs(w["delta_g"]) - e["quantity"] * unit.unit_weight_g) < 12 * unit.weight_std_g + 6
    for s in truth["sessions"]:
        assert s["items"] == {k: v for k, v in sorted(expected[s["entry_msg_id"]].items()) if v}
        assert s["track_id"] == s["track_ids"][0]
    assert {a["token"] for a in truth["accounts"]} == {s["account_token"] for s in truth["sessions"]}


@pytest.mark.parametrize("name", NEW)
def test_a_detection_at_every_pick_and_putback(name: str, layout: StoreLayout, runs: Runs) -> None:
    result = runs[name]
    dets = [
        (m.t, d)
        for m in result.messages
        if m.payload["kind"] == "detections"
        for d in m.payload["detections"]
    ]
    # One box per item in the hand: a pick of 3 shows three.
    assert len(dets) == sum(e["quantity"] for e in result.ground_truth["events"])
    nodes = {m.payload["node_id"] for m in result.messages if m.payload["kind"] == "detections"}
    assert nodes == {"cam-ceiling"}
    ticks = _tracks(result)
    confused = 0
    for e in result.ground_truth["events"]:
        t, d = next((t, d) for t, d in dets if t == e["t_end"] and d["track_id"] == e["track_id"])
        assert 0.6 <= d["confidence"] <= 0.95
        confused += d["label"] != e["sku"]
        assert d["label"] in layout.products
        near = [tr[e["track_id"]] for tr in _during(ticks, t - 0.4, t + 0.4) if e["track_id"] in tr]
        assert near and min(math.dist(p, (d["x_m"], d["y_m"])) for p in near) < 0.9
    if name != "sensor-faults":
        assert confused == 0


# -- what each scenario is about ---------------------------------------------------------------------
def test_putbacks_on_the_same_plate_some_partial(runs: Runs) -> None:
    truth = runs["putbacks"].ground_truth
    picks = {(e["track_id"], e["sku"]): e for e in truth["events"] if e["kind"] == "pick"}
    backs = [e for e in truth["events"] if e["kind"] == "putback"]
    shoppers = {s["track_id"] for s in truth["sessions"]}
    assert len({e["track_id"] for e in backs}) > len(shoppers) / 2
    for e in backs:
        pick = picks[(e["track_id"], e["sku"])]
        assert e["plate_ids"] == pick["plate_ids"] and e["quantity"] <= pick["quantity"]
        assert e["t_start"] > pick["t_end"]
    partial = [e for e in backs if e["quantity"] < picks[(e["track_id"], e["sku"])]["quantity"]]
    assert partial or any(e["quantity"] > 1 for e in backs)


def test_misplaced_returns_land_on_a_foreign_plate(layout: StoreLayout, runs: Runs) -> None:
    result = runs["misplaced"]
    weights = _by_id(result, "weight")
    wrong = [e for e in result.ground_truth["events"] if e["kind"] == "misplaced_return"]
    assert wrong
    for e in wrong:
        w = weights[e["msg_id"]]
        assert w["delta_g"] > 0 and layout.sku_on_plate[w["plate_ids"][0]] != e["sku"]
        assert e["quantity"] == 1
        took = [
            p
            for p in result.ground_truth["events"]
            if p["kind"] == "pick"
            and p["sku"] == e["sku"]
            and p["track_id"] == e["track_id"]
            and p["t_end"] < e["t_start"]
        ]
        assert took


def test_crowded_shelf_neighbours_close_but_the_taker_nearest(layout: StoreLayout, runs: Runs) -> None:
    result = runs["crowded-shelf"]
    ticks = _tracks(result)
    crowded = 0
    for e in result.ground_truth["events"]:
        plate = layout.plate_centroid(e["plate_ids"])
        during = _during(ticks, e["t_start"], e["t_end"])
        closest: dict[str, float] = {}
        for tr in during:
            for tid, p in tr.items():
                closest[tid] = min(closest.get(tid, math.inf), math.dist(p, plate))
        assert min(closest, key=lambda k: closest[k]) == e["track_id"], e
        mine = [tr[e["track_id"]] for tr in during]
        others = [
            math.dist(me, p)
            for me, tr in zip(mine, during, strict=True)
            for tid, p in tr.items()
            if tid != e["track_id"]
        ]
        if others and min(others) <= 1.5:
            assert min(others) >= 0.45
            crowded += 1
    assert crowded >= 3


def test_same_weight_picks_are_on_near_identical_neighbours(layout: StoreLayout, runs: Runs) -> None:
    hard = near_identical_plates(layout)
    assert {"g1-s3-p1", "g1-s3-p2"} <= hard  # the two cola cans, 2 g apart
    picks = [e for e in runs["same-weight"].ground_truth["events"] if e["kind"] == "pick"]
    assert all(len(e["plate_ids"]) == 1 and layout.sku_on_plate[e["plate_ids"][0]] == e["sku"] for e in picks)
    assert sum(e["plate_ids"][0] in hard for e in picks) >= 0.6 * len(picks)


def test_groups_enter_on_one_pass_and_pay_when_the_last_leaves(layout: StoreLayout, runs: Runs) -> None:
    result = runs["groups"]
    truth = result.ground_truth
    zone = next(g for g in layout.gates if g.direction == "entry").zone
    gates = _by_id(result, "gate")
    ticks = _tracks(result)
    people = sum(len(s["track_ids"]) for s in truth["sessions"])
    assert len(truth["accounts"]) == len(truth["sessions"]) < people
    for s in truth["sessions"]:
        entry = gates[s["entry_msg_id"]]
        k = entry["group_size"]
        assert 2 <= k <= 4 and len(s["track_ids"]) == s["group_size"] == k
        at = next(tr for t, tr in ticks if t >= entry["ts"])
        inside = {tid for tid, p in at.items() if zone.contains(*p, margin=0.1)}
        assert inside == set(s["track_ids"])
        exits = [gates[m] for m in s["exit_msg_ids"]]
        assert all(x["direction"] == "exit" for x in exits) and len(exits) == k
        assert s["exited_at"] == max(x["ts"] for x in exits)
    entries = [g for g in gates.values() if g["direction"] == "entry"]
    assert len(entries) == len(truth["sessions"])
    exits = [g for g in gates.values() if g["direction"] == "exit"]
    assert len(exits) == sum(len(s["track_ids"]) for s in truth["sessions"])


def test_busy_defaults_are_an_overlapping_rush_hour(layout: StoreLayout) -> None:
    result = simulate(layout, "busy", seed=7)
    sessions = result.ground_truth["sessions"]
    assert len(sessions) >= 100 and result.duration_s >= 3600
    spans = sorted((s["entered_at"], s["exited_at"]) for s in sessions)
    inside = max(sum(a <= t < b for a, b in spans) for t, _ in spans)
    assert inside >= 3
    ticks = _tracks(result)
    for e in result.ground_truth["events"][::5]:
        for tr in _during(ticks, e["t_start"], e["t_end"]):
            me = tr[e["track_id"]]
            assert all(math.dist(me, p) >= 2.0 for tid, p in tr.items() if tid != e["track_id"]), e


def test_sensor_faults(layout: StoreLayout, runs: Runs) -> None:
    result = runs["sensor-faults"]
    truth = result.ground_truth
    faults = truth["faults"]
    ticks = _tracks(result)
    # One id switch: t3 until the switch, t3b after it, at the same place, away from plates and gates.
    switch = faults["id_switch"]
    assert switch["from"] == "t3" and switch["to"] == "t3b"
    seen_old = [t for t, tr in ticks if "t3" in tr]
    seen_new = [t for t, tr in ticks if "t3b" in tr]
    assert seen_old and seen_new and max(seen_old) < switch["t"] <= min(seen_new)
    session = next(s for s in truth["sessions"] if s["track_id"] == "t3")
    assert session["track_ids"] == ["t3", "t3b"]
    # A camera outage of 3 s: no track message, while shelves and gates keep beating.
    times = [t for t, _ in ticks]
    gap, at = max((b - a, a) for a, b in zip(times, times[1:], strict=False))
    assert gap >= 3.0 and faults["camera_outage"][0] - 0.2 <= at
    beats = [m.t for m in result.messages if m.payload["node_id"] == "shelf-g1" and at < m.t < at + gap]
    assert len(beats) >= 10
    # A dead plate: its events are in the truth, unobservable, and never on the wire.
    dead = faults["dead_plate"]
    lost = [e for e in truth["events"] if not e["observable"]]
    assert lost and all(e["plate_ids"] == [dead] and e["msg_id"] is None for e in lost)
    assert all(w["plate_ids"] != [dead] for w in _by_id(result, "weight").values())
    # Noisier sensors: a few missed points, doubled weight noise.
    assert all(w["noise_g"] == 1.0 for w in _by_id(result, "weight").values())
    present = sum(len(tr) for _, tr in ticks)
    assert faults["dropped_track_points"] == 0.05 and present > 0


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_hands_shows_every_behaviour(layout: StoreLayout, seed: int) -> None:
    result = simulate(layout, "hands", seed=seed)
    truth = result.ground_truth
    assert len(truth["sessions"]) == 8
    counts = count_behaviours(truth, layout)
    assert counts["multi_quantity"] and counts["two_hands"], counts
    assert counts["putback_same_plate"] + counts["putback_other_plate"], counts
    assert counts["misplaced_other_shelf"] and counts["misplaced_carried"], counts
    events, ticks = truth["events"], _tracks(result)
    on = {p: (i.gondola_id, i.shelf_id) for p, i in layout.plates.items()}
    pairs = [(a, b) for i, a in enumerate(events) for b in events[i + 1:]
             if a["track_id"] == b["track_id"] and on[a["plate_ids"][0]][0] != on[b["plate_ids"][0]][0]
             and a["t_start"] <= b["t_start"] < a["t_end"] and b["t_start"] - a["t_start"] < 1.0]
    assert len(pairs) == counts["two_hands"]
    for a, b in pairs:  # one shopper, two gondolas, overlapping events, nobody else nearer either plate
        for e in (a, b):
            plate = layout.plate_centroid(e["plate_ids"])
            closest: dict[str, float] = {}
            for tr in _during(ticks, e["t_start"], e["t_end"]):
                for tid, p in tr.items():
                    closest[tid] = min(closest.get(tid, math.inf), math.dist(p, plate))
            mine = closest.pop(e["track_id"])
            assert mine <= 1.5 and all(d > mine + 0.2 for d in closest.values()), (e, mine, closest)
    for e in events:
        if e["kind"] == "putback":
            assert layout.sku_on_plate[e["plate_ids"][0]] == e["sku"]
        if e["kind"] == "misplaced_return":
            assert layout.sku_on_plate[e["plate_ids"][0]] != e["sku"] and e["quantity"] == 1


def test_two_hand_spots_are_mid_aisle_between_facing_gondolas(layout: StoreLayout) -> None:
    # The demo store's aisles are 4.2 m wide: the only spot is the gap between the island ends.
    spots = two_hand_spots(layout)
    assert {(s.left.rsplit("-", 1)[1], s.right.rsplit("-", 1)[1], s.stand) for s in spots} == {
        ("p4", "p1", (7.6, 6.9))}
    data = layout.model_dump()
    g3 = next(g for g in data["gondolas"] if g["id"] == "g3")
    g3["y_m"] = 9.6  # facing north, front at 10.2: a 1.2 m aisle below g1's front at 11.4
    narrow = StoreLayout.model_validate(data)
    spots = [s for s in two_hand_spots(narrow) if {s.left[:2], s.right[:2]} == {"g1", "g3"}]
    assert spots and all(10.5 < s.stand[1] < 11.1 for s in spots)
    assert {"g1-s1-p1", "g3-s1-p1"} <= {p for s in spots for p in (s.left, s.right)}


def test_signal_fidelity_replaces_weight_events_with_raw_samples(layout: StoreLayout) -> None:
    event = simulate(layout, "putbacks", seed=4, shoppers=2)
    signal = simulate(layout, "putbacks", seed=4, shoppers=2, fidelity="signal")
    assert signal.manifest()["fidelity"] == "signal" and signal.ground_truth == event.ground_truth
    kinds = {m.payload["kind"] for m in signal.messages}
    assert "samples" in kinds and "weight" not in kinds
    for m in signal.messages[:200]:
        parse(m.topic, json.dumps(m.payload))
    with pytest.raises(ScenarioError, match="unknown fidelity"):
        simulate(layout, "putbacks", fidelity="pixels")


def test_cli_lists_and_runs_scenarios(tmp_path: Any) -> None:
    app = typer.Typer()
    app.command("sim")(sim_command)
    app.command("noop")(lambda: None)
    runner = CliRunner()
    listed = runner.invoke(app, ["sim", "--list"])
    assert listed.exit_code == 0
    assert all(name in listed.output for name in NEW) and "3600 s" in listed.output
    out = tmp_path / "g"
    res = runner.invoke(
        app, ["sim", "--scenario", "groups", "--shoppers", "5", "--seed", "2", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    ds = Dataset.open(out)
    assert ds.manifest["scenario"] == "groups" and ds.ground_truth["scenario"] == "groups"
    bad = runner.invoke(
        app, ["sim", "--scenario", "groups", "--fidelity", "pixels", "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code == 2 and "unknown fidelity" in bad.output
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "scenario",
    ["basic", "putbacks", "misplaced", "crowded-shelf", "same-weight", "groups", "sensor-faults", "hands"],
)
def test_every_scenario_writes_a_dataset_its_json_schema_accepts(scenario, tmp_path):
    import jsonschema

    from sim_data.dataset import Dataset, write_dataset
    from store_server.settings import DEFAULT_STORE

    schema = json.loads((Path(__file__).parents[2] / "sim_data/schemas/dataset.schema.json").read_text())
    result = simulate(load_layout(DEFAULT_STORE), scenario, seed=5, shoppers=4)
    data = Dataset.open(
        write_dataset(
            tmp_path / scenario,
            result.manifest(),
            DEFAULT_STORE.read_text(),
            result.messages,
            result.ground_truth,
        )
    )
    jsonschema.validate(data.manifest, {**schema, **schema["$defs"]["manifest"]})
    jsonschema.validate(data.ground_truth, {**schema, **schema["$defs"]["ground_truth"]})
