"""Card top-up checkouts in SQL: one row per hosted checkout the store started, and the one
transaction that credits the wallet when the provider confirms the payment.

The checkout row, not the webhook, says whose wallet and how much: a confirmed payment is credited to
the account and amount this store asked the provider for, once per provider payment id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store_server.adapters import orm
from store_server.adapters.ledger import credit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkout:
    id: str
    idempotency_key: str
    account_token: str
    amount_cents: int
    currency: str
    url: str
    status: str  # pending | paid
    payment_id: str | None
    created_at: float


@dataclass(frozen=True)
class Settled:
    credited: bool  # False: this payment was credited before (a webhook delivered again)
    checkout: Checkout
    balance_cents: int


def _checkout(r: Row[Any]) -> Checkout:
    return Checkout(
        r.id,
        r.idempotency_key,
        r.account_token,
        r.amount_cents,
        r.currency,
        r.url,
        r.status,
        r.payment_id,
        r.created_at,
    )


def payment_key(payment_id: str) -> str:
    """The ledger idempotency key of a card payment: one credit per provider payment."""
    return f"card-topup:{payment_id}"


class TopUpCheckouts:
    def __init__(self, session_factory: sessionmaker[Session], now: Callable[[], float] = time.time) -> None:
        self._sessions = session_factory
        self._now = now

    def by_key(self, idempotency_key: str) -> Checkout | None:
        return self._one(orm.top_up_checkouts.c.idempotency_key == idempotency_key)

    def get(self, checkout_id: str) -> Checkout | None:
        return self._one(orm.top_up_checkouts.c.id == checkout_id)

    def for_account(self, account_token: str, limit: int = 5) -> list[Checkout]:
        t = orm.top_up_checkouts
        stmt = (
            select(t).where(t.c.account_token == account_token).order_by(t.c.created_at.desc()).limit(limit)
        )
        with self._sessions() as s:
            return [_checkout(r) for r in s.execute(stmt)]

    def add(
        self, checkout_id: str, key: str, account_token: str, amount_cents: int, currency: str, url: str
    ) -> Checkout:
        """Record a started checkout; a concurrent start with the same key keeps the first row."""
        with self._sessions() as s:
            try:
                s.execute(
                    orm.top_up_checkouts.insert().values(
                        id=checkout_id,
                        idempotency_key=key,
                        account_token=account_token,
                        amount_cents=amount_cents,
                        currency=currency,
                        url=url,
                        status="pending",
                        created_at=self._now(),
                    )
                )
                s.commit()
            except IntegrityError:
                s.rollback()
        found = self.by_key(key)
        assert found is not None
        return found

    def settle(self, checkout_id: str, payment_id: str) -> Settled:
        """Credit a paid checkout's wallet once per payment id, and mark it paid, in one transaction."""
        t, a = orm.top_up_checkouts, orm.accounts
        with self._sessions() as s:
            row = s.execute(select(t).where(t.c.id == checkout_id)).first()
            if row is None:
                raise LookupError(checkout_id)
            checkout = _checkout(row)
            credited = credit(
                s,
                checkout.account_token,
                checkout.amount_cents,
                "topup",
                payment_key(payment_id),
                checkout.currency,
                self._now(),
            )
            if checkout.status != "paid":
                s.execute(
                    update(t)
                    .where(t.c.id == checkout_id)
                    .values(status="paid", payment_id=payment_id, paid_at=self._now())
                )
            balance = s.execute(
                select(a.c.balance_cents).where(a.c.token == checkout.account_token)
            ).scalar_one()
            s.commit()
        if credited:
            logger.info(
                "card top-up %s: %d cents to %s", payment_id, checkout.amount_cents, checkout.account_token
            )
        return Settled(credited, self.get(checkout_id) or checkout, int(balance))

    def _one(self, where: Any) -> Checkout | None:
        with self._sessions() as s:
            row = s.execute(select(orm.top_up_checkouts).where(where)).first()
        return _checkout(row) if row else None
