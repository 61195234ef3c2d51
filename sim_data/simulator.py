"""The store simulator at event fidelity: what the edge nodes of a store would publish over MQTT.

Shoppers come from a scenario plan (sim_data.scenarios, sim_data.behaviour); sim_data.schedule moves
them along walkable paths and keeps them apart at shelves; sim_data.noise says what the camera sees
and how sensors fail. This module turns the result into the exact messages of edge/contracts.py
with per-node sequence numbers and heartbeats, plus the ground truth an evaluator needs. Everything
derives from the seed: no wall clock, no global RNG, so a dataset can be re-made bit for bit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge import contracts as c
from sensors.signal_profile import get_profile
from sim_data.behaviour import plan_scenario
from sim_data.dataset import SimMessage
from sim_data.noise import HEALTHY, Faults, camera_tracks, choose_faults, detections
from sim_data.paths import WalkGrid
from sim_data.scenarios import get_scenario
from sim_data.schedule import Ctx, Out, Shopper, schedule
from store_server.domain.layout import StoreLayout

logger = logging.getLogger(__name__)

HEARTBEAT_S = 0.25
TAIL_S = 5.0  # the sim runs this long past the last exit
EVENT_KEYS = ("msg_id", "t_start", "t_end", "kind", "sku", "quantity", "plate_ids", "track_id", "observable")

Progress = Callable[[str, int, int], None]  # (stage, done, total)


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
    fidelity: str = "event"
    signal_profile: str | None = None  # the signal profile's name (signal fidelity only)

    @property
    def duration_s(self) -> float:
        return round(self.t_end - self.t0, 3)

    def manifest(self, source: str = "sim") -> dict[str, Any]:
        """Manifest fields known to the simulator (dataset.write_dataset adds the rest)."""
        out = {"source": source, "scenario": self.scenario, "seed": self.seed, "store_id": self.store_id,
               "t0": self.t0, "duration_s": self.duration_s, "fidelity": self.fidelity}
        if self.signal_profile is not None:
            out["signal_profile"] = self.signal_profile
        return out


def _with_heartbeats(events: list[Out], node: str, t0: float, t_end: float) -> list[Out]:
    """Insert a heartbeat wherever the node would otherwise be silent for more than HEARTBEAT_S."""
    out: list[Out] = []
    last: float | None = None
    for ev in sorted(events, key=lambda e: e.t):
        if last is None and ev.t > t0:
            out.append(Out(_r(t0), node, "heartbeat", {}))
            last = t0
        while last is not None and ev.t - last > HEARTBEAT_S + 1e-6:
            last = _r(last + HEARTBEAT_S)
            out.append(Out(last, node, "heartbeat", {}))
        out.append(ev)
        last = ev.t
    if last is None:
        out.append(Out(_r(t0), node, "heartbeat", {}))
        last = t0
    while _r(last + HEARTBEAT_S) <= t_end:
        last = _r(last + HEARTBEAT_S)
        out.append(Out(last, node, "heartbeat", {}))
    return out


_MODELS: dict[str, Any] = {  # kind -> contract model
    "weight": c.WeightEvent, "gate": c.GatePass, "heartbeat": c.Heartbeat, "tracks": c.ShopperTracks,
    "detections": c.ItemDetections,
}


def simulate(layout: StoreLayout, scenario: str = "basic", seed: int = 7, shoppers: int | None = None,
             duration_s: float | None = None, t0: float = 1_780_000_000.0, fidelity: str = "event",
             progress: Progress | None = None, signal_profile: str = "realistic") -> SimResult:
    """Run ``scenario`` in ``layout`` and return every MQTT message plus the ground truth.

    ``shoppers`` overrides the scenario's count; ``duration_s`` bounds the arrival window (shoppers
    who arrived still finish, and the run ends ``TAIL_S`` after the last exit). With neither, the
    scenario's defaults apply; with only ``shoppers``, the scenario's default window (if any).
    ``progress(stage, done, total)`` is called while planning shoppers and encoding messages.
    ``signal_profile`` (sensors.signal_profile.PROFILES) shapes the samples at signal fidelity.
    """
    spec = get_scenario(scenario, fidelity)
    profile = get_profile(signal_profile)
    if shoppers is not None and shoppers < 0:
        raise ValueError("shoppers must be 0 or more")
    if duration_s is not None and duration_s <= 0:
        raise ValueError("duration must be positive (seconds)")
    if shoppers is None and duration_s is None:
        shoppers, duration_s = spec.default_shoppers, spec.default_duration_s
    elif duration_s is None:
        duration_s = spec.default_duration_s
    plans = plan_scenario(scenario, layout, seed, shoppers, duration_s)
    ctx = Ctx(layout, WalkGrid(layout), weight_noise=2.0 if spec.faults else 1.0,
              clear_entry=scenario != "basic")

    def planned(done: int, total: int) -> None:
        if progress:
            progress("planning shoppers", done, total)

    people, events = schedule(ctx, plans, t0, keep_apart=True, progress=planned)
    t_end = max([s.motion.t_out + TAIL_S for s in people] + [t0 + (duration_s or TAIL_S)])
    t_end = _r(t_end)

    shelf = [e.truth for e in events if e.truth is not None and "sku" in e.truth]
    faults = choose_faults(layout, people, shelf, t0, t_end, seed) if spec.faults else HEALTHY
    for e in events:
        if e.truth is not None and "sku" in e.truth:
            e.truth["observable"] = e.truth["plate_ids"][0] != faults.dead_plate
    published = [e for e in events if e.truth is None or e.truth.get("observable", True)]

    nodes = [g.node_id or g.id for g in layout.gondolas] + [g.node_id or g.id for g in layout.gates]
    streams = {n: _with_heartbeats([e for e in published if e.node == n], n, t0, t_end)
               for n in dict.fromkeys(nodes)}
    cam = camera_tracks(layout, people, t0, t_end, seed, faults)
    if spec.detections:
        cam = sorted(cam + detections(layout, people, shelf, seed, faults), key=lambda o: o.t)
    if cam:
        streams[cam[0].node] = cam
    messages = _sequence(layout, streams, progress)
    truth = _ground_truth(layout, scenario, t0, people, events, faults if spec.faults else None)
    if fidelity == "signal":
        # Shelf nodes publish raw load-cell samples instead of weight events (edge.weight_detector
        # turns them back into events in `walkout run`, as an edge node would).
        from sim_data.signal import to_signal_level

        if progress:
            progress("synthesizing load-cell signals", 0, 1)
        messages = to_signal_level(messages, truth, layout, seed=seed, faults=spec.faults, profile=profile)
    return SimResult(messages, truth, scenario, seed, layout.store_id, t0, t_end, fidelity,
                     profile.name if fidelity == "signal" else None)


def _sequence(layout: StoreLayout, streams: dict[str, list[Out]],
              progress: Progress | None) -> list[SimMessage]:
    """Number each node's stream, validate every payload against the contract, merge by time."""
    rank = {n: i for i, n in enumerate(streams)}
    total = sum(len(s) for s in streams.values())
    keyed: list[tuple[float, int, int, SimMessage]] = []
    for node, stream in streams.items():
        for seq, ev in enumerate(stream):
            model = _MODELS[ev.kind](node_id=node, seq=seq, ts=ev.t, **ev.fields)
            keyed.append((ev.t, rank[node], seq, SimMessage(
                ev.t, c.topic_for(model, layout.store_id), json.loads(model.model_dump_json()))))
            if ev.truth is not None:
                ev.truth["msg_id"] = model.msg_id
                ev.truth["ts"] = ev.t
            if progress and len(keyed) % 5000 == 0:
                progress("encoding messages", len(keyed), total)
    keyed.sort(key=lambda k: k[:3])
    return [k[3] for k in keyed]


