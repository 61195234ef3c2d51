"""Score detected weight events against the ground truth per interaction: one hand, one event.

:func:`score_interactions` answers how far the detector is from "one event per interaction": true
shelf events, detected events, one-to-one matches, *fragments* (extra detections that overlap a
true event: the pieces a pick falls into when plates are decided one by one), *false events*
(nothing true there: spikes, touches, creep), the weight error of the shelf total and the plates
per event. Ground-truth events of one shelf that overlap in time on the same or neighbouring plates
are one true interaction (coupling makes them one signal), their changes summed.

``sim_data.signal.score_events`` remains the per-event score (precision, recall, exact plates).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from store_server.domain.layout import StoreLayout


@dataclass
class TrueInteraction:
    t_start: float
    t_end: float
    plates: set[str]
    delta_g: float
    events: int = 1
    shelf: str = ""
    detections: list[int] = field(default_factory=list)


def close_g(true_g: float) -> float:
    """A shelf total this close to the truth names the item (2 %, at least 2 g)."""
    return max(2.0, 0.02 * abs(true_g))


def plate_positions(layout: StoreLayout) -> dict[str, tuple[str, int]]:
    """Every plate's (shelf id, position on its shelf): plates at neighbouring positions touch."""
    return {
        plate: (shelf.id, i)
        for g in layout.gondolas
        for shelf in g.shelves
        for i, plate in enumerate(shelf.plates)
    }


def _near_fn(positions: Mapping[str, tuple[str, int]] | None) -> Callable[[set[str], set[str]], bool]:
    def near(a: set[str], b: set[str]) -> bool:
        if a & b:
            return True
        if positions is None:
            return False
        pa = [positions[p] for p in a if p in positions]
        pb = [positions[p] for p in b if p in positions]
        return any(sa == sb and abs(ia - ib) <= 1 for sa, ia in pa for sb, ib in pb)

    return near


