"""Image pixels <-> store floor through a camera's calibration (a 3x3 homography, image -> floor).

A ceiling camera looks straight down, so the centre of a person's box is where they stand. A camera
that looks at people from the side sees their feet at the bottom of the box: ``anchor="bottom"``.
Frames of another size than the calibration's ``image_size`` are scaled to it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from store_server.domain.layout import Camera

Anchor = Literal["center", "bottom"]


def apply_homography(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map (n, 2) points through the 3x3 homography ``h`` (projective division included)."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    p = np.column_stack([pts, np.ones(len(pts))]) @ np.asarray(h, dtype=np.float64).T
    w = p[:, 2:3]
    if np.any(np.abs(w) < 1e-12):
        raise ValueError("a point maps to infinity (on the horizon of this homography)")
    return p[:, :2] / w


def anchor_points(xyxy: np.ndarray, anchor: Anchor = "center") -> np.ndarray:
    """The image point of each box (n, 4: x1 y1 x2 y2) that stands for where the object is."""
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    u = (xyxy[:, 0] + xyxy[:, 2]) / 2
    v = (xyxy[:, 1] + xyxy[:, 3]) / 2 if anchor == "center" else xyxy[:, 3]
    return np.column_stack([u, v])


@dataclass(frozen=True)
class FloorMapper:
    """One camera's calibration, ready for arrays of points."""

    camera_id: str
    image_to_floor: np.ndarray  # 3x3
    image_size: tuple[int, int]  # (width, height) the calibration was made at
    anchor: Anchor = "center"

    @classmethod
    def from_camera(cls, camera: Camera, anchor: Anchor | None = None) -> FloorMapper:
        h = np.asarray(camera.homography, dtype=np.float64)
        if not np.isfinite(h).all():  # NaN passes the determinant test below and maps every box to NaN
            raise ValueError(f"camera {camera.id}: the homography holds a non-number; re-calibrate it")
        if abs(np.linalg.det(h)) < 1e-12:
            raise ValueError(f"camera {camera.id}: the homography is singular; re-calibrate the camera")
        default: Anchor = "center" if camera.kind == "ceiling" else "bottom"
        return cls(camera.id, h, (int(camera.image_size[0]), int(camera.image_size[1])), anchor or default)

    @property
    def floor_to_image(self) -> np.ndarray:
        return np.linalg.inv(self.image_to_floor)

    def _scale(self, frame_size: tuple[int, int] | None) -> tuple[float, float]:
        if frame_size is None:
            return 1.0, 1.0
        return self.image_size[0] / frame_size[0], self.image_size[1] / frame_size[1]

    def to_floor(self, pts: np.ndarray, frame_size: tuple[int, int] | None = None) -> np.ndarray:
        """Image points (n, 2) of a frame of ``frame_size`` (w, h) -> floor metres (n, 2)."""
        sx, sy = self._scale(frame_size)
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2) * [sx, sy]
        return apply_homography(self.image_to_floor, pts)

    def to_image(self, floor: np.ndarray, frame_size: tuple[int, int] | None = None) -> np.ndarray:
        """Floor metres (n, 2) -> image points of a frame of ``frame_size``."""
        sx, sy = self._scale(frame_size)
        return apply_homography(self.floor_to_image, floor) / [sx, sy]

    def boxes_to_floor(
        self, xyxy: np.ndarray, frame_size: tuple[int, int] | None = None, anchor: Anchor | None = None
    ) -> np.ndarray:
        if len(xyxy) == 0:
            return np.zeros((0, 2))
        return self.to_floor(anchor_points(xyxy, anchor or self.anchor), frame_size)


def fit_homography(image_pts: np.ndarray, floor_pts: np.ndarray) -> np.ndarray:
    """The image -> floor homography through >= 4 point pairs (least squares, DLT), normalised h33 = 1.

    For calibrating a camera: mark four or more floor points of known position in one frame.
    """
    src = np.asarray(image_pts, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(floor_pts, dtype=np.float64).reshape(-1, 2)
    if len(src) < 4 or len(src) != len(dst):
        raise ValueError("need at least 4 image points and as many floor points")
    rows = []
    for (u, v), (x, y) in zip(src, dst, strict=True):
        rows.append([u, v, 1, 0, 0, 0, -x * u, -x * v, -x])
        rows.append([0, 0, 0, u, v, 1, -y * u, -y * v, -y])
    _, _, vt = np.linalg.svd(np.asarray(rows))
    h = vt[-1].reshape(3, 3)
    return h / h[2, 2]
