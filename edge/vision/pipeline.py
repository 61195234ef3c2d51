"""One camera's vision: frames -> detections -> shopper tracks and item detections on the floor.

Per frame: YOLO finds people and products; ByteTrack gives the people stable ids; the camera's
homography puts both on the floor. A product box inside or beside a tracked person's box is in that
person's hands; otherwise the nearest shopper on the floor within ``hand_reach_m`` (from any camera
of this node, e.g. a shelf camera's product next to a ceiling camera's shopper) gets it. Track ids
are prefixed with the camera id so several cameras never collide.

A point the contract cannot carry (a floor position that is not a number or is absurdly far, from a
degenerate homography or a box on its horizon; a label with a control character) is dropped, with
the field and reason in ``dropped``; a frame with more people or products than one message may hold
goes out as several messages with the same ``ts`` (the store server reads positions, not a roll call).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import ValidationError

from edge.contracts import (
    MAX_DETECTIONS,
    MAX_TRACKS,
    ItemDetection,
    ItemDetections,
    ShopperTracks,
    TrackPoint,
)
from edge.refusals import Refusals
from edge.vision.detector import Detections, Detector
from edge.vision.geometry import Anchor, FloorMapper
from edge.vision.tracker import ShopperTracker, Tracked

HAND_BOX_GROW = 0.5  # a product within half a person box's size of it is in their hands
DETECT_CONF = 0.1  # ByteTrack uses weak person boxes to keep tracks alive; products need item_conf


@dataclass
class FrameResult:
    """What one frame showed, in store coordinates."""

    ts: float
    tracks: list[TrackPoint]
    items: list[ItemDetection]
    person_boxes: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)


class SharedFloor:
    """The latest floor position of every shopper any camera of this node tracks (for hand-offs)."""

    def __init__(self, max_age_s: float = 1.0) -> None:
        self.max_age_s = max_age_s
        self._seen: dict[str, tuple[float, float, float]] = {}  # track id -> (ts, x, y)

    def update(self, ts: float, tracks: list[TrackPoint]) -> None:
        for t in tracks:
            self._seen[t.track_id] = (ts, t.x_m, t.y_m)

    def nearest(self, ts: float, x: float, y: float, within_m: float) -> str | None:
        best, best_d = None, within_m
        for tid, (seen, tx, ty) in list(self._seen.items()):
            if ts - seen > self.max_age_s:
                if ts - seen > 10 * self.max_age_s:
                    del self._seen[tid]
                continue
            d = math.hypot(tx - x, ty - y)
            if d <= best_d:
                best, best_d = tid, d
        return best


def _inside_grown(box: np.ndarray, person: tuple[float, float, float, float]) -> float | None:
    """Distance from a product box's centre to a person box grown by HAND_BOX_GROW, None if outside."""
    x1, y1, x2, y2 = person
    gw, gh = (x2 - x1) * HAND_BOX_GROW, (y2 - y1) * HAND_BOX_GROW
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    if x1 - gw <= cx <= x2 + gw and y1 - gh <= cy <= y2 + gh:
        return math.hypot(cx - (x1 + x2) / 2, cy - (y1 + y2) / 2)
    return None


