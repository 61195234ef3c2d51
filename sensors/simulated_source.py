"""A simulated shelf for the edge node: the signal model of sensors.simulated, played in real time.

The signal is made in blocks of ~10 s, each continuing where the last one ended (levels and drift).
Picks, put-backs and touches are drawn at random (or follow a script), and every change is kept in
``truth`` so a test can check the events the node published.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensors.loadcell import SampleBatch
from sensors.simulated import Change, synthesize_with_levels

BLOCK_S = 10.0
MIN_GAP_S = 2.5  # changes on one plate are at least this far apart


@dataclass
class SimulatedShelfSource:
    plate_ids: list[str]
    rate_hz: float = 60.0
    seed: int = 0
    noise_g: float = 0.5
    drift_g_per_min: float = 0.5
    picks_per_minute: float = 6.0
    putback_share: float = 0.2
    spread_share: float = 0.1
    touches_per_minute: float = 1.0
    item_g: tuple[float, float] = (45.0, 1000.0)
    script: Sequence[Change] = ()  # times relative to the start
    neighbours: Sequence[tuple[int, int]] | None = None  # plates an item may stand on together
    speed: float = 1.0
    duration_s: float | None = None
    realtime: bool = True
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    truth: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng([self.seed, 17])
        count = len(self.plate_ids)
        self._levels = self._rng.uniform(800.0, 4000.0, count)
        self._drift = self._rng.uniform(-self.drift_g_per_min, self.drift_g_per_min, count)
        self._buf = np.zeros((count, 0))
        self._made = 0.0  # seconds of signal made so far
        self._taken = 0  # samples handed out
        self._origin: float | None = None
        self._mono0 = 0.0
        self._pairs = (
            list(self.neighbours) if self.neighbours is not None else [(i, i + 1) for i in range(count - 1)]
        )

    def _next_block(self) -> None:
        start, end = self._made, self._made + BLOCK_S
        changes = [c for c in self.script if start <= c.t < end]
        end = max([end] + [c.t + c.duration_s + 1.0 for c in changes])
        changes += self._random_changes(start, end, changes)
        t0, x, levels = synthesize_with_levels(
            self.plate_ids,
            self.rate_hz,
            start,
            end,
            changes,
            self._rng,
            noise_g=self.noise_g,
            drift_g_per_min=self._drift,
            touches=int(self._rng.poisson(self.touches_per_minute * (end - start) / 60)),
            baseline_g=self._levels,
            creep=0.0,
        )
        self._levels = levels
        self._buf = np.concatenate([self._buf, x], axis=1)
        self._made = start + x.shape[1] / self.rate_hz
        for c in changes:
            self.truth.append(
                {
                    "t_start": c.t,
                    "t_end": c.t + c.duration_s,
                    "plate_ids": [self.plate_ids[int(k)] if isinstance(k, int) else k for k in c.deltas],
                    "delta_g": float(sum(c.deltas.values())),
                }
            )

    def _random_changes(self, start: float, end: float, fixed: list[Change]) -> list[Change]:
        count = int(self._rng.poisson(self.picks_per_minute * (end - start) / 60.0))
        busy: list[tuple[float, set[int]]] = [(c.t, {self._idx(k) for k in c.deltas}) for c in fixed]
        out = []
        for _ in range(count):
            t = float(self._rng.uniform(start + 0.5, end - 2.5))
            plate = int(self._rng.integers(len(self.plate_ids)))
            plates = {plate}
            if self._pairs and self._rng.random() < self.spread_share:
                plates = set(self._pairs[int(self._rng.integers(len(self._pairs)))])
            if any(abs(t - bt) < MIN_GAP_S and plates & bp for bt, bp in busy):
                continue
            grams = float(self._rng.uniform(*self.item_g))
            sign = 1.0 if self._rng.random() < self.putback_share else -1.0
            share = float(self._rng.uniform(0.3, 0.7)) if len(plates) == 2 else 1.0
            ordered = sorted(plates)
            deltas: dict[str | int, float] = {ordered[0]: sign * grams * share}
            if len(ordered) == 2:
                deltas[ordered[1]] = sign * grams * (1 - share)
            busy.append((t, plates))
            out.append(Change(t, deltas, float(self._rng.uniform(0.5, 1.5))))
        return out

    def _idx(self, key: str | int) -> int:
        return key if isinstance(key, int) else self.plate_ids.index(key)

    def read_batch(self, n: int) -> SampleBatch | None:
        if self._origin is None:
            self._origin, self._mono0 = self.clock(), self.monotonic()
        if self.duration_s is not None and self._taken / self.rate_hz >= self.duration_s:
            return None
        while self._buf.shape[1] < n:
            self._next_block()
        x, self._buf = self._buf[:, :n], self._buf[:, n:]
        t0 = self._origin + self._taken / self.rate_hz
        self._taken += n
        if self.realtime:
            due = self._mono0 + self._taken / self.rate_hz / self.speed
            wait = due - self.monotonic()
            if wait > 0:
                self.sleep(wait)
        return SampleBatch(t0, self.rate_hz, x)

    def truth_absolute(self) -> list[dict[str, Any]]:
        """``truth`` with times in epoch seconds (as the node's messages carry them)."""
        origin = self._origin or 0.0
        return [{**c, "t_start": origin + c["t_start"], "t_end": origin + c["t_end"]} for c in self.truth]

    def close(self) -> None:
        self._buf = np.zeros((len(self.plate_ids), 0))
