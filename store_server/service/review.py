"""Commands of the review queue: staff resolve an item; a shopper disputes a receipt line.

A resolution appends corrections (note ``review:<id>``) to the carts involved. A visit that is over has
a receipt: its correction is re-priced and recorded, the difference is refunded through the ledger
(or charged on top), idempotent on the correction id, and the backend order is adjusted. Money moves
after the commit, from the pending corrections (:meth:`ReviewService.settle`), so a crash in between is
finished by the next settle (every bootstrap runs one).

A timed-out visit (a shopper gone for good, never past the exit) can be charged from its review item:
staff may set quantities first, then the exit's own charge runs (:func:`handlers.charge_visit`, the
session id as idempotency key) in the resolution's unit of work under the processor lock, so a
second resolution finds the item closed and the shopper is charged once.

A dispute is refunded at once only within :class:`RefundCaps` (per line, per receipt, per shopper and
period); over a cap it waits for staff and says why. The caps are checked under the processor lock and,
through :class:`AutoRefundTally`, with the shopper's and the receipt's rows locked in the database, so
two disputes at once (threads or processes) cannot both pass.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from store_server.adapters.ledger import Accounts
from store_server.backend.api import AdjustmentLineIn, OrderAdjustmentIn, OrderBackend
from store_server.domain.layout import StoreLayout
from store_server.domain.receipt import Receipt
from store_server.domain.review import (
    Correction,
    RefundCaps,
    ReviewError,
    ReviewItem,
    ReviewKind,
    ReviewStatus,
    apply_to_cart,
    correct_receipt,
    refund_cap_reason,
    review_id_for,
)
from store_server.domain.session import CartChange, CartLine, SessionState, ShopperSession
from store_server.service.handlers import charge_visit
from store_server.service.ports import PaymentGateway, UnitOfWork

logger = logging.getLogger(__name__)

Changed = Callable[[list[str], list[str]], None]  # (review ids, session ids)


class AutoRefundTally(Protocol):
    def hold_and_sum(
        self, uow: UnitOfWork, account_token: str, receipt_id: str, since: float
    ) -> tuple[int, int]:
        """Lock the shopper and the receipt until ``uow`` ends; return the cents refunded
        automatically on the receipt and to the shopper since ``since``."""


class ReviewItemsTally:
    """A tally from the review items alone, for in-memory units of work (one process, the lock): the
    receipt's own disputes, and every automatic refund since ``since`` on the shopper's receipts."""

    def hold_and_sum(
        self, uow: UnitOfWork, account_token: str, receipt_id: str, since: float
    ) -> tuple[int, int]:
        on_receipt = to_shopper = 0
        for item in uow.reviews.list(ReviewStatus.RESOLVED, limit=100_000):
            if item.kind is not ReviewKind.DISPUTE or item.resolved_by != "auto":
                continue
            cents = max(0, int(item.evidence.get("refund_cents") or 0))
            if item.event_id == receipt_id:
                on_receipt += cents
            receipt = uow.receipts.get(item.event_id)
            if receipt and receipt.account_token == account_token and (item.resolved_at or 0) >= since:
                to_shopper += cents
        return on_receipt, to_shopper


class ReviewService:
    def __init__(
        self,
        layout: StoreLayout,
        uow_factory: Callable[[], UnitOfWork],
        accounts: Accounts,
        payments: PaymentGateway,
        backend: OrderBackend,
        *,
        lock: threading.Lock | None = None,
        caps: RefundCaps | None = None,
        tally: AutoRefundTally | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.layout = layout
        self.uow_factory = uow_factory
        self.accounts = accounts
        self.payments = payments
        self.backend = backend
        # Carts are also written by the decision worker: commands run between its batches.
        self._lock: Any = lock or contextlib.nullcontext()
        self.caps = caps or RefundCaps()
        self.tally: AutoRefundTally = tally or ReviewItemsTally()
        self._now = now
        self.listeners: list[Changed] = []

    # -- staff ------------------------------------------------------------------------------------
    def resolve(
        self,
        review_id: str,
        action: str,
        target: Correction | None,
        by: str,
        note: str = "",
        quantities: dict[str, int] | None = None,
    ) -> ReviewItem:
        """``keep`` the decision, ``remove`` what it applied, or ``assign`` ``target`` instead; for a
        timed-out visit, ``charge`` its cart (with ``quantities`` replacing the cart's, if given)."""
        if target is not None and target.sku not in self.layout.products:
            raise ReviewError(f"{target.sku!r} is not in the catalog")
        with self._lock, self.uow_factory() as uow:
            item = uow.reviews.get(review_id)
            if item is None:
                raise LookupError(f"no review item {review_id!r}")
            charged: Receipt | None = None
            if action == "charge":
                corrections, charged = self._charge(uow, item, quantities or {}, note)
                receipts = [charged.id]
            else:
                corrections = item.plan(action, target)
                receipts = self._apply(uow, item, corrections, note)
            self._close(item, action, corrections, receipts, by, note, charged)
            uow.reviews.save(item)
            uow.commit()
        self.settle()
        self._changed([item.id], sorted({c.session_id for c in corrections} | {item.session_id or ""} - {""}))
        return item

    # -- shoppers ---------------------------------------------------------------------------------
    def dispute(
        self, account_token: str, receipt_id: str, sku: str, quantity: int, reason: str
    ) -> ReviewItem:
        """A shopper disputes ``quantity`` of a receipt line: refunded at once within the caps,
        otherwise queued for staff with the reason (``evidence["held_for_staff"]``). One dispute per
        line."""
        with self._lock, self.uow_factory() as uow:
            receipt = uow.receipts.get(receipt_id)
            if receipt is None or receipt.account_token != account_token:
                raise LookupError(f"no receipt {receipt_id!r}")  # the same answer for someone else's
            # Before anything else is read: a concurrent dispute of this shopper waits here until
            # this one commits, so its cart, its review items and the totals below are all current.
            on_receipt, to_shopper = self.tally.hold_and_sum(
                uow, account_token, receipt_id, self._now() - self.caps.period_s
            )
            session = uow.sessions.get(receipt.session_id)
            held = session.quantity_of(sku) if session else 0
            if session is None or held <= 0:
                raise ReviewError("this receipt has no such line (or it was refunded already)")
            quantity = max(1, min(quantity, held))
            item = ReviewItem(
                id=review_id_for(ReviewKind.DISPUTE, f"{receipt_id}:{sku}"),
                kind=ReviewKind.DISPUTE,
                created_at=receipt.exited_at,
                event_id=receipt_id,
                session_id=session.id,
                summary=f"{receipt_id}: shopper disputes {quantity}x {self._name(sku)}",
                evidence={
                    "receipt_id": receipt_id,
                    "sku": sku,
                    "name": self._name(sku),
                    "quantity": quantity,
                    "reason": reason.strip()[:500],
                    "paid": receipt.payment_status == "approved",
                },
                applied=Correction(session.id, sku, quantity),
            )
            if uow.reviews.get(item.id) is not None:
                raise ReviewError("this line is disputed already")
            before = session.cart()
            after = apply_to_cart({ln.sku: ln.quantity for ln in before}, item.plan("remove"), session.id)
            preview = correct_receipt(self.layout, receipt_id, item.id, before, _lines(after), paid=True)
            item.evidence["refund_cents"] = preview.refund_cents
            to_staff = refund_cap_reason(
                self.caps,
                preview.refund_cents,
                receipt.bill.total_cents,
                on_receipt,
                to_shopper,
                preview.currency,
            )
            if to_staff is not None:
                item.evidence["held_for_staff"] = to_staff
                item.summary += f" ({to_staff.removeprefix('sent to staff: ')})"
            if not uow.reviews.add(item):
                raise ReviewError("this line is disputed already")
            if to_staff is None:
                logger.info("dispute %s refunded at once: %d cents", item.id, preview.refund_cents)
                receipts = self._apply(uow, item, item.plan("remove"), "automatic refund")
                self._close(item, "remove", item.plan("remove"), receipts, "auto", "automatic refund")
                uow.reviews.save(item)
            uow.commit()
        self.settle()
        self._changed([item.id], [session.id])
        return item

    # -- money and the backend, after the commit --------------------------------------------------
    def settle(self) -> int:
        """Move the money of pending receipt corrections and adjust the backend orders; idempotent."""
        with self.uow_factory() as uow:
            pending = uow.reviews.pending_corrections()
            receipts = {rc.receipt_id: uow.receipts.get(rc.receipt_id) for rc in pending}
        done = 0
        for rc in pending:
            receipt = receipts[rc.receipt_id]
            if receipt is None:
                continue
            try:
                status = self._move_money(rc.id, receipt.account_token, rc.refund_cents, rc.currency)
                if self.backend.get_order(receipt.session_id) is None:
                    continue  # the order is still in the outbox: the next settle adjusts it
                self.backend.adjust_order(
                    OrderAdjustmentIn(
                        adjustment_id=rc.id,
                        order_id=receipt.session_id,
                        store_id=receipt.store_id,
                        lines=[
                            AdjustmentLineIn(
                                sku=ln["sku"], quantity=ln["quantity"], amount_cents=ln["amount_cents"]
                            )
                            for ln in rc.lines
                        ],
                        total_delta_cents=rc.total_after_cents - rc.total_before_cents,
                        reason=rc.review_id,
                    )
                )
            except LookupError as exc:  # an account the ledger does not know: nothing to retry
                logger.warning("correction %s cannot be settled: %s", rc.id, exc)
                status = "failed"
            except Exception:
                logger.exception("correction %s not settled; will retry", rc.id)
                continue
            with self.uow_factory() as uow:
                uow.reviews.set_correction_status(rc.id, status)
                uow.commit()
            done += 1
        return done

    def _move_money(self, key: str, account: str, refund_cents: int, currency: str) -> str:
        if refund_cents > 0:
            self.accounts.refund(account, refund_cents, f"refund:{key}")
            return "refunded"
        if refund_cents < 0:
            result = self.payments.charge(account, -refund_cents, currency, f"charge:{key}")
            return "charged" if result.status == "approved" else "declined"
        return "adjusted"

    # -- internals --------------------------------------------------------------------------------
    def _charge(
        self, uow: UnitOfWork, item: ReviewItem, quantities: dict[str, int], note: str
    ) -> tuple[list[Correction], Receipt]:
        """Correct the timed-out visit's cart as staff set it, then charge it as the exit would."""
        session = uow.sessions.get(item.session_id or "")
        if session is None:
            raise ReviewError(f"no session {item.session_id!r}")
        corrections = item.plan_charge({ln.sku: ln.quantity for ln in session.cart()}, quantities)
        if session.state is not SessionState.TIMED_OUT:
            raise ReviewError(f"{session.id} is {session.state.value}, not timed out: nothing to charge")
        added = sorted({c.sku for c in corrections if c.quantity > 0} - set(self.layout.products))
        if added:
            raise ReviewError(f"{added[0]!r} is not in the catalog")
        self._append(session, item, corrections)
        # A product dropped from the catalog since the visit cannot be priced; nothing is guessed.
        unpriced = sorted({ln.sku for ln in session.cart() if ln.sku not in self.layout.products})
        if unpriced:
            raise ReviewError(
                f"{unpriced[0]!r} is not in the catalog: set its quantity to 0 to charge the rest"
            )
        # The visit ends when its shopper was last seen, as the timeout decided.
        receipt = charge_visit(self.layout, self.payments, uow, session, session.exited_at or item.created_at)
        logger.info(
            "timed-out visit %s charged from review %s: %d cents, %s (%s)",
            session.id,
            item.id,
            receipt.bill.total_cents,
            receipt.payment_status,
            note or "no note",
        )
        return corrections, receipt

    @staticmethod
    def _append(session: ShopperSession, item: ReviewItem, corrections: list[Correction]) -> None:
        """Append ``corrections`` meant for ``session`` as cart changes noted ``review:<id>``."""
        for c in (c for c in corrections if c.session_id == session.id):
            qty = c.quantity if c.quantity > 0 else -min(-c.quantity, session.quantity_of(c.sku))
            if qty:
                event_id = f"review:{item.id}:{c.sku}"[:128]
                session.changes.append(
                    CartChange(event_id, c.sku, qty, item.created_at, 1.0, f"review:{item.id}")
                )

    def _apply(
        self, uow: UnitOfWork, item: ReviewItem, corrections: list[Correction], note: str
    ) -> list[str]:
        """Append the corrections to their sessions; re-price the receipts of closed ones."""
        receipts: list[str] = []
        for session_id in dict.fromkeys(c.session_id for c in corrections):
            session = uow.sessions.get(session_id)
            if session is None:
                raise ReviewError(f"no session {session_id!r}")
            before = session.cart()
            self._append(session, item, corrections)
            if not session.is_open:
                receipt = uow.receipts.for_session(session.id)
                if receipt is None:
                    raise ReviewError(f"{session.id} left without a receipt (empty cart): nothing to correct")
                rc = correct_receipt(
                    self.layout,
                    receipt.id,
                    item.id,
                    before,
                    session.cart(),
                    paid=receipt.payment_status == "approved",
                    note=note,
                )
                uow.reviews.add_correction(replace(rc, created_at=self._now()))
                receipts.append(receipt.id)
            uow.sessions.save(session)
        return receipts

    def _close(
        self,
        item: ReviewItem,
        action: str,
        corrections: list[Correction],
        receipts: list[str],
        by: str,
        note: str,
        charged: Receipt | None = None,
    ) -> None:
        kept = not corrections and charged is None
        item.status = ReviewStatus.DISMISSED if kept else ReviewStatus.RESOLVED
        item.resolution = {
            "action": action,
            "corrections": [
                {"session_id": c.session_id, "sku": c.sku, "quantity": c.quantity} for c in corrections
            ],
            "receipts": receipts,
            "note": note,
        }
        if charged is not None:
            item.resolution |= {
                "total_cents": charged.bill.total_cents,
                "currency": charged.bill.currency,
                "payment_status": charged.payment_status,
                "decline_reason": charged.decline_reason,
            }
        item.resolved_by, item.resolved_at = by, self._now()

    def _name(self, sku: str) -> str:
        product = self.layout.products.get(sku)
        return product.name if product else sku

    def _changed(self, review_ids: list[str], session_ids: list[str]) -> None:
        for listener in self.listeners:
            try:
                listener(review_ids, session_ids)
            except Exception:  # a broken listener must not undo a committed resolution
                logger.exception("review listener failed")


def _lines(cart: dict[str, int]) -> list[CartLine]:
    return [CartLine(sku, q) for sku, q in sorted(cart.items())]
