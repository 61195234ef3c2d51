"""The camera node loop: sources -> CameraPipeline -> contract messages over MQTT at a fixed rate.

``run_camera_pipeline(config, publisher, stop)`` is what ``walkout edge`` and ``walkout edge-vision``
run: one thread per camera, detection at up to ``2 x publish_hz`` (ByteTrack likes more frames than
the store server needs), a ShopperTracks message every ``1 / publish_hz`` seconds of frame time (an
empty one when nobody is in view: it doubles as the node's heartbeat) and an ItemDetections message
when products are seen. ``ts`` is the frame's timestamp; ``seq`` counts up per node and survives
restarts (leased in blocks from a file, so a crash skips numbers but never reuses one).

No frame stops a camera: a frame whose time is not a time is dropped, and a frame's messages that
the contract still refuses are logged with the field and reason and skipped (their ``seq`` numbers
stay unused). ``counts`` reports both (``refused``) and the points the pipelines dropped (``dropped``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from edge.contracts import MAX_EPOCH_S, Heartbeat, encode, topic_for
from edge.refusals import Refusals
from edge.vision.config import CameraSourceConfig, VisionConfig
from edge.vision.detector import Detector, YoloDetector
from edge.vision.geometry import FloorMapper
from edge.vision.pipeline import (
    DETECT_CONF,
    CameraPipeline,
    FrameResult,
    SharedFloor,
    message_count,
    to_messages,
)
from sensors.camera import StreamSource, open_source

logger = logging.getLogger(__name__)

LEASE = 100
HEARTBEAT_S = 0.25  # a stalled live camera sends a heartbeat this often


class RawPublisher(Protocol):
    def publish_raw(self, topic_name: str, payload: dict[str, Any] | bytes, retain: bool = False) -> None: ...


class SeqCounter:
    """The next ``seq`` of one node, persisted in leases of LEASE numbers (thread-safe)."""

    def __init__(self, state_dir: Path | None, node_id: str) -> None:
        self._lock = threading.Lock()
        self.publish_lock = threading.RLock()  # held while a message is numbered and sent
        self._file = state_dir / f"{node_id}.seq" if state_dir else None
        self._next = 0
        if self._file and self._file.is_file():
            try:
                self._next = int(self._file.read_text().strip() or 0)
            except ValueError:
                logger.warning("%s is damaged; starting a new lease after it is rewritten", self._file)
        self._leased = self._next
        self._lease()

    def _lease(self) -> None:
        self._leased = self._next + LEASE
        if self._file:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._file.with_suffix(".tmp")
            tmp.write_text(str(self._leased))
            tmp.replace(self._file)

    def take(self, n: int = 1) -> int:
        with self._lock:
            first = self._next
            self._next += n
            if self._next > self._leased:
                self._lease()
            return first


def node_of(cfg: CameraSourceConfig, config: VisionConfig) -> str:
    cam = config.camera(config.layout(), cfg.camera_id)
    return cfg.node_id or cam.node_id or cam.id


def build_pipeline(
    config: VisionConfig, cfg: CameraSourceConfig, shared: SharedFloor, detector: Detector | None = None
) -> CameraPipeline:
    layout = config.layout()
    cam = config.camera(layout, cfg.camera_id)
    det = detector or YoloDetector(config.weights, config.backend, cfg.imgsz or config.imgsz, DETECT_CONF)
    return CameraPipeline(
        cam.id,
        det,
        FloorMapper.from_camera(cam, cfg.anchor),
        fps=2 * config.publish_hz,
        lost_s=config.lost_s,
        hand_reach_m=config.hand_reach_m,
        person_class=config.person_class,
        labels=config.labels,
        item_conf=config.conf,
        shared=shared,
    )


def _run_one(
    config: VisionConfig,
    cfg: CameraSourceConfig,
    pipe: CameraPipeline,
    publisher: RawPublisher,
    seq: SeqCounter,
    node_id: str,
    stop: threading.Event,
    counts: dict[str, int],
    on_result: Callable[[str, FrameResult], None] | None,
    refused: Refusals,
) -> None:
    period = 1.0 / config.publish_hz
    detect_every = period / 2
    opts: dict[str, Any] = {}
    if isinstance(cfg.source, str) and not cfg.source.isdigit() and "://" not in cfg.source:
        opts = {"fps": cfg.fps} if Path(cfg.source).is_dir() else {"realtime": cfg.realtime, "loop": cfg.loop}
    source = open_source(cfg.source, **opts)
    store_id = config.layout().store_id
    state = {"ts": float("-inf"), "wall": time.monotonic()}  # the node's last published ts

    def emit(msgs: list[Any]) -> None:
        with seq.publish_lock:  # one node's messages leave in ts order, whichever thread sends them
            if msgs[0].ts < state["ts"]:
                return  # older than a heartbeat sent while this frame was processed
            for msg in msgs:
                publisher.publish_raw(topic_for(msg, store_id, config.prefix), encode(msg))
                counts["messages"] += 1
            state["ts"], state["wall"] = msgs[-1].ts, time.monotonic()

    done = threading.Event()

    def watchdog() -> None:
        """A live camera that stalls (reconnecting) still sends heartbeats, and stops on ``stop``."""
        while not done.wait(HEARTBEAT_S):
            if stop.is_set():
                source.close()
                return
            if isinstance(source, StreamSource) and time.monotonic() - state["wall"] > 2 * HEARTBEAT_S:
                with seq.publish_lock:
                    now = time.time()
                    if now > state["ts"]:
                        beat = Heartbeat(node_id=node_id, seq=seq.take(), ts=now)
                        publisher.publish_raw(topic_for(beat, store_id, config.prefix), encode(beat))
                        state["ts"], state["wall"] = now, time.monotonic()

    threading.Thread(target=watchdog, name=f"vision-beat-{cfg.camera_id}", daemon=True).start()
    last_detect, next_publish = float("-inf"), float("-inf")
    try:
        for frame in source.frames():
            if stop.is_set():
                break
            if not (math.isfinite(frame.ts) and 0 <= frame.ts <= MAX_EPOCH_S):
                # before it touches the pacing below: one such frame would hold every later one back
                refused.add(f"frame of {cfg.camera_id}", "ts", f"{frame.ts!r} is not a UTC epoch time")
                continue
            if frame.ts - last_detect < detect_every - 1e-6:
                continue
            last_detect = frame.ts
            result = pipe.process(frame.image, frame.ts)
            counts["frames"] += 1
            if frame.ts + 1e-6 < next_publish:
                continue
            next_publish = (
                frame.ts + period - 1e-6 if next_publish < frame.ts - period else next_publish + period
            )
            with seq.publish_lock:
                first = seq.take(message_count(result))
                try:
                    msgs = to_messages(result, pipe.camera_id, node_id, first)
                except ValidationError as exc:  # the last line of defence: this frame only
                    refused.refuse(f"messages of {pipe.camera_id}", exc)
                else:
                    emit(msgs)
            if on_result:
                on_result(pipe.camera_id, result)
    finally:
        done.set()
        source.close()


def run_camera_pipeline(
    config: VisionConfig,
    publisher: RawPublisher,
    stop: threading.Event,
    on_result: Callable[[str, FrameResult], None] | None = None,
    detector_factory: Callable[[], Detector] | None = None,
) -> dict[str, int]:
    """Run every configured camera until its source ends or ``stop`` is set; return the counts
    (``frames``, ``messages``, ``refused`` frames and messages, ``dropped`` points).

    ``publisher`` is an ``edge.publisher.Publisher`` (connected) or anything with ``publish_raw``.
    A camera whose source fails stops that camera only; the error is logged and re-raised at the end.
    """
    shared = SharedFloor()
    counts: dict[str, int] = {"frames": 0, "messages": 0}
    seqs: dict[str, SeqCounter] = {}
    errors: list[BaseException] = []
    threads = []
    refused = Refusals("camera node")
    pipes: list[CameraPipeline] = []
    for cfg in config.cameras:
        node = node_of(cfg, config)
        seq = seqs.setdefault(node, SeqCounter(config.state_dir, node))
        pipe = build_pipeline(config, cfg, shared, detector_factory() if detector_factory else None)
        pipes.append(pipe)

        def work(
            cfg: CameraSourceConfig = cfg,
            pipe: CameraPipeline = pipe,
            seq: SeqCounter = seq,
            node: str = node,
        ) -> None:
            try:
                _run_one(config, cfg, pipe, publisher, seq, node, stop, counts, on_result, refused)
            except BaseException as exc:  # noqa: BLE001 - reported to the caller below
                logger.error("camera %s stopped: %s", cfg.camera_id, exc)
                errors.append(exc)

        th = threading.Thread(target=work, name=f"vision-{cfg.camera_id}", daemon=True)
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    counts["refused"] = refused.total
    counts["dropped"] = sum(p.dropped.total for p in pipes)
    flush = getattr(publisher, "flush", None)
    if callable(flush):
        flush()
    if errors:
        raise errors[0]
    return counts
