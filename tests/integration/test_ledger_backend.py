"""The ledger payment gateway, the embedded order & inventory backend and the mailers, on both dialects."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from store_server.adapters import orm
from store_server.adapters.ledger import Accounts, LedgerGateway
from store_server.adapters.mail import FileMailer, SmtpMailer, format_money, render_receipt_text
from store_server.adapters.unit_of_work import SqlAlchemyUnitOfWork
from store_server.backend.api import OrderIn, OrderLineIn
from store_server.backend.embedded import EmbeddedBackend
from store_server.domain.pricing import Bill, BillLine
from store_server.domain.receipt import Receipt
from store_server.service.ports import ChargeResult, DeadLetter

pytestmark = pytest.mark.integration


def run_together(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Call fn(i) from n threads released at the same moment; return the results in order."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


def count(factory: sessionmaker[Session], table: Any, **where: Any) -> int:
    with factory() as s:
        stmt = select(func.count()).select_from(table)
        for column, value in where.items():
            stmt = stmt.where(table.c[column] == value)
        return int(s.execute(stmt).scalar_one())


# -- ledger ---------------------------------------------------------------------------------------


def test_charge_approves_and_debits_once_per_key(session_factory: sessionmaker[Session]) -> None:
    accounts, gateway = Accounts(session_factory), LedgerGateway(session_factory)
    accounts.open_account("alice", "Alice", "alice@example.com", balance_cents=1000)
    first = gateway.charge("alice", 570, "EUR", "s-1")
    assert first.status == "approved" and first.charge_id
    assert gateway.charge("alice", 570, "EUR", "s-1") == first  # a retry gets the first result
    assert accounts.balance("alice") == 430
    assert count(session_factory, orm.ledger_entries, idempotency_key="s-1") == 1
    assert sum(e.amount_cents for e in accounts.entries("alice")) == 430  # balance == sum of entries


def test_declines_are_results_and_are_recorded(session_factory: sessionmaker[Session]) -> None:
    accounts, gateway = Accounts(session_factory), LedgerGateway(session_factory)
    accounts.open_account("bob", "Bob", None, balance_cents=100, credit_limit_cents=50)
    assert gateway.charge("nobody", 100, "EUR", "s-0") == ChargeResult("declined", None, "unknown account")
    assert gateway.charge("bob", 151, "EUR", "s-2") == ChargeResult("declined", None, "insufficient funds")
    assert accounts.balance("bob") == 100
    assert count(session_factory, orm.ledger_entries, kind="charge") == 0
    assert count(session_factory, orm.charge_attempts, status="declined") == 2
    # The same key succeeds once the shopper has topped up; the credit limit counts too.
    assert accounts.top_up("bob", 1, "topup-1") == 101
    assert accounts.top_up("bob", 1, "topup-1") == 101  # idempotent
    approved = gateway.charge("bob", 151, "EUR", "s-2")
    assert approved.status == "approved"
    assert accounts.balance("bob") == -50
    assert gateway.charge("bob", 1, "EUR", "s-3").reason == "insufficient funds"


def test_open_account_is_an_idempotent_upsert(session_factory: sessionmaker[Session]) -> None:
    accounts = Accounts(session_factory)
    accounts.open_account("carol", "Carol", "", balance_cents=500)
    again = accounts.open_account(
        "carol", "Carol C.", "carol@example.com", balance_cents=500, credit_limit_cents=9
    )
    assert (again.name, again.email, again.balance_cents, again.credit_limit_cents) == (
        "Carol C.",
        "carol@example.com",
        500,
        9,
    )
    assert accounts.email_of("carol") == "carol@example.com"
    assert accounts.get("nobody") is None and accounts.email_of("nobody") is None
    with pytest.raises(LookupError):
        accounts.top_up("nobody", 5, "k")


def test_concurrent_double_charge_charges_once(session_factory: sessionmaker[Session]) -> None:
    accounts, gateway = Accounts(session_factory), LedgerGateway(session_factory)
    accounts.open_account("dave", "Dave", None, balance_cents=1000)
    for attempt in range(5):
        key = f"s-race-{attempt}"

        def charge(_i: int, key: str = key) -> ChargeResult:
            return gateway.charge("dave", 100, "EUR", key)

        results = run_together(2, charge)
        assert results[0] == results[1]
        assert results[0].status == "approved"
        assert count(session_factory, orm.ledger_entries, idempotency_key=key) == 1
    assert accounts.balance("dave") == 500


def test_charge_racing_an_uncommitted_duplicate_returns_its_result(
    session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    """Forces the conflict path: the other writer's entry is in flight when this charge debits."""
    accounts, gateway = Accounts(session_factory), LedgerGateway(session_factory)
    accounts.open_account("gus", "Gus", None, balance_cents=1000)
    other = session_factory()
    entry_id = other.execute(
        orm.ledger_entries.insert()
        .values(account_token="gus", amount_cents=-100, kind="charge", idempotency_key="s-inflight",
                currency="EUR", created_at=1.0)
        .returning(orm.ledger_entries.c.id)
    ).scalar_one()  # fmt: skip
    results: list[ChargeResult] = []
    caplog.set_level(logging.INFO, logger="store_server.adapters.ledger")
    racer = threading.Thread(target=lambda: results.append(gateway.charge("gus", 100, "EUR", "s-inflight")))
    writing = threading.Event()

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        first_word = statement.lstrip()[:6].upper()
        if threading.current_thread() is racer and first_word in ("UPDATE", "INSERT"):
            writing.set()

    engine = session_factory.kw["bind"]
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        racer.start()
        # Its first write comes after it looked for an earlier result and found none: from here on, our
        # commit can only meet it in the conflict path (it waits for our lock or finds our entry).
        assert writing.wait(60), "the racing charge never got to write"
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    other.commit()
    other.close()
    racer.join(30)
    assert results == [ChargeResult("approved", f"ledger-{entry_id}")]
    assert accounts.balance("gus") == 1000  # its own debit was given back (the in-flight one debited none)
    assert count(session_factory, orm.ledger_entries, idempotency_key="s-inflight") == 1
    assert "lost a race" in caplog.text


