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


def rolling_quiet(
    ext: np.ndarray,
    w: int,
    lag: int,
    n: int,
    std_thr: np.ndarray,
    lvl_thr: np.ndarray,
    base: np.ndarray | None = None,
    ring: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Quiet mask and rolling standard deviation of the last ``n`` samples of ``ext``.

    ``ext`` holds ``w + lag - 1`` samples of history before them. A sample is quiet when the
    deviation over the ``w`` samples ending there is within ``std_thr`` and their mean is within
    ``lvl_thr`` of the mean ``lag`` samples earlier (so a slow ramp is not quiet either).

    ``base`` (per plate, NaN: none) is the level before an active plate's change: both thresholds
    then grow to ``ring`` x the distance from it, so the ringing a large step leaves (a share of
    the step, decaying) does not keep the plate active long after the weight has settled.
    """
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
    std = np.sqrt(np.maximum(var, 0.0))
    s_thr, l_thr = std_thr[:, None], lvl_thr[:, None]
    if base is not None and ring > 0.0:
        tol = ring * np.nan_to_num(np.abs(mean + ext[:, :1] - base[:, None]), nan=0.0)
        # The level test keeps a third of it: a hand still easing off moves the level one way.
        s_thr, l_thr = np.maximum(s_thr, tol), np.maximum(l_thr, tol / 3.0)
    quiet = (std <= s_thr) & (np.abs(mean - lagged) <= l_thr)
    return quiet, std


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
