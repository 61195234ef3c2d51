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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from edge.weight_history import History
from edge.weight_interactions import Group, Segment
from edge.weight_stats import FilterGains, Rolling, rolling

if TYPE_CHECKING:
    from edge.weight_detector import DetectorParams

RINGING_DOUBT = 0.2  # at most this much of an event's confidence is lost to a level still ringing
AGAINST_SHARE = 0.25  # a cut part may move plates against its own direction by at most this share


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
    # per plate: first samples of level changes another interaction's event already counted
    active: Sequence[Segment | None]  # per plate
    blind: frozenset[int] = frozenset()  # plates whose reading stood still (dead or stuck cells)
    std_thr: np.ndarray = field(default_factory=lambda: np.zeros(0))  # each plate's quiet thresholds:
    lvl_thr: np.ndarray = field(default_factory=lambda: np.zeros(0))  # rolling std, level moved
    counted: Sequence[list[int]] = ()

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
        calm_n: int,
        hand_n: int,
    ) -> None:
        self._ids, self._nbrs, self._hist, self._gain, self._p = plate_ids, neighbours, history, gain, params
        # Levels after are averaged over what is known once an interaction can be decided, so
        # the figures do not depend on when (in which batch) it was.
        self._w, self._guard, self._nq, self._na, self._calm = window, guard, level_n, after_n, calm_n
        self._hand = hand_n

    def _after(self, segs: Sequence[Segment]) -> tuple[int, int]:
        """The stretch after ``segs`` to average the settled level over: from the first sample
        whose rolling window was quiet (and not before the weight settled) for as long as is
        known once the interaction can be decided."""
        done = max(max(s.a_quiet, s.a_loud) for s in segs)
        return max(max(s.a_quiet for s in segs), done - self._w + 2), done + self._na

    def make(self, group: Group, at: Shelf) -> list[DetectedWeightChange]:
        """The events of a decided interaction: none when it is no change (a touch, noise), several
        when hands one after another kept the shelf moving but let go of it in between."""
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
        # An interaction that nets to nothing may still be a take and a return, each its own event.
        pieces = self._pieces(change, (a_first, a_last), after, max(threshold, p.chain_min_g), at, members)
        if len(pieces) == 1 and abs(total) < threshold:
            return []
        sigma = max(float(at.sigma[s.plate]) for s in members)
        noise = math.sqrt(sum(s.std_after**2 for s in members) / len(members)) / self._gain.std
        settle = min(1.0, 1.5 * sigma / max(max(s.std_after for s in members) / self._gain.std, 1e-9))
        blind = tuple(
            self._ids[q]
            for q in sorted(at.blind & set().union(own, *(self._nbrs[x] for x in own)))
            if q not in change
        )

        def event(
            deltas: dict[int, float], first: int, last: int, steps: dict[int, float]
        ) -> DetectedWeightChange:
            part = sum(deltas.values())
            top = max(deltas, key=lambda q: abs(deltas[q]))
            shown = {
                q for q, d in deltas.items() if abs(d) >= max(p.part_min_g, p.k_part * math.sqrt(var[q]))
            }
            plates = sorted(shown or {top})
            # How sure the change is real: its size over the touch threshold. A level still ringing
            # lowers it a little; how exactly it weighs is in ``noise_g``, which fusion fits with.
            confidence = (1.0 - math.exp(-2.0 * (abs(part) / threshold - 1.0))) * (
                1.0 - RINGING_DOUBT * (1.0 - settle)
            )
            t_start = self._hist.t(first)
            t_end = max(t_start, self._hist.t(last))
            return DetectedWeightChange(
                plate_ids=tuple(self._ids[q] for q in plates),
                delta_g=part,
                t_start=t_start,
                t_end=t_end,
                noise_g=noise,
                confidence=max(0.0, min(1.0, confidence)),
                decided_at=at.t_now,
                plate_deltas=tuple(deltas[q] for q in plates),
                shelf_delta_g=part,
                blind_plate_ids=blind,
                plate_steps_t=tuple(min(max(steps.get(q, t_start), t_start), t_end) for q in plates),
            )

        if len(pieces) == 1:
            return [event(change, a_first, a_last, {q: self._step_time(q, group) for q in own})]
        return [event(deltas, first, last, steps) for deltas, first, last, steps in pieces]

    def _pieces(
        self,
        change: dict[int, float],
        span: tuple[int, int],
        after: tuple[int, int],
        least: float,
        at: Shelf,
        members: Sequence[Segment] = (),
    ) -> list[tuple[dict[int, float], int, int, dict[int, float]]]:
        """An interaction cut where every one of its plates stood still (hands that followed one
        another on a shelf, each letting go before the next came): per part, each plate's change
        (the parts sum to ``change``), its first and last sample and each plate's step time. A part
        changes the shelf by at least ``least``; a level that rose and then fell is never a cut (a
        hand resting still on the shelf between the two looks the same); each part lasts as long as a
        hand at a shelf at least; and the levels must add up to the interaction's own measurement
        (else a plate shared with another interaction, or measured from another stretch, would make
        a part of what is not this interaction's)."""
        a_first, a_last = span
        whole: list[tuple[dict[int, float], int, int, dict[int, float]]] = [(change, a_first, a_last, {})]
        plates = sorted(change)
        lo, hi = a_first + self._w, a_last - self._w
        if hi - lo < self._calm or lo - 2 * self._w < self._hist.oldest():
            return whole
        stats = rolling(self._hist.window(lo - self._w, hi)[plates], self._w, 1, hi - lo)
        before = self._levels(plates, a_first - self._guard - self._nq, a_first - self._guard)
        if before is None:
            return whole
        total = sum(change.values())
        cuts = self._cuts(stats, (lo, span), plates, before, total, least, at, 1.0)
        if not cuts:
            # A take and then a return by another hand, the shelf never still between them (a
            # pressing hand's jitter): cut where it stood nearest to still, only from a fall to a rise.
            cuts = self._cuts(stats, (lo, span), plates, before, total, least, at, self._p.chain_loose_k)
        # Two hands one after the other at one plate, the same way (two takes), while another hand
        # kept the neighbours moving: that plate settled in between (no hand was on it).
        final = before + np.array([change[q] for q in plates])
        cuts = self._settled_between(members, plates, (before, final), least, cuts, at)
        if not cuts:
            return whole
        done = np.zeros(len(plates))
        now = np.array(
            [self._hist.span(after[0], _next_start(q, after[0], at, after[1]), q).mean() for q in plates]
        )
        rest = np.array([change[q] for q in plates]) - (cuts[-1][2] - before)
        off = now - cuts[-1][2] - rest
        if (np.abs(off) > least).any() or abs(off.sum()) > least / 2:
            return whole
        out: list[tuple[dict[int, float], int, int, dict[int, float]]] = []
        start, level = a_first, before
        for first, last, here in cuts:
            d = here - level
            done += d
            out.append(
                (
                    {q: float(d[i]) for i, q in enumerate(plates)},
                    start,
                    first,
                    {
                        q: self._crossing(q, start, first, float(level[i]), float(here[i]))
                        for i, q in enumerate(plates)
                    },
                )
            )
            start, level = last, here
        last_part = {q: change[q] - float(done[i]) for i, q in enumerate(plates)}
        out.append(
            (
                last_part,
                start,
                a_last,
                {
                    q: self._crossing(q, start, a_last, float(level[i]), float(level[i]) + last_part[q])
                    for i, q in enumerate(plates)
                },
            )
        )
        # Coupling moves every plate the way the item's own plate went: a part whose plates went
        # against its total by much was cut where a hand still pressed, and says nothing reliable.
        for deltas, *_ in out:
            part = sum(deltas.values())
            against = sum(abs(d) for d in deltas.values() if d * part < 0)
            if against > max(least, AGAINST_SHARE * abs(part)):
                return whole
        return out

    def _cuts(
        self,
        stats: Rolling,
        where: tuple[int, tuple[int, int]],
        plates: list[int],
        before: np.ndarray,
        total: float,
        least: float,
        at: Shelf,
        loose: float,
    ) -> list[tuple[int, int, np.ndarray]]:
        """Where to cut (first and last sample of each still stretch, the levels there): stretches
        where every plate stood within ``loose`` times its quiet thresholds. ``loose`` > 1 admits
        only a fall followed by a rise (a take, then a return), never two moves the same way, and
        cuts once: where the shelf stood lowest (a hand only ever presses a shelf down)."""
        lo, (a_first, a_last) = where
        std_thr, lvl_thr = at.std_thr[plates][:, None] * loose, at.lvl_thr[plates] * loose
        calm = np.concatenate([[False], (stats.std <= std_thr).all(axis=0), [False]])
        edges = np.flatnonzero(np.diff(calm.astype(np.int8)))
        cuts: list[tuple[int, int, np.ndarray]] = []
        loose_cuts: list[tuple[float, tuple[int, int, np.ndarray]]] = []  # (shelf level, cut)
        level = before
        for s, e in zip(edges[::2], edges[1::2], strict=True):
            if e - s < self._calm:
                continue
            ends = stats.level[:, s], stats.level[:, e - 1], stats.level[:, (s + e - 1) // 2]
            if (np.abs(ends[1] - ends[0]) > lvl_thr).any() or (
                np.abs(ends[2] - (ends[0] + ends[1]) / 2) > lvl_thr
            ).any():
                continue  # still easing one way, or the top of a slow push
            first, last = lo + s - self._w + 1, lo + e
            here = self._levels(plates, first, last)
            if here is None:
                continue
            part, left = float((here - level).sum()), total - float((here - before).sum())
            if abs(part) < least or abs(left) < least or (part > 0 > left) or (loose > 1 and part > 0):
                continue
            if loose > 1:
                if first - a_first >= self._hand and a_last - last >= self._hand and left > 0:
                    loose_cuts.append((float(here.sum()), (first, last, here)))
                continue
            if first - (cuts[-1][1] if cuts else a_first) < self._hand or a_last - last < self._hand:
                continue
            cuts.append((first, last, here))
            level = here
        if loose_cuts:
            return [min(loose_cuts, key=lambda c: c[0])[1]]
        return cuts

    def _settled_between(
        self,
        members: Sequence[Segment],
        plates: list[int],
        ends: tuple[np.ndarray, np.ndarray],
        least: float,
        cuts: list[tuple[int, int, np.ndarray]],
        at: Shelf,
    ) -> list[tuple[int, int, np.ndarray]]:
        """``cuts`` and, between them, where a plate that lost weight twice (``least`` at least each
        time) had settled in between: a hand lifting an item keeps a plate moving, so nobody's hand
        was on it then. Cut at the shelf's levels just after its first loss settled, before anything
        moved it again, when both parts take ``least`` at least from the shelf. (Not two rises: a
        hand resting on a plate before it puts an item back can stand still there.)"""
        out = list(cuts)
        for q in plates:
            segs = sorted((s for s in members if s.plate == q and s.step), key=lambda s: s.a_start)
            for s1, s2 in zip(segs, segs[1:], strict=False):
                if max(s1.delta, s2.delta) > -least:
                    continue  # two takes only: a hand's press before a put-back can settle
                first, last = s1.a_quiet, min(s1.a_end, s2.a_start)
                k = sum(1 for c in out if c[1] <= first)
                if last - first < self._calm or (k < len(out) and out[k][0] < last):
                    continue  # too short to measure, or overlapping a cut already made
                here = self._levels(plates, first, last)
                if here is None or self._easing(q, first, last, at):
                    continue
                was = out[k - 1][2] if k else ends[0]
                then = out[k][2] if k < len(out) else ends[1]
                part, rest = float((here - was).sum()), float((then - here).sum())
                if min(abs(part), abs(rest)) >= least and part * rest > 0 and part * s1.delta > 0:
                    out.insert(k, (first, last, here))
        return out

    def _easing(self, q: int, lo: int, hi: int, at: Shelf) -> bool:
        """Plate ``q``'s level still moving one way over samples ``lo`` .. ``hi`` (a heavy step settling
        slowly, not a pause between two hands)."""
        x = self._hist.span(lo, hi, q)
        half = x.size // 2
        return half > 0 and abs(float(x[half:].mean() - x[:half].mean())) > float(at.lvl_thr[q])

    def _levels(self, plates: list[int], lo: int, hi: int) -> np.ndarray | None:
        if hi - lo < 4 or lo < self._hist.oldest():
            return None
        return np.array([self._hist.span(lo, hi, q).mean() for q in plates])

    def _crossing(self, q: int, lo: int, hi: int, was: float, now: float) -> float:
        """When plate ``q`` went from level ``was`` to ``now`` within samples ``lo`` .. ``hi``: the
        sample after the last one still on the old side of halfway."""
        x = self._hist.span(lo, hi, q)
        old = np.flatnonzero((x - (was + now) / 2.0) * np.sign(now - was) < 0.0)
        return self._hist.t(max(lo, self._hist.oldest()) + (int(old[-1]) + 1 if old.size else 0))

    def _step_time(self, q: int, group: Group) -> float:
        """When plate ``q``'s level changed (a hand pressing before the lift, or several hands
        chained into one long interaction, come before it; the taker's hand is at the shelf then)."""
        segs = [s for s in (*group.members, *(s for s, _ in group.parts)) if s.plate == q]
        s = max(segs, key=lambda x: abs(x.delta))
        return self._crossing(q, s.a_start, max(s.a_quiet, s.a_start + 1), s.before, s.before + s.delta)

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


def _next_start(q: int, after: int, at: Shelf, default: int | None = None) -> int:
    """The first sample of plate ``q``'s next activity after ``after`` (or ``default``, else the next
    sample): pending, active, or a level change another interaction's event counted already."""
    starts = [s.a_start for s in at.pending if s.plate == q and s.a_start > after]
    starts += [a for a in at.counted[q] if a > after] if q < len(at.counted) else []
    active = at.active[q]
    if active is not None and active.a_start > after:
        starts.append(active.a_start)
    return min(starts, default=at.now + 1 if default is None else default)
