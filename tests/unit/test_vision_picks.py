"""Vision-only picks at the exit: what a camera saw taken from a plate that could not weigh it.

Plates of the small store are 1 m apart along y = 4.0 (P1 cola at x 2.5, P2 lemon at 3.5, P3 and P4
chips); a hand reaching into a plate is seen about 0.3 m in front of it.
"""

from __future__ import annotations

from typing import cast

from edge.contracts import (
    Heartbeat,
    ItemDetection,
    ItemDetections,
    NodeStatus,
    WeightEvent,
    encode,
    topic,
    topic_for,
)
from store_server.domain.layout import StoreLayout
from store_server.domain.session import ShopperSession
from store_server.domain.sightings import Sighting, Sightings, combine
from store_server.service.ingest import RawMessage
from store_server.service.ports import UnitOfWork
from store_server.service.processor import StoreProcessor
from store_server.service.vision_picks import (
    SILENT_FACTOR,
    TWICE_FACTOR,
    VisitEvidence,
    Weighed,
    unweighed_picks,
    visit_evidence,
)
from tests.fakes import FakeBackend, FakeClock, FakeMailer, FakePaymentGateway, FakeUnitOfWork

AT_P1, AT_P2, AT_P3 = (2.5, 3.7), (3.5, 3.7), (4.5, 3.7)
EXIT = 200.0


def visit(tracks: tuple[str, ...] = ("a",)) -> ShopperSession:
    s = ShopperSession("s-1", "t", "acct-1", entered_at=100.0)
    for t in tracks:
        s.bind(t, 100.0)
    return s


def seen(*items: tuple[float, str, tuple[float, float], str | None], conf: float = 0.9) -> Sightings:
    out = Sightings(horizon_s=float("inf"))
    for i, (ts, sku, (x, y), track) in enumerate(items):
        out.add(Sighting(ts, sku, conf, x, y, track, "cam", f"cam:{i}"))
    return out


def evidence(
    layout: StoreLayout, sightings: Sightings, *weighed: Weighed, failed: frozenset[str] = frozenset()
) -> VisitEvidence:
    return VisitEvidence(layout, sightings, tuple(weighed), failed)


def test_a_pick_from_a_silent_plate_is_a_vision_line(layout: StoreLayout) -> None:
    ev = evidence(layout, seen((120.0, "cola", AT_P1, "a")))
    [line] = unweighed_picks(ev, visit(), EXIT)
    assert (line.sku, line.quantity, line.plate_id, line.track_id) == ("cola", 1, "P1", "a")
    assert (line.evidence, line.note, line.event_id, line.at) == (
        "vision",
        "plate silent",
        "vision:cam:0",
        120.0,
    )
    assert line.confidence == round(0.9 * SILENT_FACTOR, 4)


def test_a_plate_its_node_reports_failed_counts_even_if_it_weighed_before(layout: StoreLayout) -> None:
    earlier = Weighed("shelf-g1:1", 105.0, 106.0, ("P1",), -350.0)  # someone else's pick, then it died
    ev = evidence(layout, seen((120.0, "cola", AT_P1, "a")), earlier, failed=frozenset({"P1"}))
    [line] = unweighed_picks(ev, visit(), EXIT)
    assert (line.note, line.confidence) == ("plate failed", 0.9)


def test_a_plate_that_weighed_during_the_visit_is_alive(layout: StoreLayout) -> None:
    earlier = Weighed("shelf-g1:1", 105.0, 106.0, ("P1",), -350.0)
    ev = evidence(layout, seen((120.0, "cola", AT_P1, "a")), earlier)
    assert unweighed_picks(ev, visit(), EXIT) == []


def test_a_plate_listed_in_an_event_without_moving_is_still_silent(layout: StoreLayout) -> None:
    # A v2 event of the shelf lists P1 with no change of its own: it weighed nothing.
    other = Weighed("shelf-g1:1", 105.0, 106.0, ("P1", "P4"), -180.0, (0.0, -180.0))
    ev = evidence(layout, seen((120.0, "cola", AT_P1, "a")), other)
    assert [ln.plate_id for ln in unweighed_picks(ev, visit(), EXIT)] == ["P1"]
    moved = Weighed("shelf-g1:1", 105.0, 106.0, ("P1", "P4"), -180.0, (-20.0, -160.0))
    assert unweighed_picks(evidence(layout, seen((120.0, "cola", AT_P1, "a")), moved), visit(), EXIT) == []


