"""What the camera reports, and how sensors fail: track lists, product detections, sensor faults.

Every draw comes from a stream of its own (``default_rng([seed, k])``): the track noise of "basic"
(stream 3) is what it always was, detections use stream 4 and fault choices stream 5, so a new
feature never shifts an old one's numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sim_data.schedule import GATE_DWELL_S, Out, Shopper
from store_server.domain.layout import StoreLayout, distance

CAMERA_PERIOD_S = 0.2  # 5 Hz
TRACK_NOISE_M = 0.05
HAND_REACH_M = 0.3
OUTAGE_S = 3.0  # a product in hand is this far from the shopper, towards the plate


@dataclass
class Faults:
    """The sensor faults of one run (sensor-faults scenario); the default is a healthy store."""

    track_noise_m: float = TRACK_NOISE_M
    drop_rate: float = 0.0  # share of track points the camera misses
    outage: tuple[float, float] | None = None  # the camera publishes nothing in [a, b]
    dead_plate: str | None = None  # its weight events are never published
    weight_noise: float = 1.0
    confusion_rate: float = 0.0  # detections labelled with a neighbouring plate's product

    def truth(self, shoppers: list[Shopper]) -> dict[str, Any]:
        switch = next(({"from": s.track_id, "to": s.switch[1], "t": s.switch[0]}
                       for s in shoppers if s.switch), None)
        return {"track_noise_m": self.track_noise_m, "dropped_track_points": self.drop_rate,
                "id_switch": switch, "camera_outage": list(self.outage) if self.outage else None,
                "dead_plate": self.dead_plate, "weight_noise_factor": self.weight_noise,
                "detection_confusion_rate": self.confusion_rate}


HEALTHY = Faults()
BROKEN = Faults(track_noise_m=0.15, drop_rate=0.05, weight_noise=2.0, confusion_rate=0.1)


def camera_tracks(layout: StoreLayout, shoppers: list[Shopper], t0: float, t_end: float, seed: int,
                  faults: Faults = HEALTHY) -> list[Out]:
    """5 Hz track lists from the ceiling camera, every tick, empty or not (except in an outage)."""
    if not layout.cameras:
        return []
    cam = layout.cameras[0]
    rng = np.random.default_rng([seed, 3])
    drops = np.random.default_rng([seed, 5, 1])
    ticks = np.round(t0 + np.arange(int((t_end - t0) / CAMERA_PERIOD_S + 1e-9) + 1) * CAMERA_PERIOD_S, 3)
    per_tick: list[list[dict[str, Any]]] = [[] for _ in ticks]
    for s in shoppers:
        x, y, present = s.motion.at(ticks)
        idx = np.flatnonzero(present)
        sigma = faults.track_noise_m
        nx, ny = rng.normal(0, sigma, len(idx)), rng.normal(0, sigma, len(idx))
        conf = rng.uniform(0.85, 0.95, len(idx))
        missed = drops.random(len(idx)) < faults.drop_rate if faults.drop_rate else np.zeros(len(idx), bool)
        for k, i in enumerate(idx):
            if missed[k]:
                continue
            per_tick[i].append({"track_id": s.track_at(float(ticks[i])), "x_m": round(float(x[i] + nx[k]), 3),
                                "y_m": round(float(y[i] + ny[k]), 3), "confidence": round(float(conf[k]), 3)})
    node = cam.node_id or cam.id
    a, b = faults.outage or (math.inf, -math.inf)
    return [Out(float(t), node, "tracks", {"camera_id": cam.id, "tracks": tracks})
            for t, tracks in zip(ticks, per_tick, strict=True) if not a <= t <= b]


def _neighbour_sku(layout: StoreLayout, plate_id: str, sku: str) -> str:
    """The product on a plate next to ``plate_id`` (same shelf first), for a detector's confusion."""
    gondola, shelf = layout.shelves[layout.plates[plate_id].shelf_id]
    i = shelf.plates.index(plate_id)
    near = [shelf.plates[j] for j in (i - 1, i + 1) if 0 <= j < len(shelf.plates)]
    near += [p for s in gondola.shelves for p in s.plates]
    for p in near:
        other = layout.sku_on_plate.get(p)
        if other and other != sku:
            return other
    return sku