def test_concurrent_charges_never_overdraw(session_factory: sessionmaker[Session]) -> None:
    accounts, gateway = Accounts(session_factory), LedgerGateway(session_factory)
    accounts.open_account("erin", "Erin", None, balance_cents=300)
    results = run_together(6, lambda i: gateway.charge("erin", 100, "EUR", f"s-{i}"))
    assert sorted(r.status for r in results) == ["approved"] * 3 + ["declined"] * 3
    assert accounts.balance("erin") == 0


def test_charge_inside_an_open_unit_of_work(session_factory: sessionmaker[Session]) -> None:
    """The exit handler charges while its unit of work has written; on SQLite that must not deadlock."""
    accounts, gateway = Accounts(session_factory), LedgerGateway(session_factory)
    accounts.open_account("fay", "Fay", None, balance_cents=1000)
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        uow.dead_letters.add(DeadLetter("t", b"x", "written before the charge", "", 1.0))
        result = gateway.charge("fay", 250, "EUR", "s-uow")
        uow.commit()
    assert result.status == "approved"
    assert gateway.charge("fay", 250, "EUR", "s-uow") == result
    assert accounts.balance("fay") == 750


# -- embedded backend -----------------------------------------------------------------------------


def order(order_id: str, placed_at: float, cola: int = 2, status: str = "approved") -> OrderIn:
    lines = [
        OrderLineIn(
            sku="cola",
            name="Cola",
            quantity=cola,
            unit_price_cents=150,
            amount_cents=150 * cola,
            tax_class="standard",
        )
    ]
    lines.append(
        OrderLineIn(
            sku="ghost",
            name="Not stocked",
            quantity=1,
            unit_price_cents=0,
            amount_cents=0,
            tax_class="standard",
        )
    )
    total = 150 * cola
    return OrderIn.model_validate({
        "order_id": order_id, "store_id": "s1", "session_id": order_id, "account_token": "alice",
        "currency": "EUR", "lines": lines, "subtotal_cents": total, "tax_cents": 0, "total_cents": total,
        "payment_status": status, "charge_id": "ledger-1" if status == "approved" else None,
        "placed_at": placed_at,
    })  # fmt: skip


def stock(backend: EmbeddedBackend) -> dict[str, int]:
    return {level.sku: level.quantity for level in backend.stock_levels("s1")}


