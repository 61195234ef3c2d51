"""What a decided interaction weighs: per-plate changes, the shelf total, times, confidence.

Every plate of an interaction is measured over the same stretch, from before the first of its
plates moved to after the last one settled (edge.weight_interactions groups them). A neighbour
that only coupling or the hand's share moved is deep in its noise: its own segment starts late and
ends early, and its own bounds would put part of the motion into its levels.

The shelf total adds to the interaction's plates the quiet neighbours whose level moved beyond its
noise (a small coupled share that never made them active); a quiet plate that also neighbours
another interaction at the time is left out, since its shift may be that one's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edge.weight_history import History
from edge.weight_interactions import Group, Segment
from edge.weight_stats import FilterGains

if TYPE_CHECKING:
    from edge.weight_detector import DetectorParams

RINGING_DOUBT = 0.2  # at most this much of an event's confidence is lost to a level still ringing


@dataclass(frozen=True)
class DetectedWeightChange:
    plate_ids: tuple[str, ...]
    delta_g: float  # the interaction's weight: the shelf total when known
    t_start: float
    t_end: float
    noise_g: float
    confidence: float
    decided_at: float  # time of the sample at which the event was decided (>= t_end)
    plate_deltas: tuple[float, ...] = ()
    shelf_delta_g: float | None = None  # the whole shelf's change (quiet neighbours' shifts included)
    plate_steps_t: tuple[float, ...] = ()  # when each plate's level changed, same order as plate_ids
    blind_plate_ids: tuple[str, ...] = ()  # neighbouring plates the node could not read (dead, stuck)


@dataclass(frozen=True)
class Shelf:
    """What the measurement reads from the detector at the moment of the decision."""

    now: int  # absolute index of the latest sample
    t_now: float  # its time
    sigma: np.ndarray  # each plate's noise (raw units)
    spans: Sequence[Sequence[tuple[int, int]]]  # per plate: recent segments (first, settled sample)
    pending: Sequence[Segment]  # undecided segments of other interactions
    active: Sequence[Segment | None]  # per plate
    blind: frozenset[int] = frozenset()  # plates whose reading stood still (dead or stuck cells)

    def busy(self, q: int, lo: int, hi: int) -> bool:
        """Plate ``q`` was active somewhere in samples ``lo`` .. ``hi - 1``."""
        now = self.active[q]
        if now is not None and now.a_start < hi:
            return True
        return any(a < hi and b >= lo for a, b in self.spans[q])


class EventMaker:
    def __init__(
        self,
        plate_ids: Sequence[str],
        neighbours: Sequence[set[int]],
        history: History,
        gain: FilterGains,
        params: DetectorParams,
        window: int,
        guard: int,
        level_n: int,
        after_n: int,
    ) -> None:
        self._ids, self._nbrs, self._hist, self._gain, self._p = plate_ids, neighbours, history, gain, params
        # Levels after are averaged over what is known once an interaction can be decided, so
        # the figures do not depend on when (in which batch) it was.
        self._w, self._guard, self._nq, self._na = window, guard, level_n, after_n

    def _after(self, segs: Sequence[Segment]) -> tuple[int, int]:
        """The stretch after ``segs`` to average the settled level over: from the first sample
        whose rolling window was quiet (and not before the weight settled) for as long as is
        known once the interaction can be decided."""
        done = max(max(s.a_quiet, s.a_loud) for s in segs)
        return max(max(s.a_quiet for s in segs), done - self._w + 2), done + self._na

    def make(self, group: Group, at: Shelf) -> DetectedWeightChange | None:
        """The event of a decided interaction, or None when it is no change (a touch, noise)."""
        p = self._p
        members = group.members
        a_first = min(s.a_start for s in members)
        a_last = max(s.a_quiet for s in members)
        change, var = self._plate_changes(group, at)
        listed = {q for q, d in change.items() if abs(d) >= max(p.part_min_g, p.k_part * math.sqrt(var[q]))}
        own = set(change)
        after = self._after(members)
        lo = a_first - self._guard - self._nq
        for q in sorted(set().union(*(self._nbrs[x] for x in own)) - own):
            if any(at.busy(x, lo, after[1]) for x in {q} | (self._nbrs[q] - own)):
                continue
            got = self._level_change(q, a_first, after, -(1 << 40), at.sigma)
            if got is not None and abs(got[0]) >= p.k_part * math.sqrt(got[1]):
                change[q], var[q] = got  # within its noise a quiet plate did not move
                if abs(got[0]) >= p.part_min_g:
                    listed.add(q)
        total = sum(change.values())
        main = max(change, key=lambda q: abs(change[q]))
        # On a noisy plate a touch's plateau can pass for a settled level: a change must also stand
        # out of its main plate's sample noise, not only of the standard error of its levels.
        threshold = max(p.min_delta_g, 6.0 * math.sqrt(sum(var.values())), p.k_event * float(at.sigma[main]))
        if abs(total) < threshold:
            return None
        plates = sorted(listed or {main})
        sigma = max(float(at.sigma[s.plate]) for s in members)
        noise = math.sqrt(sum(s.std_after**2 for s in members) / len(members)) / self._gain.std
        settle = min(1.0, 1.5 * sigma / max(max(s.std_after for s in members) / self._gain.std, 1e-9))
        # How sure the change is real: its size over the touch threshold. A level still ringing
        # lowers it a little; how exactly it weighs is in ``noise_g``, which fusion fits with.
        confidence = (1.0 - math.exp(-2.0 * (abs(total) / threshold - 1.0))) * (
            1.0 - RINGING_DOUBT * (1.0 - settle)
        )
        t_start = self._hist.t(a_first)
        t_end = max(t_start, self._hist.t(a_last))
        return DetectedWeightChange(
            plate_ids=tuple(self._ids[q] for q in plates),
            delta_g=total,
            t_start=t_start,
            t_end=t_end,
            noise_g=noise,
            confidence=max(0.0, min(1.0, confidence)),
            decided_at=at.t_now,
            plate_deltas=tuple(change[q] for q in plates),
            shelf_delta_g=total,
            blind_plate_ids=tuple(
                self._ids[q]
                for q in sorted(at.blind & set().union(own, *(self._nbrs[x] for x in own)))
                if q not in plates
            ),
            plate_steps_t=tuple(
                min(max(self._step_time(q, group), t_start), t_end) if q in own else t_start for q in plates
            ),
        )

    def _step_time(self, q: int, group: Group) -> float:
        """When plate ``q``'s level changed: the sample after the last one still on the old side of
        halfway between its levels (a hand pressing before the lift, or several hands chained into
        one long interaction, come before it; the taker's hand is at the shelf then)."""
        segs = [s for s in (*group.members, *(s for s, _ in group.parts)) if s.plate == q]
        s = max(segs, key=lambda x: abs(x.delta))
        end = max(s.a_quiet, s.a_start + 1)
        x = self._hist.span(s.a_start, end, q)
        if x.size == 0 or s.delta == 0.0:
            return self._hist.t(s.a_start)
        half = s.before + s.delta / 2.0
        old = np.flatnonzero((x - half) * np.sign(s.delta) < 0.0)
        first = max(s.a_start, self._hist.oldest())
        return self._hist.t(first + (int(old[-1]) + 1 if old.size else 0))

    def _stderr2(self, sigma: float, n_before: int, n_after: int) -> float:
        """Variance of a change measured as the difference of two level averages."""
        return float((self._gain.mean * sigma) ** 2 * (1.0 / n_before + 1.0 / n_after))

    def _level_change(
        self, q: int, a_first: int, after: tuple[int, int], quiet_from: int, sigma: np.ndarray
    ) -> tuple[float, float] | None:
        """Plate ``q``'s level over ``after`` minus before ``a_first``, and that change's variance
        (None: no stable stretch)."""
        hi = a_first - self._guard
        lo = max(hi - self._nq, quiet_from, self._hist.oldest())
        after_lo, after_hi = after
        if hi - lo < 4 or after_hi - after_lo < 4:
            return None
        was, now = self._hist.span(lo, hi, q), self._hist.span(after_lo, after_hi, q)
        return float(now.mean() - was.mean()), self._stderr2(float(sigma[q]), was.size, now.size)

    def _plate_changes(self, group: Group, at: Shelf) -> tuple[dict[int, float], dict[int, float]]:
        """Each plate's share of the interaction's change, and its variance."""
        a_first = min(s.a_start for s in group.members)
        shares: dict[Segment, float] = {}
        for s, f in group.parts:
            shares[s] = shares.get(s, 0.0) + f
        change: dict[int, float] = {}
        var: dict[int, float] = {}
        for q in sorted({s.plate for s in shares}):
            segs = [s for s in shares if s.plate == q]
            size = sum(abs(s.delta) for s in segs)
            share = sum(shares[s] * abs(s.delta) for s in segs) / size if size > 0 else shares[segs[0]]
            after_lo, after_hi = self._after([*group.members, *segs])
            after_hi = min(after_hi, _next_start(q, max(s.a_quiet for s in segs), at))
            got = self._level_change(
                q,
                min(a_first, *(s.a_start for s in segs)),
                (after_lo, after_hi),
                min(s.quiet_from for s in segs),
                at.sigma,
            )
            if got is None:  # no stable stretch around it: the segments' own levels
                sd = float(at.sigma[q])
                got = (
                    sum(s.delta for s in segs),
                    sum(self._stderr2(sd, s.n_before, s.n_after) for s in segs),
                )
            change[q], var[q] = share * got[0], share * share * got[1]
        return change, var


def _next_start(q: int, after: int, at: Shelf) -> int:
    """The first sample of plate ``q``'s next activity after ``after`` (or the next sample)."""
    starts = [s.a_start for s in at.pending if s.plate == q and s.a_start > after]
    active = at.active[q]
    if active is not None and active.a_start > after:
        starts.append(active.a_start)
    return min(starts, default=at.now + 1)
