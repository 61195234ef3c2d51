"""What automatic dispute refunds already gave back, read inside the dispute's own transaction.

The caps of :class:`store_server.domain.review.RefundCaps` are a read-then-write: read what was
refunded, then add one more. Two disputes at once must not both read the old total, also when they run
in two processes (two web workers on one PostgreSQL database), so :meth:`hold_and_sum` first writes:
a no-op update of the shopper's ledger account and of the receipt takes their row locks on PostgreSQL
(the database write lock on SQLite) until the dispute commits, and only then reads the totals.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from store_server.adapters import orm
from store_server.domain.review import ReviewKind
from store_server.service.ports import UnitOfWork


class SqlAlchemyAutoRefunds:
    def hold_and_sum(
        self, uow: UnitOfWork, account_token: str, receipt_id: str, since: float
    ) -> tuple[int, int]:
        """Lock the shopper and the receipt for this transaction; return the cents refunded
        automatically on the receipt (ever) and to the shopper since ``since`` (wall clock)."""
        s: Session = uow.session  # type: ignore[attr-defined]  # the SQLAlchemy unit of work's
        a, r = orm.accounts, orm.receipts
        # Accounts first, then the receipt: every dispute locks in this order, so none deadlock.
        s.execute(update(a).where(a.c.token == account_token).values(name=a.c.name))
        s.execute(update(r).where(r.c.id == receipt_id).values(currency=r.c.currency))
        rc, ri = orm.receipt_corrections, orm.review_items
        auto = (
            select(func.coalesce(func.sum(rc.c.refund_cents), 0))
            .select_from(rc.join(ri, ri.c.id == rc.c.review_id))
            .where(ri.c.kind == ReviewKind.DISPUTE.value, ri.c.resolved_by == "auto", rc.c.refund_cents > 0)
        )
        on_receipt = s.execute(auto.where(rc.c.receipt_id == receipt_id)).scalar_one()
        to_shopper = s.execute(
            auto.join(r, r.c.id == rc.c.receipt_id).where(
                r.c.account_token == account_token, rc.c.created_at >= since
            )
        ).scalar_one()
        return int(on_receipt), int(to_shopper)
