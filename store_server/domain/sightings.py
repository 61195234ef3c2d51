"""Sightings: the products cameras saw, at a plate or in a tracked shopper's hand, over time.

Pure like ``fusion.TrackHistory``: it keeps what cameras reported for ``horizon_s`` seconds of event
time and answers questions about windows of event time, never about arrival. A camera's word is
evidence, not a decision: a label can be a neighbouring product's, so scores are capped below 1 and
weight decides whenever it can (see ``store_server.service.vision_picks`` for the plate that cannot).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from store_server.domain.layout import StoreLayout, distance

# A hand at a shelf is this far from the plate it reaches into (plate fronts, measured on simulated
# and recorded views: 0.2 m median, 0.7 m worst); farther, it holds something taken elsewhere.
NEAR_PLATE_M = 1.0
# No camera is certain: combined sightings stop here, so weight evidence can always outvote them.
MAX_SCORE = 0.95
# A hostile or broken camera must not fill the memory: beyond this many sightings in the horizon,
# new ones are refused (and counted).
MAX_KEPT = 50_000


@dataclass(frozen=True)
class Sighting:
    ts: float
    sku: str
    confidence: float
    x_m: float
    y_m: float
    track_id: str | None = None  # whose hand it is in; None: on or at a shelf, nobody's
    camera_id: str = ""
    msg_id: str = ""  # the detections message that reported it (an idempotency key for what follows)
    count: int = 1  # boxes of this product in this hand (or at this spot) in that one message


def combine(confidences: Iterable[float]) -> float:
    """Independent sightings of one thing: 1 - prod(1 - c), capped at ``MAX_SCORE``, 4 decimals."""
    miss = 1.0
    for c in sorted(confidences):  # sorted: the same sightings give the same float, in any order
        miss *= 1.0 - min(max(c, 0.0), 1.0)
    return round(min(1.0 - miss, MAX_SCORE), 4)


@dataclass
class Sightings:
    """Item detections of every camera, kept for ``horizon_s`` seconds of event time."""

    horizon_s: float = 120.0
    max_kept: int = MAX_KEPT
    refused: int = 0  # sightings not kept because ``max_kept`` were
    _items: list[Sighting] = field(default_factory=list)  # sorted by ts
    _keys: set[tuple[Any, ...]] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, sighting: Sighting) -> bool:
        """Keep ``sighting``; False when it is known already (a message delivered twice) or refused."""
        key = (sighting.ts, sighting.camera_id, sighting.sku, sighting.x_m, sighting.y_m, sighting.track_id)
        if key in self._keys:
            return False
        if len(self._items) >= self.max_kept:
            self.refused += 1
            return False
        self._keys.add(key)
        bisect.insort(self._items, sighting, key=_time)  # after equal times: arrival order kept
        return True

    def add_message(self, msg_id: str, ts: float, payload: Mapping[str, Any], products: Iterable[str]) -> int:
        """Keep the detections of one ``detections`` payload whose label is a product of ``products``
        (a detector also reports people, hands, unknown things); return how many were new."""
        known = set(products)
        camera = str(payload.get("camera_id", ""))
        grouped: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
        for det in payload.get("detections", []):
            if det["label"] in known:
                grouped.setdefault((det["label"], det.get("track_id")), []).append(det)
        added = 0
        for (sku, track_id), dets in sorted(grouped.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            if track_id is not None:  # one hand: one sighting, as many items as boxes
                best = max(dets, key=lambda d: (d["confidence"], d["x_m"], d["y_m"]))
                dets = [dict(best, count=len(dets))]
            for det in dets:
                added += self.add(
                    Sighting(
                        ts,
                        sku,
                        float(det["confidence"]),
                        float(det["x_m"]),
                        float(det["y_m"]),
                        track_id,
                        camera,
                        msg_id,
                        int(det.get("count", 1)),
                    )
                )
        return added

    def forget_before(self, ts: float) -> None:
        cutoff = ts - self.horizon_s
        i = bisect.bisect_left(self._items, cutoff, key=_time)
        if i:
            for s in self._items[:i]:
                self._keys.discard((s.ts, s.camera_id, s.sku, s.x_m, s.y_m, s.track_id))
            del self._items[:i]

    def window(self, t0: float, t1: float) -> list[Sighting]:
        """Every sighting with t0 <= ts <= t1, in time order."""
        lo = bisect.bisect_left(self._items, t0, key=_time)
        hi = bisect.bisect_right(self._items, t1, key=_time)
        return self._items[lo:hi]

    def in_hands(self, track_ids: Iterable[str], t0: float, t1: float) -> list[Sighting]:
        wanted = set(track_ids)
        return [s for s in self.window(t0, t1) if s.track_id is not None and s.track_id in wanted]

    def scores(
        self,
        layout: StoreLayout,
        plate_ids: list[str],
        t0: float,
        t1: float,
        track_ids: Iterable[str] = (),
        near_m: float = NEAR_PLATE_M,
    ) -> dict[str, float]:
        """How strongly each product was seen around ``plate_ids`` in [t0, t1] (0..MAX_SCORE).

        A sighting counts when it was within ``near_m`` of one of the plates and either in the hand of
        one of ``track_ids`` or in nobody's hand; an item in another shopper's hand is their evidence,
        not this event's. Sightings of one product combine as independent evidence.
        """
        spots = [(layout.plates[p].x_m, layout.plates[p].y_m) for p in plate_ids if p in layout.plates]
        if not spots:
            return {}
        hands = set(track_ids)
        seen: dict[str, list[float]] = {}
        for s in self.window(t0, t1):
            if s.track_id is not None and s.track_id not in hands:
                continue
            if min(distance((s.x_m, s.y_m), spot) for spot in spots) > near_m:
                continue
            seen.setdefault(s.sku, []).append(s.confidence)
        return {sku: combine(conf) for sku, conf in sorted(seen.items())}


def _time(s: Sighting) -> float:
    return s.ts
