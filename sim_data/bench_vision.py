"""Vision throughput on this CPU: frames per second of one camera's pipeline (detect + track + map).

PyTorch vs ONNX (onnxruntime) at 320 and 640 px, on the same rendered ceiling frames in one run, so
the four numbers are comparable. ``walkout bench`` reports them; ``python -m sim_data.bench_vision``
prints them.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.vision._ultra import DEFAULT_WEIGHTS

DEMO_STORE = Path(__file__).resolve().parent / "stores" / "demo.yaml"


def _frames(n: int, seed: int) -> list[np.ndarray]:
    """``n`` ceiling frames of a busy moment of the ``basic`` run (several shoppers in view)."""
    from sim_data.render import render_run_video
    from sim_data.simulator import simulate
    from store_server.domain.layout import load_layout

    layout = load_layout(DEMO_STORE)
    run = simulate(layout, "basic", seed)
    with tempfile.TemporaryDirectory(prefix="walkout-bench-vision-") as tmp:
        video = Path(tmp) / "bench.avi"
        start = run.t0 + 30.0
        render_run_video(layout, run.messages, video, fps=10.0, seed=seed, t0=start, t1=start + (n - 1) / 10)
        cap = cv2.VideoCapture(str(video))
        frames: list[np.ndarray] = []
        while len(frames) < n:
            ok, img = cap.read()
            if not ok:
                break
            frames.append(img)
        cap.release()
    return frames


def bench_vision(
    frames: int = 40,
    sizes: tuple[int, ...] = (320, 640),
    backends: tuple[str, ...] = ("pytorch", "onnx"),
    weights: str | Path = DEFAULT_WEIGHTS,
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """FPS per camera for each backend x size, plus the mean people tracked per frame (same frames)."""
    from edge.vision.detector import YoloDetector
    from edge.vision.geometry import FloorMapper
    from edge.vision.pipeline import DETECT_CONF, CameraPipeline
    from store_server.domain.layout import load_layout

    images = _frames(frames, seed)
    camera = load_layout(DEMO_STORE).cameras[0]
    rows: list[dict[str, Any]] = []
    for backend in backends:
        for size in sizes:
            if progress:
                progress(f"{backend} @ {size} px")
            det = YoloDetector(weights, backend, imgsz=size, conf=DETECT_CONF)  # type: ignore[arg-type]
            pipe = CameraPipeline(camera.id, det, FloorMapper.from_camera(camera), fps=10.0)
            for img in images[:3]:
                det.detect(img)  # warm-up: first calls allocate
            tracked = 0
            start = time.perf_counter()
            for i, img in enumerate(images):
                tracked += len(pipe.process(img, float(i) / 10).tracks)
            elapsed = time.perf_counter() - start
            rows.append(
                {
                    "backend": backend,
                    "imgsz": size,
                    "frames": len(images),
                    "fps": round(len(images) / elapsed, 1),
                    "ms_per_frame": round(1000 * elapsed / len(images), 1),
                    "tracks_per_frame": round(tracked / len(images), 2),
                }
            )
    return {
        "threads": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "frame_size": [640, 480],
        "weights": str(Path(weights).name),
        "results": rows,
    }


def format_table(result: dict[str, Any]) -> str:
    lines = [
        "| backend | imgsz | FPS per camera | ms / frame | tracks / frame |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['backend']} | {r['imgsz']} | {r['fps']} | {r['ms_per_frame']} | {r['tracks_per_frame']} |"
        for r in result["results"]
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    res = bench_vision(progress=lambda s: print("bench:", s, flush=True))
    print(format_table(res))
    print(json.dumps(res))
