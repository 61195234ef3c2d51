"""How many 60 Hz plates one core keeps up with: the vectorized detector against a per-sample loop.

Both run in the same process on the same synthesized signal (shelves of 4 plates, a pick or put-back
per plate about every 20 s, touches, drift, 0.5 g noise), fed in the edge node's batches of 12
samples. The straightforward implementation keeps the same rolling statistics per plate in Python
(deques, running sums, one state machine step per sample); it runs on a subset of the plates because
it is slow, and its figure is scaled per plate. ``plates_realtime_per_core`` = plates x signal
seconds / CPU seconds: how many plates one core could serve live.

:func:`bench_interactions` (``python -m sim_data.bench_detector interactions [SEEDS [SCENARIOS]]``)
measures accuracy instead: simulated scenarios at the realistic signal profile through the detector,
scored per interaction by sim_data.event_score (matches, fragments, false events, the shelf total's
error, plates per event).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from edge.weight_detector import DetectorParams, ShelfDetector, chain_neighbours
from sensors.simulated import Change, synthesize_shelf


class PerSamplePlate:
    """One plate, one sample at a time: rolling mean/std, level lag, settle run, stable levels."""

    def __init__(self, rate_hz: float, p: DetectorParams) -> None:
        self.w = max(2, round(p.window_s * rate_hz))
        self.lag = max(1, round(p.level_lag_s * rate_hz))
        self.settle = max(1, round(p.settle_s * rate_hz))
        self.p = p
        self.values: deque[float] = deque(maxlen=self.w)
        self.means: deque[float] = deque(maxlen=self.lag + 1)
        self.recent: deque[float] = deque(maxlen=self.settle + self.w)
        self.s1 = self.s2 = 0.0
        self.run = self.settle
        self.active = False
        self.before = 0.0

    def push(self, t: float, x: float) -> tuple[float, float] | None:
        if len(self.values) == self.w:
            old = self.values[0]
            self.s1 -= old
            self.s2 -= old * old
        self.values.append(x)
        self.s1 += x
        self.s2 += x * x
        n = len(self.values)
        mean = self.s1 / n
        std = math.sqrt(max(0.0, (self.s2 - n * mean * mean) / max(1, n - 1)))
        self.means.append(mean)
        lagged = self.means[0]
        sigma = self.p.noise_g
        quiet = std <= max(self.p.k_std * sigma, self.p.std_floor_g) and abs(mean - lagged) <= max(
            self.p.k_level * sigma * math.sqrt(2.0 / self.w), self.p.level_floor_g
        )
        self.run = self.run + 1 if quiet else 0
        event = None
        if not self.active and not quiet:
            self.active = True
            self.before = sum(self.recent) / len(self.recent) if self.recent else x
        elif self.active and self.run == self.settle:
            self.active = False
            after = sum(self.recent) / len(self.recent)
            if abs(after - self.before) >= self.p.min_delta_g:
                event = (t, after - self.before)
        if quiet:
            self.recent.append(x)
        return event


def _signal(plates: int, seconds: float, rate_hz: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = [f"p{i}" for i in range(plates)]
    changes = []
    for i in range(plates):
        t = float(rng.uniform(1.0, 20.0))
        while t < seconds - 3.0:
            grams = float(rng.uniform(45, 1200)) * (1 if rng.random() < 0.2 else -1)
            changes.append(Change(t, {i: grams}, float(rng.uniform(0.5, 1.5))))
            t += float(rng.uniform(10.0, 30.0))
    _, x = synthesize_shelf(
        ids, rate_hz, 0.0, seconds, changes, rng, noise_g=0.5, drift_g_per_min=1.0, touches=plates // 4
    )
    return x


def bench_detector(
    seconds: float = 60.0,
    plates: int = 1024,
    rate_hz: float = 60.0,
    batch: int = 12,
    reference_plates: int = 32,
    seed: int = 0,
) -> dict[str, Any]:
    """Plates processed in real time on one core, vectorized vs per-sample Python, same input."""
    x = _signal(plates, seconds, rate_hz, seed)
    n = x.shape[1]
    ids = [f"p{i}" for i in range(plates)]
    det = ShelfDetector(ids, rate_hz, neighbours=chain_neighbours([str(i // 4) for i in range(plates)]))
    events = 0
    start = time.process_time()
    for i in range(0, n, batch):
        events += len(det.push(i / rate_hz, x[:, i : i + batch]))
    vec_cpu = time.process_time() - start

    ref_count = min(reference_plates, plates)
    params = DetectorParams()
    refs = [PerSamplePlate(rate_hz, params) for _ in range(ref_count)]
    sub = x[:ref_count]
    ref_events = 0
    start = time.process_time()
    for i in range(0, n, batch):  # the same batches, then every sample of every plate in Python
        block = sub[:, i : i + batch].tolist()
        for plate, row in zip(refs, block, strict=True):
            for j, value in enumerate(row):
                if plate.push((i + j) / rate_hz, value) is not None:
                    ref_events += 1
    ref_cpu = time.process_time() - start

    vec_rt = plates * seconds / vec_cpu if vec_cpu > 0 else math.inf
    ref_rt = ref_count * seconds / ref_cpu if ref_cpu > 0 else math.inf
    return {
        "rate_hz": rate_hz,
        "signal_seconds": seconds,
        "batch_samples": batch,
        "vectorized": {
            "plates": plates,
            "cpu_s": round(vec_cpu, 3),
            "events": events,
            "plates_realtime_per_core": int(vec_rt),
        },
        "per_sample_python": {
            "plates": ref_count,
            "cpu_s": round(ref_cpu, 3),
            "events": ref_events,
            "plates_realtime_per_core": int(ref_rt),
        },
        "speedup": round(vec_rt / ref_rt, 1) if ref_rt else None,
    }


SCENARIOS = ("basic", "crowded-shelf", "same-weight", "putbacks", "sensor-faults")


def score_scenario(scenario: str, seed: int, profile: str = "realistic") -> dict[str, Any]:
    """One simulated run at signal fidelity through the edge detector, scored per interaction."""
    from edge.signal_pipeline import detect_stream
    from sensors.signal_profile import get_profile
    from sim_data.event_score import plate_positions, score_interactions
    from sim_data.scenarios import get_scenario
    from sim_data.signal import to_signal_level, true_event_deltas
    from sim_data.simulator import simulate
    from store_server.domain.layout import load_layout
    from store_server.settings import DEFAULT_STORE

    layout = load_layout(DEFAULT_STORE)
    chosen = get_profile(profile)
    faults = get_scenario(scenario).faults
    run = simulate(layout, scenario, seed=seed)
    signal = to_signal_level(run.messages, run.ground_truth, layout, seed=seed, faults=faults, profile=chosen)
    weights = [m.payload for m in detect_stream(signal, layout) if m.payload.get("kind") == "weight"]
    per_plate = true_event_deltas(run.messages, run.ground_truth, layout, seed=seed, profile=chosen)
    truth = [sum(d.values()) for d in per_plate]
    return score_interactions(weights, run.ground_truth, truth, plate_positions(layout))


def bench_interactions(
    scenarios: Sequence[str] = SCENARIOS, seeds: Sequence[int] = (7, 11), profile: str = "realistic"
) -> dict[str, Any]:
    """Per scenario (summed over ``seeds``): true events, detections, matches, fragments, false
    events, the shelf total's weight error and plates per event."""
    from sim_data.event_score import merge_scores

    return {
        "profile": profile,
        "seeds": list(seeds),
        "scenarios": {
            name: merge_scores([score_scenario(name, s, profile) for s in seeds]) for name in scenarios
        },
    }


if __name__ == "__main__":
    import json
    import sys

    if sys.argv[1:2] == ["interactions"]:
        seeds = [int(v) for v in sys.argv[2].split(",")] if len(sys.argv) > 2 else [7, 11]
        names = sys.argv[3].split(",") if len(sys.argv) > 3 else list(SCENARIOS)
        print(json.dumps(bench_interactions(names, seeds), indent=2))
    else:
        print(json.dumps(bench_detector(), indent=2))