def test_place_order_is_idempotent_and_takes_stock_once(session_factory: sessionmaker[Session]) -> None:
    backend = EmbeddedBackend(session_factory)
    backend.ensure_stock("s1", {"cola": 10, "chips": 4})
    backend.ensure_stock("s1", {"cola": 99, "water": 6})  # known skus keep their count
    assert stock(backend) == {"chips": 4, "cola": 10, "water": 6}
    first = backend.place_order(order("s-1", 100.0))
    again = backend.place_order(order("s-1", 100.0))
    assert again == first
    assert first.lines[0].sku == "cola" and first.created_at > 0
    assert stock(backend)["cola"] == 8
    backend.place_order(order("s-2", 200.0, cola=20, status="declined"))  # the goods left anyway
    assert stock(backend)["cola"] == 0  # clamped, not negative
    assert "ghost" not in stock(backend)
    assert [o.order_id for o in backend.list_orders("s1")] == ["s-2", "s-1"]
    assert backend.list_orders("s1", limit=1)[0].order_id == "s-2"
    assert backend.list_orders("other") == []
    assert backend.get_order("missing") is None
    backend.set_stock("s1", "cola", 12)
    assert stock(backend)["cola"] == 12


def test_concurrent_duplicate_orders_take_stock_once(session_factory: sessionmaker[Session]) -> None:
    backend = EmbeddedBackend(session_factory)
    backend.set_stock("s1", "cola", 10)
    results = run_together(3, lambda _i: backend.place_order(order("s-dup", 100.0)))
    assert results[0] == results[1] == results[2]
    assert stock(backend)["cola"] == 8
    assert count(session_factory, orm.ledger_entries) == 0  # the backend does not touch the ledger


# -- mail -----------------------------------------------------------------------------------------


def receipt(status: str = "approved") -> Receipt:
    bill = Bill("EUR", (BillLine("cola", "Cola 0.5 l", 2, 150, 300, "standard"),), 300, 57, 357,
                (("standard", 57),))  # fmt: skip
    return Receipt("r-g1-7", "s-g1-7", "s1", "alice", 1_700_000_000.0, bill, status,
                   "ledger-3" if status == "approved" else None,
                   None if status == "approved" else "insufficient funds")  # fmt: skip


def test_money_formatting() -> None:
    assert format_money(357, "EUR") == "3.57 EUR"
    assert format_money(5, "USD") == "0.05 USD"
    assert format_money(-120, "EUR") == "-1.20 EUR"
    assert format_money(123456789, "EUR") == "1,234,567.89 EUR"


def test_file_mailer_writes_a_readable_receipt(tmp_path: Path) -> None:
    text = render_receipt_text(receipt(), "Walkout Demo Store")
    path = FileMailer(tmp_path / "receipts").send_receipt(receipt(), text)
    written = Path(path).read_text(encoding="utf-8")
    assert Path(path).name == "r-g1-7.txt" and written == text
    for expected in ("Walkout Demo Store", "2023-11-14 22:13:20 UTC", "2 x Cola 0.5 l @ 1.50 EUR", "3.00 EUR",
                     "Tax (standard)", "0.57 EUR", "TOTAL", "3.57 EUR", "approved", "r-g1-7"):  # fmt: skip
        assert expected in written
    assert [p.name for p in (tmp_path / "receipts").iterdir()] == ["r-g1-7.txt"]  # no temp file left
    declined = render_receipt_text(receipt("declined"), "Walkout Demo Store")
    assert "DECLINED: insufficient funds" in declined


def test_smtp_mailer_sends_to_the_account_address(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[Any] = []

    class FakeSMTP:
        def __init__(self, host: str, port: int, timeout: float) -> None:
            sent.append(("connect", host, port))

        def __enter__(self) -> FakeSMTP:
            return self

        def __exit__(self, *exc: object) -> None:
            sent.append(("quit",))

        def starttls(self, context: Any) -> None:
            sent.append(("starttls",))

        def login(self, user: str, password: str) -> None:
            sent.append(("login", user, password))

        def send_message(self, msg: Any) -> None:
            sent.append(("send", msg["To"], msg["Subject"], msg.get_content()))

    monkeypatch.setattr("smtplib.SMTP", FakeSMTP)
    mailer = SmtpMailer("smtp://me:p%40ss@mail.local:2525?starttls=1", "shop@walkout.local",
                        {"alice": "alice@example.com"}.get)  # fmt: skip
    assert mailer.send_receipt(receipt(), "the text") == "alice@example.com"
    assert sent[:3] == [("connect", "mail.local", 2525), ("starttls",), ("login", "me", "p@ss")]
    assert sent[3][:2] == ("send", "alice@example.com") and sent[3][3].strip() == "the text"
    with pytest.raises(LookupError):
        SmtpMailer("smtp://mail.local", "shop@walkout.local", lambda _t: None).send_receipt(receipt(), "x")