def test_a_weighed_pick_of_that_product_explains_the_sighting(layout: StoreLayout) -> None:
    session = visit()
    session.take("shelf-g1:7", "cola", 1, 120.3, 0.95)
    ev = evidence(layout, seen((120.0, "cola", AT_P1, "a")))
    assert unweighed_picks(ev, session, EXIT) == []


def test_a_weight_event_at_the_hand_explains_a_mislabelled_sighting(layout: StoreLayout) -> None:
    # Cola was taken and weighed; the camera called it lemon (the neighbour). Lemon's plate is silent,
    # but the weight at the hand has the last word.
    hand = (2.9, 3.7)  # between P1 and P2, within reach of both
    session = visit()
    session.take("shelf-g1:7", "cola", 1, 120.0, 0.95)
    pick = Weighed("shelf-g1:7", 119.0, 120.0, ("P1",), -351.0)
    assert unweighed_picks(evidence(layout, seen((120.0, "lemon", hand, "a")), pick), session, EXIT) == []


def test_a_weight_event_too_small_for_an_item_explains_nothing(layout: StoreLayout) -> None:
    # Coupling from the dead P2 shows on P1: 30 g is no cola (350 g) and no lemon.
    coupling = Weighed("shelf-g1:7", 119.0, 120.0, ("P1",), -30.0)
    ev = evidence(layout, seen((120.0, "lemon", AT_P2, "a")), coupling)
    assert [ln.sku for ln in unweighed_picks(ev, visit(), EXIT)] == ["lemon"]


def test_coupling_from_a_blind_plate_left_to_the_camera_explains_nothing(layout: StoreLayout) -> None:
    # Three lemons taken from the dead P2: P1 and P3 show 15-25 % of them. Fusion left the event to
    # the camera (nothing charged for it); charged as a cola, it would explain the sighting.
    coupling = Weighed("shelf-g1:7", 119.0, 120.0, ("P1", "P3"), -330.0, (-160.0, -170.0), ("P2",))
    hand = (2.9, 3.7)  # reaching into P2 from the P1 side: within reach of both
    ev = evidence(layout, seen((120.0, "lemon", hand, "a")), coupling)
    assert [ln.sku for ln in unweighed_picks(ev, visit(), EXIT)] == ["lemon"]
    charged = visit()
    charged.take("shelf-g1:7", "cola", 1, 120.0, 0.9)
    assert unweighed_picks(ev, charged, EXIT) == []


def test_an_item_already_in_the_cart_adds_nothing(layout: StoreLayout) -> None:
    # Chips weighed from P4 earlier; seen again in hand at the silent P3: a return, or carried about.
    session = visit()
    session.take("shelf-g1:3", "chips", 1, 110.0, 0.95)
    ev = evidence(
        layout, seen((150.0, "chips", AT_P3, "a")), Weighed("shelf-g1:3", 109.0, 110.0, ("P4",), -180.0)
    )
    assert unweighed_picks(ev, session, EXIT) == []


def test_another_shoppers_hand_and_nobodys_hand_add_nothing(layout: StoreLayout) -> None:
    ev = evidence(layout, seen((120.0, "cola", AT_P1, "b"), (121.0, "cola", AT_P1, None)))
    assert unweighed_picks(ev, visit(("a",)), EXIT) == []


def test_every_track_of_the_visit_counts_a_continuation_too(layout: StoreLayout) -> None:
    ev = evidence(layout, seen((120.0, "cola", AT_P1, "a2")))
    assert [ln.track_id for ln in unweighed_picks(ev, visit(("a", "a2")), EXIT)] == ["a2"]


def test_an_item_seen_far_from_its_plates_is_not_a_pick(layout: StoreLayout) -> None:
    ev = evidence(layout, seen((120.0, "cola", (8.0, 2.0), "a")))
    assert unweighed_picks(ev, visit(), EXIT) == []


