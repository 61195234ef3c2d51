"""Which plate segments of a shelf are one interaction (one hand), for the weight-event detector.

A pick moves 2-4 plates: the plate the item left, its neighbours by mechanical coupling (5-25 % of
the step, conserved in the shelf total) and by the pressing hand (about a fifth of its force). Each
plate's active segment is found on its own (edge.weight_detector); here they are grouped:

* A segment is *weak* when a neighbouring (or the same) plate, active at the same time (up to a
  gap), moved at least ``1 / seed_ratio`` times as much (peak excursion from its level before):
  coupling and the hand's share on a neighbour are well under that. Its change is what the steps
  beside it passed on, so it goes to the much larger steps beside it that are not couplings
  themselves; between two of them (two shoppers two plates apart) it is split in proportion to
  their steps, as equal couplings would share it. With no step beside it, it belongs to the
  strongest motion (a touch).
* Strong segments (*seeds*) with a step of their own, active at the same time on the same or
  neighbouring plates, are one interaction: an item standing on two plates, two items taken side by
  side by one hand. Two shoppers taking from neighbouring plates at the same moment are one
  interaction too: coupling makes their signals inseparable; the event carries both plates' changes
  and the total. A seed without a step (a touch) joins no one, so a shopper browsing between two
  picks does not chain them; what it kept of the level goes to a step beside it.
* Two steps that undo each other, on one plate or neighbours, with a weak segment active between
  them, are one interaction: a press that looked settled on a noisy plate, or an item put straight
  back.
* Everything else stays apart: two hands on plates that are not neighbours are two interactions,
  however close in time.

A segment's grouping is *frozen* once nothing that could change it can still happen: it ended a gap
ago and no neighbour that was active with it is still active (or it has waited ``hold``). An
interaction is decided when every segment it holds or shares is frozen, so no weight can move
between interactions after one was published.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(eq=False)
class Segment:
    """One plate's active stretch: from its first active sample to the sample it had settled."""

    uid: int
    plate: int
    a_start: int  # absolute sample index of the first active sample
    before: float
    n_before: int
    quiet_from: int  # first sample of the stable stretch before it
    a_end: int = -1  # absolute index at which the plate had settled
    a_quiet: int = -1  # first sample of the settled level (the hand had gone)
    a_loud: int = -1  # last sample that was not quiet
    after: float = math.nan
    std_after: float = 0.0
    n_after: int = 0
    delta: float = 0.0
    peak: float = 0.0  # largest excursion from the level before, while active
    step: bool = False  # its level changed beyond its noise (else it returned: a touch)
    frozen: bool = False
    links: tuple[tuple[int, float], ...] = ()  # weak: (uid of a stronger segment, share of delta)


@dataclass(frozen=True)
class Group:
    """A decided interaction: its own segments and every (segment, share of its delta) it holds."""

    members: tuple[Segment, ...]
    parts: tuple[tuple[Segment, float], ...]


