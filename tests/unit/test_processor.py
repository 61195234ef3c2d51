"""The store processor on in-memory fakes: a visit becomes a receipt, by event time, exactly once."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from edge.contracts import GatePass, Heartbeat, ShopperTracks, TrackPoint, WeightEvent, encode, topic_for
from store_server.service.ingest import RawMessage
from store_server.service.processor import StoreProcessor
from tests.fakes import FakeBackend, FakeClock, FakeMailer, FakePaymentGateway, FakeUnitOfWork


class Script:
    """Builds the messages of a store's edge nodes with per-node sequence numbers."""

    def __init__(self) -> None:
        self.seq: dict[str, int] = {}
        self.messages: list[tuple[float, RawMessage]] = []

    def _next(self, node: str) -> int:
        self.seq[node] = self.seq.get(node, -1) + 1
        return self.seq[node]

    def add(self, cls: type, node: str, ts: float, **fields: Any) -> Any:
        msg = cls(node_id=node, seq=self._next(node), ts=ts, **fields)
        self.messages.append((ts, RawMessage(topic_for(msg, "t"), encode(msg), 0.0)))
        return msg

    def walk(
        self, track: str, t0: float, t1: float, start: tuple[float, float], end: tuple[float, float]
    ) -> None:
        steps = int((t1 - t0) * 5)
        for i in range(steps + 1):
            f = i / steps if steps else 1
            pos = (start[0] + (end[0] - start[0]) * f, start[1] + (end[1] - start[1]) * f)
            self.add(
                ShopperTracks,
                "cam",
                round(t0 + i * 0.2, 3),
                camera_id="cam",
                tracks=[TrackPoint(track_id=track, x_m=pos[0], y_m=pos[1])],
            )

    def weight(
        self, ts: float, plates: list[str], delta_g: float, t_start: float, t_end: float, **fields: Any
    ) -> WeightEvent:
        """A weight event of shelf G1-S1, published by its node at ``ts``."""
        return self.add(
            WeightEvent,
            "shelf-g1",
            ts,
            gondola_id="G1",
            shelf_id="G1-S1",
            plate_ids=plates,
            delta_g=delta_g,
            t_start=t_start,
            t_end=t_end,
            **fields,
        )

    def two_colas(self, ts: float) -> None:
        """Two colas taken from P1 at 107-108 s, published by the shelf node at ``ts``."""
        self.weight(ts, ["P1"], -701.0, 107.0, 108.0, noise_g=0.5)

    def heartbeats(self, until: float) -> None:
        for node in ("shelf-g1", "gate-in", "gate-out", "cam"):
            self.add(Heartbeat, node, until)

    def raw(self) -> list[RawMessage]:
        return [m for _, m in sorted(self.messages, key=lambda item: item[0])]


def one_visit(put_back: bool = False, double_exit: bool = False) -> Script:
    s = Script()
    s.walk("a", 100.0, 102.0, (0.5, 0.5), (0.5, 0.6))
    s.add(GatePass, "gate-in", 100.5, gate_id="in", direction="entry", account_token="acct-1")
    s.walk("a", 102.2, 110.0, (0.6, 0.6), (2.5, 3.5))
    s.two_colas(108.3)
    if put_back:
        s.weight(109.3, ["P1"], 350.5, 108.5, 109.0, noise_g=0.5)
    s.walk("a", 110.2, 118.0, (2.5, 3.5), (9.5, 0.5))
    s.add(GatePass, "gate-out", 117.5, gate_id="out", direction="exit")
    if double_exit:
        s.add(GatePass, "gate-out", 117.9, gate_id="out", direction="exit")
    s.heartbeats(125.0)
    return s


@pytest.fixture()
def processor(layout):
    def build(balance: int = 10_000):
        uow = FakeUnitOfWork()
        payments = FakePaymentGateway({"acct-1": balance})
        backend, mailer = FakeBackend(), FakeMailer()
        proc = StoreProcessor(
            layout=layout,
            uow_factory=lambda: uow,
            payments=payments,
            mailer=mailer,
            backend=backend,
            clock=FakeClock(),
        )
        proc.ctx.accept_raw_tokens = True  # bare tokens here; codes: tests/unit/test_entry_codes.py
        return proc, uow, payments, backend, mailer

    return build


