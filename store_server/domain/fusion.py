"""Fusion: who changed the shelf (tracks, shoppers); what and how many is :mod:`.explain`.

Pure functions over a store layout, a weight event and the track history around its time. The answer
depends on event times only, never on when evidence arrived (ARCHITECTURE principle 1).
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from store_server.domain.layout import StoreLayout, distance


@dataclass
class TrackHistory:
    """Floor positions of every shopper track over time, kept for ``horizon_s`` seconds."""

    horizon_s: float = 120.0
    _times: dict[str, list[float]] = field(default_factory=dict)
    _points: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def add(self, track_id: str, ts: float, x: float, y: float) -> None:
        times = self._times.setdefault(track_id, [])
        points = self._points.setdefault(track_id, [])
        i = bisect.bisect_right(times, ts)
        if i > 0 and times[i - 1] == ts:
            points[i - 1] = (x, y)  # the same observation delivered twice
            return
        times.insert(i, ts)
        points.insert(i, (x, y))

    def forget_before(self, ts: float) -> None:
        cutoff = ts - self.horizon_s
        for track_id in list(self._times):
            times = self._times[track_id]
            i = bisect.bisect_left(times, cutoff)
            if i:
                del times[:i]
                del self._points[track_id][:i]
            if not times:
                del self._times[track_id]
                del self._points[track_id]

    def track_ids(self) -> list[str]:
        return sorted(self._times)

    def window(self, track_id: str, t0: float, t1: float) -> list[tuple[float, float, float]]:
        times = self._times.get(track_id, [])
        lo, hi = bisect.bisect_left(times, t0), bisect.bisect_right(times, t1)
        pts = self._points[track_id] if times else []
        return [(times[i], *pts[i]) for i in range(lo, hi)]

    def closest_approach(
        self, track_id: str, point: tuple[float, float], t0: float, t1: float
    ) -> float | None:
        samples = self.window(track_id, t0, t1)
        if not samples:
            return None
        return min(distance((x, y), point) for _, x, y in samples)

    def typical_distance(
        self, track_id: str, point: tuple[float, float], t0: float, t1: float
    ) -> float | None:
        """The median distance from ``point`` during [t0, t1]: where the shopper stood, not where a
        passer-by came closest for a moment."""
        samples = self.window(track_id, t0, t1)
        if not samples:
            return None
        return statistics.median(distance((x, y), point) for _, x, y in samples)

    def last_seen(self, track_id: str, at: float) -> tuple[float, float, float] | None:
        """The last observation (t, x, y) of a track at or before ``at``."""
        times = self._times.get(track_id, [])
        i = bisect.bisect_right(times, at)
        if i == 0:
            return None
        return (times[i - 1], *self._points[track_id][i - 1])

    def first_seen(self, track_id: str) -> tuple[float, float, float] | None:
        times = self._times.get(track_id)
        if not times:
            return None
        return (times[0], *self._points[track_id][0])

    def position_at(self, track_id: str, ts: float, max_gap_s: float = 1.0) -> tuple[float, float] | None:
        samples = self.window(track_id, ts - max_gap_s, ts + max_gap_s)
        if not samples:
            return None
        _, x, y = min(samples, key=lambda s: abs(s[0] - ts))
        return (x, y)


def continuation(
    tracks: TrackHistory,
    track_id: str,
    at: float,
    free: list[str],
    quiet_s: float = 1.0,
    max_gap_s: float = 3.0,
    max_jump_m: float = 1.5,
) -> str | None:
    """The new id of a shopper whose track stopped: a free track that started where and when it ended.

    Trackers lose a person and pick them up again under a new id (occlusion, a crowded aisle). Only
    observations up to ``at`` are used, so the answer is the same at any replay speed.
    """
    last = tracks.last_seen(track_id, at)
    if last is None or at - last[0] < quiet_s:
        return None  # still seen (or never seen)
    best: tuple[float, str] | None = None
    for other in free:
        first = tracks.first_seen(other)
        if first is None or not (last[0] - 0.5 < first[0] <= min(at, last[0] + max_gap_s)):
            continue
        jump = distance((first[1], first[2]), (last[1], last[2]))
        if jump <= max_jump_m and (best is None or jump < best[0]):
            best = (jump, other)
    return best[1] if best else None


@dataclass(frozen=True)
class ShopperMatch:
    track_id: str
    distance_m: float
    confidence: float


def nearest_shopper(
    tracks: TrackHistory,
    candidates: list[str],
    point: tuple[float, float],
    t0: float,
    t1: float,
    reach_m: float,
) -> ShopperMatch | None:
    """The candidate track that stood closest to ``point`` during [t0, t1] (by its median distance:
    the shopper who stood at the shelf, not one who walked past it), among those that came within
    ``reach_m``.

    Confidence falls when a second shopper stood almost as close (the crowded-shelf case).
    """
    scored = sorted(
        (typical, track_id)
        for track_id in candidates
        if (d := tracks.closest_approach(track_id, point, t0, t1)) is not None
        and d <= reach_m
        and (typical := tracks.typical_distance(track_id, point, t0, t1)) is not None
    )
    if not scored:
        return None
    best_d, best = scored[0]
    confidence = 1.0
    if len(scored) > 1:
        runner_up = scored[1][0]
        confidence = max(0.0, min(1.0, (runner_up - best_d) / 0.5))
    return ShopperMatch(best, best_d, confidence)


def line_shoppers(
    tracks: TrackHistory,
    layout: StoreLayout,
    candidates: list[str],
    skus: list[str],
    moved: list[str],
    when: Callable[[list[str]], tuple[float, float]],
    reach_m: float,
) -> dict[str, ShopperMatch | None]:
    """For an interaction of several products: the shopper closest to where each product's weight
    left (its plates among the ``moved`` ones, else all its plates on that shelf) at the time those
    plates moved (``when``: plates -> (t0, t1)).

    Shoppers reaching into neighbouring plates at the same moment make one weight event (the shelf
    couples them); each of them took what stands in front of them."""
    shelf = layout.plates[moved[0]].shelf_id if moved and moved[0] in layout.plates else None
    out: dict[str, ShopperMatch | None] = {}
    for sku in skus:
        own = [p for p in layout.plates_of_sku.get(sku, []) if p in layout.plates]
        plates = [p for p in own if p in moved] or [p for p in own if layout.plates[p].shelf_id == shelf]
        point = layout.plate_centroid(plates or moved)
        out[sku] = nearest_shopper(
            tracks, candidates, point, *when([p for p in plates if p in moved]), reach_m
        )
    return out
