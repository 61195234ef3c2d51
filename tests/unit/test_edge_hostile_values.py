"""Edge processes survive values they cannot publish, and publish only contract-valid messages.

A degenerate homography, a dead or corrupted load cell, 300 people in view, a frame with a clock gone
mad: each is dropped or split where it arises, and a message the contract still refuses is logged with
its field and the node goes on. Every message a test sees published is checked with ``contracts.parse``,
exactly as the store server reads it.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge import contracts as c
from edge.node import REFUSED_SENSOR, EdgeNode
from edge.node_config import parse_node_config
from edge.signal_pipeline import weight_payload
from edge.vision import pipeline as vision_pipeline
from edge.vision.config import VisionConfig
from edge.vision.detector import Detections
from edge.vision.geometry import FloorMapper
from edge.vision.node import run_camera_pipeline
from edge.vision.pipeline import CameraPipeline, message_count, to_messages
from edge.vision.tracker import Tracked
from edge.weight_detector import DetectedWeightChange, ShelfDetector
from sensors.loadcell import SampleBatch
from sensors.simulated import Change, synthesize_shelf

DEMO = Path(__file__).resolve().parents[2] / "sim_data" / "stores" / "demo.yaml"
NAMES = {0: "person", 1: "can-red"}
T0 = 1_700_000_000.0


# -- vision ------------------------------------------------------------------------------------------
class BoxTracker:
    """Stands in for ByteTrack (no ultralytics import in the unit tier): every person box is a track."""

    def __init__(self, *_: Any, **__: Any) -> None:
        pass

    def update(self, persons: Detections, image: Any = None) -> list[Tracked]:
        return [
            Tracked(i + 1, tuple(float(v) for v in persons.xyxy[i]), float(persons.conf[i]))  # type: ignore[arg-type]
            for i in range(len(persons))
        ]


class FixedDetector:
    names = NAMES

    def __init__(self, dets: Detections) -> None:
        self.dets = dets

    def detect(self, image: Any) -> Detections:
        return self.dets


def boxes(centres: list[tuple[float, float]], cls: int, half: float = 4.0) -> Detections:
    xyxy = np.array([[u - half, v - half, u + half, v + half] for u, v in centres], np.float32)
    return Detections(xyxy, np.full(len(centres), 0.9, np.float32), np.full(len(centres), cls), NAMES)


def join(*parts: Detections) -> Detections:
    return Detections(
        np.concatenate([p.xyxy for p in parts]),
        np.concatenate([p.conf for p in parts]),
        np.concatenate([p.cls for p in parts]),
        NAMES,
    )


def crowd(n: int) -> list[tuple[float, float]]:
    return [(10.0 + 20.0 * (i % 30), 10.0 + 20.0 * (i // 30)) for i in range(n)]


def published(msgs: list[Any], store: str = "demo") -> list[Any]:
    """Every message as the store server would read it off the wire (raises if one breaks the contract)."""
    return [c.parse(c.topic_for(m, store), c.encode(m)) for m in msgs]


@pytest.fixture(autouse=True)
def no_bytetrack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vision_pipeline, "ShopperTracker", BoxTracker)


IMAGE = np.zeros((480, 640, 3), np.uint8)


@pytest.mark.parametrize(
    ("homography", "broken"),
    [
        # a calibration of NaN (a failed fit) maps every box to NaN
        ([[math.nan] * 3] * 3, [(100.0, 100.0), (500.0, 300.0)]),
        # the box centre at u = 320 lies on this homography's horizon: it maps to infinity
        ([[1, 0, 0], [0, 1, 0], [1, 0, -320]], [(320.0, 100.0)]),
        # badly scaled (it passes the singularity check): every box lands thousands of km away
        ([[1, 0, 0], [0, 1, 0], [0, 0, 1e-7]], [(100.0, 100.0), (500.0, 300.0)]),
    ],
    ids=["nan", "horizon", "far"],
)
def test_a_degenerate_homography_drops_those_points_and_publishes_only_valid_messages(
    homography: list[list[float]], broken: list[tuple[float, float]]
) -> None:
    good = [(100.0, 100.0)] if len(broken) == 1 else []
    people = boxes(broken + good, 0)
    products = boxes([(u, v + 6) for u, v in broken + good], 1)
    mapper = FloorMapper("cam-ceiling", np.array(homography, dtype=np.float64), (640, 480))
    pipe = CameraPipeline("cam-ceiling", FixedDetector(join(people, products)), mapper)

    result = pipe.process(IMAGE, T0)
    msgs = published(to_messages(result, "cam-ceiling", "cam-ceiling", 5))

    assert len(result.tracks) == len(good) and len(result.items) == len(good)
    tracks = [t for m in msgs if isinstance(m, c.ShopperTracks) for t in m.tracks]
    assert len(tracks) == len(good) and all(math.isfinite(t.x_m) and math.isfinite(t.y_m) for t in tracks)
    assert isinstance(msgs[0], c.ShopperTracks)  # an empty tracks message still goes out: news too
    assert pipe.dropped.counts["track point:x_m"] == len(broken)
    assert pipe.dropped.counts["item detection:x_m"] == len(broken)


def test_a_detection_label_the_contract_refuses_is_dropped_and_the_others_go_out() -> None:
    names = {0: "person", 1: "can-red", 2: "bad\nlabel"}
    dets = Detections(
        np.array([[10, 10, 18, 18], [300, 300, 308, 308]], np.float32),
        np.array([0.9, 0.9], np.float32),
        np.array([1, 2]),
        names,
    )
    cam = FloorMapper("cam-ceiling", np.diag([0.025, 0.025, 1.0]), (640, 480))
    det = FixedDetector(dets)
    det.names = names
    pipe = CameraPipeline("cam-ceiling", det, cam)
    result = pipe.process(IMAGE, T0)
    msgs = published(to_messages(result, "cam-ceiling", "cam-ceiling", 0))
    labels = [d.label for m in msgs if isinstance(m, c.ItemDetections) for d in m.detections]
    assert labels == ["can-red"] and pipe.dropped.counts["item detection:label"] == 1


def test_300_people_and_250_products_in_view_become_several_contract_valid_messages() -> None:
    people = boxes(crowd(300), 0)
    products = boxes([(u + 5, v + 5) for u, v in crowd(250)], 1, half=2.0)
    mapper = FloorMapper("cam-ceiling", np.diag([0.025, 0.025, 1.0]), (640, 480))
    pipe = CameraPipeline("cam-ceiling", FixedDetector(join(people, products)), mapper)

    result = pipe.process(IMAGE, T0)
    msgs = published(to_messages(result, "cam-ceiling", "cam-ceiling", 40))

    tracks = [m for m in msgs if isinstance(m, c.ShopperTracks)]
    items = [m for m in msgs if isinstance(m, c.ItemDetections)]
    assert all(len(m.tracks) <= c.MAX_TRACKS for m in tracks) and len(tracks) == 2
    assert all(len(m.detections) <= c.MAX_DETECTIONS for m in items) and len(items) == 2
    assert len({t.track_id for m in tracks for t in m.tracks}) == 300  # nobody left out
    assert sum(len(m.detections) for m in items) == 250
    assert [m.seq for m in msgs] == list(range(40, 40 + message_count(result)))
    assert {m.ts for m in msgs} == {T0}


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()

    def publish_raw(self, topic_name: str, payload: dict[str, Any] | bytes, retain: bool = False) -> None:
        assert isinstance(payload, bytes)
        with self._lock:
            self.sent.append((topic_name, payload))


def folder(tmp_path: Path, stamps: list[float]) -> Path:
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(len(stamps)):
        cv2.imwrite(str(frames / f"{i:03d}.png"), IMAGE)
    (frames / "timestamps.json").write_text(json.dumps(stamps))  # json writes NaN as NaN, as loads reads it
    return frames


def run_node(tmp_path: Path, stamps: list[float], dets: Detections) -> tuple[dict[str, int], list[Any]]:
    cfg = VisionConfig(
        store=DEMO,
        state_dir=tmp_path / "state",
        publish_hz=5,
        cameras=[{"camera_id": "cam-ceiling", "source": str(folder(tmp_path, stamps))}],  # type: ignore[list-item]
    )
    rec = Recorder()
    counts = run_camera_pipeline(cfg, rec, threading.Event(), detector_factory=lambda: FixedDetector(dets))
    return counts, [c.parse(t, p) for t, p in rec.sent]


def test_a_camera_node_with_300_people_in_view_publishes_every_one_in_valid_messages(tmp_path: Path) -> None:
    stamps = [T0 + 0.2 * i for i in range(3)]
    counts, msgs = run_node(tmp_path, stamps, boxes(crowd(300), 0))
    by_ts: dict[float, set[str]] = {}
    for m in msgs:
        assert isinstance(m, c.ShopperTracks) and len(m.tracks) <= c.MAX_TRACKS
        by_ts.setdefault(m.ts, set()).update(t.track_id for t in m.tracks)
    assert sorted(by_ts) == pytest.approx(stamps) and all(len(ids) == 300 for ids in by_ts.values())
    seqs = [m.seq for m in msgs]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert counts["messages"] == len(msgs) and counts["refused"] == 0


def test_a_frame_whose_time_is_not_a_time_is_dropped_and_the_camera_goes_on(tmp_path: Path) -> None:
    stamps = [T0, T0 + 0.2, math.nan, T0 * 1000, T0 + 0.8, T0 + 1.0]  # NaN; milliseconds taken for s
    counts, msgs = run_node(tmp_path, stamps, boxes([(100.0, 100.0)], 0))
    assert [m.ts for m in msgs] == pytest.approx([T0, T0 + 0.2, T0 + 0.8, T0 + 1.0])
    assert all(len(m.tracks) == 1 for m in msgs)
    assert counts["refused"] == 2


# -- load cells ----------------------------------------------------------------------------------------
PLATES = ["p1", "p2", "p3", "p4"]
RATE = 60.0


def signal(changes: list[Change], seconds: float, seed: int = 3) -> np.ndarray:
    _, x = synthesize_shelf(PLATES, RATE, T0, T0 + seconds, changes, np.random.default_rng(seed))
    return x


def detect(x: np.ndarray) -> list[DetectedWeightChange]:
    det = ShelfDetector(PLATES, RATE)
    out: list[DetectedWeightChange] = []
    for i in range(0, x.shape[1], 12):
        out += det.push(T0 + i / RATE, x[:, i : i + 12])
    return out


PICKS = [Change(T0 + 6.0, {"p2": -355.0}, 1.0), Change(T0 + 32.0, {"p2": -200.0}, 1.0)]


@pytest.mark.parametrize(
    ("value", "start_s", "end_s"),
    [
        (math.nan, 0.0, 3.0),  # an HX711 that only comes alive 3 s after the node started
        (math.nan, 9.0, 25.0),  # one that was dead for 16 s between the two picks
        (math.inf, 0.0, 3.0),  # a corrupted recording / an overflowing conversion
        (1e12, 0.0, 0.5),  # a reading no load cell gives (beyond the contract's raw bound)
    ],
    ids=["dead-at-start", "dead-16s", "inf-at-start", "absurd-at-start"],
)
def test_missing_or_impossible_load_cell_samples_neither_crash_nor_poison_the_detector(
    value: float, start_s: float, end_s: float
) -> None:
    x = signal(PICKS, 40.0)
    x[1, int(start_s * RATE) : int(end_s * RATE)] = value

    events = detect(x)

    assert [e.plate_ids for e in events] == [("p2",), ("p2",)], events  # no phantom, no lost pick
    assert [e.delta_g for e in events] == pytest.approx([-355.0, -200.0], abs=1.5)
    for e in events:  # each one a contract-valid weight event
        c.WeightEvent.model_validate(weight_payload(e, "shelf-g1", 0, "g1", "g1-s1"))


class FakeLink:
    """The node's MQTT link, connected: the spool drains at once, every message is kept as sent."""

    def __init__(self, node: EdgeNode) -> None:
        self.node = node
        self.sent: list[tuple[str, bytes]] = []

    def pump(self) -> int:
        entries = self.node.spool.peek(1000)
        self.sent += [(e.topic, e.payload) for e in entries]
        self.node.spool.remove([e.id for e in entries])
        return 0

    def can_send_direct(self) -> bool:
        return len(self.node.spool) == 0

    def send_direct(self, topic: str, payload: bytes) -> bool:
        self.sent.append((topic, payload))
        return True

    def publish_status(self) -> None:
        self.sent.append((self.node.topic("status"), self.node._status("online")))

    def close(self) -> None:
        pass