def receipts_of(uow: FakeUnitOfWork) -> list[tuple[str, list[tuple[str, int]], int, str]]:
    return [
        (r.session_id, [(ln.sku, ln.quantity) for ln in r.bill.lines], r.bill.total_cents, r.payment_status)
        for r in uow.receipts.list()
    ]


def test_a_visit_becomes_one_receipt_an_order_and_a_mail(processor):
    proc, uow, payments, backend, mailer = processor()
    proc.handle_batch(one_visit().raw())
    assert receipts_of(uow) == [("s-gate-in-0", [("cola", 2)], 310, "approved")]  # 2 x 129 + 20 % tax
    assert payments.balances["acct-1"] == 10_000 - 310
    assert [o.order_id for o in backend.list_orders("t")] == ["s-gate-in-0"]
    assert len(mailer.sent) == 1 and "Cola" in mailer.sent[0][1]


def test_a_put_back_leaves_the_cart(processor):
    proc, uow, *_ = processor()
    proc.handle_batch(one_visit(put_back=True).raw())
    assert receipts_of(uow)[0][1] == [("cola", 1)]


def test_nothing_is_decided_before_the_watermark_passes_it(processor):
    proc, uow, *_ = processor()
    raw = one_visit().raw()
    cut = next(i for i, m in enumerate(raw) if m.topic.endswith("gate-out/gate"))
    proc.handle_batch(raw[: cut + 1])
    assert uow.receipts.list() == []  # the exit waits for the shelves to catch up
    proc.handle_batch(raw[cut + 1 :])
    assert len(uow.receipts.list()) == 1


def test_batching_and_redelivery_do_not_change_the_receipts(processor):
    reference, ref_uow, *_ = processor()
    reference.handle_batch(one_visit(put_back=True).raw())
    proc, uow, payments, *_ = processor()
    raw = one_visit(put_back=True).raw()
    rng = random.Random(3)
    i = 0
    while i < len(raw):
        n = rng.randint(1, 7)
        proc.handle_batch(raw[i : i + n] + raw[max(0, i - 3) : i])  # every batch repeats earlier messages
        i += n
    assert receipts_of(uow) == receipts_of(ref_uow)
    assert len(payments.approved) == 1


def test_a_second_exit_of_the_same_shopper_charges_once(processor):
    proc, uow, payments, backend, _ = processor()
    proc.handle_batch(one_visit(double_exit=True).raw())
    assert len(uow.receipts.list()) == 1
    assert len([c for c in payments.calls]) == 1
    assert len(backend.list_orders("t")) == 1


def test_a_declined_charge_is_a_state_with_a_receipt_not_a_crash(processor):
    proc, uow, *_ = processor(balance=100)
    proc.handle_batch(one_visit().raw())
    (receipt,) = uow.receipts.list()
    assert receipt.payment_status == "declined" and receipt.decline_reason == "insufficient funds"
    assert uow.sessions.get("s-gate-in-0").state == "declined"


@pytest.mark.parametrize(
    "bad",
    [
        ("walkout/t/shelf-g1/weight", b"not json"),
        (
            "walkout/t/shelf-g1/weight",
            json.dumps({"v": 1, "node_id": "shelf-g1", "seq": 99, "ts": 1.0}).encode(),
        ),
        (
            "walkout/t/gate-in/gate",
            json.dumps(
                {"v": 1, "node_id": "gate-in", "seq": 98, "ts": 1.0, "gate_id": "in", "direction": "entry"}
            ).encode(),
        ),
        ("walkout/t/cam/tracks", json.dumps({"v": 2, "node_id": "cam", "seq": 1, "ts": 1.0}).encode()),
        ("walkout/t/cam/unknown", b"{}"),
        (
            "walkout/other-store/cam/heartbeat",
            json.dumps({"v": 1, "node_id": "cam", "seq": 1, "ts": 1.0}).encode(),
        ),
    ],
)
def test_malformed_messages_are_dead_lettered_and_valid_traffic_goes_on(processor, bad):
    proc, uow, *_ = processor()
    raw = one_visit().raw()
    raw.insert(5, RawMessage(bad[0], bad[1], 0.0))
    proc.handle_batch(raw)
    (letter,) = uow.dead_letters.list()
    assert letter.topic == bad[0] and letter.reason and letter.payload == bad[1]
    assert len(uow.receipts.list()) == 1


