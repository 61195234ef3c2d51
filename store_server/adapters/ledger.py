"""The built-in ledger: a prepaid/credit account per shopper token, charged at exit.

Exactly-once money movement rests on one rule: every ledger entry carries an idempotency key with a
unique constraint, and the entry and the balance change commit in the same transaction. A retry (or a
concurrent duplicate) with the same key finds the entry instead of writing a second one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from store_server.adapters import orm
from store_server.adapters.db import dialect_insert, shared_sqlite_session
from store_server.domain.accounts import TopUpRefused
from store_server.service.ports import ChargeResult, TopUpStarted

logger = logging.getLogger(__name__)

Now = Callable[[], float]
EntryKind = Literal["charge", "topup", "refund"]


@dataclass(frozen=True)
class Account:
    token: str
    name: str
    email: str | None
    balance_cents: int
    credit_limit_cents: int
    created_at: float


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    account_token: str
    amount_cents: int
    kind: str
    idempotency_key: str
    currency: str
    created_at: float


def charge_id_for(entry_id: int) -> str:
    return f"ledger-{entry_id}"


def _insert_entry(
    s: Session, token: str, amount: int, kind: EntryKind, key: str, currency: str, now: float
) -> int | None:
    """Insert a ledger entry; None when the key exists (ON CONFLICT waits for a concurrent writer)."""
    stmt = (
        dialect_insert(s, orm.ledger_entries)
        .values(
            account_token=token,
            amount_cents=amount,
            kind=kind,
            idempotency_key=key,
            currency=currency,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(orm.ledger_entries.c.id)
    )
    return s.execute(stmt).scalar_one_or_none()


def _entry_by_key(s: Session, key: str) -> Any:
    t = orm.ledger_entries
    return s.execute(select(t).where(t.c.idempotency_key == key)).first()


class LedgerGateway:
    """PaymentGateway on the ledger tables. A decline is a result, recorded in charge_attempts.

    On PostgreSQL a charge commits in its own transaction, like a call to an outside gateway; the
    idempotency key makes the caller's retry safe. On SQLite, called from inside an open unit of work
    on the same database, it joins that transaction instead (a second writer would deadlock on the
    database lock the unit of work holds), so the charge commits together with the receipt.
    """

    def __init__(self, session_factory: sessionmaker[Session], now: Now = time.time) -> None:
        self._sessions = session_factory
        self._now = now

    def charge(
        self, account_token: str, amount_cents: int, currency: str, idempotency_key: str
    ) -> ChargeResult:
        if amount_cents < 0:
            raise ValueError("a charge is a non-negative amount; use Accounts.refund to give money back")
        shared = shared_sqlite_session(self._sessions)
        if shared is not None:
            return self._charge(shared, account_token, amount_cents, currency, idempotency_key)
        with self._sessions() as s:
            result = self._charge(s, account_token, amount_cents, currency, idempotency_key)
            s.commit()
            return result

    def _charge(self, s: Session, token: str, amount: int, currency: str, key: str) -> ChargeResult:
        first = self._previous_result(s, key, amount)
        if first is not None:
            return first
        a = orm.accounts
        if s.execute(select(a.c.token).where(a.c.token == token)).first() is None:
            return self._decline(s, token, amount, currency, key, "unknown account")
        # Check and debit in one statement, so concurrent charges of one account cannot overdraw it.
        # It also takes the account's row lock (the database lock on SQLite) before the entry is written.
        debited = s.execute(
            update(a)
            .where(a.c.token == token, a.c.balance_cents + a.c.credit_limit_cents >= amount)
            .values(balance_cents=a.c.balance_cents - amount)
        )
        if debited.rowcount != 1:  # type: ignore[attr-defined]
            # No entry is written, so a retry with the same key after a top-up can still succeed.
            return self._decline(s, token, amount, currency, key, "insufficient funds")
        entry_id = _insert_entry(s, token, -amount, "charge", key, currency, self._now())
        if entry_id is None:
            # A concurrent caller with the same key committed first (the unique key made us wait for
            # it): give the money back inside this transaction and return that caller's result.
            s.execute(update(a).where(a.c.token == token).values(balance_cents=a.c.balance_cents + amount))
            logger.info("charge %s lost a race with a concurrent duplicate; returning its result", key)
            first = self._previous_result(s, key, amount)
            if first is None:  # cannot happen: the conflicting row is committed
                raise RuntimeError(f"ledger entry {key!r} vanished")
            return first
        self._attempt(s, token, amount, currency, key, "approved", None)
        logger.info("charged %s %d %s (%s)", token, amount, currency, key)
        return ChargeResult("approved", charge_id_for(entry_id))

    def _previous_result(self, s: Session, key: str, amount_cents: int) -> ChargeResult | None:
        entry = _entry_by_key(s, key)
        if entry is None:
            return None
        if entry.kind != "charge":
            return ChargeResult("declined", None, f"idempotency key already used for a {entry.kind}")
        if -entry.amount_cents != amount_cents:
            logger.warning(
                "charge %s repeated with %d cents, first was %d: returning the first result",
                key,
                amount_cents,
                -entry.amount_cents,
            )
        return ChargeResult("approved", charge_id_for(entry.id))

    def _decline(
        self, s: Session, token: str, amount: int, currency: str, key: str, reason: str
    ) -> ChargeResult:
        self._attempt(s, token, amount, currency, key, "declined", reason)
        logger.info("declined %s %d %s (%s): %s", token, amount, currency, key, reason)
        return ChargeResult("declined", None, reason)

    def _attempt(
        self, s: Session, token: str, amount: int, currency: str, key: str, status: str, reason: str | None
    ) -> None:
        s.execute(
            orm.charge_attempts.insert().values(
                idempotency_key=key,
                account_token=token,
                amount_cents=amount,
                currency=currency,
                status=status,
                reason=reason,
                created_at=self._now(),
            )
        )


class Accounts:
    """Administration of ledger accounts (seeding, staff top-ups, credits a payment step confirmed).
    ``top_up`` moves money without asking: only trusted callers reach it, never a shopper's request."""

    def __init__(
        self, session_factory: sessionmaker[Session], now: Now = time.time, currency: str = "EUR"
    ) -> None:
        self._sessions = session_factory
        self._now = now
        self._currency = currency

    def open_account(
        self, token: str, name: str, email: str | None, balance_cents: int = 0, credit_limit_cents: int = 0
    ) -> Account:
        """Create or update an account. ``balance_cents`` is an opening balance, credited once as a
        ledger top-up (so balance == sum of entries always holds); later calls do not add it again."""
        email = email or None  # the CLI passes "" for "no address"
        a = orm.accounts
        with self._sessions() as s:
            stmt = dialect_insert(s, a).values(
                token=token,
                name=name,
                email=email,
                balance_cents=0,
                credit_limit_cents=credit_limit_cents,
                created_at=self._now(),
            )
            s.execute(
                stmt.on_conflict_do_update(
                    index_elements=["token"],
                    set_={"name": name, "email": email, "credit_limit_cents": credit_limit_cents},
                )
            )
            if balance_cents:
                self._credit(s, token, balance_cents, "topup", f"opening-balance:{token}")
            s.commit()
        account = self.get(token)
        assert account is not None
        return account

    def top_up(self, token: str, amount_cents: int, idempotency_key: str) -> int:
        """Credit the account once per key; return the balance."""
        return self._credit_commit(token, amount_cents, "topup", idempotency_key)

    def refund(self, token: str, amount_cents: int, idempotency_key: str) -> int:
        return self._credit_commit(token, amount_cents, "refund", idempotency_key)

    def balance(self, token: str) -> int:
        account = self.get(token)
        if account is None:
            raise LookupError(f"unknown account {token!r}")
        return account.balance_cents

    def get(self, token: str) -> Account | None:
        with self._sessions() as s:
            r = s.execute(select(orm.accounts).where(orm.accounts.c.token == token)).first()
        if r is None:
            return None
        return Account(r.token, r.name, r.email, r.balance_cents, r.credit_limit_cents, r.created_at)

    def email_of(self, token: str) -> str | None:
        """Recipient lookup for :class:`~store_server.adapters.mail.SmtpMailer`."""
        account = self.get(token)
        return account.email if account else None

    def entries(self, token: str) -> list[LedgerEntry]:
        t = orm.ledger_entries
        with self._sessions() as s:
            rows = s.execute(select(t).where(t.c.account_token == token).order_by(t.c.id))
            return [
                LedgerEntry(
                    r.id, r.account_token, r.amount_cents, r.kind, r.idempotency_key, r.currency, r.created_at
                )
                for r in rows
            ]

    def _credit_commit(self, token: str, amount_cents: int, kind: EntryKind, key: str) -> int:
        with self._sessions() as s:
            if s.execute(select(orm.accounts.c.token).where(orm.accounts.c.token == token)).first() is None:
                raise LookupError(f"unknown account {token!r}")
            self._credit(s, token, amount_cents, kind, key)
            s.commit()
        return self.balance(token)

    def _credit(self, s: Session, token: str, amount_cents: int, kind: EntryKind, key: str) -> None:
        credit(s, token, amount_cents, kind, key, self._currency, self._now())