def test_only_the_visit_time_counts(layout: StoreLayout) -> None:
    ev = evidence(layout, seen((90.0, "cola", AT_P1, "a"), (EXIT + 1.0, "lemon", AT_P2, "a")))
    assert unweighed_picks(ev, visit(), EXIT) == []


def test_frames_of_one_holding_are_one_item_and_a_second_holding_is_doubtful(layout: StoreLayout) -> None:
    sightings = seen((120.0, "cola", AT_P1, "a"), (120.2, "cola", AT_P1, "a"), (121.0, "cola", AT_P1, "a"))
    [line] = unweighed_picks(evidence(layout, sightings), visit(), EXIT)
    assert line.quantity == 1 and line.event_id == "vision:cam:0"
    sightings.add(Sighting(160.0, "cola", 0.9, *AT_P1, "a", "cam", "cam:9"))  # back at P1 later
    # On a plate reported failed a second holding is a return or another pick: staff look.
    [line] = unweighed_picks(evidence(layout, sightings, failed=frozenset({"P1"})), visit(), EXIT)
    assert line.confidence == round(combine([0.9] * 3) * TWICE_FACTOR, 4)
    assert "a return, or another pick" in line.note
    # On a plate that weighed nothing and never reported failing, taken and put straight back.
    assert unweighed_picks(evidence(layout, sightings), visit(), EXIT) == []
    sightings.add(Sighting(200.0, "cola", 0.9, *AT_P1, "a", "cam", "cam:12"))  # and taken once more
    [line] = unweighed_picks(evidence(layout, sightings), visit(), EXIT)
    assert line.event_id == "vision:cam:12" and line.note == "plate silent"


def test_boxes_in_one_hand_give_the_quantity(layout: StoreLayout) -> None:
    sightings = Sightings()
    payload = {
        "camera_id": "cam",
        "detections": [
            {"label": "cola", "confidence": 0.8, "x_m": 2.5, "y_m": 3.7, "track_id": "a"},
            {"label": "cola", "confidence": 0.7, "x_m": 2.6, "y_m": 3.7, "track_id": "a"},
        ],
    }
    sightings.add_message("cam:4", 120.0, payload, layout.products)
    [line] = unweighed_picks(evidence(layout, sightings), visit(), EXIT)
    assert line.quantity == 2


def test_an_exit_decided_twice_adds_the_line_once(layout: StoreLayout) -> None:
    session = visit()
    ev = evidence(layout, seen((120.0, "cola", AT_P1, "a")))
    [line] = unweighed_picks(ev, session, EXIT)
    session.take(line.event_id, line.sku, line.quantity, line.at, line.confidence)
    assert unweighed_picks(ev, session, EXIT) == []


# -- through the processor: detections kept, health heard, evidence read back from the inbox --------
def raw(msg: object) -> RawMessage:
    return RawMessage(topic_for(msg, "t"), encode(msg), 0.0)  # type: ignore[arg-type]


def build(layout: StoreLayout, fake: FakeUnitOfWork) -> StoreProcessor:
    uow = cast(UnitOfWork, fake)  # the fake keeps the port's contract (tests/unit/test_fakes_behave.py)
    return StoreProcessor(
        layout=layout,
        uow_factory=lambda: uow,
        payments=FakePaymentGateway({"acct-1": 10_000}),
        mailer=FakeMailer(),
        backend=FakeBackend(),
        clock=FakeClock(),
        replay_start=100.0,
    )


def hand(seq: int, ts: float, label: str, at: tuple[float, float]) -> ItemDetections:
    item = ItemDetection(label=label, confidence=0.9, x_m=at[0], y_m=at[1], track_id="a")
    return ItemDetections(node_id="cam", seq=seq, ts=ts, camera_id="cam", detections=[item])


