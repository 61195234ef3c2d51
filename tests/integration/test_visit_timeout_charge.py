"""Staff charge a timed-out visit from the review queue, on SQLite and PostgreSQL, with the real
repositories and the real ledger: exactly once (two resolutions racing), a decline is a receipt that
says so, the cart can be corrected first, and the order and the receipt mail leave through the outbox.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from store_server.adapters import orm
from store_server.adapters.ledger import Accounts, LedgerGateway
from store_server.adapters.unit_of_work import SqlAlchemyUnitOfWork
from store_server.api.app import create_app
from store_server.bootstrap import bootstrap
from store_server.domain.pricing import price_cart
from store_server.domain.review import ReviewError, ReviewItem, ReviewKind, ReviewStatus
from store_server.domain.session import CartLine, SessionState
from store_server.service.review import ReviewService
from store_server.settings import Settings
from tests.fakes import FakeBackend, FakeMailer
from tests.unit.test_housekeeping import SESSION, T0, Store, parse_layout_with_camera

pytestmark = pytest.mark.integration

ACCOUNT = "acct-1"  # the account Store.enter_and_pick enters on
RECEIPT = "r-" + SESSION.removeprefix("s-")
CART_CENTS = 310  # 2 x cola at 1.29 with 20 % tax


class TimedOut:
    """A store on the real database whose only visit timed out with 2 colas; the review service
    charges through the ledger on the same database and shares the processor's lock."""

    def __init__(self, session_factory: sessionmaker[Session], balance_cents: int) -> None:
        self.factory = session_factory
        self.layout = parse_layout_with_camera()
        self.accounts = Accounts(session_factory)
        self.accounts.open_account(ACCOUNT, "Ada", "ada@test.walkout", balance_cents=balance_cents)
        self.store = Store(self.layout, uow_factory=self.uow)
        self.store.enter_and_pick()  # last seen at t=110
        self.store.idle(2000.0)  # the 30 min timeout ran out at 1910
        (self.item,) = self.store.reviews()
        assert self.item.kind is ReviewKind.VISIT_TIMEOUT
        assert self.store.session().state is SessionState.TIMED_OUT
        self.service = self.twin(self.store.proc.lock)

    def uow(self) -> SqlAlchemyUnitOfWork:
        return SqlAlchemyUnitOfWork(self.factory)

    def twin(self, lock: Any) -> ReviewService:
        return ReviewService(
            self.layout,
            self.uow,
            self.accounts,
            LedgerGateway(self.factory),
            FakeBackend(),
            lock=lock,
        )

    def review(self) -> ReviewItem:
        with self.uow() as uow:
            item = uow.reviews.get(self.item.id)
        assert item is not None
        return item

    def charge_attempts(self) -> int:
        with self.factory() as s:
            return int(s.execute(select(func.count()).select_from(orm.charge_attempts)).scalar_one())

    def outbox(self) -> list[tuple[str, str]]:
        with self.uow() as uow:
            return sorted((o.kind, o.key) for o in uow.outbox.pending())