class Grouper:
    def __init__(self, neighbours: Sequence[set[int]], gap: int, hold: int, seed_ratio: float) -> None:
        self._nbrs = neighbours
        self._gap, self._hold, self._ratio = gap, hold, seed_ratio
        # Decided segments, for a while: a neighbour that outlasted the hold still finds the step it
        # was the coupling of (and then makes no event of its own).
        self._decided: list[Segment] = []

    def near(self, a: int, b: int) -> bool:
        return a == b or b in self._nbrs[a]

    def together(self, a: Segment, b: Segment, b_end: int | None = None) -> bool:
        """Active at the same time, up to the gap (``b_end``: b is still active, until then)."""
        end = max(b.a_quiet, b.a_loud) if b_end is None else b_end
        return a.a_start <= end + self._gap and b.a_start <= max(a.a_quiet, a.a_loud) + self._gap

    def ready(self, pending: list[Segment], active: Sequence[Segment], now: int) -> list[Group]:
        """The interactions that can be decided at sample ``now``; their members leave ``pending``."""
        self._decided = [s for s in self._decided if now - s.a_end <= 2 * self._hold]
        done = _Index(self._nbrs, pending)
        busy = _Index(self._nbrs, active)
        gone = _Index(self._nbrs, self._decided)
        for s in pending:
            if not s.frozen:
                self._link(s, done, busy, gone, now)
        parent = {s.uid: s.uid for s in pending}

        def root(u: int) -> int:
            while parent[u] != u:
                parent[u] = parent[parent[u]]
                u = parent[u]
            return u

        by_uid = {s.uid: s for s in pending}
        for s in pending:
            if s.links and s.links[0][0] in parent:
                parent[root(s.uid)] = root(s.links[0][0])
                # Two steps that undo each other, on one plate or neighbours, with this segment
                # active between them, are one hand that paused: a press that looked settled on a
                # noisy plate (or an item taken and put straight back, which changes nothing).
                takers = [by_uid[u] for u, _ in s.links if u in by_uid]
                for i, a in enumerate(takers):
                    for b in takers[i + 1 :]:
                        if self.near(a.plate, b.plate) and _undo(a.delta, b.delta):
                            parent[root(a.uid)] = root(b.uid)
            elif not s.links and s.step:
                # A touch (no step) joins no one: browsing between two picks must not chain them.
                for o in done.around(s):
                    if not o.links and o.step and self.together(s, o):
                        parent[root(s.uid)] = root(o.uid)
        # A weak segment whose interaction was decided without it (it kept moving for longer than
        # the hold) was that interaction's: it makes no event of its own.
        orphans = {s.uid for s in pending if s.frozen and s.links and not _alive(s, parent)}
        members: dict[int, list[Segment]] = {}
        for s in pending:
            members.setdefault(root(s.uid), []).append(s)
        parts: dict[int, list[tuple[Segment, float]]] = {r: [] for r in members}
        for s in pending:
            links = s.links if s.links and s.links[0][0] in parent else ((s.uid, 1.0),)
            for uid, share in links:
                if uid in parent:
                    parts[root(uid)].append((s, share))
        out = []
        for r, group in members.items():
            ready = all(s.frozen for s in group) and all(s.frozen for s, _ in parts[r])
            if ready and not {s.uid for s in group} <= orphans:
                out.append(Group(tuple(group), tuple(parts[r])))
        decided = {s.uid for g in out for s in g.members} | orphans
        self._decided += [s for s in pending if s.uid in decided]
        pending[:] = [s for s in pending if s.uid not in decided]
        return out

    def _link(self, s: Segment, done: _Index, busy: _Index, gone: _Index, now: int) -> None:
        """Link ``s`` to the stronger segments beside it; freeze it once nothing can change that."""
        live = [o for o in done.around(s) if self.together(s, o)]
        beside = live + [o for o in gone.around(s) if self.together(s, o)]
        stronger = sorted((o for o in beside if o.peak * self._ratio > s.peak), key=lambda o: -o.peak)
        # A weak segment's change is what the steps beside it passed on (coupling), so it goes to
        # the much larger steps that are not coupled themselves; only when there is none (a touch
        # beside it) to the strongest motion.
        steps = sorted(
            (o for o in beside if abs(o.delta) * self._ratio > abs(s.delta) and self._source(o, done)),
            key=lambda o: -abs(o.delta),
        )
        # A touch (no step of its own) beside a step also belongs to it: what it kept of the level
        # is that step's coupling.
        takers = (steps or stronger[:1]) if stronger else ([] if s.step else steps)
        # Coupling is simultaneous: of several steps beside it, one that had settled before this
        # segment began passed none of its change on (a later hand, a put-back after a pick, did),
        # nor did one that began after it ended (the next hand, on this plate or beside it).
        during = [o for o in takers if o.a_end >= s.a_start and o.a_start <= s.a_end]
        if during and len(during) < len(takers):
            takers = during
        s.links = tuple((o.uid, f) for o, f in zip(takers, _shares(takers), strict=True))
        if now - s.a_end > self._hold:  # a neighbour busy this long is another shopper's
            s.frozen = True
        elif now >= max(s.a_quiet, s.a_loud) + self._gap:
            # What decides the links (the segments beside, and theirs) has ended.
            s.frozen = not any(self.together(o, b, now) for o in (s, *live) for b in busy.around(o))

    def _source(self, o: Segment, done: _Index) -> bool:
        """No step beside ``o`` is so much larger that ``o`` is only its coupling."""
        return not any(
            self.together(o, x) and abs(x.delta) * self._ratio > abs(o.delta) for x in done.around(o)
        )


class _Index:
    """Segments by plate, to find those on a plate and its neighbours."""

    def __init__(self, nbrs: Sequence[set[int]], segments: Iterable[Segment]) -> None:
        self._nbrs = nbrs
        self._by: dict[int, list[Segment]] = {}
        for s in segments:
            self._by.setdefault(s.plate, []).append(s)

    def around(self, s: Segment) -> list[Segment]:
        return [o for q in (s.plate, *self._nbrs[s.plate]) for o in self._by.get(q, ()) if o is not s]


def _alive(s: Segment, parent: dict[int, int]) -> bool:
    return any(uid in parent for uid, _ in s.links)


def _undo(a: float, b: float) -> bool:
    return (a > 0) != (b > 0) and abs(a + b) <= 0.5 * max(abs(a), abs(b))


def _shares(stronger: Sequence[Segment]) -> list[float]:
    """How a weak segment's change splits between the stronger ones it lies beside.

    With equal couplings c, the weak plate moved c x the sum of their steps, so each one's share is
    its step over that sum; when the steps nearly cancel (a pick beside a put-back) that sum says
    nothing and the split follows their sizes.
    """
    if len(stronger) <= 1:
        return [1.0] * len(stronger)
    steps = [o.delta for o in stronger]
    total, size = sum(steps), sum(abs(d) for d in steps)
    if size <= 0.0:
        return [1.0 / len(steps)] * len(steps)
    if abs(total) >= 0.5 * size:
        return [d / total for d in steps]
    return [abs(d) / size for d in steps]
