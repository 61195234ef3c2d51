"""Vector statistics of the weight-event detector: spike removal and the rolling quiet test.

Both work on whole arrays of plates x samples (numpy, no Python loop per sample).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def median_filter(tail: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running median of ``tail.shape[1] + 1`` samples over ``x``, continuing from ``tail`` (the
    previous batch's last raw samples); returns the filtered batch and the new tail.

    A median of 2k + 1 samples ignores any k outlying ones in a row: a lone spike of any size, or
    two, never reach the rolling statistics. Steps pass unchanged (k samples late).
    """
    k = tail.shape[1]
    if k == 0:
        return x.copy(), tail
    ext = np.concatenate([tail, x], axis=1)
    windows = sliding_window_view(ext, k + 1, axis=1)
    filtered = np.partition(windows, k // 2, axis=-1)[..., k // 2]
    return filtered, ext[:, -k:].copy()


@dataclass(frozen=True)
class Rolling:
    """Rolling statistics of the last ``n`` samples, per plate: over the ``w`` samples ending at each,
    their standard deviation, their mean and how far that mean moved against the mean ``lag``
    samples earlier (so a slow ramp is not quiet either)."""

    std: np.ndarray
    level: np.ndarray
    moved: np.ndarray

    def quiet(self, std_thr: np.ndarray, lvl_thr: np.ndarray) -> np.ndarray:
        return (self.std <= std_thr[:, None]) & (self.moved <= lvl_thr[:, None])

    def ringing_quiet(
        self, p: int, lo: int, std_thr: float, lvl_thr: float, base: float, ring: float
    ) -> np.ndarray:
        """Plate ``p``'s quiet samples from ``lo`` on while it is active on a change from ``base``:
        both thresholds grow to ``ring`` x the distance from it, so the ringing a large step leaves
        (a share of the step, decaying) does not keep the plate active long after the weight has
        settled. The level test keeps a third of it: a hand still easing off moves the level one way."""
        tol = ring * np.abs(self.level[p, lo:] - base)
        return (self.std[p, lo:] <= np.maximum(std_thr, tol)) & (
            self.moved[p, lo:] <= np.maximum(lvl_thr, tol / 3.0)
        )


def rolling(ext: np.ndarray, w: int, lag: int, n: int) -> Rolling:
    """:class:`Rolling` of the last ``n`` samples of ``ext``, which holds ``w + lag - 1`` before them."""
    h = ext.shape[1] - n
    c = ext - ext[:, :1]  # shifted: the sums of squares stay exact on a 3 kg base load
    s1 = np.zeros((ext.shape[0], ext.shape[1] + 1))
    s2 = np.zeros_like(s1)
    np.cumsum(c, axis=1, out=s1[:, 1:])
    np.cumsum(c * c, axis=1, out=s2[:, 1:])
    ends = h + 1 + np.arange(n)
    mean = (s1[:, ends] - s1[:, ends - w]) / w
    lagged = (s1[:, ends - lag] - s1[:, ends - lag - w]) / w
    var = ((s2[:, ends] - s2[:, ends - w]) - w * mean * mean) / (w - 1)
    return Rolling(np.sqrt(np.maximum(var, 0.0)), mean + ext[:, :1], np.abs(mean - lagged))


def quiet_runs(quiet: np.ndarray, carry: np.ndarray | int) -> np.ndarray:
    """Length of the quiet run ending at each sample (last axis), continuing ``carry`` before them."""
    n = quiet.shape[-1]
    idx = np.arange(n)
    last_loud = np.maximum.accumulate(np.where(quiet, -1, idx), axis=-1)
    before = np.asarray(carry)[..., None] if np.ndim(carry) else carry
    return np.where(last_loud >= 0, idx - last_loud, before + idx + 1)


@dataclass(frozen=True)
class FilterGains:
    """What the running median does to white noise of deviation 1, measured once per shape.

    ``std``: mean rolling (``w``-sample) standard deviation of the filtered signal; ``mean``: the
    deviation of a ``w``-sample mean, relative to that of raw samples; ``sample``: the deviation of
    one filtered sample. The detector's thresholds are in raw-noise units times these.
    """

    std: float
    mean: float
    sample: float

    @staticmethod
    @functools.lru_cache(maxsize=16)
    def of(width: int, w: int) -> FilterGains:
        raw = np.random.default_rng(20240611).normal(0.0, 1.0, (32, 4096))
        f, _ = median_filter(np.zeros((32, width - 1)) + raw[:, :1], raw)
        f = f[:, width:]
        r = raw[:, width:]
        win = sliding_window_view(f, w, axis=1)
        std = float(win.std(axis=-1, ddof=1).mean())
        means_f = win.mean(axis=-1)
        means_r = sliding_window_view(r, w, axis=1).mean(axis=-1)
        mean = float(np.diff(means_f[:, ::w], axis=1).std() / np.diff(means_r[:, ::w], axis=1).std())
        return FilterGains(std=std, mean=mean, sample=float(f.std()))
