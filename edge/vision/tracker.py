"""Shopper tracking with ByteTrack (ultralytics' BYTETracker) plus a colour check on every match.

ByteTrack matches boxes by overlap only. From the ceiling two shoppers who meet (one waiting at the
entry gate while the next one steps in beside them) overlap, and the waiting one's id can jump to
the newcomer. So each track also keeps a colour histogram (hue and saturation of the inner box:
clothes and hair), and a box whose colours differ too much is never matched to it: the track is
lost and found again instead, which the store server follows (track continuation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edge.vision._ultra import ultralytics
from edge.vision.detector import Detections

MAX_COLOUR_DISTANCE = 0.55  # Bhattacharyya distance of hue/saturation histograms; same person < ~0.3
HIST_MEMORY = 0.8  # a track's histogram: this much old, the rest from its latest box


def colour_histogram(image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """Normalised hue x saturation histogram (16 x 4) of the middle 60 % of ``box``."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    w, h = x2 - x1, y2 - y1
    xa, xb = int(max(0, x1 + 0.2 * w)), int(min(image.shape[1], x2 - 0.2 * w))
    ya, yb = int(max(0, y1 + 0.2 * h)), int(min(image.shape[0], y2 - 0.2 * h))
    if xb - xa < 2 or yb - ya < 2:
        return None
    hsv = cv2.cvtColor(image[ya:yb, xa:xb], cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [16, 4], [0, 180, 0, 256]).flatten()
    total = float(hist.sum())
    return hist / total if total > 0 else None


def colour_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(cv2.compareHist(a.astype(np.float32), b.astype(np.float32), cv2.HISTCMP_BHATTACHARYYA))


def _tracker_class() -> type:
    ultralytics()
    from ultralytics.trackers.byte_tracker import BYTETracker

    class ColourGatedByteTracker(BYTETracker):  # type: ignore[misc, valid-type]
        def __init__(self, args: Any, max_distance: float) -> None:
            super().__init__(args)
            self.max_distance = max_distance
            self.det_hists: list[np.ndarray | None] = []
            self.track_hists: dict[int, np.ndarray] = {}

        def update(self, results: Any, img: np.ndarray | None = None, feats: Any = None, **kw: Any) -> Any:
            self.det_hists = [colour_histogram(img, b) for b in results.xyxy] if img is not None else []
            rows = super().update(results, img, feats, **kw)
            for row in rows:
                tid, idx = int(row[4]), int(row[7])
                new = self.det_hists[idx] if idx < len(self.det_hists) else None
                if new is None:
                    continue
                old = self.track_hists.get(tid)
                self.track_hists[tid] = new if old is None else HIST_MEMORY * old + (1 - HIST_MEMORY) * new
            return rows

        def get_dists(self, tracks: list[Any], detections: list[Any]) -> np.ndarray:
            dists = super().get_dists(tracks, detections)
            if not self.det_hists or dists.size == 0:
                return dists
            for i, track in enumerate(tracks):
                known = self.track_hists.get(int(track.track_id))
                if known is None:
                    continue
                for j, det in enumerate(detections):
                    idx = int(getattr(det, "idx", -1))
                    seen = self.det_hists[idx] if 0 <= idx < len(self.det_hists) else None
                    if seen is not None and colour_distance(known, seen) > self.max_distance:
                        dists[i, j] = 1.0  # never the same person
            return dists

        def reset(self) -> None:
            super().reset()
            self.track_hists.clear()

    return ColourGatedByteTracker


@dataclass(frozen=True)
class Tracked:
    track_id: int
    xyxy: tuple[float, float, float, float]
    score: float


class ShopperTracker:
    """One ByteTrack state per camera. ``lost_s`` keeps a lost track's id that long (re-found: same id).

    ``max_colour_distance=None`` turns the colour check off (plain ByteTrack).
    """

    def __init__(
        self,
        fps: float = 5.0,
        lost_s: float = 3.0,
        high: float = 0.35,
        low: float = 0.1,
        new_track: float = 0.4,
        match: float = 0.9,
        max_colour_distance: float | None = MAX_COLOUR_DISTANCE,
    ) -> None:
        ultralytics()
        from ultralytics.utils import IterableSimpleNamespace

        args = IterableSimpleNamespace(
            tracker_type="bytetrack",
            track_high_thresh=high,
            track_low_thresh=low,
            new_track_thresh=new_track,
            track_buffer=max(1, int(round(fps * lost_s))),
            match_thresh=match,
            fuse_score=True,
        )
        limit = max_colour_distance if max_colour_distance is not None else 2.0
        self._tracker: Any = _tracker_class()(args, limit)

    def update(self, persons: Detections, image: np.ndarray | None = None) -> list[Tracked]:
        rows = self._tracker.update(persons, image)
        return [
            Tracked(int(r[4]), (float(r[0]), float(r[1]), float(r[2]), float(r[3])), float(r[5]))
            for r in rows
        ]

    def reset(self) -> None:
        self._tracker.reset()
