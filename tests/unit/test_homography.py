"""Image <-> floor mapping through a camera's homography."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.vision.geometry import FloorMapper, anchor_points, apply_homography, fit_homography
from store_server.domain.layout import Camera, load_layout

DEMO = Path(__file__).resolve().parents[2] / "sim_data" / "stores" / "demo.yaml"
TILTED = [[0.02, 0.004, -1.0], [0.001, 0.03, 0.5], [0.0001, 0.0002, 1.0]]


def test_demo_ceiling_camera_maps_its_centre_to_the_middle_of_the_floor() -> None:
    cam = load_layout(DEMO).cameras[0]
    mapper = FloorMapper.from_camera(cam)
    assert mapper.anchor == "center"
    assert mapper.to_floor(np.array([[320, 240]])) == pytest.approx(np.array([[8.0, 6.0]]))
    assert mapper.to_floor(np.array([[640, 480]])) == pytest.approx(np.array([[16.0, 12.0]]))


def test_same_as_the_layouts_scalar_mapping_and_invertible() -> None:
    cam = Camera(id="c", kind="shelf", homography=TILTED)
    mapper = FloorMapper.from_camera(cam)
    pts = np.array([[0.0, 0.0], [100.0, 50.0], [600.0, 470.0]])
    floor = mapper.to_floor(pts)
    for (u, v), (x, y) in zip(pts, floor, strict=True):
        assert cam.to_floor(u, v) == pytest.approx((x, y))
    assert mapper.to_image(floor) == pytest.approx(pts)


def test_frames_of_another_size_are_scaled_to_the_calibration() -> None:
    cam = load_layout(DEMO).cameras[0]  # calibrated at 640 x 480
    mapper = FloorMapper.from_camera(cam)
    assert mapper.to_floor(np.array([[160, 120]]), frame_size=(320, 240)) == pytest.approx(
        np.array([[8.0, 6.0]])
    )
    assert mapper.to_image(np.array([[8.0, 6.0]]), frame_size=(1280, 960)) == pytest.approx(
        np.array([[640, 480]])
    )


def test_anchor_centre_for_ceiling_cameras_bottom_for_the_others() -> None:
    boxes = np.array([[10.0, 20.0, 30.0, 60.0]])
    assert anchor_points(boxes, "center").tolist() == [[20.0, 40.0]]
    assert anchor_points(boxes, "bottom").tolist() == [[20.0, 60.0]]
    side = FloorMapper.from_camera(Camera(id="s", kind="shelf", homography=TILTED))
    assert side.anchor == "bottom"
    assert side.boxes_to_floor(boxes) == pytest.approx(side.to_floor(np.array([[20.0, 60.0]])))
    assert side.boxes_to_floor(np.zeros((0, 4))).shape == (0, 2)


def test_fit_homography_recovers_a_projective_calibration() -> None:
    h = np.array(TILTED)
    image = np.array([[0, 0], [640, 0], [640, 480], [0, 480], [320, 240], [100, 400]], float)
    floor = apply_homography(h, image)
    fitted = fit_homography(image, floor)
    assert fitted == pytest.approx(h / h[2, 2], rel=1e-6, abs=1e-9)
    with pytest.raises(ValueError, match="at least 4"):
        fit_homography(image[:3], floor[:3])


def test_singular_calibration_is_refused() -> None:
    cam = Camera(id="bad", homography=[[1, 2, 3], [2, 4, 6], [0, 0, 1]])
    with pytest.raises(ValueError, match="singular"):
        FloorMapper.from_camera(cam)