def test_the_processor_keeps_detections_rebuilds_them_and_forgets_them(layout: StoreLayout) -> None:
    uow = FakeUnitOfWork()
    proc = build(layout, uow)
    assert proc.ctx.sightings is proc.sightings
    proc.handle_batch([raw(hand(0, 120.0, "cola", AT_P1)), raw(hand(1, 121.0, "lemon", AT_P2))])
    assert [s.sku for s in proc.sightings.window(0, 1e9)] == ["cola", "lemon"]
    assert proc.sightings.scores(layout, ["P1"], 119.0, 121.0, ["a"]) == {"cola": 0.9}

    restarted = build(layout, uow)
    restarted.recover()
    assert [s.msg_id for s in restarted.sightings.window(0, 1e9)] == ["cam:0", "cam:1"]

    nodes = ("cam", "shelf-g1", "gate-in", "gate-out")
    restarted.handle_batch([raw(Heartbeat(node_id=n, seq=5, ts=400.0)) for n in nodes])
    assert len(restarted.sightings) == 0  # beyond the horizon of event time


def shelf_event(plate: str, delta_g: float, t_start: float, t_end: float) -> WeightEvent:
    return WeightEvent(
        node_id="shelf-g1",
        seq=0,
        ts=t_end + 0.3,
        gondola_id="G1",
        shelf_id="G1-S1",
        plate_ids=[plate],
        delta_g=delta_g,
        t_start=t_start,
        t_end=t_end,
    )


def test_visit_evidence_reads_the_visit_from_the_inbox(layout: StoreLayout) -> None:
    uow = FakeUnitOfWork()
    proc = build(layout, uow)
    weigh = shelf_event("P4", -180.0, 109.0, 110.0)
    proc.handle_batch(
        [raw(weigh), raw(hand(0, 120.0, "cola", AT_P1)), raw(hand(1, EXIT + 5, "lemon", AT_P2))]
    )
    ev = visit_evidence(cast(UnitOfWork, uow), layout, visit(), EXIT, failed_plates={"P2"})
    assert [s.sku for s in ev.sightings.window(0, 1e9)] == ["cola"]  # the lemon came after the exit
    assert ev.weighed == (Weighed("shelf-g1:0", 109.0, 110.0, ("P4",), -180.0),)
    assert ev.failed_plates == frozenset({"P2"})
    assert [ln.sku for ln in unweighed_picks(ev, visit(), EXIT)] == ["cola"]


def test_shelf_nodes_report_failed_plates_for_their_own_plates_only(layout: StoreLayout) -> None:
    proc = build(layout, FakeUnitOfWork())

    def status(node: str, state: str, sensors: dict[str, str]) -> RawMessage:
        msg = NodeStatus(node_id=node, state=state, ts=150.0, sensors=sensors)  # type: ignore[arg-type]
        return RawMessage(topic("t", node, "status"), encode(msg), 0.0)

    proc.handle_batch([status("shelf-g1", "online", {"P1": "failed", "P2": "ok", "P3": "degraded"})])
    proc.handle_batch([status("cam", "online", {"P2": "failed"})])  # a camera cannot speak for a plate
    assert proc.sensor_health.failed_plates() == frozenset({"P1"})
    assert proc.sensor_health.state("P3") == "degraded"
    proc.handle_batch([status("shelf-g1", "offline", {})])  # the last will says nothing of the plates
    assert proc.sensor_health.failed_plates() == frozenset({"P1"})
    proc.handle_batch([status("shelf-g1", "online", {"P1": "ok"})])
    assert proc.sensor_health.failed_plates() == frozenset()


def test_a_pick_whose_shelf_settled_after_the_exit_gate_was_weighed(layout: StoreLayout) -> None:
    # The shopper took a cola at 120 s and passed the exit at 200 s while another hand still kept
    # the shelf moving: the event (120-201 s) ends after the exit, which waited for it. The plate
    # weighed the pick, so the camera's sighting adds nothing (it charged the cola twice).
    uow = FakeUnitOfWork()
    proc = build(layout, uow)
    weigh = shelf_event("P1", -350.0, 120.0, 201.0)
    proc.handle_batch([raw(weigh), raw(hand(0, 121.0, "cola", AT_P1))])
    ev = visit_evidence(cast(UnitOfWork, uow), layout, visit(), EXIT)
    assert [w.msg_id for w in ev.weighed] == ["shelf-g1:0"]
    assert unweighed_picks(ev, visit(), EXIT) == []
