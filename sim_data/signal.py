"""Signal fidelity: turn an event-level simulation into raw load-cell samples, and score detections.

:func:`to_signal_level` replaces every shelf node's ``weight`` events (and its heartbeats: the
samples themselves advance its watermark) with ``samples`` messages, 60 Hz in batches of 12, one
message per shelf every 0.2 s, synthesized by :func:`sensors.simulated.synthesize_shelf` from the
ground truth's shelf events under a signal profile (sensors.signal_profile): ``ideal`` makes each
pick or put-back an active segment from its ``t_start`` to ``t_end`` with the event-level weight
(item weight noise included) spread evenly over its plates; ``realistic`` adds what real shelves do
(sim_data.signal_scene: physical items, straddling, browsing touches; sensors.simulated_physical:
coupling, ringing, per-plate noise, spikes, hand pressure). The edge detector
(edge.signal_pipeline) has to find the events again; :func:`score_events` says how well it did
against the ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from edge import contracts as c
from sensors.signal_profile import IDEAL, ShelfMechanics, SignalProfile, draw_mechanics
from sensors.simulated import Faults, Touch, random_touches, synthesize_shelf
from sim_data.dataset import SimMessage
from sim_data.signal_scene import browse_touches, event_plate_deltas, shelf_changes
from store_server.domain.layout import StoreLayout

RATE_HZ = 60.0
BATCH = 12
# The sensor-faults scenario, on top of any profile: noisier, faster-drifting plates, dropouts,
# spikes, lost batches and a dead plate.
FAULT_NOISE_FACTOR = 2.0
FAULT_DRIFT_FACTOR = 3.0
FAULT_DROPOUT = 0.02
FAULT_SPIKES_PER_MIN = 0.5
FAULT_LOST_BATCHES = 0.005
# Streams of a run's seed (np.random.default_rng([seed, k])): 41 is the one the ideal profile has
# always drawn from; the realistic profile's own draws come from new ones so 41 stays as it was.
STREAM_SIGNAL, STREAM_ITEMS, STREAM_HANDS, STREAM_MECHANICS = 41, 42, 43, 44


def event_deltas(
    messages: Iterable[SimMessage], ground_truth: dict[str, Any], layout: StoreLayout
) -> list[float]:
    """The weight change of every ground-truth shelf event: its event-level message's ``delta_g``
    when it was published, else quantity x unit weight (an unobservable event on a dead plate)."""
    published = {
        f"{m.payload['node_id']}:{m.payload['seq']}": float(m.payload["delta_g"])
        for m in messages
        if m.payload.get("kind") == "weight"
    }
    out = []
    for ev in ground_truth.get("events", []):
        sign = -1.0 if ev["kind"] == "pick" else 1.0
        nominal = sign * ev["quantity"] * layout.products[ev["sku"]].unit_weight_g
        out.append(published.get(str(ev.get("msg_id")), nominal))
    return out


def _baseline(
    layout: StoreLayout, plates: Sequence[str], rng: np.random.Generator, tray_g: tuple[float, float]
) -> np.ndarray:
    per_plate = {
        p: e.stock * layout.products[e.sku].unit_weight_g / len(e.plates)
        for e in layout.planogram
        for p in e.plates
    }
    return np.array([per_plate.get(p, 0.0) for p in plates]) + rng.uniform(*tray_g, len(plates))


def _streams(seed: int | np.random.Generator, profile: SignalProfile) -> list[np.random.Generator]:
    if isinstance(seed, np.random.Generator):
        # The ideal profile draws from the one stream it always had; children leave it untouched.
        return [seed, *seed.spawn(3)] if profile.waveform == "physical" else [seed] * 4
    streams = (STREAM_SIGNAL, STREAM_ITEMS, STREAM_HANDS, STREAM_MECHANICS)
    return [np.random.default_rng([int(seed), k]) for k in streams]


def true_event_deltas(
    messages: Sequence[SimMessage],
    ground_truth: dict[str, Any],
    layout: StoreLayout,
    seed: int | np.random.Generator = 0,
    profile: SignalProfile = IDEAL,
) -> list[dict[str, float]]:
    """Each ground-truth event's change per plate as :func:`to_signal_level` rendered it (same int
    seed and profile): before coupling, which moves neighbours but keeps each shelf's total."""
    _, items, _, _ = _streams(seed, profile)
    deltas = event_deltas(messages, ground_truth, layout)
    return event_plate_deltas(ground_truth.get("events", []), deltas, layout, profile, items)