def _race(n: int, resolve: Any) -> list[Any]:
    """``resolve(i)`` in ``n`` threads released at the same moment; results or exceptions."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            results[i] = resolve(i)
        except Exception as exc:  # asserted on below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a resolution hung"
    return results


def test_two_staff_charging_at_once_charge_the_shopper_once(session_factory):
    shop = TimedOut(session_factory, balance_cents=10_000)

    results = _race(
        4, lambda i: shop.service.resolve(shop.item.id, "charge", None, f"staff{i}@test", "double click")
    )

    done = [r for r in results if isinstance(r, ReviewItem)]
    refused = [r for r in results if not isinstance(r, ReviewItem)]
    assert len(done) == 1, results
    assert len(refused) == 3 and all(isinstance(r, ReviewError) for r in refused), refused
    assert all("already resolved" in str(r) for r in refused)
    # One debit of the cart's total, keyed by the session id as at the exit.
    assert shop.accounts.balance(ACCOUNT) == 10_000 - CART_CENTS
    charges = [e for e in shop.accounts.entries(ACCOUNT) if e.kind == "charge"]
    assert [(e.amount_cents, e.idempotency_key) for e in charges] == [(-CART_CENTS, SESSION)]
    assert shop.charge_attempts() == 1
    with shop.uow() as uow:
        (receipt,) = [r for r in uow.receipts.list() if r.session_id == SESSION]
    assert receipt.id == RECEIPT and receipt.payment_status == "approved"
    assert receipt.bill.total_cents == CART_CENTS
    assert [(ln.sku, ln.quantity) for ln in receipt.bill.lines] == [("cola", 2)]
    assert receipt.exited_at == pytest.approx(T0 + 110.0)  # when the shopper was last seen
    session = shop.store.session()
    assert session.state is SessionState.PAID and session.exited_at == pytest.approx(T0 + 110.0)
    item = shop.review()
    assert item.status is ReviewStatus.RESOLVED and item.resolved_by == done[0].resolved_by
    assert item.resolution["action"] == "charge" and item.resolution["receipts"] == [RECEIPT]
    assert (item.resolution["payment_status"], item.resolution["total_cents"]) == ("approved", CART_CENTS)

    # The order and the receipt mail leave through the outbox with the next batch, once.
    assert shop.outbox() == [("order", SESSION), ("receipt_mail", RECEIPT)]
    assert shop.store.proc.relay_outbox() == 2
    backend, mailer = shop.store.proc.backend, shop.store.proc.mailer
    assert isinstance(backend, FakeBackend) and isinstance(mailer, FakeMailer)
    order = backend.orders[SESSION]
    assert (order.total_cents, order.payment_status) == (CART_CENTS, "approved")
    assert [r.id for r, _ in mailer.sent] == [RECEIPT]
    assert shop.outbox() == []


def test_a_declined_charge_is_a_receipt_that_says_so_and_a_second_click_does_not_retry(session_factory):
    shop = TimedOut(session_factory, balance_cents=100)  # 1.00 for a 3.10 cart

    item = shop.service.resolve(shop.item.id, "charge", None, "staff@test")

    assert item.status is ReviewStatus.RESOLVED
    assert item.resolution["payment_status"] == "declined"
    assert item.resolution["decline_reason"] == "insufficient funds"
    with shop.uow() as uow:
        receipt = uow.receipts.for_session(SESSION)
    assert receipt is not None and receipt.payment_status == "declined" and receipt.charge_id is None
    assert receipt.decline_reason == "insufficient funds" and receipt.bill.total_cents == CART_CENTS
    assert shop.store.session().state is SessionState.DECLINED  # staff follow up, as after an exit
    assert shop.accounts.balance(ACCOUNT) == 100
    assert shop.outbox() == [("order", SESSION), ("receipt_mail", RECEIPT)]

    with pytest.raises(ReviewError, match="already resolved"):
        shop.service.resolve(shop.item.id, "charge", None, "other@test")
    assert shop.charge_attempts() == 1 and shop.accounts.balance(ACCOUNT) == 100


def test_staff_correct_the_quantities_then_charge_what_they_set(session_factory):
    shop = TimedOut(session_factory, balance_cents=10_000)

    item = shop.service.resolve(
        shop.item.id, "charge", None, "staff@test", "saw one cola and a bag of chips", {"cola": 1, "chips": 1}
    )

    expected = price_cart(
        [CartLine("chips", 1), CartLine("cola", 1)], shop.layout.products, shop.layout.tax_rates, "EUR"
    )
    assert expected.total_cents == 418  # 1.29 + 20 % and 2.49 + 5.5 %
    with shop.uow() as uow:
        receipt = uow.receipts.for_session(SESSION)
    assert receipt is not None and receipt.payment_status == "approved"
    assert receipt.bill == expected
    assert shop.accounts.balance(ACCOUNT) == 10_000 - 418
    session = shop.store.session()
    assert session.state is SessionState.PAID
    assert [(ln.sku, ln.quantity) for ln in session.cart()] == [("chips", 1), ("cola", 1)]
    notes = {c.note for c in session.changes if c.event_id.startswith("review:")}
    assert notes == {f"review:{shop.item.id}"}  # the corrections say where they came from
    assert sorted((c["sku"], c["quantity"]) for c in item.resolution["corrections"]) == [
        ("chips", 1),
        ("cola", -1),
    ]
    assert item.resolution["note"] == "saw one cola and a bag of chips"


@pytest.mark.parametrize(
    ("quantities", "reason"),
    [
        ({"cola": 0}, "nothing to charge"),
        ({"cola": -1}, "below 0"),
        ({"caviar": 1}, "'caviar' is not in the catalog"),
    ],
)
def test_a_refused_charge_changes_nothing_and_the_item_stays_open(session_factory, quantities, reason):
    shop = TimedOut(session_factory, balance_cents=10_000)

    with pytest.raises(ReviewError, match=reason):
        shop.service.resolve(shop.item.id, "charge", None, "staff@test", "", quantities)

    assert shop.review().is_open and shop.charge_attempts() == 0
    assert shop.accounts.balance(ACCOUNT) == 10_000 and shop.outbox() == []
    session = shop.store.session()
    assert session.state is SessionState.TIMED_OUT
    assert [(ln.sku, ln.quantity) for ln in session.cart()] == [("cola", 2)]
    # Dismissing still works afterwards, and charges nothing.
    assert shop.service.resolve(shop.item.id, "keep", None, "staff@test").status is ReviewStatus.DISMISSED
    assert shop.charge_attempts() == 0


def test_the_dashboard_api_charges_once_and_names_what_it_refuses(db_url, tmp_path):
    layout = parse_layout_with_camera()
    srv = bootstrap(
        Settings(
            database_url=db_url,
            receipts_dir=tmp_path / "receipts",
            secret_key_file=tmp_path / "secret.key",
            accept_raw_account_tokens=True,  # the test shopper enters on a bare token
            event_clock="replay",
        ),
        layout=layout,
    )
    try:
        assert srv.web is not None
        srv.accounts.open_account(ACCOUNT, "Ada", "ada@test.walkout", balance_cents=10_000)
        store = Store(layout)
        store.proc = srv.processor  # the same messages, into the real server
        store.enter_and_pick()
        store.idle(2000.0)
        (item,) = store.reviews()
        login = {"email": "staff@test.walkout", "password": "correct horse battery"}
        srv.web.people.create_staff(login["email"], "Staff", login["password"])
        with TestClient(create_app(srv)) as client:
            assert client.post("/login", data=login).status_code == 200
            url = f"/api/reviews/{item.id}/resolve"

            wrong = client.post(url, json={"action": "keep", "quantities": {"cola": 1}})
            assert wrong.status_code == 422 and "quantities" in wrong.json()["detail"]
            negative = client.post(url, json={"action": "charge", "quantities": {"cola": -1}})
            assert negative.status_code == 422 and negative.json()["detail"][0]["loc"][-1] == "cola"

            first = client.post(url, json={"action": "charge", "note": "left by the fire exit"})
            assert first.status_code == 200, first.text
            body = first.json()
            assert body["status"] == "resolved" and body["resolution"]["payment_status"] == "approved"
            again = client.post(url, json={"action": "charge"})
            assert again.status_code == 409 and "already resolved" in again.json()["detail"]
            session = client.get(f"/api/sessions/{SESSION}").json()
            assert session["state"] == "paid"
        assert srv.accounts.balance(ACCOUNT) == 10_000 - CART_CENTS
        store.heartbeats(2010.0)  # the next batch delivers the order from the outbox
        order = srv.backend.get_order(SESSION)
        assert order is not None and order.total_cents == CART_CENTS
    finally:
        srv.stop()