def detections(layout: StoreLayout, shoppers: list[Shopper], events: list[dict[str, Any]], seed: int,
               faults: Faults = HEALTHY) -> list[Out]:
    """One ItemDetections from cam-ceiling per pick or put-back, at ``t_end``: the product in the hand."""
    if not layout.cameras:
        return []
    cam = layout.cameras[0]
    rng = np.random.default_rng([seed, 4])
    extra = np.random.default_rng([seed, 4, 2])  # the second and later items' boxes: old draws unchanged
    by_number = {s.plan.number: s for s in shoppers}
    out = []
    for ev in sorted(events, key=lambda e: (e["t_end"], e["shopper"])):
        s, t = by_number[ev["shopper"]], ev["t_end"]
        x, y, _ = s.motion.at(np.array([t]))
        px, py = layout.plate_centroid(ev["plate_ids"])
        d = max(1e-6, math.hypot(px - x[0], py - y[0]))
        reach = min(HAND_REACH_M, d)
        hx = x[0] + (px - x[0]) / d * reach + rng.normal(0, faults.track_noise_m)
        hy = y[0] + (py - y[0]) / d * reach + rng.normal(0, faults.track_noise_m)
        label = ev["sku"]
        confused = rng.random() < faults.confusion_rate
        confidence = float(rng.uniform(0.6, 0.95))
        if confused:
            label = _neighbour_sku(layout, ev["plate_ids"][0], ev["sku"])
        a, b = faults.outage or (math.inf, -math.inf)
        if a <= t <= b:
            continue
        boxes = [(hx, hy)]
        for _ in range(int(ev.get("quantity", 1)) - 1):  # one box per item in the hand
            boxes.append((hx + extra.normal(0, 0.03), hy + extra.normal(0, 0.03)))
        out.append(Out(t, cam.node_id or cam.id, "detections", {"camera_id": cam.id, "detections": [
            {"label": label, "confidence": round(confidence, 3), "x_m": round(float(x), 3),
             "y_m": round(float(y), 3), "track_id": s.track_at(t)} for x, y in boxes]}))
    return out


def _busy_times(shoppers: list[Shopper]) -> list[tuple[float, float]]:
    """Spans in which a fault would hide a decision: shelf events and gate passes, padded."""
    spans = [(a - 1.0, b + 1.0) for s in shoppers for a, b in s.windows]
    for s in shoppers:
        spans += [(s.motion.t_in - 1.0, s.motion.t_in + GATE_DWELL_S + 1.0),
                  (s.exit_span[0] - 1.0, s.exit_span[1] + 1.0)]
    return spans


def _switch_time(layout: StoreLayout, s: Shopper, busy: list[tuple[float, float]]) -> float | None:
    """A walking moment of ``s`` far from every plate and gate, nearest the middle of the visit."""
    ts = np.round(np.arange(s.motion.t_in, s.motion.t_out, CAMERA_PERIOD_S), 3)
    xs, ys, _ = s.motion.at(ts)
    plates = [(p.x_m, p.y_m) for p in layout.plates.values()]
    mid = (s.motion.t_in + s.motion.t_out) / 2
    for far in (1.5, 1.0, 0.6):
        ok = [float(t) for t, x, y in zip(ts, xs, ys, strict=True)
              if min(distance((x, y), p) for p in plates) >= far
              and not any(g.zone.contains(x, y, margin=1.0) for g in layout.gates)
              and not any(a <= t <= b for a, b in busy)]
        if ok:
            return min(ok, key=lambda t: (abs(t - mid), t))
    return None


def _outage(shoppers: list[Shopper], busy: list[tuple[float, float]], switches: list[float], t0: float,
            t_end: float, rng: np.random.Generator) -> float | None:
    """Start of a camera outage while someone is inside, clear of shelf events and gate passes if
    possible (a crowded run may leave no such gap: then clear of shelf events only, then anywhere)."""
    starts = np.round(np.arange(t0 + 5.0, t_end - 8.0, CAMERA_PERIOD_S), 3)
    inside = np.zeros(len(starts), bool)
    for s in shoppers:
        inside |= (starts >= s.motion.t_in) & (starts + OUTAGE_S <= s.motion.t_out)
    shelf = [(a, b) for s in shoppers for a, b in s.windows]
    for spans in (busy, shelf, []):
        ok = inside.copy()
        for a, b in spans + [(w - 1.0, w + 1.0) for w in switches]:
            ok &= ~((starts < b + 1.0) & (starts + OUTAGE_S > a - 1.0))
        if ok.any():
            idx = np.flatnonzero(ok)
            return float(starts[idx[int(rng.integers(len(idx)))]])
    return None


def choose_faults(layout: StoreLayout, shoppers: list[Shopper], weight_events: list[dict[str, Any]],
                  t0: float, t_end: float, seed: int) -> Faults:
    """Place the faults of sensor-faults: t3's id switch, a 3 s camera outage, a dead plate."""
    rng = np.random.default_rng([seed, 5])
    faults = replace(BROKEN)
    busy = _busy_times(shoppers)
    if shoppers:
        s = next((s for s in shoppers if s.plan.number == 3), shoppers[-1])
        t = _switch_time(layout, s, busy)
        if t is not None:
            s.switch = (t, f"{s.track_id}b")
    switches = [s.switch[0] for s in shoppers if s.switch]
    outage = _outage(shoppers, busy, switches, t0, t_end, rng)
    if outage is not None:
        faults.outage = (outage, round(outage + OUTAGE_S, 3))
    picked = sorted({e["plate_ids"][0] for e in weight_events if e["kind"] == "pick"})
    if picked:
        faults.dead_plate = picked[int(rng.integers(len(picked)))]
    return faults