def to_signal_level(
    messages: Sequence[SimMessage],
    ground_truth: dict[str, Any],
    layout: StoreLayout,
    seed: int | np.random.Generator = 0,
    faults: bool = False,
    rate_hz: float = RATE_HZ,
    batch: int = BATCH,
    profile: SignalProfile = IDEAL,
) -> list[SimMessage]:
    """The same run as raw samples: shelf nodes publish ``samples`` instead of ``weight``/``heartbeat``.

    ``profile`` says how harsh the shelves are (the caller records its name with the dataset).
    ``faults`` (the sensor-faults scenario) doubles the noise, drifts three times as fast, adds
    dropouts and spikes, loses a few sample batches, and makes the ground truth's dead plate read
    a constant 0.
    """
    if not messages:
        return []
    rng, items_rng, hands_rng, mech_rng = _streams(seed, profile)
    physical = profile.waveform == "physical"
    t_first = float(ground_truth.get("t0", messages[0].t))
    t_last = max(m.t for m in messages)
    n_batches = int(math.floor((t_last - t_first) * rate_hz / batch)) + 1
    t_stop = t_first + n_batches * batch / rate_hz
    deltas = event_deltas(messages, ground_truth, layout)
    events = ground_truth.get("events", [])
    plate_deltas = event_plate_deltas(events, deltas, layout, profile, items_rng)
    dead = (ground_truth.get("faults") or {}).get("dead_plate") if faults else None
    shelf_nodes = {g.node_id or g.id for g in layout.gondolas}
    out = [
        m
        for m in messages
        if not (m.payload.get("node_id") in shelf_nodes and m.payload.get("kind") in ("weight", "heartbeat"))
    ]
    per_node: dict[str, list[SimMessage]] = {}
    for gondola in layout.gondolas:
        node = gondola.node_id or gondola.id
        for shelf in gondola.shelves:
            plates = list(shelf.plates)
            changes = shelf_changes(events, plate_deltas, plates, profile, hands_rng)
            minutes = (t_stop - t_first) / 60.0
            touch_count = int(rng.poisson(profile.touches_per_plate_min * len(plates) * minutes))
            baseline = _baseline(layout, plates, rng, profile.tray_g)
            noise_scale = FAULT_NOISE_FACTOR if faults else 1.0
            mechanics: ShelfMechanics | None = None
            noise: float | np.ndarray = profile.noise_g * noise_scale
            touches: int | list[Touch] = touch_count
            if physical:
                mechanics = draw_mechanics(profile, mech_rng, len(plates))
                noise = np.asarray(mechanics.noise_g) * noise_scale
                touches = random_touches(hands_rng, len(plates), t_first, t_stop, touch_count, profile)
                touches += browse_touches(changes, plates, profile, hands_rng, t_first, t_stop)
            grid_t0, grams = synthesize_shelf(
                plates,
                rate_hz,
                t_first,
                t_stop,
                changes,
                rng,
                noise_g=noise,
                drift_g_per_min=profile.drift_g_per_min * (FAULT_DRIFT_FACTOR if faults else 1.0),
                touches=touches,
                baseline_g=baseline,
                creep=profile.creep,
                faults=Faults(
                    dead={dead: 0.0} if dead in plates else {},
                    dropout=FAULT_DROPOUT,
                    spikes_per_min=FAULT_SPIKES_PER_MIN,
                )
                if faults
                else None,
                profile=profile,
                mechanics=mechanics,
            )
            lost = rng.random(n_batches) < (FAULT_LOST_BATCHES if faults else 0.0)
            for k in range(n_batches):
                if lost[k]:
                    continue
                t0 = round(grid_t0 + k * batch / rate_hz, 6)
                ts = round(t0 + (batch - 1) / rate_hz, 6)
                block = np.round(grams[:, k * batch : (k + 1) * batch], 2)
                per_node.setdefault(node, []).append(
                    SimMessage(
                        ts,
                        "",
                        {
                            "v": c.SCHEMA_VERSION,
                            "kind": "samples",
                            "node_id": node,
                            "seq": 0,
                            "ts": ts,
                            "gondola_id": gondola.id,
                            "shelf_id": shelf.id,
                            "plate_ids": plates,
                            "rate_hz": rate_hz,
                            "t0": t0,
                            "grams": block.tolist(),
                        },
                    )
                )
    for node, stream in per_node.items():
        stream.sort(key=lambda m: m.t)  # stable: shelves of one batch stay in layout order
        for seq, m in enumerate(stream):
            m.payload["seq"] = seq
        out += [SimMessage(m.t, c.topic(layout.store_id, node, "samples"), m.payload) for m in stream]
    out.sort(key=lambda m: m.t)
    return out


def score_events(
    detected: Iterable[dict[str, Any]],
    ground_truth: dict[str, Any],
    deltas: Sequence[float],
    tolerance_s: float = 1.0,
) -> dict[str, Any]:
    """Match detected ``weight`` payloads to the observable ground-truth shelf events.

    A match shares a plate, has the same sign and overlaps in time (within ``tolerance_s``); each
    detection explains at most one event. Weight error = detected minus true change, for matches.
    """
    dets = sorted((d for d in detected if d.get("kind", "weight") == "weight"), key=lambda d: d["t_start"])
    used = [False] * len(dets)
    errors: list[float] = []
    exact_plates = fn = 0
    truth = [
        (ev, d)
        for ev, d in zip(ground_truth.get("events", []), deltas, strict=True)
        if ev.get("observable", True)
    ]
    for ev, true_delta in sorted(truth, key=lambda e: e[0]["t_start"]):
        best, best_gap = -1, math.inf
        for i, det in enumerate(dets):
            if used[i] or not set(det["plate_ids"]) & set(ev["plate_ids"]):
                continue
            if (det["delta_g"] > 0) != (true_delta > 0):
                continue
            if det["t_start"] > ev["t_end"] + tolerance_s or det["t_end"] < ev["t_start"] - tolerance_s:
                continue
            gap = abs(det["t_start"] - ev["t_start"])
            if gap < best_gap:
                best, best_gap = i, gap
        if best < 0:
            fn += 1
            continue
        used[best] = True
        errors.append(dets[best]["delta_g"] - true_delta)
        exact_plates += sorted(dets[best]["plate_ids"]) == sorted(ev["plate_ids"])
    tp, fp = len(errors), used.count(False)
    abs_err = np.abs(np.array(errors)) if errors else np.zeros(1)
    return {
        "events": len(truth),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
        "exact_plates": round(exact_plates / tp, 4) if tp else 1.0,
        "weight_error_g": {
            "mean_abs": round(float(abs_err.mean()), 3),
            "rms": round(float(np.sqrt((abs_err**2).mean())), 3),
            "p95": round(float(np.percentile(abs_err, 95)), 3),
            "max": round(float(abs_err.max()), 3),
        },
    }
