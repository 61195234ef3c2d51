"""The store simulator at event fidelity: what the edge nodes of a store would publish over MQTT.

Shoppers come from a scenario plan (sim_data.scenarios); this module moves them along walkable paths,
keeps them apart at shelves when the scenario asks for it, and turns the result into the exact
messages of edge/contracts.py with per-node sequence numbers, heartbeats and sensor noise, plus the
ground truth an evaluator needs. Everything derives from the seed: no wall clock, no global RNG, so a
dataset can be re-made bit for bit.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge import contracts as c
from sim_data.dataset import SimMessage
from sim_data.paths import Motion, Point, WalkGrid, stand_point, walk_knots
from sim_data.scenarios import ShopperPlan, get_scenario, plan_basic
from store_server.domain.layout import StoreLayout

logger = logging.getLogger(__name__)

CAMERA_PERIOD_S = 0.2  # 5 Hz
HEARTBEAT_S = 0.25
GATE_DWELL_S = 1.5  # a shopper stands this long in a gate zone
GATE_SIGNAL_S = 0.5  # the gate publishes this long after the shopper arrives in its zone
PICK_AFTER_S = 1.0  # hand on the shelf this long after arriving
PUBLISH_AFTER_S = 0.3  # the edge detector settles for this long before it publishes
SEPARATION_M = 2.0  # "basic": nobody else this close during a shelf event
SAFETY_M = 0.3  # margin so 5 cm track noise cannot bring two shoppers under SEPARATION_M
TRACK_NOISE_M = 0.05
WAIT_STEP_S, LEG_MAX_WAIT_S = 0.5, 20.0  # wait in place before a leg, up to this long
SHIFT_STEP_S, MAX_SHIFT_S = 1.0, 1800.0  # then shift the shopper's whole visit later
MIN_ENTRY_GAP_S = 4.0  # one shopper at a time in the entry zone
TAIL_S = 5.0  # the sim runs this long past the last exit


def _r(t: float) -> float:
    return round(t, 3)


@dataclass
class SimResult:
    messages: list[SimMessage]
    ground_truth: dict[str, Any]
    scenario: str
    seed: int
    store_id: str
    t0: float
    t_end: float

    @property
    def duration_s(self) -> float:
        return round(self.t_end - self.t0, 3)

    def manifest(self, source: str = "sim") -> dict[str, Any]:
        """Manifest fields known to the simulator (dataset.write_dataset adds the rest)."""
        return {"source": source, "scenario": self.scenario, "seed": self.seed, "store_id": self.store_id,
                "t0": self.t0, "duration_s": self.duration_s, "fidelity": "event"}


@dataclass
class _Shopper:
    plan: ShopperPlan
    motion: Motion
    windows: list[tuple[float, float]] = field(default_factory=list)  # shelf events, padded
    exit_span: tuple[float, float] = (math.inf, math.inf)


@dataclass
class _Out:
    """A message before sequencing: the node's seq is only known once its stream is ordered."""

    t: float
    node: str
    kind: str
    fields: dict[str, Any]
    truth: dict[str, Any] | None = None


def _too_close(a: Motion, b: Motion, lo: float, hi: float) -> bool:
    ts = np.linspace(lo, hi, max(2, int((hi - lo) / 0.1) + 2))
    ax, ay, am = a.at(ts)
    bx, by, bm = b.at(ts)
    both = am & bm
    return bool(np.any(np.hypot(ax - bx, ay - by)[both] < SEPARATION_M + SAFETY_M))


def _clash(cand: Motion, own: list[tuple[float, float]], others: list[_Shopper],
           exit_span: tuple[float, float] | None = None) -> bool:
    lo, hi = cand.t_in, cand.t_out
    for o in others:
        if exit_span and exit_span[0] - 1.0 < o.exit_span[1] and o.exit_span[0] < exit_span[1] + 1.0:
            return True  # one shopper at a time in the exit zone, or the gate cannot tell who left
        if o.motion.t_out < lo or o.motion.t_in > hi:
            continue
        for ws, we in o.windows:
            if max(ws, lo) <= min(we, hi) and _too_close(cand, o.motion, max(ws, lo), min(we, hi)):
                return True
        if any(_too_close(cand, o.motion, ws, we) for ws, we in own):
            return True
    return False


