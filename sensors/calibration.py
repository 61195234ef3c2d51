"""From ADC counts to grams: tare, scale from a known weight, and tracking zero and drift.

``grams = (counts - offset_counts) * grams_per_count`` per plate, with both numbers stored in the
node config (``walkout sensors calibrate`` writes them). While running, :class:`ZeroTracker` keeps an
*empty* plate at zero (automatic zero tracking, as retail scales do: only while stable, only near
zero, rate limited) and :class:`DriftTracker` measures how far every plate's stable level wandered
without a detected event, for the health report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class CalibrationError(ValueError):
    """A calibration that cannot be trusted; the message says what to do."""


@dataclass(frozen=True)
class PlateCalibration:
    offset_counts: float = 0.0
    grams_per_count: float = 1.0

    def to_grams(self, counts: np.ndarray | float) -> np.ndarray:
        return (np.asarray(counts, dtype=np.float64) - self.offset_counts) * self.grams_per_count


def apply_calibration(values: np.ndarray, calibrations: Sequence[PlateCalibration]) -> np.ndarray:
    """Counts [plates, n] to grams, every plate at once (NaN stays NaN)."""
    offsets = np.array([c.offset_counts for c in calibrations])
    scales = np.array([c.grams_per_count for c in calibrations])
    return (np.asarray(values, dtype=np.float64) - offsets[:, None]) * scales[:, None]


def stable_mean(samples: Sequence[float] | np.ndarray, max_std: float | None = None) -> tuple[float, float]:
    """Mean and standard deviation of readings that must come from a plate at rest."""
    x = np.asarray(samples, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size < 5:
        raise CalibrationError(f"only {x.size} readings arrived; the cell needs at least 5 (check wiring)")
    mean, std = float(x.mean()), float(x.std(ddof=1))
    if max_std is not None and std > max_std:
        raise CalibrationError(
            f"the plate is not at rest (readings vary by {std:.1f} counts, allowed {max_std:.1f}); "
            "keep it still and try again"
        )
    return mean, std


def tare(samples: Sequence[float] | np.ndarray, max_std: float | None = None) -> float:
    """The offset: the mean reading of the empty (or zero-reference) plate."""
    return stable_mean(samples, max_std)[0]


def scale_from_known(
    loaded: Sequence[float] | np.ndarray, offset_counts: float, known_g: float, max_std: float | None = None
) -> float:
    """Grams per count from readings with ``known_g`` grams on the tared plate."""
    if known_g <= 0:
        raise CalibrationError(f"the known weight must be positive grams, got {known_g}")
    mean, std = stable_mean(loaded, max_std)
    span = mean - offset_counts
    if abs(span) < max(20.0, 10.0 * std):
        raise CalibrationError(
            f"the reading moved by only {span:.0f} counts with {known_g:g} g on the plate; is the weight "
            "on the right plate, and is the cell wired (E+/E-/A+/A-)?"
        )
    return known_g / span


def calibrate(
    empty: Sequence[float] | np.ndarray,
    loaded: Sequence[float] | np.ndarray,
    known_g: float,
    max_std: float | None = None,
) -> PlateCalibration:
    offset = tare(empty, max_std)
    return PlateCalibration(offset, scale_from_known(loaded, offset, known_g, max_std))


def _row_means(x: np.ndarray) -> np.ndarray:
    """Mean of each plate's readings in a batch, NaN for a plate without any."""
    valid = ~np.isnan(x)
    counts = valid.sum(axis=1)
    sums = np.where(valid, x, 0.0).sum(axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


class ZeroTracker:
    """Automatic zero tracking: an empty plate's reading is pulled to zero while it is stable."""

    def __init__(self, count: int, band_g: float = 5.0, rate_g_per_s: float = 0.5) -> None:
        self.band_g = band_g
        self.rate_g_per_s = rate_g_per_s
        self.zero = np.zeros(count)

    def correct(self, grams: np.ndarray, stable: np.ndarray, dt_s: float) -> np.ndarray:
        """Grams minus the tracked zero; afterwards, stable plates near zero move their zero toward
        the batch mean by at most ``rate_g_per_s * dt_s``."""
        out = grams - self.zero[:, None]
        level = _row_means(out)
        near = stable & (np.abs(level) <= self.band_g) & ~np.isnan(level)
        limit = self.rate_g_per_s * dt_s
        self.zero[near] += np.clip(level[near], -limit, limit)
        return out


class DriftTracker:
    """How far each plate's stable level moved without an event explaining it (grams)."""

    def __init__(self, count: int) -> None:
        self.reference = np.full(count, np.nan)
        self.drift_g = np.zeros(count)

    def update(self, grams: np.ndarray, stable: np.ndarray) -> np.ndarray:
        level = _row_means(grams)
        fresh = stable & np.isnan(self.reference) & ~np.isnan(level)
        self.reference[fresh] = level[fresh]
        known = stable & ~np.isnan(self.reference) & ~np.isnan(level)
        self.drift_g[known] = level[known] - self.reference[known]
        return self.drift_g

    def on_event(self, plate: int, delta_g: float) -> None:
        if not np.isnan(self.reference[plate]):
            self.reference[plate] += delta_g

    def rebase(self, plate: int) -> None:
        self.reference[plate] = np.nan
        self.drift_g[plate] = 0.0
