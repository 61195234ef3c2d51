"""Measure a signal-level dataset's load-cell samples: noise, spikes, drift, base load, coupling, touches.

``python -m sim_data.signal_stats DATASET [--json]`` reads any dataset whose messages carry ``samples``
(``walkout sim --fidelity signal``, ``walkout import autocheckout``) and prints the figures that
docs/DATASETS.md ("Signal profiles") gives for the simulator's profiles, with the same simple
estimators, so a simulated run can be held against a real recording. It needs no ground truth: a
shelf's *interactions* are the stretches where some plate moves more than its noise allows; one
whose shelf total steps is a change (coupling is measured on it), one that returns to its level is
a touch. Ringing is not measured here: a hand is on the shelf while it rings.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import numpy as np

from sim_data.dataset import Dataset, DatasetError

BLOCK_S = 0.25  # activity is judged on blocks this long
MARGIN_BLOCKS = 2  # an interaction is widened by this many blocks each side
DRIFT_BLOCK_S = 20.0
CHANGE_G = 30.0  # a shelf-total step this large is a change (a pick or put-back)


def shelf_samples(dataset: Dataset) -> dict[str, tuple[list[str], float, np.ndarray]]:
    """Per shelf: its plates, the sample rate and grams[plates, n] on one grid (gaps held)."""
    rows: dict[str, tuple[list[str], float, list[tuple[float, list[list[float]]]]]] = {}
    for m in dataset.messages():
        p = m.payload
        if p.get("kind") != "samples":
            continue
        key = f"{p['gondola_id']}/{p['shelf_id']}"
        rows.setdefault(key, (list(p["plate_ids"]), float(p["rate_hz"]), []))[2].append((p["t0"], p["grams"]))
    out = {}
    for key, (plates, rate, blocks) in rows.items():
        t_first = min(t for t, _ in blocks)
        n = max(int(round((t - t_first) * rate)) + len(g[0]) for t, g in blocks)
        x = np.full((len(plates), n), np.nan)
        for t, grams in blocks:
            i = int(round((t - t_first) * rate))
            x[:, i : i + len(grams[0])] = np.asarray(grams, dtype=float)
        for row in x:  # a lost batch or a missed reading holds the previous value
            idx = np.where(np.isnan(row), 0, np.arange(n))
            np.maximum.accumulate(idx, out=idx)
            row[:] = row[idx]
        out[key] = (plates, rate, np.nan_to_num(x))
    return out


def noise_sd(x: np.ndarray) -> np.ndarray:
    d = np.diff(x, axis=1)
    mad = np.median(np.abs(d - np.median(d, axis=1, keepdims=True)), axis=1)
    return mad / 0.6745 / math.sqrt(2.0)


def _spikes(x: np.ndarray, sd: np.ndarray, quiet: np.ndarray) -> list[float]:
    """Lone outliers in quiet stretches: far from the median of their five-sample neighbourhood."""
    if x.shape[1] < 5:
        return []
    windows = np.lib.stride_tricks.sliding_window_view(x, 5, axis=-1)
    resid = np.where(quiet[2:-2], x[:, 2:-2] - np.median(windows, axis=-1), 0.0)
    found: list[float] = []
    for p in range(x.shape[0]):
        found += resid[p, np.abs(resid[p]) > max(7.0, 6.0 * sd[p])].tolist()
    return found


def _active(x: np.ndarray, sd: np.ndarray, rate: float) -> np.ndarray:
    """Per block: does some plate move more than its noise (steps, pushes, ringing)?"""
    k = max(2, int(BLOCK_S * rate))
    blocks = x.shape[1] // k
    b = x[:, : blocks * k].reshape(x.shape[0], blocks, k)
    spread = np.percentile(b, 90, axis=2) - np.percentile(b, 10, axis=2)
    active = (spread > np.maximum(5.0 * sd, 3.0)[:, None]).any(axis=0)
    grown = active.copy()  # a margin each side
    for s in range(1, MARGIN_BLOCKS + 1):
        grown[s:] |= active[:-s]
        grown[:-s] |= active[s:]
    return grown


def interactions(x: np.ndarray, sd: np.ndarray, rate: float) -> list[dict[str, Any]]:
    k = max(2, int(BLOCK_S * rate))
    active = _active(x, sd, rate)
    edges = np.flatnonzero(np.diff(np.r_[0, active.astype(int), 0]))
    out = []
    quiet = int(1.0 * rate)
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        lo, hi = a * k, b * k
        if lo - quiet < 0 or hi + quiet > x.shape[1]:
            continue
        before = np.median(x[:, lo - quiet : lo], axis=1)
        after = np.median(x[:, hi : hi + quiet], axis=1)
        step = after - before
        dev = x[:, lo:hi] - before[:, None]
        out.append({"step": step, "dev": dev, "seconds": (hi - lo) / rate - 2 * MARGIN_BLOCKS * BLOCK_S})
    return out


def measure(dataset: Dataset) -> dict[str, Any]:
    sds, spikes, drifts, bases = [], [], [], []
    shares, moved, touch_peaks, touch_s, touch_nbr = [], [], [], [], []
    minutes = 0.0
    for plates, rate, x in shelf_samples(dataset).values():
        sd = noise_sd(x)
        sds += sd.tolist()
        active = _active(x, sd, rate)
        kb, kd = max(2, int(BLOCK_S * rate)), int(DRIFT_BLOCK_S * rate)
        quiet = np.zeros(x.shape[1], dtype=bool)
        quiet[: len(active) * kb] = np.repeat(~active, kb)
        spikes += _spikes(x, sd, quiet)
        minutes += x.shape[0] * quiet.sum() / rate / 60.0
        bases += np.median(x[:, : int(rate)], axis=1).tolist()
        per = kd // kb
        med = [np.median(x[:, j * kd : (j + 1) * kd], axis=1) for j in range(x.shape[1] // kd)]
        ok = [not active[j * per : (j + 1) * per].any() for j in range(len(med))]
        slopes = [
            (med[j + 1] - med[j]) / DRIFT_BLOCK_S * 60.0 for j in range(len(med) - 1) if ok[j] and ok[j + 1]
        ]
        if len(slopes) >= 3:
            drifts += np.abs(np.median(slopes, axis=0)).tolist()
        for it in interactions(x, sd, rate):
            step, dev = it["step"], it["dev"]
            total = float(step.sum())
            if abs(total) >= CHANGE_G:
                src = int(np.argmax(np.abs(step)))
                shares += [float(step[j] / total) for j in (src - 1, src + 1) if 0 <= j < len(plates)]
                moved.append(int((np.abs(step) > np.maximum(5.0, 5.0 * sd)).sum()))
            elif np.abs(dev).max() > 10.0 and np.abs(step).max() < 0.1 * np.abs(dev).max():
                p = int(np.argmax(np.abs(dev).max(axis=1)))
                peak = float(np.abs(dev[p]).max())
                nbr = [float(np.abs(dev[j]).max()) for j in (p - 1, p + 1) if 0 <= j < len(plates)]
                touch_peaks.append(peak)
                touch_s.append(it["seconds"])
                if nbr and peak > 40.0:
                    touch_nbr.append(float(np.mean(nbr)) / peak)
    return {
        "plates": len(sds),
        "noise_g": _summary(sds, (50, 90, 100)),
        "spikes_per_plate_min": round(len(spikes) / minutes, 3) if minutes else 0.0,
        "spike_size_g": _summary(np.abs(spikes).tolist(), (50,)),
        "drift_g_per_min": _summary(drifts, (50, 100)),
        "base_load_g": _summary(bases, (0, 50, 100)),
        "changes": len(moved),
        "coupling_share": _summary(shares, (0, 10, 50, 90, 100)),
        "plates_moved": _summary(moved, (0, 50, 100)),
        "touches": len(touch_peaks),
        "touch_peak_g": _summary(touch_peaks, (5, 50, 100)),
        "touch_s": _summary(touch_s, (10, 50, 100)),
        "touch_neighbour_share": _summary(touch_nbr, (50,)),
    }


def _summary(values: list[float] | list[int], pcts: tuple[int, ...]) -> dict[str, float] | None:
    if not len(values):
        return None
    arr = np.asarray(values, dtype=float)
    names = {0: "min", 50: "median", 100: "max"}
    return {names.get(q, f"p{q}"): round(float(np.percentile(arr, q)), 3) for q in pcts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim_data.signal_stats", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("dataset", help="a dataset directory with load-cell samples")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    try:
        dataset = Dataset.open(args.dataset)
        figures = measure(dataset)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not figures["plates"]:
        print(f"error: {args.dataset} holds no load-cell samples (make one with --fidelity signal)",
              file=sys.stderr)
        return 2
    figures = {"signal_profile": dataset.manifest.get("signal_profile"), **figures}
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        for key, value in figures.items():
            shown = ", ".join(f"{k} {v:g}" for k, v in value.items()) if isinstance(value, dict) else value
            print(f"{key:24s} {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