def test_an_unknown_plate_is_rejected_with_its_field(processor):
    proc, uow, *_ = processor()
    s = one_visit()
    s.weight(109.5, ["P9"], -350.0, 109.0, 109.2)
    proc.handle_batch(s.raw())
    (letter,) = uow.dead_letters.list()
    assert letter.field == "plate_ids" and "P9" in letter.reason


def test_an_order_the_backend_could_not_take_is_delivered_later_and_mail_is_not_held_up(processor):
    proc, uow, payments, backend, mailer = processor()
    backend.fail = ConnectionError("backend down")
    proc.handle_batch(one_visit().raw())
    assert backend.list_orders("t") == [] and len(mailer.sent) == 1  # the mail went out regardless
    assert len(uow.outbox.pending()) == 1
    backend.fail = None
    proc.clock.advance(31)
    proc.relay_outbox()
    assert [o.order_id for o in backend.list_orders("t")] == ["s-gate-in-0"]
    assert uow.outbox.pending() == []


def test_a_payment_gateway_outage_retries_the_exit_and_still_charges_once(processor):
    proc, uow, payments, *_ = processor()
    payments.outage = ConnectionError("gateway down")
    raw = one_visit().raw()
    with pytest.raises(ConnectionError):
        proc.handle_batch(raw)  # the consumer keeps the batch unacknowledged and retries it
    assert uow.receipts.list() == []
    proc.handle_batch(raw)
    assert len(uow.receipts.list()) == 1 and len(payments.approved) == 1


def test_a_message_the_handlers_cannot_decide_on_is_dead_lettered_and_the_store_goes_on(
    processor, monkeypatch
):
    from store_server.service import handlers

    proc, uow, *_ = processor()
    real = handlers.change_cart

    def broken(ctx, uow_, msg, topic, received_at):
        if msg.seq == 0:
            raise ValueError("cannot read this shelf")
        return real(ctx, uow_, msg, topic, received_at)

    monkeypatch.setattr(handlers, "change_cart", broken)
    s = one_visit()
    s.weight(109.5, ["P2"], -352.0, 108.9, 109.2)
    proc.handle_batch(s.raw())
    (letter,) = uow.dead_letters.list()
    assert "cannot read this shelf" in letter.reason and letter.topic.endswith("/weight")
    assert receipts_of(uow)[0][1] == [("lemon", 1)]  # the next event still reached the cart


def test_a_group_enters_on_one_code_and_pays_once_when_the_last_member_leaves(processor):
    proc, uow, payments, *_ = processor()
    s = Script()
    s.walk("a", 100.0, 102.0, (0.5, 0.5), (0.5, 0.6))
    s.walk("b", 100.0, 102.0, (0.3, 0.3), (0.3, 0.4))
    s.add(GatePass, "gate-in", 100.5, gate_id="in", direction="entry", account_token="acct-1", group_size=2)
    s.walk("a", 102.2, 110.0, (0.6, 0.6), (2.5, 3.5))  # a goes to the colas
    s.walk("b", 102.2, 110.0, (0.4, 0.4), (5.0, 3.5))  # b to the chips
    s.weight(108.3, ["P1"], -350.0, 107.0, 108.0)
    s.weight(110.1, ["P4"], -181.0, 109.3, 109.8)
    s.walk("a", 110.2, 118.0, (2.5, 3.5), (9.5, 0.5))
    s.add(GatePass, "gate-out", 117.5, gate_id="out", direction="exit")
    s.walk("b", 110.2, 130.0, (5.0, 3.5), (9.4, 0.4))
    s.add(GatePass, "gate-out", 129.5, gate_id="out", direction="exit")
    s.heartbeats(135.0)
    raw = s.raw()
    cut = next(i for i, m in enumerate(raw) if m.topic.endswith("gate-out/gate"))
    proc.handle_batch(raw[: cut + 60])
    assert uow.receipts.list() == []  # one member left, the other is still shopping
    proc.handle_batch(raw[cut + 60 :])
    assert receipts_of(uow) == [("s-gate-in-0", [("chips", 1), ("cola", 1)], 129 + 249 + 26 + 14, "approved")]
    assert len(payments.calls) == 1