class NoSource:
    plate_ids = PLATES
    rate_hz = RATE

    def read_batch(self, n: int) -> SampleBatch | None:
        return None

    def close(self) -> None:
        pass


def shelf_node(tmp_path: Path, publish_samples: bool) -> tuple[EdgeNode, FakeLink]:
    cfg = parse_node_config(
        {
            "node_id": "shelf-g1",
            "store_id": "demo",
            "publish_samples": publish_samples,
            "spool": {"path": str(tmp_path / "spool.sqlite")},
            "source": {"type": "simulated"},
            "shelves": [{"gondola_id": "g1", "shelf_id": "g1-s1", "plates": [{"id": p} for p in PLATES]}],
        }
    )
    node = EdgeNode(cfg, source=NoSource(), expected_rate_hz=RATE)
    link = FakeLink(node)
    node.link = link  # type: ignore[assignment]
    return node, link


def feed(node: EdgeNode, x: np.ndarray) -> None:
    for i in range(0, x.shape[1], 12):
        node.step(SampleBatch(T0 + i / RATE, RATE, x[:, i : i + 12]))


def test_a_shelf_node_fed_nan_and_infinite_samples_publishes_valid_samples_and_still_the_picks(
    tmp_path: Path,
) -> None:
    node, link = shelf_node(tmp_path, publish_samples=True)
    x = signal(PICKS, 40.0)
    x[1, : int(2 * RATE)] = math.nan  # a cell not ready yet
    x[2, int(10 * RATE) : int(11 * RATE)] = math.inf  # a burst of garbage from another
    x[3, 600:603] = 1e300
    try:
        feed(node, x)
    finally:
        node.close()

    msgs = [c.parse(t, p) for t, p in link.sent]  # every one contract-valid
    weights = [m for m in msgs if isinstance(m, c.WeightEvent)]
    assert [(w.plate_ids, round(w.delta_g)) for w in weights] == [(["p2"], -355), (["p2"], -200)]
    samples = [m for m in msgs if isinstance(m, c.WeightSamples)]
    assert len(samples) == x.shape[1] // 12
    statuses = [m.sensors for m in msgs if isinstance(m, c.NodeStatus)]
    assert any(s["p3"] == "degraded" for s in statuses)  # the garbage was reported, not hidden
    assert REFUSED_SENSOR not in statuses[-1]  # cleaned at the source: no message had to be refused


