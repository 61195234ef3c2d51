"""Fusion: who changed the shelf, and what and how many did they take or put back.

Pure functions over a store layout, a weight event and the track history around its time. The answer
depends on event times only, never on when evidence arrived (ARCHITECTURE principle 1).
"""

from __future__ import annotations

import bisect
import math
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
    """The candidate track that came closest to ``point`` during [t0, t1], within ``reach_m``.

    Confidence falls when a second shopper was almost as close (the crowded-shelf case).
    """
    scored = sorted(
        (d, track_id)
        for track_id in candidates
        if (d := tracks.closest_approach(track_id, point, t0, t1)) is not None and d <= reach_m
    )
    if not scored:
        return None
    best_d, best = scored[0]
    confidence = 1.0
    if len(scored) > 1:
        runner_up = scored[1][0]
        confidence = max(0.0, min(1.0, (runner_up - best_d) / 0.5))
    return ShopperMatch(best, best_d, confidence)


MAX_RELATIVE_ERROR = 0.1


@dataclass(frozen=True)
class ItemGuess:
    sku: str
    quantity: int
    confidence: float
    misplaced: bool = False


def _weight_score(
    delta: float, unit: float, std: float, noise: float, max_qty: int | None
) -> tuple[int, float]:
    qty = max(1, round(delta / unit))
    if max_qty is not None:
        qty = min(qty, max_qty)
    sigma = math.sqrt(qty * std * std + noise * noise + 1.0)
    z = (delta - qty * unit) / sigma
    return qty, z


def guess_items(
    layout: StoreLayout,
    plate_ids: list[str],
    delta_g: float,
    noise_g: float,
    cart: dict[str, int] | None = None,
) -> ItemGuess | None:
    """Which product, and how many, explain a weight change on ``plate_ids``.

    A pick (negative delta) is explained by the products stocked on those plates. A put-back
    (positive delta) is explained by what the shopper's ``cart`` holds, preferring products that
    belong on those plates; a product that does not belong there is flagged ``misplaced``.
    """
    magnitude = abs(delta_g)
    if magnitude < 1.0:
        return None
    on_plates = {layout.sku_on_plate[p] for p in plate_ids if p in layout.sku_on_plate}
    pool: dict[str, int | None]
    if delta_g < 0:
        pool = dict.fromkeys(on_plates)
    else:
        pool = {sku: q for sku, q in (cart or {}).items() if q > 0}
    scored: list[tuple[float, str, int, float]] = []
    for sku, max_qty in pool.items():
        product = layout.products[sku]
        qty, z = _weight_score(magnitude, product.unit_weight_g, product.weight_std_g, noise_g, max_qty)
        penalty = 0.0 if sku in on_plates else 1.0  # a misplaced return is possible, less likely
        relative_error = abs(magnitude - qty * product.unit_weight_g) / (qty * product.unit_weight_g)
        scored.append((z * z + penalty, sku, qty, relative_error))
    if not scored:
        return None
    scored.sort()
    cost, sku, qty, relative_error = scored[0]
    z_best = math.sqrt(max(0.0, cost))
    # Beyond five sigma nothing fits, unless the weight is still within MAX_RELATIVE_ERROR of a whole
    # number of items: real products vary more than their catalogue spread says. Such a guess goes
    # in with a confidence that falls with the misfit, so staff get to review it.
    if z_best > 5.0 and relative_error > MAX_RELATIVE_ERROR:
        return None
    likelihoods = [math.exp(-c / 2) for c, *_ in scored]
    confidence = likelihoods[0] / sum(likelihoods) if sum(likelihoods) > 0 else 1.0 / len(scored)
    if z_best > 3.0:
        confidence *= 3.0 / z_best
    return ItemGuess(sku, qty, round(confidence, 4), misplaced=delta_g > 0 and sku not in on_plates)
