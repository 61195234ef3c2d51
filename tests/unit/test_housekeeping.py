"""Bounded growth on fakes: the visit timeout, inbox and dead-letter retention, the periodic job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from edge.contracts import GatePass, Heartbeat, ShopperTracks, TrackPoint, WeightEvent, encode, topic_for
from store_server.domain.layout import StoreLayout, parse_layout
from store_server.domain.review import ReviewKind, ReviewStatus
from store_server.domain.session import SessionState
from store_server.service import processor as processor_module
from store_server.service.housekeeping import Housekeeper, RetentionPolicy, prune
from store_server.service.ingest import RawMessage
from store_server.service.ports import DeadLetter, InboxRow, UnitOfWork
from store_server.service.processor import StoreProcessor
from tests.fakes import FakeBackend, FakeClock, FakeMailer, FakePaymentGateway, FakeUnitOfWork
from tests.unit.conftest import SMALL_STORE

T0 = 1_700_000_000.0  # event times near the fake clock, as a live store's are
NODES = ("shelf-g1", "gate-in", "gate-out", "cam")
SESSION = "s-gate-in-0"
CAMERA = {
    "id": "cam",
    "kind": "ceiling",
    "node_id": "cam",
    "image_size": [640, 480],
    "homography": [[0.025, 0, 0], [0, 0.025, 0], [0, 0, 1]],
}


def parse_layout_with_camera() -> StoreLayout:
    """The small unit-test store with a ceiling camera (tracks come from a node of the layout)."""
    return parse_layout({**SMALL_STORE, "cameras": [CAMERA]})


@pytest.fixture()
def layout() -> StoreLayout:
    return parse_layout_with_camera()


class Store:
    """A processor (on fakes unless given a unit of work factory), fed one message at a time with the
    wall clock following event time."""

    def __init__(
        self,
        layout: Any,
        uow: FakeUnitOfWork | None = None,
        timeout_s: float = 1800.0,
        uow_factory: Callable[[], UnitOfWork] | None = None,
        system_clock: bool = False,
    ) -> None:
        self.uow = uow or FakeUnitOfWork()
        self.clock = FakeClock(T0)
        self.payments = FakePaymentGateway({"acct-1": 100_000, "acct-2": 100_000})
        self.proc = StoreProcessor(
            layout=layout,
            uow_factory=uow_factory or (lambda: self.uow),
            payments=self.payments,
            mailer=FakeMailer(),
            backend=FakeBackend(),
            clock=self.clock,
            visit_timeout_s=timeout_s,
            # event times checked against the (fake) wall clock, as in production; else a replay's
            reference_clock=self.clock if system_clock else None,
        )
        self.proc.ctx.accept_raw_tokens = True  # bare tokens: this test is not about entry codes
        self.seq: dict[str, int] = {}
        self.last_beat = 0.0

    def send(self, cls: type, node: str, t: float, **fields: Any) -> None:
        self.seq[node] = self.seq.get(node, -1) + 1
        msg = cls(node_id=node, seq=self.seq[node], ts=T0 + t, **fields)
        self.clock.set(T0 + t)
        self.proc.handle_batch([RawMessage(topic_for(msg, "t"), encode(msg), T0 + t)])

    def walk(self, track: str, t0: float, t1: float, x: float, y: float) -> None:
        t = t0
        while t <= t1 + 1e-9:
            self.send(
                ShopperTracks,
                "cam",
                round(t, 3),
                camera_id="cam",
                tracks=[TrackPoint(track_id=track, x_m=x, y_m=y)],
            )
            t += 1.0

    def heartbeats(self, t: float) -> None:
        for node in NODES:
            self.send(Heartbeat, node, t)
        self.last_beat = t

    def idle(self, until: float, step: float = 120.0) -> None:
        """Heartbeats every ``step`` up to ``until``: event time moves on as in a store nobody visits."""
        while self.last_beat + step < until:
            self.heartbeats(self.last_beat + step)
        self.heartbeats(until)

    def enter_and_pick(self, track: str = "a", account: str = "acct-1", t: float = 100.0) -> None:
        self.walk(track, t, t + 1.0, 0.5, 0.5)
        self.send(GatePass, "gate-in", t + 0.5, gate_id="in", direction="entry", account_token=account)
        self.walk(track, t + 2.0, t + 10.0, 2.5, 3.5)  # at the cola plate, then gone for good
        self.send(
            WeightEvent,
            "shelf-g1",
            t + 8.3,
            gondola_id="G1",
            shelf_id="G1-S1",
            plate_ids=["P1"],
            delta_g=-701.0,
            t_start=T0 + t + 7.0,
            t_end=T0 + t + 8.0,
            noise_g=0.5,
        )
        self.heartbeats(t + 12.0)

    def session(self, session_id: str = SESSION) -> Any:
        with self.proc.uow_factory() as uow:
            return uow.sessions.get(session_id)

    def reviews(self) -> list[Any]:
        with self.proc.uow_factory() as uow:
            return uow.reviews.list()


def test_a_shopper_gone_for_good_is_closed_uncharged_and_their_cart_goes_to_review(layout):
    store = Store(layout)
    store.enter_and_pick()  # last seen at t=110 (the last track point)
    store.idle(110.0 + 1799.0)
    assert store.session().state is SessionState.OPEN  # a sighting the track history forgot still counts

    store.idle(110.0 + 1801.0)

    session = store.session()
    assert session.state is SessionState.TIMED_OUT
    assert session.exited_at == pytest.approx(T0 + 110.0)
    assert store.uow.receipts.list() == [] and store.payments.calls == []  # never charged by itself
    assert store.uow.outbox.pending() == []
    (item,) = store.uow.reviews.list()
    assert item.kind is ReviewKind.VISIT_TIMEOUT and item.status is ReviewStatus.OPEN
    assert item.session_id == SESSION and item.created_at == pytest.approx(T0 + 1910.0)
    assert "not seen since" in item.summary and "not charged" in item.summary
    assert [(c["sku"], c["quantity"]) for c in item.evidence["cart"]] == [("cola", 2)]
    assert item.evidence["total_cents"] == 310 and item.evidence["charged"] is False
    assert item.evidence["last_seen_at"] == pytest.approx(T0 + 110.0)


def test_staff_dismiss_a_timed_out_visit_and_nothing_is_charged(layout):
    from store_server.service.review import ReviewService

    store = Store(layout)
    store.enter_and_pick()
    store.idle(2000.0)
    (item,) = store.uow.reviews.list()
    service = ReviewService(layout, lambda: store.uow, None, store.payments, FakeBackend())  # type: ignore[arg-type]
    resolved = service.resolve(item.id, "keep", None, "staff@example.com", "left through the fire exit")
    assert resolved.status is ReviewStatus.DISMISSED
    assert store.payments.calls == [] and store.uow.receipts.list() == []


def test_the_timeout_is_decided_in_event_time_order_at_any_batch_size(layout):
    """A weight event due after the timeout ran out must not be put in the gone shopper's cart
    (as 'the only shopper in the store'), whether it arrives in the same batch or later."""

    def run(one_batch: bool) -> tuple[Any, list[Any]]:
        store = Store(layout)
        store.enter_and_pick()
        store.idle(1905.0)  # the timeout runs out at 1910
        late_pick = WeightEvent(
            node_id="shelf-g1",
            seq=store.seq["shelf-g1"] + 1,
            ts=T0 + 1950.3,
            gondola_id="G1",
            shelf_id="G1-S1",
            plate_ids=["P3"],
            delta_g=-180.0,
            t_start=T0 + 1949.0,
            t_end=T0 + 1950.0,
            noise_g=0.5,
        )
        beats = [
            Heartbeat(node_id=n, seq=store.seq[n] + 1 + (n == "shelf-g1"), ts=T0 + 2000.0) for n in NODES
        ]
        raws = [RawMessage(topic_for(m, "t"), encode(m), T0 + 2000.0) for m in [late_pick, *beats]]
        store.clock.set(T0 + 2000.0)
        if one_batch:
            store.proc.handle_batch(raws)
        else:
            for raw in raws:
                store.proc.handle_batch([raw])
        return store.session(), store.uow.reviews.list()

    for one_batch in (True, False):
        session, reviews = run(one_batch)
        assert session.state is SessionState.TIMED_OUT
        assert [(ln.sku, ln.quantity) for ln in session.cart()] == [("cola", 2)]
        assert [r.kind for r in reviews] == [ReviewKind.VISIT_TIMEOUT]


def test_a_restart_remembers_when_the_shopper_was_last_seen(layout):
    first = Store(layout)
    first.enter_and_pick()
    first.idle(1000.0)  # the track history forgot t=110 long ago

    again = Store(layout, uow=first.uow)  # a new process on the same database
    again.seq, again.last_beat = dict(first.seq), first.last_beat
    again.proc.recover()
    again.idle(110.0 + 1799.0)
    assert again.session().state is SessionState.OPEN  # not closed from the pick at t=108
    again.idle(110.0 + 1801.0)
    assert again.session().state is SessionState.TIMED_OUT
    (item,) = again.uow.reviews.list()
    assert item.evidence["last_seen_at"] == pytest.approx(T0 + 110.0)


def test_a_visit_with_an_empty_cart_times_out_without_a_review_item(layout):
    store = Store(layout)
    store.walk("a", 100.0, 101.0, 0.5, 0.5)
    store.send(GatePass, "gate-in", 100.5, gate_id="in", direction="entry", account_token="acct-1")
    store.idle(2000.0)
    assert store.session().state is SessionState.TIMED_OUT
    assert store.uow.reviews.list() == []


def test_a_shopper_still_walking_around_is_never_timed_out_and_the_policy_can_be_off(layout):
    store = Store(layout)
    store.enter_and_pick()
    store.idle(1800.0)
    store.walk("a", 1800.0, 1800.0, 4.0, 4.0)  # seen again, long after the pick
    store.idle(1800.0 + 1799.0)
    assert store.session().state is SessionState.OPEN

    off = Store(layout, timeout_s=0)
    off.enter_and_pick()
    off.idle(10_000.0, step=290.0)
    assert off.session().state is SessionState.OPEN


def test_receipt_latencies_and_outbox_retry_times_stay_bounded(layout, monkeypatch):
    monkeypatch.setattr(processor_module, "LATENCIES_KEPT", 3)
    store = Store(layout)
    for i in range(5):
        t = 100.0 + i * 100
        track = f"t{i}"
        store.enter_and_pick(track=track, t=t)
        store.walk(track, t + 11.0, t + 12.0, 9.5, 0.5)
        store.send(GatePass, "gate-out", t + 11.5, gate_id="out", direction="exit")
        store.heartbeats(t + 15.0)
    assert len(store.uow.receipts.list()) == 5
    visits = sorted(store.uow.sessions.list(), key=lambda s: s.entered_at)
    assert list(store.proc.latencies_s) == [s.id for s in visits[2:]]  # the newest three

    store.proc._outbox_retry_at[999_999] = T0 + 10**6  # an item another worker sent meanwhile
    store.proc.relay_outbox()
    assert 999_999 not in store.proc._outbox_retry_at


# -- retention ------------------------------------------------------------------------------------


def _row(msg_id: str, node: str, ts: float, received_at: float, processed: bool = True) -> InboxRow:
    return InboxRow(msg_id, node, "heartbeat", f"t/t/{node}/heartbeat", ts, ts, {}, received_at, processed)


@pytest.fixture()
def old_inbox() -> FakeUnitOfWork:
    uow = FakeUnitOfWork()
    rows = [_row(f"cam:{i}", "cam", 100.0 + i, 100.0 + i) for i in range(40)]  # ts/received 100..139
    rows.append(_row("shelf:0", "shelf", 105.0, 105.0, processed=False))  # not decided yet
    rows.append(_row("shelf:1", "shelf", 110.0, 110.0, processed=False))
    rows.append(_row("gate:0", "gate", 101.0, 101.0))  # a node's only (so newest) row
    uow.inbox.add_many(rows)
    for i in range(7):
        uow.dead_letters.add(DeadLetter("t/t/x/weight", b"x" * 10, "bad", "payload", 100.0 + i * 10))
    uow.commit()
    return uow


def test_prune_deletes_only_old_processed_rows_and_keeps_what_recovery_needs(old_inbox):
    uow = old_inbox
    marks = uow.inbox.node_watermarks()
    # received/ts before 130 (retention 70 s at now=200); the event-time window keeps ts >= 139 - 5
    policy = RetentionPolicy(inbox_retention_s=70.0, dead_letter_retention_s=70.0, keep_event_s=5.0)
    report = prune(lambda: uow, policy, now=200.0)
    assert report.inbox_rows == 30 and report.dead_letters == 3  # cam:0..29; letters at 100, 110, 120
    left = set(uow.inbox.rows)
    assert {f"cam:{i}" for i in range(30, 40)} <= left and {"shelf:0", "shelf:1", "gate:0"} <= left
    assert len(left) == 13
    assert uow.inbox.node_watermarks() == marks  # a restart finds the same watermarks
    assert [d.received_at for d in uow.dead_letters.letters] == [130.0, 140.0, 150.0, 160.0]


def test_the_event_time_window_protects_rows_a_restart_reads_back(old_inbox):
    uow = old_inbox
    policy = RetentionPolicy(inbox_retention_s=70.0, keep_event_s=20.0)  # keep ts >= 119
    assert prune(lambda: uow, policy, now=200.0).inbox_rows == 19  # cam:0..18


def test_a_dry_run_counts_and_deletes_nothing(old_inbox):
    uow = old_inbox
    policy = RetentionPolicy(
        inbox_retention_s=70.0, dead_letter_retention_s=70.0, keep_event_s=5.0, batch_rows=8
    )
    report = prune(lambda: uow, policy, now=200.0, dry_run=True)
    assert (report.inbox_rows, report.inbox_batches, report.dead_letters) == (30, 4, 3)
    assert "would delete 30" in str(report)
    assert uow.inbox.count() == 43 and uow.dead_letters.count() == 7


def test_prune_works_in_bounded_batches_and_says_when_more_is_left(old_inbox):
    uow = old_inbox
    policy = RetentionPolicy(inbox_retention_s=70.0, keep_event_s=5.0, batch_rows=8)
    commits = uow.commits
    first = prune(lambda: uow, policy, now=200.0, max_batches=2)
    assert (first.inbox_rows, first.inbox_batches, first.more) == (16, 2, True)
    rest = prune(lambda: uow, policy, now=200.0)
    assert (rest.inbox_rows, rest.inbox_batches, rest.more) == (14, 2, False)
    assert uow.commits - commits >= 4  # one transaction per batch


def test_the_periodic_job_runs_every_interval_of_wall_time_and_works_off_a_backlog(old_inbox):
    uow, clock = old_inbox, FakeClock(200.0)
    policy = RetentionPolicy(inbox_retention_s=70.0, keep_event_s=10.0, batch_rows=8)  # ts < 129
    job = Housekeeper(lambda: uow, clock, policy, interval_s=300.0, max_batches=1, backlog_pause_s=1.0)
    assert job.tick().inbox_rows == 8  # the first batch after a start prunes
    assert job.tick() is None  # a backlog waits a second, not a batch
    clock.advance(1.0)
    ticks = 1
    while job.tick() is not None:
        clock.advance(1.0)
        ticks += 1
    assert uow.inbox.count() == 14 and ticks == 4  # 8 + 8 + 8 + 5
    clock.advance(200.0)
    assert job.tick() is None  # nothing left: the next run is a whole interval later
    clock.advance(100.0)
    assert job.tick() is not None


def test_a_failing_prune_never_stops_the_worker(layout, old_inbox):
    class Broken:
        def __enter__(self) -> Any:
            raise RuntimeError("database gone")

        def __exit__(self, *exc: object) -> None: ...

    job = Housekeeper(lambda: Broken(), FakeClock(200.0), RetentionPolicy(), interval_s=300.0)  # type: ignore[arg-type,return-value]
    assert job.tick() is None and job.next_at == 500.0

    store = Store(layout)
    calls: list[int] = []
    store.proc.housekeeping = lambda: calls.append(1)
    store.heartbeats(1.0)
    assert calls == [1, 1, 1, 1]  # once per batch the worker handled


def test_a_late_copy_of_a_pruned_message_is_refused_not_decided_again(layout):
    """The inbox is also the dedup table: retention waits until a copy would be refused as too old."""
    from store_server.bootstrap import retention_policy
    from store_server.settings import Settings

    store = Store(layout, system_clock=True)
    store.enter_and_pick()
    pick_id = "shelf-g1:0"
    with store.proc.uow_factory() as uow:
        raw = uow.inbox.rows[pick_id]
    copy = RawMessage(raw.topic, encode(WeightEvent.model_validate(raw.payload)), 0.0)
    policy = retention_policy(Settings(inbox_retention_s=3600.0))  # asks for less than the dedup window

    store.clock.set(T0 + 3600.0 * 2)
    store.heartbeats(3600.0 * 2)
    assert prune(lambda: store.uow, policy, store.clock.now()).inbox_rows == 0  # a copy would be taken

    days = policy.inbox_retention_s + 3600.0
    store.clock.set(T0 + days)
    store.heartbeats(days)
    assert prune(lambda: store.uow, policy, store.clock.now()).inbox_rows > 0
    assert store.uow.inbox.received_at(pick_id) is None
    store.proc.handle_batch([RawMessage(copy.topic, copy.payload, store.clock.now())])
    assert store.uow.inbox.received_at(pick_id) is None  # refused as too old: stored and decided once
    assert store.uow.dead_letters.list(1)[0].field in ("ts", "t_start")


def test_a_visit_timeout_under_a_minute_is_refused_with_its_name():
    from pydantic import ValidationError

    from store_server.settings import Settings

    with pytest.raises(ValidationError, match="visit_timeout_s"):
        Settings(visit_timeout_s=30)
    assert Settings(visit_timeout_s=0).visit_timeout_s == 0  # off
