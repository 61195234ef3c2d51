"""The one place that imports ultralytics, after making sure it never reaches for the network.

ultralytics downloads fonts (plots), reference weights (AMP checks) and missing packages (exports)
when it thinks it is online. Walkout runs offline by design, so these switches are set before the
first import: ``YOLO_OFFLINE`` makes it consider itself offline, ``YOLO_AUTOINSTALL=false`` stops
pip installs. Callers still pass ``plots=False`` and ``amp=False`` when training.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_VERBOSE", "false")

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
DEFAULT_WEIGHTS = MODELS_DIR / "walkout-yolo11n.pt"
DEFAULT_ONNX = MODELS_DIR / "walkout-yolo11n.onnx"


def ultralytics() -> ModuleType:
    """Import ultralytics with the offline switches set (imported lazily: it takes ~1 s)."""
    import ultralytics as ul

    return ul