def _ground_truth(layout: StoreLayout, scenario: str, t0: float, people: list[Shopper], events: list[Out],
                  faults: Faults | None) -> dict[str, Any]:
    truths = [e.truth for e in events if e.truth is not None]
    gates = {(t["role"], t.get("party", t.get("shopper"))): t for t in truths if "role" in t}
    by_number = {s.plan.number: s for s in people}
    shelf = sorted((t for t in truths if "sku" in t), key=lambda t: (t["t_start"], t.get("msg_id") or ""))
    for ev in shelf:
        ev.setdefault("msg_id", None)  # never published (a dead plate)
        ev["track_id"] = by_number[ev["shopper"]].track_at(ev["t_start"])
    parties: dict[int, list[Shopper]] = {}
    for s in people:
        parties.setdefault(s.plan.party, []).append(s)
    sessions = []
    for party, members in parties.items():
        numbers = {m.plan.number for m in members}
        items: dict[str, int] = {}
        for ev in shelf:
            if ev["shopper"] in numbers:
                sign = 1 if ev["kind"] == "pick" else -1
                items[ev["sku"]] = items.get(ev["sku"], 0) + sign * ev["quantity"]
        entry = gates[("entry", party)]
        exits = [gates[("exit", m.plan.number)] for m in members]
        track_ids = [t for m in members for t in [m.track_id] + ([m.switch[1]] if m.switch else [])]
        session = {"account_token": members[0].plan.token, "track_id": members[0].track_id,
                   "track_ids": track_ids, "entry_msg_id": entry["msg_id"], "entered_at": entry["ts"],
                   "exited_at": max(x["ts"] for x in exits),
                   "items": {k: v for k, v in sorted(items.items()) if v}}
        if len(members) > 1:
            session["group_size"] = len(members)
            session["exit_msg_ids"] = [x["msg_id"] for x in exits]
        sessions.append(session)
    truth: dict[str, Any] = {
        "store_id": layout.store_id,
        "scenario": scenario,
        "t0": t0,
        "accounts": [{"token": m[0].plan.token, "name": m[0].plan.name, "email": m[0].plan.email,
                      "balance_cents": 100_000, "credit_limit_cents": 0} for m in parties.values()],
        "sessions": sessions,
        "events": [{k: ev[k] for k in EVENT_KEYS} for ev in shelf],
    }
    if faults is not None:
        truth["faults"] = faults.truth(people)
    return truth