def _leg(grid: WalkGrid, here: tuple[float, Point], target: Point, speed: float, wait: float,
         stay: float) -> tuple[Motion, float]:
    """Wait where you are, walk to ``target``, stay there: the candidate motion and the arrival time."""
    t, pos = here
    knots, arrive = walk_knots(t + wait, grid.path(pos, target), speed)
    return Motion([(t, pos[0], pos[1])] + knots + [(arrive + stay, target[0], target[1])]), arrive


def _attempt(layout: StoreLayout, grid: WalkGrid, plan: ShopperPlan, t_in: float, done: list[_Shopper],
             keep_apart: bool) -> tuple[_Shopper, list[_Out]] | None:
    """Plan one shopper's visit entering at ``t_in``; None when some leg cannot be kept clear."""
    entry = next(g for g in layout.gates if g.direction == "entry")
    exit_ = next(g for g in layout.gates if g.direction == "exit")
    track_id = f"t{plan.number}"
    pos: Point = (entry.zone.centre[0] + plan.entry_offset[0], entry.zone.centre[1] + plan.entry_offset[1])
    me = _Shopper(plan, Motion([(t_in, *pos), (t_in + GATE_DWELL_S, *pos)]))
    out = [_Out(_r(t_in + GATE_SIGNAL_S), entry.node_id or entry.id, "gate",
                {"gate_id": entry.id, "direction": "entry", "account_token": plan.token},
                {"role": "entry", "shopper": plan.number})]
    here = (t_in + GATE_DWELL_S, pos)
    exit_pt = (exit_.zone.centre[0] + plan.exit_offset[0], exit_.zone.centre[1] + plan.exit_offset[1])
    for stop in [*plan.stops, None]:
        target = exit_pt if stop is None else stand_point(layout, stop.plate_id, stop.offset_m)
        stay = GATE_DWELL_S if stop is None else stop.dwell_s
        wait = 0.0
        while True:
            cand, arrive = _leg(grid, here, target, plan.speed_mps, wait, stay)
            t_start = arrive + PICK_AFTER_S
            t_end = t_start + (stop.reach_s if stop else 0.0)
            own = [(t_start - 0.5, t_end + PUBLISH_AFTER_S + 0.2)] if stop else []
            span = (arrive, arrive + GATE_DWELL_S) if stop is None else None
            if not keep_apart or not _clash(cand, own, done, span):
                break
            wait += WAIT_STEP_S  # shift the visit: wait where you are until the shelf is clear
            if wait > LEG_MAX_WAIT_S:
                return None  # waiting here does not help (we may be the one in the way): shift the entry
        for t, x, y in cand.knots:
            me.motion.add(t, (x, y))
        here = (cand.t_out, target)
        if stop is None:
            me.exit_span = (arrive, arrive + GATE_DWELL_S)
            out.append(_Out(_r(arrive + GATE_SIGNAL_S), exit_.node_id or exit_.id, "gate",
                            {"gate_id": exit_.id, "direction": "exit"},
                            {"role": "exit", "shopper": plan.number}))
            break
        me.windows += own
        product = layout.products[stop.sku]
        z_unit, z_scale = stop.noise_z
        grams = (stop.quantity * product.unit_weight_g
                 + z_unit * product.weight_std_g * math.sqrt(stop.quantity) + z_scale * 0.5)
        plate = layout.plates[stop.plate_id]
        gondola = next(g for g in layout.gondolas if g.id == plate.gondola_id)
        out.append(_Out(_r(t_end + PUBLISH_AFTER_S), gondola.node_id or gondola.id, "weight", {
            "gondola_id": gondola.id, "shelf_id": plate.shelf_id, "plate_ids": [stop.plate_id],
            "delta_g": round(grams if stop.action == "putback" else -grams, 2),
            "t_start": _r(t_start), "t_end": _r(t_end), "noise_g": 0.5, "confidence": stop.confidence,
        }, {"t_start": _r(t_start), "t_end": _r(t_end), "kind": stop.action, "sku": stop.sku,
            "quantity": stop.quantity, "plate_ids": [stop.plate_id], "track_id": track_id}))
    return me, out


