"""The detector's recent past: every plate's filtered samples and their times, in a ring buffer.

Samples are addressed by their absolute index since the detector started (``count`` so far);
whatever has left the ring is simply not there any more (spans are clipped to what is kept).
"""

from __future__ import annotations

import numpy as np


class History:
    def __init__(self, plates: int, size: int) -> None:
        self.size = size
        self.count = 0
        self._x = np.zeros((plates, size))
        self._t = np.zeros(size)

    def fill(self, rows: np.ndarray, values: np.ndarray) -> None:
        """Make the whole past of plates ``rows`` read ``values`` (a cell's first reading)."""
        self._x[rows, :] = values[:, None]

    def append(self, x: np.ndarray, t: np.ndarray) -> int:
        """Add a batch (plates x n) and its times; returns the absolute index of its first sample."""
        a0 = self.count
        pos = (a0 + np.arange(x.shape[1])) % self.size
        self._x[:, pos] = x
        self._t[pos] = t
        self.count += x.shape[1]
        return a0

    def window(self, lo: int, hi: int) -> np.ndarray:
        """Every plate's samples ``lo`` .. ``hi - 1`` (indices before the start repeat the first)."""
        return self._x[:, np.maximum(np.arange(lo, hi), 0) % self.size]

    def span(self, lo: int, hi: int, plate: int) -> np.ndarray:
        """One plate's samples ``lo`` .. ``hi - 1``, clipped to what the ring still holds."""
        lo = max(lo, 0, self.count - self.size)
        return self._x[plate, np.arange(lo, max(lo, hi)) % self.size]

    def oldest(self) -> int:
        return max(0, self.count - self.size)

    def t(self, a: int) -> float:
        return float(self._t[max(a, 0) % self.size])