def credit(
    s: Session, token: str, amount_cents: int, kind: EntryKind, key: str, currency: str, now: float
) -> bool:
    """Credit an account once per key inside the caller's transaction; False when the key was used."""
    if amount_cents <= 0:
        raise ValueError(f"a {kind} must be a positive amount")
    if _insert_entry(s, token, amount_cents, kind, key, currency, now) is None:
        logger.info("%s %s already applied", kind, key)
        return False
    a = orm.accounts
    s.execute(update(a).where(a.c.token == token).values(balance_cents=a.c.balance_cents + amount_cents))
    return True


class LedgerTopUps:
    """The built-in ledger's top-up step (a TopUpPort). It takes no card: a shopper's top-up is refused
    unless ``free`` (``WALKOUT_DEMO_FREE_TOP_UPS``, which ``walkout demo`` turns on) credits it as is.
    Staff credit wallets through :meth:`Accounts.top_up` (``POST /api/accounts/{token}/top-ups``)."""

    def __init__(self, accounts: Accounts, free: bool = False) -> None:
        self._accounts = accounts
        self.free = free

    def start_top_up(
        self, account_token: str, amount_cents: int, currency: str, idempotency_key: str, return_url: str
    ) -> TopUpStarted:
        if not self.free:
            raise TopUpRefused("this store takes no card payments yet: ask staff to top up your wallet")
        self._accounts.top_up(account_token, amount_cents, f"demo-free:{idempotency_key}")
        logger.info("demo top-up of %d cents for %s (free: no payment step)", amount_cents, account_token)
        return TopUpStarted("credited", idempotency_key)
