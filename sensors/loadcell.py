"""What every load-cell source gives the edge node: batches of samples, one row per plate.

A single cell (HX711 and friends) implements :class:`LoadCell`: one raw reading at a time. The edge
node works on whole shelves, so it reads a :class:`PlateSource`: every plate of the node sampled on
one clock, in batches (the AutoCheckout layout: 60 Hz, 12 samples). A missing reading is NaN; a
source that knows how many genuinely new ADC conversions arrived says so in ``fresh`` (the health
monitor derives it from value changes otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


class LoadCellError(RuntimeError):
    """A load cell that cannot be read; the message names the cell and what to check."""


@runtime_checkable
class LoadCell(Protocol):
    """One load cell behind an ADC, read in raw counts."""

    name: str
    rate_hz: float  # conversions per second the ADC delivers

    def is_ready(self) -> bool:
        """True when a new conversion can be read without waiting."""
        ...

    def read_raw(self, timeout_s: float = 1.0) -> int:
        """The next conversion in counts; raises LoadCellError when none comes within ``timeout_s``."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SampleBatch:
    """``values[i, j]``: plate ``i`` at ``t0 + j / rate_hz`` (counts or grams, NaN = no reading)."""

    t0: float
    rate_hz: float
    values: np.ndarray
    fresh: np.ndarray | None = None  # new ADC conversions per plate in this batch; None = unknown

    @property
    def n(self) -> int:
        return int(self.values.shape[1])

    @property
    def t_last(self) -> float:
        return self.t0 + (self.n - 1) / self.rate_hz


@runtime_checkable
class PlateSource(Protocol):
    """Every plate of an edge node, sampled together at ``rate_hz``."""

    plate_ids: list[str]
    rate_hz: float

    def read_batch(self, n: int) -> SampleBatch | None:
        """Block until ``n`` more samples per plate exist and return them; None when the source ended."""
        ...

    def close(self) -> None: ...


def hold_missing(values: np.ndarray, last: np.ndarray) -> np.ndarray:
    """A copy with every missing reading (NaN) replaced by the plate's previous one.

    ``last`` holds each plate's value before this batch (NaN: none yet; then the first reading of the
    batch is used, or 0 for a plate with no reading at all).
    """
    x = np.array(values, dtype=np.float64, copy=True)
    missing = np.isnan(x)
    if not missing.any():
        return x
    n = x.shape[1]
    idx = np.where(missing, -1, np.arange(n)[None, :])
    np.maximum.accumulate(idx, axis=1, out=idx)
    filled = np.take_along_axis(x, np.maximum(idx, 0), axis=1)
    first = x[np.arange(x.shape[0]), np.argmax(~missing, axis=1)]  # NaN when all are missing
    prev = np.where(np.isnan(last), np.nan_to_num(first), last)
    return np.where(idx < 0, prev[:, None], filled)


def impossible_as_missing(values: np.ndarray, limit: float) -> np.ndarray:
    """A copy with every reading no load cell can give (infinite, or beyond ``limit`` either way: a
    corrupted recording, an overflowing conversion) turned into a missing one (NaN)."""
    x = np.array(values, dtype=np.float64, copy=True)
    with np.errstate(invalid="ignore"):
        x[~(np.abs(x) <= limit)] = np.nan  # NaN compares False: stays missing
    return x
