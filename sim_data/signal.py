"""Signal fidelity: turn an event-level simulation into raw load-cell samples, and score detections.

:func:`to_signal_level` replaces every shelf node's ``weight`` events (and its heartbeats: the
samples themselves advance its watermark) with ``samples`` messages, 60 Hz in batches of 12, one
message per shelf every 0.2 s, synthesized by :func:`sensors.simulated.synthesize_shelf` from the
ground truth's shelf events: each pick or put-back becomes an active segment from its ``t_start``
to ``t_end`` with the event-level weight (item weight noise included) spread over its plates. The
edge detector (edge.signal_pipeline) has to find the events again; :func:`score_events` says how
well it did against the ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from edge import contracts as c
from sensors.simulated import Change, Faults, synthesize_shelf
from sim_data.dataset import SimMessage
from store_server.domain.layout import StoreLayout

RATE_HZ = 60.0
BATCH = 12
NOISE_G = 0.5  # the event-level simulator's scale noise; sensor-faults doubles it
FAULT_NOISE_G = 1.0
TOUCHES_PER_PLATE_MIN = 0.3
TRAY_G = (200.0, 600.0)


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


def _baseline(layout: StoreLayout, plates: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    per_plate = {
        p: e.stock * layout.products[e.sku].unit_weight_g / len(e.plates)
        for e in layout.planogram
        for p in e.plates
    }
    return np.array([per_plate.get(p, 0.0) for p in plates]) + rng.uniform(*TRAY_G, len(plates))


def to_signal_level(
    messages: Sequence[SimMessage],
    ground_truth: dict[str, Any],
    layout: StoreLayout,
    seed: int | np.random.Generator = 0,
    faults: bool = False,
    rate_hz: float = RATE_HZ,
    batch: int = BATCH,
) -> list[SimMessage]:
    """The same run as raw samples: shelf nodes publish ``samples`` instead of ``weight``/``heartbeat``.

    ``faults`` (the sensor-faults scenario) doubles the noise, drifts faster, adds dropouts and
    spikes, loses a few sample batches, and makes the ground truth's dead plate read a constant 0.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng([int(seed), 41])
    if not messages:
        return []
    t_first = float(ground_truth.get("t0", messages[0].t))
    t_last = max(m.t for m in messages)
    n_batches = int(math.floor((t_last - t_first) * rate_hz / batch)) + 1
    t_stop = t_first + n_batches * batch / rate_hz
    deltas = event_deltas(messages, ground_truth, layout)
    events = ground_truth.get("events", [])
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
            changes = [
                Change(
                    ev["t_start"],
                    {p: d / len(ev["plate_ids"]) for p in ev["plate_ids"]},
                    max(0.2, ev["t_end"] - ev["t_start"]),
                )
                for ev, d in zip(events, deltas, strict=True)
                if ev["plate_ids"][0] in plates
            ]
            minutes = (t_stop - t_first) / 60.0
            grid_t0, grams = synthesize_shelf(
                plates,
                rate_hz,
                t_first,
                t_stop,
                changes,
                rng,
                noise_g=FAULT_NOISE_G if faults else NOISE_G,
                drift_g_per_min=3.0 if faults else 1.0,
                touches=int(rng.poisson(TOUCHES_PER_PLATE_MIN * len(plates) * minutes)),
                baseline_g=_baseline(layout, plates, rng),
                faults=Faults(dead={dead: 0.0} if dead in plates else {}, dropout=0.02, spikes_per_min=0.5)
                if faults
                else None,
            )
            lost = rng.random(n_batches) < (0.005 if faults else 0.0)
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
