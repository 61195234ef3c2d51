"""Load-cell health: dead, stuck, out of range, too slow, drifting. Reported, never silent.

:class:`HealthMonitor` looks at every batch of every plate at once and keeps one state per plate,
``ok``, ``degraded`` or ``failed`` (the values of the status topic's ``sensors`` map), with a reason.
Each change of state is returned so the node logs it and republishes its retained status.

* dead: no reading at all (NaN: the ADC never became ready) for ``dead_after_s``;
* stuck: readings arrive but never change for ``stuck_after_s`` (a real 24-bit ADC always has noise;
  a constant is a broken cell, a short, or a frozen driver);
* out of range: the ADC saturates, or the grams leave [``min_g``, ``capacity_g``];
* slow: fewer new conversions per second than ``min_rate_fraction`` of the expected rate;
* drifting: the stable level wandered more than ``max_drift_g`` without an event.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

OK, DEGRADED, FAILED = "ok", "degraded", "failed"
_RANK = {OK: 0, DEGRADED: 1, FAILED: 2}


@dataclass(frozen=True)
class HealthParams:
    dead_after_s: float = 2.0
    stuck_after_s: float = 5.0
    min_rate_fraction: float = 0.8
    rate_window_s: float = 5.0
    min_g: float = -500.0
    max_drift_g: float = 50.0


@dataclass(frozen=True)
class HealthChange:
    plate: str
    old: str
    new: str
    reason: str


class HealthMonitor:
    def __init__(
        self,
        plate_ids: Sequence[str],
        expected_rate_hz: float | Sequence[float],
        capacity_g: float | Sequence[float] = 50_000.0,
        params: HealthParams | None = None,
        adc_limits: tuple[float, float] | None = None,
    ) -> None:
        self.plate_ids = list(plate_ids)
        count = len(self.plate_ids)
        self.params = params or HealthParams()
        self.expected = np.broadcast_to(np.asarray(expected_rate_hz, dtype=float), (count,)).copy()
        self.capacity = np.broadcast_to(np.asarray(capacity_g, dtype=float), (count,)).copy()
        self.adc_limits = adc_limits
        self._since_valid = np.zeros(count)
        self._since_change = np.zeros(count)
        self._rate = self.expected.copy()
        self._elapsed = 0.0
        self._prev = np.full(count, np.nan)
        self._state = [OK] * count
        self._reason = [""] * count

    def states(self) -> dict[str, str]:
        return dict(zip(self.plate_ids, self._state, strict=True))

    def reasons(self) -> dict[str, str]:
        return {p: r for p, r, s in zip(self.plate_ids, self._reason, self._state, strict=True) if s != OK}

    def update(
        self,
        raw: np.ndarray,
        grams: np.ndarray,
        rate_hz: float,
        fresh: np.ndarray | None = None,
        drift_g: np.ndarray | None = None,
    ) -> list[HealthChange]:
        """One batch: ``raw`` as the source gave it (NaN = no reading), ``grams`` after calibration."""
        count, n = raw.shape
        if n == 0:
            return []
        dt = n / rate_hz
        valid = ~np.isnan(raw)
        prev = np.concatenate([self._prev[:, None], raw[:, :-1]], axis=1)
        changed = valid & (raw != prev) & ~np.isnan(prev)
        if fresh is None:
            fresh = changed.sum(axis=1)
        idx = np.arange(n)
        last_valid = np.where(valid, idx, -1).max(axis=1)
        last_change = np.where(changed, idx, -1).max(axis=1)
        self._since_valid = np.where(last_valid >= 0, (n - 1 - last_valid) / rate_hz, self._since_valid + dt)
        self._since_change = np.where(
            last_change >= 0, (n - 1 - last_change) / rate_hz, self._since_change + dt
        )
        self._prev = np.where(last_valid >= 0, raw[np.arange(count), np.maximum(last_valid, 0)], self._prev)
        alpha = min(1.0, dt / self.params.rate_window_s)
        self._rate += alpha * (np.asarray(fresh, dtype=float) / dt - self._rate)
        self._elapsed += dt
        return self._judge(raw, grams, drift_g)

    def _judge(self, raw: np.ndarray, grams: np.ndarray, drift_g: np.ndarray | None) -> list[HealthChange]:
        p = self.params
        with warnings.catch_warnings():  # a plate without any reading has no min or max (NaN)
            warnings.simplefilter("ignore", RuntimeWarning)
            lo = np.nanmin(grams, axis=1)
            hi = np.nanmax(grams, axis=1)
        saturated = np.zeros(len(self.plate_ids), dtype=bool)
        if self.adc_limits is not None:
            saturated = np.asarray(np.any((raw <= self.adc_limits[0]) | (raw >= self.adc_limits[1]), axis=1))
        changes = []
        for i, plate in enumerate(self.plate_ids):
            state, reason = OK, ""
            if self._since_valid[i] >= p.dead_after_s:
                state, reason = FAILED, f"dead: no reading for {self._since_valid[i]:.1f} s"
            elif self._since_change[i] >= p.stuck_after_s:
                state, reason = (
                    FAILED,
                    f"stuck: the reading has not changed for {self._since_change[i]:.1f} s",
                )
            elif saturated[i]:
                state, reason = FAILED, "out of range: the ADC is saturated (overload or a broken wire)"
            elif hi[i] > self.capacity[i] or lo[i] < p.min_g:
                state, reason = (
                    DEGRADED,
                    f"out of range: {lo[i]:.0f}..{hi[i]:.0f} g (capacity {self.capacity[i]:.0f} g)",
                )
            elif self._elapsed >= p.rate_window_s and self._rate[i] < p.min_rate_fraction * self.expected[i]:
                state, reason = (
                    DEGRADED,
                    (f"slow: {self._rate[i]:.1f} readings/s, expected {self.expected[i]:.0f}"),
                )
            elif drift_g is not None and abs(drift_g[i]) > p.max_drift_g:
                state, reason = DEGRADED, f"drifting: {drift_g[i]:+.1f} g without an event"
            if state != self._state[i]:
                changes.append(HealthChange(plate, self._state[i], state, reason or "recovered"))
            self._state[i], self._reason[i] = state, reason
        return changes

    def worst(self) -> str:
        return max(self._state, key=_RANK.__getitem__) if self._state else OK
