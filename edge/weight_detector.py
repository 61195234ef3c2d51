"""Streaming weight-event detection over every plate of a shelf (or of a whole edge node).

One event per interaction (one hand at a shelf), not per plate:

1. A running median over ``2 * spike_samples + 1`` samples removes lone spikes (one or two samples
   of any size) before anything else sees the signal, so they neither make events nor break a
   settled level.
2. Per plate, rolling statistics split the filtered signal into *stable* and *active* samples: a
   sample is quiet when the rolling standard deviation over ``window_s`` stays within ``k_std`` noise
   deviations and the rolling mean has not moved against the mean ``level_lag_s`` earlier. A run of
   quiet samples of ``settle_s`` settles a plate, so a pressing hand and the ringing after a step
   keep it active. A segment's change is the settled level after minus the stable level before:
   touches (which return to the level) and slow drift or creep (never non-quiet) change nothing.
3. The segments of a shelf are grouped into interactions (edge.weight_interactions): coupling and
   the hand's pressure move the neighbours of the plate a hand is at, and those weaker segments
   belong to it; strong segments on neighbouring plates active together are one interaction;
   plates that are not neighbours stay apart.
4. An interaction is decided once all of its plates and their neighbours have settled and
   ``join_gap_s`` has passed (edge.weight_events measures it). Its change is the shelf total: the
   sum of its plates' changes, each measured from before the first plate moved to after the last
   one settled, plus those of quiet neighbours whose level moved beyond their noise (what coupling
   shifted without making them active); plates busy in another interaction do not count.
5. Hands that follow one another on a shelf (two shoppers at neighbouring plates, the second
   reaching in as the first one's plates still ring) are one interaction for the grouping, but an
   interaction is cut into one event per hand where all of its plates stood still for
   ``chain_calm_s`` in between (not at the top of a slow push, each part a hand's length and at
   least ``chain_min_g``), so each event has its own taker's step times. A take followed by a
   return is cut even where a pressing hand kept the shelf moving: where it stood within
   ``chain_loose_k`` times its quiet noise, at the lowest such level; two takes at one plate
   where that plate settled between them (no hand on it), whatever its neighbours did.
   A plate's move counted in one event is not measured again in a longer interaction.

All rolling statistics are computed with numpy over plates x samples; Python only runs per
transition (a handful per pick), never per sample. Noise is estimated per plate while stable.

A missing reading (NaN: a dead HX711, a dropped conversion) and one no load cell can give (infinite,
or beyond the contract's raw bound) hold the plate's previous value; until a plate's first reading
it stands at that reading (no step from nothing), and noise is never learned from held values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.contracts import MAX_RAW_GRAMS
from edge.weight_events import DetectedWeightChange, EventMaker, Shelf
from edge.weight_history import History
from edge.weight_interactions import Grouper, Segment
from edge.weight_stats import FilterGains, Rolling, median_filter, quiet_runs, rolling
from sensors.loadcell import hold_missing, impossible_as_missing


@dataclass(frozen=True)
class DetectorParams:
    spike_samples: float = 2  # runs of up to this many outlying samples are spikes (running median)
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
    ring_share: float = 0.03  # ringing within this share of a step (from the level before) is settled
    min_delta_g: float = 5.0  # smaller settled changes of a whole interaction are touches ...
    k_event: float = 4.0  # ... and so are those within this many noise deviations of its main plate
    part_min_g: float = 1.0  # a plate is listed in an event only with at least this change ...
    k_part: float = 4.0  # ... and this many standard errors of its change
    join_gap_s: float = 0.7  # segments this close in time (and on the same or neighbouring plates) meet
    seed_ratio: float = 0.5  # a segment moved less than this share of a neighbour's belongs to it
    quiet_level_s: float = 1.0  # levels of a shelf's quiet plates are averaged over up to this long
    max_hold_s: float = 8.0  # longest an interaction waits for a neighbour still moving
    chain_calm_s: float = 0.2  # a chained interaction is cut where all its plates stood still this long
    chain_min_g: float = 20.0  # ... and each part changed the shelf at least this much ...
    chain_hand_s: float = 0.6  # ... and lasted at least this long (a hand at a shelf: 0.8 - 2.5 s)
    chain_loose_k: float = 3.0  # a take, then a return: cut where the shelf stood within k x quiet noise
    noise_adapt: float = 0.05
    history_s: float = 20.0
    max_active_s: float = 30.0  # a plate active longer is re-baselined without an event
    blind_after_s: float = 5.0  # a reading that has not changed at all this long is a dead or stuck cell


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
        self._nb, self._guard = n_of(p.before_s), n_of(p.guard_s)
        self._max_active = n_of(p.max_active_s)
        self._grouper = Grouper(self._nbrs, n_of(p.join_gap_s), n_of(p.max_hold_s), p.seed_ratio)
        self._spike = max(0, int(p.spike_samples))
        self._gain = FilterGains.of(2 * self._spike + 1, self._w)
        self._hist = self._w + self._lag - 1
        self._h = History(count, max(n_of(p.history_s), 4 * self._hist))  # median-filtered samples
        levels = (
            self._w,
            self._guard,
            n_of(p.quiet_level_s),
            n_of(p.join_gap_s),
            n_of(p.chain_calm_s),
            n_of(p.chain_hand_s),
        )
        self._events = EventMaker(self.plate_ids, self._nbrs, self._h, self._gain, p, *levels)
        self._spans: list[list[tuple[int, int]]] = [[] for _ in range(count)]
        self._counted: list[list[int]] = [[] for _ in range(count)]  # see Shelf.counted
        self._raw_tail = np.zeros((count, 2 * self._spike))  # the median's look-back
        self._last = np.full(count, np.nan)  # NaN until a plate's first reading
        self._flat = np.zeros(count, dtype=np.int64)  # samples since each plate's reading last changed
        self._blind_n = n_of(p.blind_after_s)
        self._clean = np.full(count, 1 << 40, dtype=np.int64)  # samples since the last missing one
        self._run = np.full(count, self._settle, dtype=np.int64)  # start as settled
        self._sigma = np.full(count, p.noise_g)
        self._batches = 0
        self._active: list[Segment | None] = [None] * count
        self._pending: list[Segment] = []
        self._uids = 0
        self._t_now = -math.inf

    @property
    def noise_g(self) -> np.ndarray:
        return self._sigma.copy()

    def idle_mask(self) -> np.ndarray:
        """True for plates in no active segment and with no undecided change (a stable level)."""
        pending = {s.plate for s in self._pending}
        return np.array([s is None and i not in pending for i, s in enumerate(self._active)])

    def open_since(self) -> float | None:
        """When the oldest motion not yet decided began (a plate active, or a segment waiting for its
        interaction); None when everything the shelf did is decided."""
        starts = [s.a_start for s in (*self._pending, *(a for a in self._active if a is not None))]
        return self._h.t(max(min(starts), self._h.oldest())) if starts else None

    def blind_plates(self) -> list[str]:
        """Plates whose reading has not moved at all for ``blind_after_s`` (dead or stuck cells)."""
        return [self.plate_ids[q] for q in np.flatnonzero(self._flat >= self._blind_n)]

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
        # A real load cell's reading always moves a little: one that stood still exactly (a dead
        # HX711 held, a stuck cell) cannot weigh what coupling passes onto it.
        moved = np.concatenate([x[:, :1] != self._last[:, None], x[:, 1:] != x[:, :-1]], axis=1)
        moved &= ~np.isnan(x)
        last_move = np.where(moved, np.arange(n)[None, :], -1).max(axis=1)
        self._flat = np.where(last_move >= 0, n - 1 - last_move, np.minimum(self._flat + n, 1 << 40))
        first = never & seen
        if first.any():  # a cell that came alive: it was at this weight all along, not at zero
            self._h.fill(first, x[first, 0])
            self._raw_tail[first, :] = x[first, :1]
        self._last = np.where(never & ~seen, np.nan, x[:, -1])
        last_missing = np.where(real, -1, np.arange(n)[None, :]).max(axis=1)
        self._clean = np.where(last_missing >= 0, n - 1 - last_missing, np.minimum(self._clean + n, 1 << 40))
        filtered, self._raw_tail = median_filter(self._raw_tail, x)
        # The median of the last 2k+1 samples is the level k samples ago.
        a0 = self._h.append(filtered, t0 + (np.arange(n) - self._spike) / self.rate_hz)
        self._t_now = t0 + (n - 1) / self.rate_hz
        stats = rolling(self._h.window(a0 - self._hist, a0 + n), self._w, self._lag, n)
        std_thr, lvl_thr = self._thresholds()
        quiet = stats.quiet(std_thr, lvl_thr)
        carry = self._run.copy()
        self._run = quiet_runs(quiet, carry)[:, -1].copy()
        self._adapt_noise(quiet, stats.std, x, real)
        busy = np.flatnonzero(~quiet.all(axis=1) | np.array([s is not None for s in self._active]))
        for p in busy:
            self._transitions(
                int(p), a0, quiet[p], stats, int(carry[p]), float(std_thr[p]), float(lvl_thr[p])
            )
        return self._resolve()

    # -- per-batch vector work ----------------------------------------------------------------------
    def _thresholds(self) -> tuple[np.ndarray, np.ndarray]:
        p, g = self.params, self._gain
        std_thr = np.maximum(p.k_std * g.std * self._sigma, p.std_floor_g)
        lvl_thr = np.maximum(p.k_level * g.mean * self._sigma * math.sqrt(2.0 / self._w), p.level_floor_g)
        return std_thr, lvl_thr

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
            obs = std[calm].mean(axis=1) / self._gain.std
            self._sigma[calm] += self.params.noise_adapt * (obs - self._sigma[calm])
            np.maximum(self._sigma, 0.05, out=self._sigma)

    # -- per-transition work (a few per pick) --------------------------------------------------------
    def _transitions(
        self, p: int, a0: int, quiet: np.ndarray, stats: Rolling, run: int, std_thr: float, lvl_thr: float
    ) -> None:
        """Start and finish plate ``p``'s segments in this batch; an active plate settles by the
        ringing-tolerant test (edge.weight_stats.Rolling.ringing_quiet), an idle one starts by the
        strict one. ``run`` is the quiet run before the batch; the one after it is kept."""
        n, i = quiet.shape[0], 0
        while i < n:
            seg = self._active[p]
            if seg is None:
                runs = quiet_runs(quiet[i:], run)
                loud = np.flatnonzero(~quiet[i:])
                if loud.size == 0:
                    run = int(runs[-1])
                    break
                s = i + int(loud[0])
                self._start(p, a0 + s, int(runs[s - i - 1]) if s > i else run)
                i, run = s, 0
                continue
            q = stats.ringing_quiet(p, i, std_thr, lvl_thr, seg.before, self.params.ring_share)
            runs = quiet_runs(q, run)
            hits = np.flatnonzero(runs == self._settle)
            if hits.size == 0:
                run = int(runs[-1])
                if self._h.count - seg.a_start > self._max_active:
                    self._active[p] = None  # never settled: take the present level as the new base
                    run = self._settle
                break
            e = i + int(hits[0])
            self._finish(seg, a0 + e)
            i, run = e + 1, self._settle
        self._run[p] = run

    def _start(self, p: int, a: int, quiet_run: int) -> None:
        quiet_from = a - quiet_run - self._w + 1
        hi = a - self._guard
        lo = max(hi - self._nb, quiet_from)
        if hi - lo < 4:
            hi, lo = a, max(a - self._nb, quiet_from)
        ref = self._h.span(lo, hi, p)
        if ref.size == 0:
            ref = self._h.span(a - 1, a, p)
        self._uids += 1
        self._active[p] = Segment(self._uids, p, a, float(ref.mean()), int(ref.size), quiet_from)

    def _finish(self, seg: Segment, a_end: int) -> None:
        self._active[seg.plate] = None
        q = a_end - self._settle + 1
        lo = max(q - self._w + 1, seg.a_start + 1)
        tail = self._h.span(lo, a_end + 1, seg.plate)
        seg.after, seg.n_after = float(tail.mean()), int(tail.size)
        # The weight settled after the last sample still off the new level (the quiet test lags).
        first = max(seg.a_start, self._h.oldest())
        moving = self._h.span(first, lo, seg.plate)
        off_g = max(4.0 * self._gain.sample * self._sigma[seg.plate], self.params.level_floor_g)
        off = np.flatnonzero(np.abs(moving - seg.after) > off_g)
        seg.a_end, seg.a_quiet = a_end, (first + int(off[-1]) + 1 if off.size else first)
        seg.a_loud = a_end - self._settle
        seg.std_after = float(tail.std(ddof=1)) if tail.size > 1 else 0.0
        seg.delta = seg.after - seg.before
        seg.peak = max(abs(seg.delta), float(np.abs(moving - seg.before).max(initial=0.0)))
        step_g = max(self.params.min_delta_g, self.params.k_event * float(self._sigma[seg.plate]))
        seg.step = abs(seg.delta) >= step_g
        self._pending.append(seg)
        spans = self._spans[seg.plate]
        spans.append((seg.a_start, a_end))
        while spans[0][1] < self._h.oldest():
            spans.pop(0)

    def _resolve(self) -> list[DetectedWeightChange]:
        if not self._pending:
            return []
        now = self._h.count - 1
        active = [s for s in self._active if s is not None]
        groups = self._grouper.ready(self._pending, active, now)
        blind = frozenset(int(q) for q in np.flatnonzero(self._flat >= self._blind_n))
        std_thr, lvl_thr = self._thresholds()
        oldest = self._h.oldest()
        for starts in self._counted:
            starts[:] = [a for a in starts if a >= oldest]
        at = Shelf(
            now,
            self._t_now,
            self._sigma,
            self._spans,
            self._pending,
            self._active,
            blind,
            std_thr,
            lvl_thr,
            self._counted,
        )
        out: list[DetectedWeightChange] = []
        for g in groups:
            events = self._events.make(g, at)
            if events:  # what this interaction's plates moved is counted: not again in another
                for s in {*g.members, *(s for s, _ in g.parts)}:
                    if s.step:
                        self._counted[s.plate].append(s.a_start)
            out += events
        return out
