"""SQLAlchemy repositories of the review queue, receipt corrections and used entry codes.

They work on the unit of work's session, so a review item commits with the cart decision that opened it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from store_server.adapters import orm
from store_server.adapters.db import dialect_insert
from store_server.domain.review import (
    Correction,
    ReceiptCorrection,
    ReviewItem,
    ReviewKind,
    ReviewStatus,
)

Now = Callable[[], float]
ReviewList = list[ReviewItem]
CorrectionList = list[ReceiptCorrection]


def _applied(c: Correction | None) -> dict[str, Any] | None:
    return None if c is None else {"session_id": c.session_id, "sku": c.sku, "quantity": c.quantity}


def _review(r: Row[Any]) -> ReviewItem:
    a = r.applied
    return ReviewItem(
        id=r.id,
        kind=ReviewKind(r.kind),
        created_at=r.created_at,
        event_id=r.event_id,
        session_id=r.session_id,
        summary=r.summary,
        evidence=dict(r.evidence or {}),
        applied=Correction(a["session_id"], a["sku"], int(a["quantity"])) if a else None,
        status=ReviewStatus(r.status),
        resolution=dict(r.resolution or {}),
        resolved_by=r.resolved_by,
        resolved_at=r.resolved_at,
    )


def _correction(r: Row[Any]) -> ReceiptCorrection:
    return ReceiptCorrection(
        id=r.id,
        receipt_id=r.receipt_id,
        review_id=r.review_id,
        lines=tuple(r.lines or ()),
        total_before_cents=r.total_before_cents,
        total_after_cents=r.total_after_cents,
        refund_cents=r.refund_cents,
        currency=r.currency,
        status=r.status,
        note=r.note,
        created_at=r.created_at,
    )


class SqlAlchemyReviewRepository:
    def __init__(self, session: Session, now: Now) -> None:
        self._s = session
        self._now = now

    def add(self, item: ReviewItem) -> bool:
        stmt = (
            dialect_insert(self._s, orm.review_items)
            .values(
                id=item.id,
                kind=item.kind.value,
                status=item.status.value,
                created_at=item.created_at,
                event_id=item.event_id,
                session_id=item.session_id,
                summary=item.summary,
                evidence=item.evidence,
                applied=_applied(item.applied),
                resolution=item.resolution,
                resolved_by=item.resolved_by,
                resolved_at=item.resolved_at,
            )
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(orm.review_items.c.id)
        )
        return self._s.execute(stmt).scalar_one_or_none() is not None

    def get(self, review_id: str) -> ReviewItem | None:
        row = self._s.execute(select(orm.review_items).where(orm.review_items.c.id == review_id)).first()
        return _review(row) if row else None

    def list(self, status: ReviewStatus | None = None, limit: int = 100) -> ReviewList:
        t = orm.review_items
        stmt = select(t).order_by(t.c.created_at.desc(), t.c.id).limit(limit)
        if status is not None:
            stmt = stmt.where(t.c.status == ReviewStatus(status).value)
        return [_review(r) for r in self._s.execute(stmt)]

    def for_sessions(self, session_ids: Sequence[str]) -> ReviewList:
        if not session_ids:
            return []
        t = orm.review_items
        stmt = select(t).where(t.c.session_id.in_(session_ids)).order_by(t.c.created_at, t.c.id)
        return [_review(r) for r in self._s.execute(stmt)]

    def save(self, item: ReviewItem) -> None:
        t = orm.review_items
        self._s.execute(
            update(t)
            .where(t.c.id == item.id)
            .values(
                status=item.status.value,
                resolution=item.resolution,
                resolved_by=item.resolved_by,
                resolved_at=item.resolved_at,
                session_id=item.session_id,
            )
        )

    def add_correction(self, correction: ReceiptCorrection) -> None:
        stmt = (
            dialect_insert(self._s, orm.receipt_corrections)
            .values(
                id=correction.id,
                receipt_id=correction.receipt_id,
                review_id=correction.review_id,
                lines=list(correction.lines),
                total_before_cents=correction.total_before_cents,
                total_after_cents=correction.total_after_cents,
                refund_cents=correction.refund_cents,
                currency=correction.currency,
                status=correction.status,
                note=correction.note,
                created_at=correction.created_at or self._now(),
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
        self._s.execute(stmt)

    def corrections_for(self, receipt_ids: Sequence[str]) -> CorrectionList:
        if not receipt_ids:
            return []
        t = orm.receipt_corrections
        stmt = select(t).where(t.c.receipt_id.in_(receipt_ids)).order_by(t.c.created_at, t.c.id)
        return [_correction(r) for r in self._s.execute(stmt)]

    def pending_corrections(self) -> CorrectionList:
        t = orm.receipt_corrections
        stmt = select(t).where(t.c.status == "pending").order_by(t.c.created_at, t.c.id)
        return [_correction(r) for r in self._s.execute(stmt)]

    def set_correction_status(self, correction_id: str, status: str) -> None:
        t = orm.receipt_corrections
        self._s.execute(update(t).where(t.c.id == correction_id).values(status=status))


class SqlAlchemyEntryCodeRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def use(self, nonce: str, account_token: str, session_id: str, used_at: float) -> str:
        t = orm.entry_code_uses
        stmt = (
            dialect_insert(self._s, t)
            .values(nonce=nonce, account_token=account_token, session_id=session_id, used_at=used_at)
            .on_conflict_do_nothing(index_elements=["nonce"])
            .returning(t.c.session_id)
        )
        first = self._s.execute(stmt).scalar_one_or_none()
        if first is not None:
            return str(first)
        return str(self._s.execute(select(t.c.session_id).where(t.c.nonce == nonce)).scalar_one())
