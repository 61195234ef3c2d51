"""Streaming weight-change detection over every plate of a shelf (or of a whole edge node).

Per plate, rolling statistics split the signal into *stable* and *active* samples: a sample is quiet
when the rolling standard deviation over ``window_s`` stays within ``k_std`` noise deviations and
the rolling mean has not moved against the mean ``level_lag_s`` earlier. A run of quiet samples of
``settle_s`` settles a plate. An active segment starts at the first non-quiet sample and ends when
the plate has settled again; its change is the settled level after minus the stable level before,
so touches (which return to the level) and slow drift (never non-quiet) produce nothing.

Segments of neighbouring plates merge into one event when one item shows on both: the same sign,
active together for ``merge_overlap_s``, and either

* the same hand motion: one plate's sample-to-sample changes are the other's scaled by the ratio of
  their weight changes, up to sensor noise (an item standing on two plates moves both with one
  waveform split like its weight; two shoppers' hands do not), or
* the same step: active together for most of their length (``merge_share``) and their normalised
  step shapes -- the change so far divided by the segment's change, 0 before and 1 after -- agree.
  Each plate may carry its own jitter (a hand resting on one corner, a resampled clock), so the
  shapes are compared after a ``window_s`` moving average, against the shape mismatch's own
  sample-to-sample noise: one item leaves both plates together, and what is left is white noise
  that the average shrinks; two shoppers' lifts, however alike, leave a mismatch that is slow and
  does not shrink. This test does not need the motion to be strong: a smooth step merges.
All rolling statistics are computed with numpy over plates x samples; Python only runs per
transition (a handful per pick), never per sample. Noise is estimated per plate while stable.

A missing reading (NaN: a dead HX711, a dropped conversion) and one no load cell can give (infinite,
or beyond the contract's raw bound) hold the plate's previous value; until a plate's first reading
it stands at that reading (no step from nothing), and noise is never learned from held values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edge.contracts import MAX_RAW_GRAMS
from sensors.loadcell import hold_missing, impossible_as_missing


@dataclass(frozen=True)
class DetectorParams:
    window_s: float = 0.25  # rolling statistics window
    level_lag_s: float = 0.3  # a level moving against this far back is active (slow ramps)
    settle_s: float = 0.3  # quiet this long = settled
    before_s: float = 0.5  # the stable level before is averaged over up to this long ...
    guard_s: float = 0.25  # ... ending this long before the first active sample
    noise_g: float = 0.5  # first guess of each plate's noise; refined while stable
    k_std: float = 3.0
    k_level: float = 6.0
    std_floor_g: float = 0.3
    level_floor_g: float = 1.5
    min_delta_g: float = 5.0  # smaller settled changes are touches, not events
    part_min_g: float = 2.0  # a plate contributes to an event only with at least this change
    merge_resid: float = (
        20.0  # neighbours merge when one's motion is the other's, scaled, within this x noise
    )
    merge_overlap_s: float = 0.2  # ... while active together at least this long
    merge_share: float = 0.6  # the same step: active together for this share of the longer segment ...
    merge_shape: float = 9.0  # ... RMS of the smoothed shape mismatch <= sqrt(this) standard errors ...
    merge_shape_noise: float = 0.1  # ... and each sample of the mismatch this share of the step or less
    max_hold_s: float = 5.0  # longest an event waits for a neighbour that might merge
    noise_adapt: float = 0.05
    history_s: float = 20.0
    max_active_s: float = 30.0  # a plate active longer is re-baselined without an event


@dataclass(frozen=True)
class DetectedWeightChange:
    plate_ids: tuple[str, ...]
    delta_g: float
    t_start: float
    t_end: float
    noise_g: float
    confidence: float
    decided_at: float  # time of the sample at which the event was decided (>= t_end)
    plate_deltas: tuple[float, ...] = ()


@dataclass
class _Segment:
    plate: int
    a_start: int  # absolute sample index of the first active sample
    before: float
    n_before: int
    a_end: int = -1  # absolute index at which the plate had settled
    a_quiet: int = -1  # first sample of the settled level
    after: float = math.nan
    std_after: float = 0.0
    n_after: int = 0
    delta: float = 0.0
    peers: list[int] = field(default_factory=list)


def chain_neighbours(groups: Sequence[str]) -> list[tuple[int, int]]:
    """Consecutive plates of the same group (shelf) are neighbours."""
    return [(i, i + 1) for i in range(len(groups) - 1) if groups[i] == groups[i + 1]]


class ShelfDetector:
    def __init__(
        self,
        plate_ids: Sequence[str],
        rate_hz: float,
        params: DetectorParams | None = None,
        neighbours: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        if not plate_ids:
            raise ValueError("a detector needs at least one plate")
        self.plate_ids = list(plate_ids)
        self.rate_hz = float(rate_hz)
        self.params = p = params or DetectorParams()
        count = len(self.plate_ids)
        pairs = neighbours if neighbours is not None else chain_neighbours(["shelf"] * count)
        self._nbrs: list[set[int]] = [set() for _ in range(count)]
        for a, b in pairs:
            self._nbrs[a].add(b)
            self._nbrs[b].add(a)

        def n_of(seconds: float) -> int:
            return max(1, int(round(seconds * self.rate_hz)))

        self._w, self._lag, self._settle = max(2, n_of(p.window_s)), n_of(p.level_lag_s), n_of(p.settle_s)
        self._nb, self._guard, self._merge_n = n_of(p.before_s), n_of(p.guard_s), n_of(p.merge_overlap_s)
        self._hold_n, self._max_active = n_of(p.max_hold_s), n_of(p.max_active_s)
        self._hist = self._w + self._lag - 1
        self._size = max(n_of(p.history_s), 4 * self._hist)
        self._buf = np.zeros((count, self._size))
        self._tbuf = np.zeros(self._size)
        self._count = 0
        self._last = np.full(count, np.nan)  # NaN until a plate's first reading
        self._clean = np.full(count, 1 << 40, dtype=np.int64)  # samples since the last missing one
        self._run = np.full(count, self._settle, dtype=np.int64)  # start as settled
        self._carry = self._run
        self._sigma = np.full(count, p.noise_g)
        self._batches = 0
        self._active: list[_Segment | None] = [None] * count
        self._pending: list[_Segment] = []

    @property
    def noise_g(self) -> np.ndarray:
        return self._sigma.copy()

    def idle_mask(self) -> np.ndarray:
        """True for plates in no active segment and with no undecided change (a stable level)."""
        pending = {s.plate for s in self._pending}
        return np.array([s is None and i not in pending for i, s in enumerate(self._active)])

    def active_plates(self) -> list[str]:
        return [self.plate_ids[i] for i, s in enumerate(self._active) if s is not None]

    def push(self, t0: float, grams: np.ndarray) -> list[DetectedWeightChange]:
        x = np.asarray(grams, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != len(self.plate_ids):
            raise ValueError(f"samples must have shape ({len(self.plate_ids)}, n), got {x.shape}")
        n = x.shape[1]
        if n == 0:
            return []
        x = impossible_as_missing(x, MAX_RAW_GRAMS)
        real = ~np.isnan(x)
        seen = real.any(axis=1)
        never = np.isnan(self._last)
        x = hold_missing(x, self._last)
        first = never & seen
        if first.any():  # a cell that came alive: it was at this weight all along, not at zero
            self._buf[first, :] = x[first, :1]
        self._last = np.where(never & ~seen, np.nan, x[:, -1])
        last_missing = np.where(real, -1, np.arange(n)[None, :]).max(axis=1)
        self._clean = np.where(last_missing >= 0, n - 1 - last_missing, np.minimum(self._clean + n, 1 << 40))
        a0 = self._count
        pos = (a0 + np.arange(n)) % self._size
        self._buf[:, pos] = x
        self._tbuf[pos] = t0 + np.arange(n) / self.rate_hz
        self._count += n
        quiet, std = self._quiet(a0, n)
        run = self._runs(quiet)
        self._adapt_noise(quiet, std, x, real)
        busy = np.flatnonzero(~quiet.all(axis=1) | np.array([s is not None for s in self._active]))
        for p in busy:
            self._transitions(int(p), a0, quiet[p], run[p])
        return self._resolve()

    # -- per-batch vector work ----------------------------------------------------------------------
    def _quiet(self, a0: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        w, h = self._w, self._hist
        ext_idx = np.maximum(np.arange(a0 - h, a0 + n), 0) % self._size
        ext = self._buf[:, ext_idx]
        c = ext - ext[:, :1]
        s1 = np.zeros((ext.shape[0], ext.shape[1] + 1))
        s2 = np.zeros_like(s1)
        np.cumsum(c, axis=1, out=s1[:, 1:])
        np.cumsum(c * c, axis=1, out=s2[:, 1:])
        ends = h + 1 + np.arange(n)
        mean = (s1[:, ends] - s1[:, ends - w]) / w
        lagged = (s1[:, ends - self._lag] - s1[:, ends - self._lag - w]) / w
        var = ((s2[:, ends] - s2[:, ends - w]) - w * mean * mean) / (w - 1)
        std = np.sqrt(np.maximum(var, 0.0))
        p = self.params
        std_thr = np.maximum(p.k_std * self._sigma, p.std_floor_g)
        lvl_thr = np.maximum(p.k_level * self._sigma * math.sqrt(2.0 / w), p.level_floor_g)
        quiet = (std <= std_thr[:, None]) & (np.abs(mean - lagged) <= lvl_thr[:, None])
        return quiet, std

    def _runs(self, quiet: np.ndarray) -> np.ndarray:
        """Length of the quiet run ending at each sample, continuing the previous batch's run."""
        n = quiet.shape[1]
        idx = np.arange(n)
        last_loud = np.maximum.accumulate(np.where(quiet, -1, idx[None, :]), axis=1)
        run = np.where(last_loud >= 0, idx[None, :] - last_loud, self._run[:, None] + idx[None, :] + 1)
        self._carry = self._run
        self._run = run[:, -1].copy()
        return run

    def _adapt_noise(self, quiet: np.ndarray, std: np.ndarray, x: np.ndarray, real: np.ndarray) -> None:
        # Held values are flat: learning from them would shrink a dead plate's noise until its real
        # noise, once it is back, looks like a hand on the shelf for ever.
        self._batches += 1
        if self._batches * x.shape[1] <= self.rate_hz:  # first second: robust estimate from differences
            both = real[:, 1:] & real[:, :-1]
            has = both.any(axis=1)
            if has.any():
                d = np.where(both[has], np.abs(np.diff(x[has], axis=1)), np.nan)
                est = np.nanmedian(d, axis=1) / (0.6745 * math.sqrt(2.0))
                self._sigma[has] = np.maximum(0.5 * self._sigma[has] + 0.5 * est, 0.05)
            return
        clean = self._clean >= x.shape[1] + self._hist  # no held value in any window of this batch
        calm = quiet.all(axis=1) & np.array([s is None for s in self._active]) & clean
        if calm.any():
            obs = std[calm].mean(axis=1) / 0.98
            self._sigma[calm] += self.params.noise_adapt * (obs - self._sigma[calm])
            np.maximum(self._sigma, 0.05, out=self._sigma)

    # -- per-transition work (a few per pick) --------------------------------------------------------
    def _span(self, lo: int, hi: int, plate: int) -> np.ndarray:
        lo = max(lo, 0, self._count - self._size)
        return self._buf[plate, np.arange(lo, max(lo, hi)) % self._size]

    def _t(self, a: int) -> float:
        return float(self._tbuf[max(a, 0) % self._size])

    def _transitions(self, p: int, a0: int, quiet: np.ndarray, run: np.ndarray) -> None:
        loud = np.flatnonzero(~quiet)
        settled = np.flatnonzero(run == self._settle)
        i = 0
        while True:
            seg = self._active[p]
            if seg is not None:
                k = int(np.searchsorted(settled, i))
                if k == len(settled):
                    if self._count - seg.a_start > self._max_active:
                        self._active[p] = None  # never settled: take the present level as the new base
                        self._run[p] = self._settle
                    return
                e = int(settled[k])
                self._finish(seg, a0 + e)
                i = e + 1
            else:
                k = int(np.searchsorted(loud, i))
                if k == len(loud):
                    return
                s = int(loud[k])
                before_run = int(run[s - 1]) if s > 0 else int(self._carry[p])
                self._start(p, a0 + s, before_run)
                i = s

    def _start(self, p: int, a: int, quiet_run: int) -> None:
        quiet_from = a - quiet_run - self._w + 1
        hi = a - self._guard
        lo = max(hi - self._nb, quiet_from)
        if hi - lo < 4:
            hi, lo = a, max(a - self._nb, quiet_from)
        ref = self._span(lo, hi, p)
        if ref.size == 0:
            ref = self._span(a - 1, a, p)
        self._active[p] = _Segment(p, a, float(ref.mean()), int(ref.size))

    def _finish(self, seg: _Segment, a_end: int) -> None:
        self._active[seg.plate] = None
        q = a_end - self._settle + 1
        lo = max(q - self._w + 1, seg.a_start + 1)
        tail = self._span(lo, a_end + 1, seg.plate)
        seg.after, seg.n_after = float(tail.mean()), int(tail.size)
        # The weight settled after the last sample still off the new level (the quiet test lags).
        first = max(seg.a_start, self._count - self._size)
        off = np.flatnonzero(
            np.abs(self._span(first, lo, seg.plate) - seg.after)
            > max(4.0 * self._sigma[seg.plate], self.params.level_floor_g)
        )
        seg.a_end, seg.a_quiet = a_end, (first + int(off[-1]) + 1 if off.size else first)
        seg.std_after = float(tail.std(ddof=1)) if tail.size > 1 else 0.0
        seg.delta = seg.after - seg.before
        if abs(seg.delta) >= self.params.part_min_g:
            self._pending.append(seg)

    def _same_motion(self, a: _Segment, b: _Segment) -> bool:
        if a.plate not in self._nbrs[b.plate] or (a.delta > 0) != (b.delta > 0):
            return False
        lo, hi = max(a.a_start, b.a_start) - 1, min(a.a_quiet, b.a_quiet) + 1
        if hi - lo < self._merge_n:  # not active together long enough to be one motion
            return False
        return self._proportional(a, b, lo, hi) or self._same_step(a, b, hi - lo - 2)

    def _proportional(self, a: _Segment, b: _Segment, lo: int, hi: int) -> bool:
        da, db = np.diff(self._span(lo, hi, a.plate)), np.diff(self._span(lo, hi, b.plate))
        # One item on both plates: b's motion is a's scaled by the weight split, up to sensor noise.
        k = b.delta / a.delta
        noise = 2.0 * (self._sigma[b.plate] ** 2 + k * k * self._sigma[a.plate] ** 2)
        resid = float(np.mean((db - k * da) ** 2)) / noise
        motion = float(np.mean(db * db) + k * k * np.mean(da * da)) / noise
        return resid <= self.params.merge_resid and motion >= 4.0

    def _same_step(self, a: _Segment, b: _Segment, together: int) -> bool:
        """One item leaving (or arriving on) both plates at once: the same normalised step shape."""
        p = self.params
        if together < p.merge_share * max(a.a_quiet - a.a_start, b.a_quiet - b.a_start):
            return False
        lo, hi = min(a.a_start, b.a_start) - 1, max(a.a_quiet, b.a_quiet) + 1
        sa, sb = self._span(lo, hi, a.plate), self._span(lo, hi, b.plate)
        w = self._w
        if sa.size != hi - lo or sa.size < w + 2:
            return False  # part of the window has left the history
        mismatch = (sb - b.before) / b.delta - (sa - a.before) / a.delta  # 0 before, 0 after
        # Per-sample noise of the mismatch from its own differences (jitter of either plate included),
        # at least what the plates' sensor noise gives; white noise averaged over w shrinks by 1/w.
        floor = (self._sigma[a.plate] / a.delta) ** 2 + (self._sigma[b.plate] / b.delta) ** 2
        var = max(float(np.mean(np.diff(mismatch) ** 2)) / 2.0, float(floor))
        if var > p.merge_shape_noise**2:  # a step this deep in noise has no shape to compare
            return False
        slow = np.convolve(mismatch, np.full(w, 1.0 / w), mode="valid")
        return float(np.mean(slow * slow)) <= p.merge_shape * var / w

    def _resolve(self) -> list[DetectedWeightChange]:
        if not self._pending:
            return []
        segs = self._pending
        for s in segs:
            s.peers = [j for j, o in enumerate(segs) if o is not s and self._same_motion(s, o)]
        now = self._count - 1
        out: list[DetectedWeightChange] = []
        done: set[int] = set()
        for i in range(len(segs)):
            if i in done:
                continue
            group, todo = {i}, [i]
            while todo:
                for j in segs[todo.pop()].peers:
                    if j not in group:
                        group.add(j)
                        todo.append(j)
            members = [segs[j] for j in sorted(group)]
            if any(self._held(m, now) for m in members):
                continue
            done |= group
            event = self._event(members, self._t(now))
            if event is not None:
                out.append(event)
        self._pending = [s for j, s in enumerate(segs) if j not in done]
        return out

    def _held(self, seg: _Segment, now: int) -> bool:
        """Wait while a neighbour is still in a motion that overlapped this one (it may merge)."""
        if now - seg.a_end > self._hold_n:
            return False
        return any(
            (o := self._active[q]) is not None and o.a_start <= seg.a_quiet for q in self._nbrs[seg.plate]
        )

    def _event(self, members: list[_Segment], decided_at: float) -> DetectedWeightChange | None:
        members.sort(key=lambda s: s.plate)
        delta = sum(s.delta for s in members)
        sigma = max(float(self._sigma[s.plate]) for s in members)
        spread = math.sqrt(sum(self._sigma[s.plate] ** 2 * (1 / s.n_before + 1 / s.n_after) for s in members))
        threshold = max(self.params.min_delta_g, 6.0 * spread)
        if abs(delta) < threshold:
            return None
        settle = min(1.0, 1.5 * sigma / max(max(s.std_after for s in members), 1e-9))
        confidence = (1.0 - math.exp(-2.0 * (abs(delta) / threshold - 1.0))) * (0.5 + 0.5 * settle)
        t_start = self._t(min(s.a_start for s in members))
        t_end = max(t_start, self._t(max(s.a_quiet for s in members)))
        noise = math.sqrt(sum(s.std_after**2 for s in members) / len(members))
        return DetectedWeightChange(
            plate_ids=tuple(self.plate_ids[s.plate] for s in members),
            delta_g=delta,
            t_start=t_start,
            t_end=t_end,
            noise_g=noise,
            confidence=max(0.0, min(1.0, confidence)),
            decided_at=decided_at,
            plate_deltas=tuple(s.delta for s in members),
        )
