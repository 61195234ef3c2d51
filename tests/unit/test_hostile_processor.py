"""The store processor on fakes against hostile traffic: one bad message is one dead letter and the
store goes on; a database outage is retried, never dead-lettered; clocks and node rights hold."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import REGISTRY

from edge.contracts import GatePass, Heartbeat, ShopperTracks, TrackPoint, WeightEvent, encode, topic_for
from store_server.domain.watermark import Watermark
from store_server.service.health import IngestState, Thresholds, degraded_reasons
from store_server.service.ingest import RawMessage
from store_server.service.processor import StoreProcessor
from tests.fakes import (
    FakeBackend,
    FakeClock,
    FakeDeadLetters,
    FakeInbox,
    FakeMailer,
    FakePaymentGateway,
    FakeUnitOfWork,
)
from tests.unit.test_processor import one_visit, receipts_of

CHARGED = [("s-gate-in-0", [("cola", 2)], 310, "approved")]


class Trouble:
    """What the flaky fakes refuse. Kept outside them: the fake unit of work restores their state."""

    poison: set[str] = set()
    down: Exception | None = None


@pytest.fixture(autouse=True)
def _no_trouble() -> None:
    Trouble.poison, Trouble.down = set(), None


class FlakyInbox(FakeInbox):
    """An inbox that refuses one message (as PostgreSQL refused NaN in JSON) or, in an outage, all."""

    def add_many(self, rows):  # type: ignore[no-untyped-def]
        if Trouble.down is not None:
            raise Trouble.down
        if any(r.msg_id in Trouble.poison for r in rows):
            raise ValueError("invalid input syntax for type json")
        return super().add_many(rows)


class FlakyDeadLetters(FakeDeadLetters):
    def add(self, letter):  # type: ignore[no-untyped-def]
        if Trouble.down is not None:
            raise Trouble.down
        super().add(letter)


def flaky_uow() -> FakeUnitOfWork:
    uow = FakeUnitOfWork()
    uow.inbox, uow.dead_letters = FlakyInbox(), FlakyDeadLetters()
    uow._committed = uow._state()
    return uow


def build(layout, uow: FakeUnitOfWork | None = None, **options: Any) -> tuple[StoreProcessor, FakeUnitOfWork]:
    uow = uow or FakeUnitOfWork()
    proc = StoreProcessor(
        layout=layout,
        uow_factory=lambda: uow,
        payments=FakePaymentGateway({"acct-1": 10_000}),
        mailer=FakeMailer(),
        backend=FakeBackend(),
        clock=FakeClock(),
        **options,
    )
    proc.ctx.accept_raw_tokens = True  # bare tokens: this test is not about entry codes
    return proc, uow


def raw(topic: str, payload: Any) -> RawMessage:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return RawMessage(topic, data, 0.0)


def msg(message: Any) -> RawMessage:
    return RawMessage(topic_for(message, "t"), encode(message), 0.0)


def letters(uow: FakeUnitOfWork) -> list[tuple[str, str]]:
    return [(d.field, d.reason) for d in uow.dead_letters.list()]


def test_a_deeply_nested_payload_is_one_dead_letter_and_the_visit_is_still_charged(layout):
    proc, uow = build(layout)
    traffic = one_visit().raw()
    traffic.insert(3, raw("walkout/t/cam/tracks", b"[" * 100_000))
    proc.handle_batch(traffic)
    assert [f for f, _ in letters(uow)] == ["payload"]
    assert receipts_of(uow) == CHARGED


def test_a_message_the_database_refuses_is_found_by_splitting_the_batch_and_dead_lettered(layout):
    proc, uow = build(layout, flaky_uow())
    traffic = one_visit().raw()
    poison = json.loads(traffic[7].payload)
    Trouble.poison.add(f"{poison['node_id']}:{poison['seq']}")
    proc.handle_batch(traffic)
    ((field, reason),) = letters(uow)
    assert field == "payload" and "could not be stored" in reason and "json" in reason
    assert uow.inbox.count() == len(traffic) - 1
    assert receipts_of(uow) == CHARGED


def test_a_database_outage_is_retried_and_never_dead_letters_good_messages(layout):
    proc, uow = build(layout, flaky_uow())
    traffic = one_visit().raw()
    Trouble.down = ConnectionError("database unreachable")
    with pytest.raises(ConnectionError):
        proc.handle_batch(traffic)  # the consumer keeps the batch unacknowledged and retries it
    assert uow.dead_letters.count() == 0 and uow.inbox.count() == 0
    Trouble.down = None
    proc.handle_batch(traffic)
    assert uow.dead_letters.count() == 0 and receipts_of(uow) == CHARGED


def test_a_decision_that_fails_with_any_non_outage_error_is_dead_lettered(layout, monkeypatch):
    from store_server.service import handlers

    real = handlers.change_cart

    def broken(ctx, uow_, message, topic, received_at):  # type: ignore[no-untyped-def]
        if message.delta_g < -700:
            raise RecursionError("maximum recursion depth exceeded")
        return real(ctx, uow_, message, topic, received_at)

    monkeypatch.setattr(handlers, "change_cart", broken)
    proc, uow = build(layout)
    proc.handle_batch(one_visit().raw())
    ((field, reason),) = letters(uow)
    assert field == "payload" and "RecursionError" in reason
    assert [r[0] for r in receipts_of(uow)] == []  # the shopper took nothing else: left empty
    assert uow.sessions.get("s-gate-in-0").state == "empty"


def test_a_heartbeat_from_the_year_2100_cannot_move_the_watermark(layout):
    clock = FakeClock(start=118.0)  # the system clock, near the store's event times
    proc, uow = build(layout, reference_clock=clock)
    proc.handle_batch([msg(Heartbeat(node_id="cam", seq=900, ts=4_102_444_800.0))])
    ((field, reason),) = letters(uow)
    assert field == "ts" and "ahead" in reason
    proc.handle_batch(one_visit().raw())
    assert proc.watermark.value() <= 125.0
    assert receipts_of(uow) == CHARGED  # later visits are still charged


def test_in_a_replay_one_node_running_ahead_holds_nobody_back_and_moves_nothing():
    wm = Watermark(frozenset({"a", "b", "c", "d"}), stale_after_s=10.0, max_ahead_s=300.0)
    for node in "abc":
        wm.observe(node, 1000.0)
    wm.observe("d", 4_102_444_800.0)  # heard before the others could vouch for the clock
    assert wm.consensus() == 1000.0
    assert wm.value() == 1000.0 and wm.newest() == 1000.0
    assert list(wm.out_of_range()) == ["d"]
    wm.observe("a", 1001.0)
    wm.observe("b", 1001.0)
    wm.observe("c", 1001.0)
    assert wm.value() == 1001.0


def test_the_watermark_never_passes_the_reference_clock_plus_the_skew():
    wm = Watermark(frozenset({"a"}), max_ahead_s=300.0, clock=lambda: 1000.0)
    wm.observe("a", 5000.0)
    assert wm.value() <= 1300.0


def test_a_replay_checks_times_against_its_start_until_most_nodes_have_spoken(layout):
    proc, uow = build(layout, replay_start=100.0)
    proc.handle_batch([msg(Heartbeat(node_id="shelf-g1", seq=900, ts=100.0 + 3600.0))])
    assert [f for f, _ in letters(uow)] == ["ts"]
    proc.handle_batch(one_visit().raw())
    assert receipts_of(uow) == CHARGED


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (  # a shelf node opening the entry gate for a group of 20
            GatePass(node_id="shelf-g1", seq=900, ts=100.2, gate_id="in", direction="entry",
                     account_token="acct-1", group_size=20),
            "gate_id",
        ),
        (  # the camera node publishing weight for the shelf node's gondola
            WeightEvent(node_id="cam", seq=900, ts=109.0, gondola_id="G1", shelf_id="G1-S1",
                        plate_ids=["P2"], delta_g=-352.0, t_start=108.5, t_end=108.8),
            "gondola_id",
        ),
        (  # the shelf node naming a plate of no shelf of its own
            WeightEvent(node_id="shelf-g1", seq=900, ts=109.0, gondola_id="G1", shelf_id="G1-S1",
                        plate_ids=["P9"], delta_g=-352.0, t_start=108.5, t_end=108.8),
            "plate_ids",
        ),
        (  # a gate node publishing tracks
            ShopperTracks(node_id="gate-out", seq=900, ts=105.0, camera_id="cam",
                          tracks=[TrackPoint(track_id="ghost", x_m=2.5, y_m=3.5)]),
            "camera_id",
        ),
        (Heartbeat(node_id="intruder", seq=1, ts=110.0), "node_id"),
    ],
)
def test_a_node_may_speak_only_for_what_the_layout_gives_it(layout, message, field):
    proc, uow = build(layout)
    traffic = one_visit().raw()
    traffic.insert(4, msg(message))
    proc.handle_batch(traffic)
    ((got, reason),) = letters(uow)
    assert got == field and reason
    assert receipts_of(uow) == CHARGED
    assert [s.id for s in uow.sessions.list()] == ["s-gate-in-0"]


def _dead_letter_label_values() -> set[str]:
    values: set[str] = set()
    for metric in REGISTRY.collect():
        if metric.name == "walkout_dead_letters":
            values |= {s.labels["field"] for s in metric.samples if "field" in s.labels}
    return values


def test_5000_unique_extra_keys_do_not_grow_the_metric_labels(layout):
    proc, uow = build(layout)
    base = {"v": 1, "node_id": "shelf-g1", "ts": 100.0}
    spam = [
        raw("walkout/t/shelf-g1/heartbeat", {**base, "seq": 10_000 + i, f"k{i:05d}-" + "x" * 80: 1})
        for i in range(5000)
    ]
    for i in range(0, len(spam), 500):
        proc.handle_batch(spam[i : i + 500])
    assert uow.dead_letters.count() == 5000
    assert len(_dead_letter_label_values()) <= 40
    assert "other" in _dead_letter_label_values()


def test_a_tracks_message_with_14k_points_is_refused_and_the_store_goes_on(layout):
    proc, uow = build(layout)
    points = [{"track_id": f"p{i}", "x_m": 1.0 + i % 7, "y_m": 2.0} for i in range(14_000)]
    body = {"v": 1, "node_id": "cam", "seq": 900, "ts": 100.1, "camera_id": "cam", "tracks": points}
    flood = raw("walkout/t/cam/tracks", body)
    traffic = one_visit().raw()
    traffic.insert(2, flood)
    proc.handle_batch(traffic)
    assert [f for f, _ in letters(uow)] in (["payload"], ["tracks"])  # too many bytes or points
    assert proc.tracks.track_ids() == ["a"]
    assert receipts_of(uow) == CHARGED


def test_health_gives_the_reasons_ingest_is_stuck_lagging_or_a_node_is_out_of_range():
    wm = Watermark(frozenset({"a", "b", "c"}), max_ahead_s=300.0, clock=lambda: 1000.0)
    wm.observe("a", 999.0)
    limits = Thresholds(stuck_after_s=30.0, max_lag_s=60.0, max_queued=100)
    fine = IngestState(connected=True, queued=3, oldest_age_s=0.2, failing_for_s=0.0)
    assert degraded_reasons(fine, wm, limits) == []
    bad = IngestState(connected=False, queued=500, oldest_age_s=120.0, failing_for_s=45.0, last_error="DB")
    wm.observe("b", 5000.0)
    reasons = degraded_reasons(bad, wm, limits)
    assert any(r.startswith("ingest stuck: not connected") for r in reasons)
    assert any("failed to store for 45 s (DB)" in r for r in reasons)
    assert any("120 s old" in r for r in reasons) and any("500 messages" in r for r in reasons)
    assert any(r.startswith("node b: watermark out of range") for r in reasons)


def test_a_camera_inventing_track_ids_cannot_grow_the_track_history_without_bound(layout, monkeypatch):
    from store_server.service import processor as processor_module

    monkeypatch.setattr(processor_module, "MAX_LIVE_TRACKS", 30)
    proc, uow = build(layout)
    traffic = one_visit().raw()
    for k in range(6):  # 6 x 20 new ids, each message valid on its own
        points = [TrackPoint(track_id=f"ghost-{k}-{i}", x_m=5.0, y_m=6.0) for i in range(20)]
        traffic.insert(10 + k, msg(ShopperTracks(node_id="cam", seq=900 + k, ts=102.0, camera_id="cam",
                                                 tracks=points)))
    proc.handle_batch(traffic)
    assert len(proc.tracks.track_ids()) <= 30 and "a" in proc.tracks.track_ids()
    assert receipts_of(uow) == CHARGED