def _schedule(layout: StoreLayout, grid: WalkGrid, plans: list[ShopperPlan], t0: float,
              keep_apart: bool) -> tuple[list[_Shopper], list[_Out]]:
    """Plan shoppers in arrival order, each around those already planned.

    When a visit cannot be kept clear by waiting, the shopper's whole visit shifts later (the entry
    gap to the previous shopper is kept), which always resolves once the others have left.
    """
    done: list[_Shopper] = []
    out: list[_Out] = []
    last_in = -math.inf
    for plan in plans:
        t_in = max(t0 + plan.arrival_s, last_in + MIN_ENTRY_GAP_S)
        planned = None
        while planned is None:
            planned = _attempt(layout, grid, plan, t_in, done, keep_apart)
            t_in += SHIFT_STEP_S
            if planned is None and t_in - (t0 + plan.arrival_s) > MAX_SHIFT_S:
                logger.warning("shopper %d could not be kept apart; planning without", plan.number)
                planned = _attempt(layout, grid, plan, t_in, done, keep_apart=False)
        me, msgs = planned
        last_in = me.motion.t_in
        done.append(me)
        out += msgs
    return done, out


def _camera(layout: StoreLayout, shoppers: list[_Shopper], t0: float, t_end: float, seed: int) -> list[_Out]:
    """5 Hz track lists from the ceiling camera, every tick, empty or not."""
    if not layout.cameras:
        return []
    cam = layout.cameras[0]
    rng = np.random.default_rng([seed, 3])
    ticks = np.round(t0 + np.arange(int((t_end - t0) / CAMERA_PERIOD_S + 1e-9) + 1) * CAMERA_PERIOD_S, 3)
    per_tick: list[list[dict[str, Any]]] = [[] for _ in ticks]
    for s in shoppers:
        x, y, present = s.motion.at(ticks)
        idx = np.flatnonzero(present)
        nx, ny = rng.normal(0, TRACK_NOISE_M, len(idx)), rng.normal(0, TRACK_NOISE_M, len(idx))
        conf = rng.uniform(0.85, 0.95, len(idx))
        for k, i in enumerate(idx):
            per_tick[i].append({"track_id": f"t{s.plan.number}", "x_m": round(float(x[i] + nx[k]), 3),
                                "y_m": round(float(y[i] + ny[k]), 3), "confidence": round(float(conf[k]), 3)})
    node = cam.node_id or cam.id
    return [_Out(float(t), node, "tracks", {"camera_id": cam.id, "tracks": tracks})
            for t, tracks in zip(ticks, per_tick, strict=True)]


def _with_heartbeats(events: list[_Out], node: str, t0: float, t_end: float) -> list[_Out]:
    """Insert a heartbeat wherever the node would otherwise be silent for more than HEARTBEAT_S."""
    out: list[_Out] = []
    last: float | None = None
    for ev in sorted(events, key=lambda e: e.t):
        if last is None and ev.t > t0:
            out.append(_Out(_r(t0), node, "heartbeat", {}))
            last = t0
        while last is not None and ev.t - last > HEARTBEAT_S + 1e-6:
            last = _r(last + HEARTBEAT_S)
            out.append(_Out(last, node, "heartbeat", {}))
        out.append(ev)
        last = ev.t
    if last is None:
        out.append(_Out(_r(t0), node, "heartbeat", {}))
        last = t0
    while _r(last + HEARTBEAT_S) <= t_end:
        last = _r(last + HEARTBEAT_S)
        out.append(_Out(last, node, "heartbeat", {}))
    return out


_MODELS: dict[str, Any] = {  # kind -> contract model
    "weight": c.WeightEvent, "gate": c.GatePass, "heartbeat": c.Heartbeat, "tracks": c.ShopperTracks,
}


