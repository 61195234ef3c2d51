"""Vision on recorded video, for datasets and measurements (``walkout run`` with camera frames).

``vision_tracks_for_dataset`` runs the camera pipeline over a rendered or recorded video and returns
the ShopperTracks messages the camera node would have published; ``splice_vision_tracks`` puts them
in place of a dataset's event-level tracks (renumbering that node's ``seq``); ``score_tracks``
compares them with the positions the video was rendered from (``<video>.json`` ``truth``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.contracts import DEFAULT_PREFIX, topic_for
from edge.vision._ultra import DEFAULT_WEIGHTS
from edge.vision.detector import Backend, Detector, YoloDetector
from edge.vision.geometry import FloorMapper
from edge.vision.pipeline import DETECT_CONF, CameraPipeline, tracks_messages
from store_server.domain.layout import StoreLayout

MATCH_M = 1.0  # a track this far from a person is not theirs


def _camera(layout: StoreLayout, camera_id: str) -> Any:
    cam = next((c for c in layout.cameras if c.id == camera_id), None)
    if cam is None:
        raise ValueError(f"camera {camera_id!r} is not in the store layout")
    return cam


def vision_tracks_for_dataset(
    video_path: str | Path,
    timestamps: Sequence[float],
    layout: StoreLayout,
    camera_id: str,
    node_id: str,
    weights: str | Path = DEFAULT_WEIGHTS,
    backend: Backend = "pytorch",
    imgsz: int = 640,
    publish_hz: float = 5.0,
    detector: Detector | None = None,
    prefix: str = DEFAULT_PREFIX,
    progress: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """ShopperTracks of ``camera_id`` from the video, as dataset messages (``sim_data.dataset.SimMessage``).

    One message per ``1 / publish_hz`` s of frame time (several when more than MAX_TRACKS people are
    in view), ``seq`` from 0; frames are detected at up to twice that rate. ``timestamps`` are the
    frames' epoch times (the video's ``.json`` sidecar).
    """
    from sim_data.dataset import SimMessage

    cam = _camera(layout, camera_id)
    det = detector or YoloDetector(weights, backend, imgsz, DETECT_CONF)
    pipe = CameraPipeline(cam.id, det, FloorMapper.from_camera(cam), fps=2 * publish_hz)
    period = 1.0 / publish_hz
    cap = cv2.VideoCapture(str(video_path))
    if not cap.isOpened():
        raise OSError(f"cannot open video {video_path}")
    out: list[Any] = []
    last_detect, next_publish = -math.inf, -math.inf
    try:
        for i, ts in enumerate(timestamps):
            ok, image = cap.read()
            if not ok:
                break
            if ts - last_detect < period / 2 - 1e-6:
                continue
            last_detect = ts
            result = pipe.process(image, ts)
            if ts + 1e-6 >= next_publish:
                next_publish = ts + period - 1e-6 if next_publish < ts - period else next_publish + period
                for msg in tracks_messages(result.tracks, cam.id, node_id, len(out), round(ts, 3)):
                    out.append(
                        SimMessage(
                            msg.ts, topic_for(msg, layout.store_id, prefix), json.loads(msg.model_dump_json())
                        )
                    )
            if progress and (i % 50 == 0 or i == len(timestamps) - 1):
                progress(i + 1, len(timestamps))
    finally:
        cap.release()
    return out


def splice_vision_tracks(messages: Iterable[Any], vision: Sequence[Any], node_id: str) -> list[Any]:
    """``messages`` with ``node_id``'s tracks replaced by ``vision``; that node's ``seq`` renumbered."""
    from sim_data.dataset import SimMessage

    kept = [
        m for m in messages if not (m.payload.get("node_id") == node_id and m.payload.get("kind") == "tracks")
    ]
    merged = sorted([*kept, *vision], key=lambda m: m.t)  # stable: ties keep dataset order, then vision
    seq = 0
    out = []
    for m in merged:
        if m.payload.get("node_id") == node_id:
            m = SimMessage(m.t, m.topic, {**m.payload, "seq": seq})
            seq += 1
        out.append(m)
    return out


def _match(truth: dict[str, list[float]], tracks: list[dict[str, Any]]) -> dict[str, tuple[str, float]]:
    """Truth id -> (track id, distance): closest pairs first, each used once, within MATCH_M."""
    pairs = sorted(
        (math.hypot(p[0] - t["x_m"], p[1] - t["y_m"]), tid, t["track_id"])
        for tid, p in truth.items()
        for t in tracks
    )
    used_t: set[str] = set()
    used_v: set[str] = set()
    out: dict[str, tuple[str, float]] = {}
    for d, tid, vid in pairs:
        if d > MATCH_M:
            break
        if tid in used_t or vid in used_v:
            continue
        used_t.add(tid)
        used_v.add(vid)
        out[tid] = (vid, d)
    return out


def score_tracks(
    vision: Sequence[Any],
    truth_json: str | Path | dict[str, Any],
    within_m: float = 0.3,
    margin_m: float = 0.0,
    layout: StoreLayout | None = None,
) -> dict[str, Any]:
    """Position accuracy and id switches of vision tracks against the rendered truth.

    Every (frame, person) of a published frame counts: within ``within_m`` of a track, further, or
    missed. An id switch is a person's matched track id changing. ``margin_m`` with ``layout``
    leaves out people that close to the floor's edge (half out of view).
    """
    meta = truth_json if isinstance(truth_json, dict) else json.loads(Path(truth_json).read_text())
    by_ts = {round(t, 3): tr for t, tr in zip(meta["timestamps"], meta["truth"], strict=True)}
    errors: list[float] = []
    missed = false_tracks = switches = 0
    last: dict[str, str] = {}
    for m in vision:
        truth = by_ts.get(round(float(m.payload["ts"]), 3))
        if truth is None:
            continue
        if layout is not None and margin_m > 0:
            w, d = layout.floor.width_m, layout.floor.depth_m
            truth = {
                k: p
                for k, p in truth.items()
                if margin_m <= p[0] <= w - margin_m and margin_m <= p[1] <= d - margin_m
            }
        tracks = m.payload["tracks"]
        matched = _match(truth, tracks)
        missed += len(truth) - len(matched)
        false_tracks += len(tracks) - len(matched)
        for tid, (vid, dist) in matched.items():
            errors.append(dist)
            if tid in last and last[tid] != vid:
                switches += 1
            last[tid] = vid
    total = len(errors) + missed
    err = np.array(errors) if errors else np.zeros(1)
    return {
        "person_frames": total,
        "within": int((err <= within_m).sum()) if errors else 0,
        "within_share": round(float((err <= within_m).sum()) / total, 4) if total and errors else 0.0,
        "missed": missed,
        "false_tracks": false_tracks,
        "id_switches": switches,
        "mean_error_m": round(float(err.mean()), 3),
        "p95_error_m": round(float(np.percentile(err, 95)), 3),
        "within_m": within_m,
    }
