"""Camera sources: image folders, video files, streams that never open or drop (fake capture)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from sensors.camera import (
    CameraSourceError,
    ImageFolderSource,
    StreamSource,
    VideoFileSource,
    open_source,
)


def _image(i: int) -> np.ndarray:
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, : 8 * (i + 1)] = 200
    return img


def test_image_folder_in_name_order_with_fps_timestamps(tmp_path: Path) -> None:
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"f{i:02d}.png"), _image(i))
    (tmp_path / "notes.txt").write_text("not an image")
    frames = list(ImageFolderSource(tmp_path, fps=4.0, t0=100.0).frames())
    assert [f.ts for f in frames] == [100.0, 100.25, 100.5]
    assert [int((f.image[0, :, 0] > 100).sum()) for f in frames] == [8, 16, 24]


def test_image_folder_timestamps_sidecar(tmp_path: Path) -> None:
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), _image(i))
    (tmp_path / "timestamps.json").write_text(json.dumps({"timestamps": [5.0, 5.3]}))
    assert [f.ts for f in open_source(tmp_path).frames()] == [5.0, 5.3]


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CameraSourceError, match="holds no images"):
        ImageFolderSource(tmp_path)


def _video(path: Path, n: int, fps: float = 10.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (64, 48))
    for i in range(n):
        writer.write(_image(i % 6))
    writer.release()


def test_video_file_with_and_without_sidecar(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    _video(video, 5)
    frames = list(VideoFileSource(video, t0=1000.0).frames())
    assert len(frames) == 5
    assert frames[0].image.shape == (48, 64, 3)
    assert [round(f.ts, 3) for f in frames] == [1000.0, 1000.1, 1000.2, 1000.3, 1000.4]
    Path(f"{video}.json").write_text(json.dumps({"timestamps": [7.0, 7.2, 7.4, 7.6, 7.8]}))
    assert [f.ts for f in open_source(str(video)).frames()] == [7.0, 7.2, 7.4, 7.6, 7.8]


def test_video_file_loops_with_increasing_timestamps(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    _video(video, 3)
    source = VideoFileSource(video, t0=0.0, loop=True)
    frames = []
    for f in source.frames():
        frames.append(f)
        if len(frames) == 7:
            source.close()
    stamps = [round(f.ts, 3) for f in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == 7


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CameraSourceError, match="neither a USB index, a URL"):
        open_source(str(tmp_path / "nope.mp4"))
    with pytest.raises(CameraSourceError, match="unsupported scheme"):
        open_source("ftp://camera/stream")


def test_url_that_never_opens_raises_after_its_attempts() -> None:
    # A real OpenCV capture against a closed local port: refused at once, never opens.
    source = StreamSource(
        "http://127.0.0.1:9/stream.mjpg", open_attempts=2, backoff_s=0.01, sleep=lambda s: None
    )
    with pytest.raises(CameraSourceError, match="never opened after 2 attempt"):
        next(iter(source.frames()))


class FakeCapture:
    """A stand-in for cv2.VideoCapture: opens or not, then serves ``frames`` good reads and drops."""

    def __init__(self, opens: bool, frames: int) -> None:
        self.opens, self.left, self.released = opens, frames, False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opens

    def read(self) -> tuple[bool, Any]:
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.zeros((4, 4, 3), np.uint8)

    def get(self, prop_id: int) -> float:
        return 0.0

    def release(self) -> None:
        self.released = True


def test_stream_reconnects_with_exponential_back_off() -> None:
    # opens, 2 frames, drops; two failed re-opens; opens again with 3 frames; then never again.
    script = [FakeCapture(True, 2), FakeCapture(False, 0), FakeCapture(False, 0), FakeCapture(True, 3)]
    made: list[FakeCapture] = []

    def factory(target: int | str) -> FakeCapture:
        cap = script.pop(0) if script else FakeCapture(False, 0)
        made.append(cap)
        return cap

    slept: list[float] = []
    clock = iter(float(i) for i in range(100))
    source = StreamSource(
        0,
        backoff_s=0.5,
        max_backoff_s=1.5,
        max_reconnects=3,
        factory=factory,
        sleep=slept.append,
        clock=lambda: next(clock),
    )
    frames = []
    with pytest.raises(CameraSourceError, match="did not come back after 3"):
        for f in source.frames():
            frames.append(f)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert [f.ts for f in frames] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert source.reconnects == 1
    assert slept == [0.5, 1.0, 0.5, 1.0]  # back-off doubles, restarts after a successful re-open
    assert all(c.released for c in made)


def test_usb_camera_that_never_opens_names_the_device() -> None:
    source = StreamSource(3, open_attempts=1, factory=lambda t: FakeCapture(False, 0))
    with pytest.raises(CameraSourceError, match=r"USB camera 3 never opened.*plugged in"):
        list(source.frames())
