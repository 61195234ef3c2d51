"""Camera sources: a USB camera, an RTSP/HTTP stream, a video file or a folder of images.

Each source yields :class:`Frame` objects (BGR image, UTC epoch timestamp, index). Live sources
(USB, streams) stamp frames with the clock when they are read and reconnect with exponential
back-off when the stream drops; a source that never opens raises :class:`CameraSourceError` naming
the source and what to check. Recorded sources (files, folders) take their timestamps from a sidecar
JSON (``<video>.json`` or ``<folder>/timestamps.json``: ``{"timestamps": [...]}``) when there is one,
otherwise from ``t0`` plus the frame's position, so a recording replays with its own times.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mjpg", ".mjpeg")


class CameraSourceError(RuntimeError):
    """A camera source that cannot be opened or read; the message says which and what to check."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # H x W x 3, BGR, uint8
    ts: float  # UTC epoch seconds
    index: int


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` the sources use (a fake in tests)."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name
    def read(self) -> tuple[bool, Any]: ...
    def get(self, prop_id: int) -> float: ...
    def release(self) -> None: ...


CaptureFactory = Callable[[int | str], Capture]


def _opencv(target: int | str) -> Capture:
    return cv2.VideoCapture(target)  # type: ignore[return-value]


def _sidecar_times(path: Path) -> list[float] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        stamps = data["timestamps"] if isinstance(data, dict) else data
        return [float(t) for t in stamps]
    except (ValueError, KeyError, TypeError) as exc:
        raise CameraSourceError(
            f"{path}: timestamps must be a JSON list or {{'timestamps': [...]}} ({exc})"
        ) from None


class StreamSource:
    """A live camera: a USB index (``0``) or a stream URL (``rtsp://``, ``http://``).

    Opening is tried ``open_attempts`` times; after that :class:`CameraSourceError`. A stream that
    drops is re-opened after ``backoff_s`` seconds, doubling up to ``max_backoff_s``; after
    ``max_reconnects`` failed re-opens in a row (None: never give up) it raises.
    """

    def __init__(
        self,
        target: int | str,
        *,
        open_attempts: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_reconnects: int | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        factory: CaptureFactory = _opencv,
    ) -> None:
        self.target = target
        self.open_attempts = max(1, open_attempts)
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.max_reconnects = max_reconnects
        self.clock, self.sleep, self.factory = clock, sleep, factory
        self.reconnects = 0  # how often the stream was re-opened after a drop
        self.delays: list[float] = []  # every back-off waited, for health reports and tests
        self._cap: Capture | None = None
        self._closed = False

    def __str__(self) -> str:
        return f"USB camera {self.target}" if isinstance(self.target, int) else f"stream {self.target}"

    def _open(self, attempts: int | None) -> Capture | None:
        delay, tries = self.backoff_s, 0
        while not self._closed:
            cap = self.factory(self.target)
            if cap.isOpened():
                return cap
            cap.release()
            tries += 1
            if attempts is not None and tries >= attempts:
                return None
            logger.warning("%s did not open; retrying in %.1f s", self, delay)
            self.delays.append(delay)
            self.sleep(delay)
            delay = min(self.max_backoff_s, delay * 2)
        return None

    def frames(self) -> Iterator[Frame]:
        self._cap = self._open(self.open_attempts)
        if self._cap is None:
            hint = (
                "check that the camera is plugged in and not used by another program (ls /dev/video*)"
                if isinstance(self.target, int)
                else "check the URL, the credentials in it and that the camera is reachable"
            )
            raise CameraSourceError(f"{self} never opened after {self.open_attempts} attempt(s): {hint}")
        index = 0
        while not self._closed:
            ok, image = self._cap.read()
            if ok and image is not None:
                yield Frame(image, self.clock(), index)
                index += 1
                continue
            if self._closed:
                break
            logger.warning("%s dropped; reconnecting", self)
            self._cap.release()
            self._cap = self._open(self.max_reconnects)
            if self._cap is None:
                raise CameraSourceError(
                    f"{self} dropped and did not come back after {self.max_reconnects} reconnect attempt(s)"
                )
            self.reconnects += 1

    def close(self) -> None:
        self._closed = True
        if self._cap is not None:
            self._cap.release()


class VideoFileSource:
    """Frames of a video file. ``realtime`` paces them at the file's frame rate (a live-like demo)."""

    def __init__(
        self,
        path: str | Path,
        *,
        t0: float | None = None,
        realtime: bool = False,
        loop: bool = False,
        factory: CaptureFactory = _opencv,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise CameraSourceError(
                f"video file {self.path} does not exist; pass a path to an .mp4/.avi file"
            )
        self.timestamps = _sidecar_times(Path(f"{self.path}.json"))
        self.t0 = t0
        self.realtime, self.loop = realtime, loop
        self.factory, self.sleep = factory, sleep
        self._closed = False

    def __str__(self) -> str:
        return f"video file {self.path}"

    def frames(self) -> Iterator[Frame]:
        t0 = self.t0 if self.t0 is not None else time.time()
        index, offset = 0, 0.0
        while not self._closed:
            cap = self.factory(str(self.path))
            if not cap.isOpened():
                cap.release()
                raise CameraSourceError(
                    f"{self} cannot be opened; is it a video OpenCV can decode (mp4, avi)?"
                )
            fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
            started = time.monotonic()
            local = 0
            try:
                while not self._closed:
                    ok, image = cap.read()
                    if not ok or image is None:
                        break
                    if self.timestamps is not None and local < len(self.timestamps):
                        ts = self.timestamps[local] + offset
                    else:
                        ts = t0 + offset + local / fps
                    if self.realtime:
                        self.sleep(max(0.0, started + local / fps - time.monotonic()))
                    yield Frame(image, ts, index)
                    index += 1
                    local += 1
            finally:
                cap.release()
            if not self.loop or local == 0:
                return
            offset += (
                local / fps if self.timestamps is None else self.timestamps[-1] - self.timestamps[0] + 1 / fps
            )

    def close(self) -> None:
        self._closed = True


class ImageFolderSource:
    """The images of a folder in name order, ``fps`` apart (or at ``timestamps.json`` times)."""

    def __init__(self, folder: str | Path, *, fps: float = 5.0, t0: float | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise CameraSourceError(f"image folder {self.folder} does not exist")
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise CameraSourceError(
                f"image folder {self.folder} holds no images ({', '.join(IMAGE_SUFFIXES)})"
            )
        self.timestamps = _sidecar_times(self.folder / "timestamps.json")
        if self.timestamps is not None and len(self.timestamps) < len(self.files):
            raise CameraSourceError(
                f"{self.folder}/timestamps.json has {len(self.timestamps)} times for {len(self.files)} images"
            )
        self.fps, self.t0 = fps, t0
        self._closed = False

    def __str__(self) -> str:
        return f"image folder {self.folder}"

    def frames(self) -> Iterator[Frame]:
        t0 = self.t0 if self.t0 is not None else time.time()
        for i, path in enumerate(self.files):
            if self._closed:
                return
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                logger.warning("%s: %s is not a readable image; skipped", self, path.name)
                continue
            ts = self.timestamps[i] if self.timestamps is not None else t0 + i / self.fps
            yield Frame(image, ts, i)

    def close(self) -> None:
        self._closed = True


CameraSource = StreamSource | VideoFileSource | ImageFolderSource


def open_source(spec: int | str | Path, **options: Any) -> CameraSource:
    """A source for ``spec``: a USB index (``0``), a URL, a video file or an image folder."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return StreamSource(int(spec), **options)
    text = str(spec)
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in ("rtsp", "rtsps", "http", "https", "rtmp", "udp", "tcp"):
            raise CameraSourceError(
                f"camera source {text!r}: unsupported scheme {scheme!r}; use rtsp:// or http://"
            )
        return StreamSource(text, **options)
    path = Path(text)
    if path.is_dir():
        return ImageFolderSource(path, **options)
    if path.is_file():
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            logger.warning("%s has an unusual video suffix; trying OpenCV anyway", path)
        return VideoFileSource(path, **options)
    raise CameraSourceError(
        f"camera source {text!r} is neither a USB index, a URL, a video file nor an image "
        "folder; check the path"
    )