def true_interactions(
    ground_truth: Mapping[str, Any],
    deltas: Sequence[float],
    positions: Mapping[str, tuple[str, int]] | None = None,
    gap_s: float = 1.0,
) -> list[TrueInteraction]:
    """Observable ground-truth shelf events, merged (transitively) where they overlap in time (up to
    ``gap_s``) on the same or neighbouring plates of one shelf."""
    near = _near_fn(positions)
    events = [
        (ev, float(d))
        for ev, d in zip(ground_truth.get("events", []), deltas, strict=True)
        if ev.get("observable", True)
    ]
    events.sort(key=lambda e: float(e[0]["t_start"]))

    def shelf(ev: Mapping[str, Any]) -> str:
        first = ev["plate_ids"][0]
        return positions[first][0] if positions and first in positions else ""

    parent = list(range(len(events)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (a, _) in enumerate(events):
        for j in range(i + 1, len(events)):
            b = events[j][0]
            if float(b["t_start"]) > float(a["t_end"]) + gap_s:
                continue
            if shelf(a) == shelf(b) and near(set(a["plate_ids"]), set(b["plate_ids"])):
                parent[root(j)] = root(i)
    out: dict[int, TrueInteraction] = {}
    for i, (ev, d) in enumerate(events):
        t0, t1, plates = float(ev["t_start"]), float(ev["t_end"]), set(ev["plate_ids"])
        ti = out.get(root(i))
        if ti is None:
            out[root(i)] = TrueInteraction(t0, t1, plates, d, shelf=shelf(ev))
        else:
            ti.t_start, ti.t_end = min(ti.t_start, t0), max(ti.t_end, t1)
            ti.plates |= plates
            ti.delta_g += d
            ti.events += 1
    return sorted(out.values(), key=lambda t: t.t_start)


def score_interactions(
    detected: Iterable[Mapping[str, Any]],
    ground_truth: Mapping[str, Any],
    deltas: Sequence[float],
    positions: Mapping[str, tuple[str, int]] | None = None,
    tolerance_s: float = 1.5,
    cancel_window_s: float = 10.0,
) -> dict[str, Any]:
    """Match detected ``weight`` payloads (or DetectedWeightChange dicts) one to one to the true
    interactions and count what is left.

    A detection can match a true interaction when it overlaps it in time (within ``tolerance_s``),
    names one of its plates or a neighbour, and has the same sign; pairs are taken best first
    (relative weight error, then time offset). A left-over detection is a *fragment* when it could
    have matched a true interaction, else a *false* event.
    """
    near = _near_fn(positions)
    truth = true_interactions(ground_truth, deltas, positions)
    dets = [d for d in detected if d.get("kind", "weight") == "weight"]

    def fits(t: TrueInteraction, d: Mapping[str, Any]) -> bool:
        return (
            float(d["t_start"]) <= t.t_end + tolerance_s
            and float(d["t_end"]) >= t.t_start - tolerance_s
            and near(set(d["plate_ids"]), t.plates)
        )

    pairs = []
    for i, t in enumerate(truth):
        for j, d in enumerate(dets):
            if fits(t, d) and (float(d["delta_g"]) > 0) == (t.delta_g > 0):
                cost = abs(float(d["delta_g"]) - t.delta_g) / max(abs(t.delta_g), 10.0)
                pairs.append((cost + 0.05 * abs(float(d["t_start"]) - t.t_start) / tolerance_s, i, j))
    match: dict[int, int] = {}
    used: set[int] = set()
    for _, i, j in sorted(pairs):
        if i not in match and j not in used:
            match[i] = j
            used.add(j)
    fragments = sum(1 for j, d in enumerate(dets) if j not in used and any(fits(t, d) for t in truth))
    # A pick from a dead plate still moves its neighbours (coupling): not a false event.
    hidden = [
        TrueInteraction(float(ev["t_start"]), float(ev["t_end"]), set(ev["plate_ids"]), 0.0)
        for ev in ground_truth.get("events", [])
        if not ev.get("observable", True)
    ]
    unobservable = sum(
        1
        for j, d in enumerate(dets)
        if j not in used and not any(fits(t, d) for t in truth) and any(fits(t, d) for t in hidden)
    )
    false = len(dets) - len(used) - fragments - unobservable
    # A pick and the put-back of the same weight on the plates it came from, within one continuous
    # stretch of hands at the shelf, are one interaction of no change: no event, and the cart stays
    # right. Counted apart from the other misses.
    missed = [t for i, t in enumerate(truth) if i not in match]
    cancelled = 0
    paired: set[int] = set()
    for a_i, a in enumerate(missed):
        for b_i in range(a_i + 1, len(missed)):
            b = missed[b_i]
            if a_i in paired or b_i in paired or a.shelf != b.shelf or not near(a.plates, b.plates):
                continue
            if b.t_start - a.t_end <= cancel_window_s and abs(a.delta_g + b.delta_g) <= 0.05 * abs(a.delta_g):
                paired |= {a_i, b_i}
                cancelled += 2
    errors = np.array([float(dets[j]["delta_g"]) - truth[i].delta_g for i, j in match.items()])
    close = sum(
        1
        for i, j in match.items()
        if abs(float(dets[j]["delta_g"]) - truth[i].delta_g) <= close_g(truth[i].delta_g)
    )
    abs_err = np.abs(errors) if errors.size else np.zeros(1)
    plates = np.array([len(d["plate_ids"]) for d in dets]) if dets else np.zeros(1)
    n_true, n_match = len(truth), len(match)
    per100 = 100.0 / n_true if n_true else 0.0
    return {
        "true_events": sum(t.events for t in truth),
        "true_interactions": n_true,
        "detected": len(dets),
        "matched": n_match,
        "missed": n_true - n_match,
        "missed_cancelled_pairs": cancelled,
        "fragments": fragments,
        "false": false,
        "of_unobservable": unobservable,
        "recall": round(n_match / n_true, 4) if n_true else 1.0,
        "precision": round(n_match / len(dets), 4) if dets else 1.0,
        "fragments_per_100": round(fragments * per100, 2),
        "false_per_100": round(false * per100, 2),
        "within_2pct": round(close / n_match, 4) if n_match else 1.0,
        "weight_error_g": {
            "mean_abs": round(float(abs_err.mean()), 3),
            "p95": round(float(np.percentile(abs_err, 95)), 3),
            "max": round(float(abs_err.max()), 3),
        },
        "plates_per_event": {
            "mean": round(float(plates.mean()), 2),
            "max": int(plates.max()),
        },
    }


def merge_scores(scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts summed over runs; rates recomputed; weight errors and plates as the worst of the runs."""
    keys = (
        "true_events",
        "true_interactions",
        "detected",
        "matched",
        "missed",
        "missed_cancelled_pairs",
        "fragments",
        "false",
        "of_unobservable",
    )
    out: dict[str, Any] = {k: sum(int(s[k]) for s in scores) for k in keys}
    n_true, n_det = out["true_interactions"], out["detected"]
    out["recall"] = round(out["matched"] / n_true, 4) if n_true else 1.0
    out["precision"] = round(out["matched"] / n_det, 4) if n_det else 1.0
    out["fragments_per_100"] = round(100.0 * out["fragments"] / n_true, 2) if n_true else 0.0
    out["false_per_100"] = round(100.0 * out["false"] / n_true, 2) if n_true else 0.0
    weights = [s["weight_error_g"] for s in scores]
    n = [max(1, int(s["matched"])) for s in scores]
    out["within_2pct"] = round(sum(s["within_2pct"] * k for s, k in zip(scores, n, strict=True)) / sum(n), 4)
    out["weight_error_g"] = {
        "mean_abs": round(sum(w["mean_abs"] * k for w, k in zip(weights, n, strict=True)) / sum(n), 3),
        "p95_worst_run": max(w["p95"] for w in weights),
        "max": max(w["max"] for w in weights),
    }
    out["plates_per_event"] = {
        "mean": round(sum(s["plates_per_event"]["mean"] * s["detected"] for s in scores) / max(1, n_det), 2),
        "max": max(s["plates_per_event"]["max"] for s in scores),
    }
    return out


def weight_dicts(changes: Iterable[Any]) -> list[dict[str, Any]]:
    """DetectedWeightChange objects as the dicts :func:`score_interactions` reads."""
    return [
        {
            "plate_ids": list(c.plate_ids),
            "delta_g": c.delta_g,
            "t_start": c.t_start,
            "t_end": c.t_end,
        }
        for c in changes
        if math.isfinite(c.delta_g)
    ]