def simulate(layout: StoreLayout, scenario: str = "basic", seed: int = 7, shoppers: int | None = None,
             duration_s: float | None = None, t0: float = 1_780_000_000.0) -> SimResult:
    """Run ``scenario`` in ``layout`` and return every MQTT message plus the ground truth.

    ``shoppers`` overrides the scenario's count; ``duration_s`` bounds the arrival window (shoppers
    who arrived still finish, and the run ends ``TAIL_S`` after the last exit).
    """
    spec = get_scenario(scenario)
    if shoppers is not None and shoppers < 0:
        raise ValueError("shoppers must be 0 or more")
    if duration_s is not None and duration_s <= 0:
        raise ValueError("duration must be positive (seconds)")
    if shoppers is None and duration_s is None:
        shoppers, duration_s = spec.default_shoppers, spec.default_duration_s
    plans = plan_basic(layout, seed, shoppers, duration_s)
    grid = WalkGrid(layout)
    people, events = _schedule(layout, grid, plans, t0, keep_apart=True)
    t_end = max([s.motion.t_out + TAIL_S for s in people] + [t0 + (duration_s or TAIL_S)])
    t_end = _r(t_end)

    nodes = [g.node_id or g.id for g in layout.gondolas] + [g.node_id or g.id for g in layout.gates]
    streams = {n: _with_heartbeats([e for e in events if e.node == n], n, t0, t_end)
               for n in dict.fromkeys(nodes)}
    cam = _camera(layout, people, t0, t_end, seed)
    if cam:
        streams[cam[0].node] = cam
    rank = {n: i for i, n in enumerate(streams)}
    keyed: list[tuple[float, int, int, SimMessage]] = []
    for node, stream in streams.items():
        for seq, ev in enumerate(stream):
            model = _MODELS[ev.kind](node_id=node, seq=seq, ts=ev.t, **ev.fields)
            keyed.append((ev.t, rank[node], seq, SimMessage(
                ev.t, c.topic_for(model, layout.store_id), json.loads(model.model_dump_json()))))
            if ev.truth is not None:
                ev.truth["msg_id"] = model.msg_id
                ev.truth["ts"] = ev.t
    keyed.sort(key=lambda k: k[:3])
    truth = _ground_truth(layout, t0, people, events)
    return SimResult([k[3] for k in keyed], truth, scenario, seed, layout.store_id, t0, t_end)


def _ground_truth(
    layout: StoreLayout, t0: float, people: list[_Shopper], events: list[_Out]
) -> dict[str, Any]:
    truths = [e.truth for e in events if e.truth is not None]
    gates = {(t["role"], t["shopper"]): t for t in truths if "role" in t}
    shelf = sorted((t for t in truths if "sku" in t), key=lambda t: (t["t_start"], t["msg_id"]))
    sessions = []
    for s in people:
        track_id = f"t{s.plan.number}"
        items: dict[str, int] = {}
        for ev in shelf:
            if ev["track_id"] == track_id:
                sign = 1 if ev["kind"] == "pick" else -1
                items[ev["sku"]] = items.get(ev["sku"], 0) + sign * ev["quantity"]
        entry, exit_ = gates[("entry", s.plan.number)], gates[("exit", s.plan.number)]
        sessions.append({"account_token": s.plan.token, "track_id": track_id, "entry_msg_id": entry["msg_id"],
                         "entered_at": entry["ts"], "exited_at": exit_["ts"],
                         "items": {k: v for k, v in sorted(items.items()) if v}})
    return {
        "store_id": layout.store_id,
        "t0": t0,
        "accounts": [{"token": s.plan.token, "name": s.plan.name, "email": s.plan.email,
                      "balance_cents": 100_000, "credit_limit_cents": 0} for s in people],
        "sessions": sessions,
        "events": [{k: ev[k] for k in ("msg_id", "t_start", "t_end", "kind", "sku", "quantity", "plate_ids",
                                       "track_id")} for ev in shelf],
    }