class ScriptedDetector(ShelfDetector):
    """The real detector, plus scripted changes the node must not be able to publish."""

    def __init__(self, *a: Any, bad: list[DetectedWeightChange], **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.bad = bad

    def push(self, t0: float, grams: np.ndarray) -> list[DetectedWeightChange]:
        out = super().push(t0, grams)
        if self.bad and t0 >= self.bad[0].decided_at:
            out = [self.bad.pop(0), *out]
        return out


def change(at: float, **kw: Any) -> DetectedWeightChange:
    base: dict[str, Any] = dict(
        plate_ids=("p1",),
        delta_g=-100.0,
        t_start=at - 1,
        t_end=at,
        noise_g=0.5,
        confidence=1.0,
        decided_at=at,
    )
    return DetectedWeightChange(**{**base, **kw}, plate_deltas=(kw.get("delta_g", -100.0),))


def test_a_message_the_contract_refuses_is_logged_with_its_field_and_the_node_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node, link = shelf_node(tmp_path, publish_samples=False)
    node.detector = ScriptedDetector(
        PLATES,
        RATE,
        bad=[
            change(T0 + 2.0, noise_g=5e6),  # finite, but beyond the contract's bound
            change(T0 + 3.0, delta_g=math.nan),  # not a number at all
        ],
    )
    caplog.set_level(logging.WARNING)
    try:
        feed(node, signal(PICKS, 40.0))
    finally:
        node.close()

    msgs = [c.parse(t, p) for t, p in link.sent]
    weights = [m for m in msgs if isinstance(m, c.WeightEvent)]
    assert [(w.plate_ids, round(w.delta_g)) for w in weights] == [(["p2"], -355), (["p2"], -200)]
    assert any(isinstance(m, c.Heartbeat) for m in msgs)
    log = caplog.text
    assert "field 'noise_g'" in log and "field 'delta_g'" in log
    assert node.refused.counts == {"weight event on g1-s1:noise_g": 1, "weight event on g1-s1:delta_g": 1}
    statuses = [m for m in msgs if isinstance(m, c.NodeStatus)]
    assert statuses and statuses[-1].sensors[REFUSED_SENSOR] == "degraded"
