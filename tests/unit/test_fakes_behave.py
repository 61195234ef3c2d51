"""The fakes keep the contracts the service tests rely on (the real adapters are tested against the
same expectations in tests/integration)."""

from __future__ import annotations

import pytest

from store_server.backend.api import OrderBackend, OrderIn
from store_server.domain.session import SessionState, ShopperSession
from store_server.service.ports import (
    ChargeResult,
    Clock,
    DeadLetter,
    InboxRow,
    Mailer,
    PaymentGateway,
)
from tests.fakes import FakeBackend, FakeClock, FakeMailer, FakePaymentGateway, FakeUnitOfWork


def test_fakes_satisfy_the_ports() -> None:
    # Checked by mypy (the assignments fail type checking if a fake drifts from its port).
    ports: list[object] = []
    gateway: PaymentGateway = FakePaymentGateway({})
    mailer: Mailer = FakeMailer()
    backend: OrderBackend = FakeBackend()
    clock: Clock = FakeClock()
    ports += [gateway, mailer, backend, clock]
    assert all(ports)


def row(msg_id: str, ts: float, due: float) -> InboxRow:
    return InboxRow(msg_id, msg_id.split(":")[0], "weight", "t", ts, due, {}, ts)


def test_inbox_dedups_and_orders_due_rows() -> None:
    uow = FakeUnitOfWork()
    with uow:
        assert (
            len(uow.inbox.add_many([row("b:1", 1.0, 3.0), row("a:1", 2.0, 3.0), row("b:1", 1.0, 3.0)])) == 2
        )
        assert uow.inbox.add_many([row("a:1", 2.0, 3.0)]) == []
        assert [r.msg_id for r in uow.inbox.due(3.0, 10)] == ["b:1", "a:1"]
        uow.inbox.mark_processed(["b:1"])
        assert [r.msg_id for r in uow.inbox.due(3.0, 10)] == ["a:1"]
        assert uow.inbox.node_watermarks() == {"a": 2.0, "b": 1.0}
        uow.commit()
    assert uow.committed and uow.commits == 1


def test_unit_of_work_rolls_back_what_was_not_committed() -> None:
    uow = FakeUnitOfWork()
    with uow:
        uow.sessions.add(ShopperSession("s-1", "st", "acct", 1.0))
        uow.commit()
    with uow:
        uow.sessions.add(ShopperSession("s-2", "st", "acct", 2.0))
        uow.dead_letters.add(DeadLetter("t", b"x", "bad", "", 1.0))
    with uow:
        assert [s.id for s in uow.sessions.list()] == ["s-1"]
        assert uow.dead_letters.count() == 0


def test_sessions_are_copies_until_saved() -> None:
    uow = FakeUnitOfWork()
    with uow:
        uow.sessions.add(ShopperSession("s-1", "st", "acct", 1.0))
        session = uow.sessions.get("s-1")
        assert session is not None
        session.take("n:1", "cola", 1, 2.0, 1.0)
        stored = uow.sessions.get("s-1")
        assert stored is not None and stored.changes == []  # not saved yet
        uow.sessions.save(session)
        session.leave(3.0, True)
        uow.sessions.save(session)
        assert uow.sessions.open_sessions() == []
        assert [s.id for s in uow.sessions.list(SessionState.PAID)] == ["s-1"]
        with pytest.raises(LookupError):
            uow.sessions.save(ShopperSession("s-9", "st", "acct", 1.0))


def test_outbox_is_idempotent() -> None:
    uow = FakeUnitOfWork()
    with uow:
        uow.outbox.add("order", "s-1", {"a": 1})
        uow.outbox.add("order", "s-1", {"a": 2})
        (item,) = uow.outbox.pending()
        assert item.payload == {"a": 1}
        uow.outbox.mark_sent(item.id)
        assert uow.outbox.pending() == []


def test_payment_gateway_is_idempotent_and_declines_without_raising() -> None:
    pay = FakePaymentGateway({"alice": 500})
    first = pay.charge("alice", 300, "EUR", "s-1")
    assert first.status == "approved"
    assert pay.charge("alice", 300, "EUR", "s-1") == first
    assert pay.balances["alice"] == 200
    assert pay.charge("bob", 1, "EUR", "s-2") == ChargeResult("declined", None, "unknown account")
    assert pay.charge("alice", 300, "EUR", "s-3").reason == "insufficient funds"
    pay.top_up("alice", 100)
    assert pay.charge("alice", 300, "EUR", "s-3").status == "approved"


def test_backend_is_idempotent_and_takes_stock_once() -> None:
    backend = FakeBackend(FakeClock())
    backend.ensure_stock("st", {"cola": 5})
    order = OrderIn.model_validate({
        "order_id": "s-1", "store_id": "st", "session_id": "s-1", "account_token": "a", "currency": "EUR",
        "lines": [{"sku": "cola", "name": "Cola", "quantity": 2, "unit_price_cents": 100, "amount_cents": 200,
                   "tax_class": "standard"}],
        "subtotal_cents": 200, "tax_cents": 0, "total_cents": 200, "payment_status": "approved",
        "charge_id": "c", "placed_at": 1.0,
    })  # fmt: skip
    assert backend.place_order(order) == backend.place_order(order)
    assert [lv.quantity for lv in backend.stock_levels("st")] == [3]


def test_mailer_and_clock() -> None:
    clock = FakeClock(10.0)
    clock.advance(2.5)
    assert clock.now() == 12.5
    assert FakeMailer().sent == []
