"""The camera node's configuration: which cameras, which model, where to publish. One YAML file.

```yaml
store: sim_data/stores/demo.yaml      # the store layout: camera calibrations come from it
broker: mqtt://127.0.0.1:1883
backend: onnx                         # or pytorch
imgsz: 640
publish_hz: 5
cameras:
  - camera_id: cam-ceiling            # a camera of the store YAML
    source: var/demo/ceiling.avi      # USB index, rtsp:// or http:// URL, video file, image folder
    realtime: true
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.vision._ultra import DEFAULT_WEIGHTS
from store_server.domain.layout import Camera, StoreLayout, explain_errors, load_layout

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]


class CameraSourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    camera_id: Id
    source: str | int  # USB index, URL, video file or image folder
    node_id: Id | None = None  # default: the camera's node_id in the store YAML, else the camera id
    anchor: Literal["center", "bottom"] | None = None  # default: center for ceiling cameras, else bottom
    realtime: bool = False  # pace a video file at its frame rate (a live-like demo)
    loop: bool = False  # start a video file again at its end
    fps: float = 5.0  # frame rate of an image folder (no timestamps.json)
    imgsz: int | None = None  # inference size for this camera (default: the node's imgsz)


class VisionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    store: Path
    broker: str = "mqtt://127.0.0.1:1883"
    prefix: str = "walkout"
    backend: Literal["pytorch", "onnx"] = "pytorch"
    weights: Path = DEFAULT_WEIGHTS
    imgsz: Annotated[int, Field(ge=64, le=1920, multiple_of=32)] = 640
    conf: Annotated[float, Field(ge=0.01, le=1)] = 0.25
    publish_hz: Annotated[float, Field(gt=0, le=30)] = 5.0
    lost_s: Annotated[float, Field(gt=0, le=60)] = 3.0  # a lost track keeps its id this long
    hand_reach_m: Annotated[float, Field(gt=0, le=5)] = 0.8  # product this close to a shopper: theirs
    person_class: str = "person"
    labels: dict[str, str] = Field(default_factory=dict)  # detector class -> published label (a sku)
    state_dir: Path = Path("var/edge-vision")  # sequence counters survive restarts here
    cameras: Annotated[list[CameraSourceConfig], Field(min_length=1)]

    def layout(self) -> StoreLayout:
        return load_layout(self.store)

    def camera(self, layout: StoreLayout, camera_id: str) -> Camera:
        for cam in layout.cameras:
            if cam.id == camera_id:
                return cam
        known = ", ".join(c.id for c in layout.cameras) or "none"
        raise ValueError(
            f"camera {camera_id!r} is not in the store layout {self.store} (cameras: {known}); "
            "add it under cameras: with its homography"
        )


class VisionConfigError(ValueError):
    """A camera-node config that cannot be used; the message names the file, the key and the fix."""


def load_vision_config(path: str | Path) -> VisionConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise VisionConfigError(
            f"{path}: no such file; pass the camera node's YAML (see docs/VISION.md)"
        ) from None
    except yaml.YAMLError as exc:
        raise VisionConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise VisionConfigError(f"{path}: must hold a mapping (store, cameras, ...)")
    if isinstance(data.get("store"), str) and not Path(data["store"]).is_absolute():
        candidate = path.parent / data["store"]
        data["store"] = str(candidate if candidate.exists() else data["store"])
    try:
        cfg = VisionConfig.model_validate(data)
    except ValidationError as exc:
        raise VisionConfigError(
            explain_errors(str(path), "camera node config", exc, "docs/VISION.md")
        ) from None
    layout = cfg.layout()
    for cam in cfg.cameras:
        try:
            cfg.camera(layout, cam.camera_id)
        except ValueError as exc:
            raise VisionConfigError(f"{path}: cameras: {exc}") from None
    return cfg