class CameraPipeline:
    """Detect, track and map one camera's frames. Not thread-safe: one per camera."""

    def __init__(
        self,
        camera_id: str,
        detector: Detector,
        mapper: FloorMapper,
        *,
        fps: float = 5.0,
        lost_s: float = 3.0,
        hand_reach_m: float = 0.8,
        person_class: str = "person",
        labels: dict[str, str] | None = None,
        item_conf: float = 0.25,
        shared: SharedFloor | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.detector, self.mapper = detector, mapper
        self.tracker = ShopperTracker(fps=fps, lost_s=lost_s)
        self.hand_reach_m, self.person_class = hand_reach_m, person_class
        self.labels = labels or {}
        self.item_conf = item_conf
        self.shared = shared or SharedFloor()
        self.frames = 0
        self.dropped = Refusals(f"camera {camera_id}")

    def track_id(self, raw: int) -> str:
        return f"{self.camera_id}:t{raw}"

    def process(self, image: np.ndarray, ts: float) -> FrameResult:
        self.frames += 1
        dets = self.detector.detect(image)
        return self.process_detections(dets, image, ts)

    def process_detections(self, dets: Detections, image: np.ndarray, ts: float) -> FrameResult:
        size = (int(image.shape[1]), int(image.shape[0]))
        tracked: list[Tracked] = self.tracker.update(dets.of_class(self.person_class), image)
        tracks: list[TrackPoint] = []
        boxes: dict[str, tuple[float, float, float, float]] = {}
        if tracked:
            floor = self._floor(np.array([t.xyxy for t in tracked]), size)
            for t, (x, y) in zip(tracked, floor, strict=True):
                tid = self.track_id(t.track_id)
                try:
                    point = TrackPoint(
                        track_id=tid,
                        x_m=round(float(x), 3),
                        y_m=round(float(y), 3),
                        confidence=round(min(1.0, max(0.0, t.score)), 3),
                    )
                except ValidationError as exc:  # nowhere on the floor: not a position to publish
                    self.dropped.refuse("track point", exc)
                    continue
                boxes[tid] = t.xyxy
                tracks.append(point)
        self.shared.update(ts, tracks)
        products = dets.not_class(self.person_class)
        products = products[products.conf >= self.item_conf]
        items: list[ItemDetection] = []
        if len(products):
            floor = self._floor(products.xyxy, size, anchor="center")
            for i in range(len(products)):
                x, y = float(floor[i, 0]), float(floor[i, 1])
                owner = self._owner(products.xyxy[i], boxes, ts, x, y)
                label = products.label(i)
                try:
                    item = ItemDetection(
                        label=self.labels.get(label, label),
                        confidence=round(float(products.conf[i]), 3),
                        x_m=round(x, 3),
                        y_m=round(y, 3),
                        track_id=owner,
                    )
                except ValidationError as exc:
                    self.dropped.refuse("item detection", exc)
                    continue
                items.append(item)
        return FrameResult(ts, tracks, items, boxes)

    def _floor(self, xyxy: np.ndarray, size: tuple[int, int], anchor: Anchor | None = None) -> np.ndarray:
        """Floor positions of the boxes; NaN for a box whose point lies on the homography's horizon."""
        try:
            return self.mapper.boxes_to_floor(xyxy, size, anchor)
        except ValueError:  # one point maps to infinity: map the others one by one
            out = np.full((len(xyxy), 2), np.nan)
            for i in range(len(xyxy)):
                try:
                    out[i] = self.mapper.boxes_to_floor(xyxy[i : i + 1], size, anchor)[0]
                except ValueError:
                    continue
            return out

    def _owner(
        self,
        box: np.ndarray,
        persons: dict[str, tuple[float, float, float, float]],
        ts: float,
        x: float,
        y: float,
    ) -> str | None:
        near = [(d, tid) for tid, pb in persons.items() if (d := _inside_grown(box, pb)) is not None]
        if near:
            return min(near)[1]
        return self.shared.nearest(ts, x, y, self.hand_reach_m)


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def message_count(result: FrameResult) -> int:
    """How many messages (and sequence numbers) :func:`to_messages` makes of ``result``."""
    return max(1, len(_chunks(result.tracks, MAX_TRACKS))) + len(_chunks(result.items, MAX_DETECTIONS))


def tracks_messages(
    tracks: list[TrackPoint], camera_id: str, node_id: str, seq: int, ts: float
) -> list[ShopperTracks]:
    """One frame's tracks, at most MAX_TRACKS per message (always one: an empty list is news too)."""
    return [
        ShopperTracks(node_id=node_id, seq=seq + i, ts=ts, camera_id=camera_id, tracks=part)
        for i, part in enumerate(_chunks(tracks, MAX_TRACKS) or [[]])
    ]


def to_messages(
    result: FrameResult, camera_id: str, node_id: str, seq: int
) -> list[ShopperTracks | ItemDetections]:
    """The contract messages of one published frame: tracks always, item detections when there are
    any, each split to fit the contract. ``seq`` is the first of :func:`message_count` numbers to use.
    Raises pydantic's ValidationError when the frame itself does not fit (e.g. its ``ts``)."""
    out: list[ShopperTracks | ItemDetections] = [
        *tracks_messages(result.tracks, camera_id, node_id, seq, result.ts)
    ]
    for part in _chunks(result.items, MAX_DETECTIONS):
        out.append(
            ItemDetections(
                node_id=node_id, seq=seq + len(out), ts=result.ts, camera_id=camera_id, detections=part
            )
        )
    return out
