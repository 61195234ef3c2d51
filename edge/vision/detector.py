"""Object detection: one numpy data type for boxes, and the YOLO detector behind it (PyTorch or ONNX).

Both backends go through ultralytics' ``YOLO`` (for ``.onnx`` files it runs onnxruntime), so the
pre- and post-processing are the same and only the inference engine differs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from edge.vision._ultra import DEFAULT_WEIGHTS, ultralytics

logger = logging.getLogger(__name__)

Backend = Literal["pytorch", "onnx"]


@dataclass
class Detections:
    """Boxes of one frame: ``xyxy`` (n, 4) pixels, ``conf`` (n,), ``cls`` (n,) class indices."""

    xyxy: np.ndarray
    conf: np.ndarray
    cls: np.ndarray
    names: dict[int, str] = field(default_factory=dict)

    @classmethod
    def empty(cls, names: dict[int, str] | None = None) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), names or {})

    @classmethod
    def from_ultralytics(cls, result: Any) -> Detections:
        boxes = result.boxes.cpu().numpy()
        return cls(
            np.asarray(boxes.xyxy, np.float32),
            np.asarray(boxes.conf, np.float32),
            np.asarray(boxes.cls, np.int64),
            dict(result.names),
        )

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, mask: Any) -> Detections:
        return Detections(self.xyxy[mask], self.conf[mask], self.cls[mask], self.names)

    def of_class(self, name: str) -> Detections:
        ids = [i for i, n in self.names.items() if n == name]
        return self[np.isin(self.cls, ids)]

    def not_class(self, name: str) -> Detections:
        ids = [i for i, n in self.names.items() if n == name]
        return self[~np.isin(self.cls, ids)]

    @property
    def xywh(self) -> np.ndarray:
        """Centre x, centre y, width, height (what ultralytics' trackers read)."""
        x1, y1, x2, y2 = (self.xyxy[:, i] for i in range(4))
        return np.column_stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])

    def label(self, i: int) -> str:
        return self.names.get(int(self.cls[i]), str(int(self.cls[i])))


class Detector(Protocol):
    """Finds objects in a BGR frame (the port; YoloDetector is the real adapter)."""

    names: dict[int, str]

    def detect(self, image: np.ndarray) -> Detections: ...


class YoloDetector:
    """The committed Walkout YOLO11n (or any ultralytics detection weights) on the CPU."""

    def __init__(
        self,
        weights: str | Path = DEFAULT_WEIGHTS,
        backend: Backend = "pytorch",
        imgsz: int = 640,
        conf: float = 0.25,
        iou: float = 0.5,
        threads: int | None = None,
    ) -> None:
        weights = Path(weights)
        if not weights.is_file():
            raise FileNotFoundError(
                f"detector weights {weights} not found; train them with "
                "`walkout models train` or point `weights` at a .pt file"
            )
        if backend == "onnx" and weights.suffix != ".onnx":
            from edge.vision.training import ensure_onnx

            weights = ensure_onnx(weights)
        elif backend == "pytorch" and weights.suffix != ".pt":
            raise ValueError(f"backend pytorch needs .pt weights, got {weights.name}")
        self.backend, self.weights, self.imgsz, self.conf, self.iou = backend, weights, imgsz, conf, iou
        self.model = ultralytics().YOLO(str(weights), task="detect")
        self.names: dict[int, str] = {int(k): str(v) for k, v in dict(self.model.names).items()}
        if backend == "pytorch":
            # ultralytics sets torch to cpu_count - 1 threads when its predictor starts (1 on a 2-core
            # box); start it now, then use every core (or ``threads``) like onnxruntime does.
            self.warmup((64, 64))
            import torch

            torch.set_num_threads(threads or os.cpu_count() or 1)

    def detect(self, image: np.ndarray) -> Detections:
        result = self.model.predict(
            image, imgsz=self.imgsz, conf=self.conf, iou=self.iou, device="cpu", verbose=False
        )[0]
        dets = Detections.from_ultralytics(result)
        dets.names = self.names
        return dets

    def warmup(self, shape: tuple[int, int] = (480, 640)) -> None:
        self.detect(np.zeros((*shape, 3), np.uint8))