def test_a_tracker_id_switch_keeps_the_shopper_in_their_session(processor):
    proc, uow, *_ = processor()
    s = Script()
    s.walk("a", 100.0, 102.0, (0.5, 0.5), (0.5, 0.6))
    s.add(GatePass, "gate-in", 100.5, gate_id="in", direction="entry", account_token="acct-1")
    s.walk("a", 102.2, 105.0, (0.6, 0.6), (1.5, 2.0))
    s.walk("a-new", 105.4, 110.0, (1.6, 2.1), (2.5, 3.5))  # the tracker lost "a" and found "a-new"
    s.weight(108.3, ["P1"], -350.0, 107.0, 108.0)
    s.walk("a-new", 110.2, 118.0, (2.5, 3.5), (9.5, 0.5))
    s.add(GatePass, "gate-out", 117.5, gate_id="out", direction="exit")
    s.heartbeats(125.0)
    proc.handle_batch(s.raw())
    assert receipts_of(uow) == [("s-gate-in-0", [("cola", 1)], 155, "approved")]
    session = uow.sessions.get("s-gate-in-0")
    assert [(b.track_id, b.end_reason) for b in session.tracks] == [("a", "continued"), ("a-new", "exit")]


def test_raw_weight_samples_advance_the_watermark_but_are_not_stored(processor):
    from edge.contracts import WeightSamples

    proc, uow, *_ = processor()
    s = one_visit()
    s.messages = [(t, m) for t, m in s.messages if not m.topic.endswith("shelf-g1/heartbeat")]
    s.add(
        WeightSamples,
        "shelf-g1",
        125.0,
        gondola_id="G1",
        shelf_id="G1-S1",
        plate_ids=["P1"],
        rate_hz=60,
        t0=124.9,
        grams=[[1000.0] * 6],
    )
    proc.handle_batch(s.raw())
    assert len(uow.receipts.list()) == 1  # the shelf's samples told the server it had caught up
    assert not any(row.kind == "samples" for row in uow.inbox.rows.values())


def test_with_one_shopper_in_the_store_an_event_nobody_was_seen_at_is_theirs(processor):
    proc, uow, *_ = processor()
    s = one_visit()
    s.weight(112.3, ["P4"], -180.0, 111.0, 112.0)  # the shopper is metres away, nobody else is in
    proc.handle_batch(s.raw())
    assert receipts_of(uow)[0][1] == [("chips", 1), ("cola", 2)]
    line = next(ln for ln in uow.sessions.get("s-gate-in-0").cart() if ln.sku == "chips")
    assert line.confidence < 1.0


def _quick_exit(open_until: float, publish_at: float) -> Script:
    """A shopper takes two colas at 107-108 s and is out at 112 s; the shelf node holds the
    interaction (a neighbour still moving), saying so in its heartbeats, and publishes it at
    ``publish_at``."""
    s = Script()
    s.walk("a", 100.0, 102.0, (0.5, 0.5), (0.5, 0.6))
    s.add(GatePass, "gate-in", 100.5, gate_id="in", direction="entry", account_token="acct-1")
    s.walk("a", 102.2, 108.0, (0.6, 0.6), (2.5, 3.5))
    s.walk("a", 108.2, 112.0, (2.5, 3.5), (9.5, 0.5))
    s.add(GatePass, "gate-out", 111.8, gate_id="out", direction="exit")
    t = 106.0
    while t < publish_at:
        s.add(Heartbeat, "shelf-g1", round(t, 3), open_since=107.0 if 107.0 <= t < open_until else None)
        t += 0.25
    s.two_colas(publish_at)
    s.heartbeats(135.0)
    return s


def test_an_exit_waits_for_the_shelf_the_shopper_stood_at_to_publish_their_pick(processor):
    proc, uow, *_ = processor()
    proc.handle_batch(_quick_exit(open_until=115.0, publish_at=115.0).raw())
    assert receipts_of(uow) == [("s-gate-in-0", [("cola", 2)], 310, "approved")]


def test_an_exit_waits_no_longer_than_the_edge_may_hold_an_interaction(processor):
    # A node that says "open" for ever (or the pick comes far too late): the visit is closed 10 s
    # after the exit all the same, without the late pick.
    proc, uow, *_ = processor()
    proc.handle_batch(_quick_exit(open_until=130.0, publish_at=130.0).raw())
    assert receipts_of(uow) == []
    (session,) = uow.sessions.list()
    assert session.state.value == "empty" and session.exited_at == 111.8
