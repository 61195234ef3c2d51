"""The staff review queue: decisions the store server could not take with confidence, and their fix.

A review item is opened inside the decision that doubted (the same evidence, the same event time):
the best guess still goes into the cart, the item says what was applied and what else could explain
the weight. Staff resolve it with an explicit command; the fix is a list of corrections (session, sku,
signed quantity) that undo what was applied and apply what staff chose. Pure logic, stdlib only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from store_server.domain.layout import StoreLayout
from store_server.domain.pricing import Bill, price_cart
from store_server.domain.session import CartLine


class ReviewKind(StrEnum):
    LOW_CONFIDENCE = "low_confidence"  # applied, but the guess (who or what) was weak
    UNATTRIBUTED = "unattributed"  # nobody within reach and several shoppers in the store
    UNEXPLAINED = "unexplained"  # no product explains the weight
    DISPUTE = "dispute"  # a shopper disputes a receipt line (refunded at once within the caps)
    VISIT_TIMEOUT = "visit_timeout"  # a shopper gone for good with a cart: closed, not charged


class ReviewStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"  # corrected as staff chose (or refunded automatically)
    DISMISSED = "dismissed"  # kept as decided (or a dispute rejected)


FUSION = "fusion"  # ``resolved_by`` of an item fusion closed itself (a split event explained whole)


class ReviewError(ValueError):
    """A resolution that cannot be applied; the message is shown to staff."""


@dataclass(frozen=True)
class Correction:
    session_id: str
    sku: str
    quantity: int  # + added to the cart, - removed


@dataclass
class ReviewItem:
    id: str
    kind: ReviewKind
    created_at: float  # event time of the evidence
    event_id: str  # the weight message id (or the receipt id of a dispute)
    session_id: str | None  # where the guess went (None: nowhere)
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    applied: Correction | None = None  # what the decision put in a cart
    status: ReviewStatus = ReviewStatus.OPEN
    resolution: dict[str, Any] = field(default_factory=dict)
    resolved_by: str | None = None
    resolved_at: float | None = None  # wall clock, audit only

    @property
    def is_open(self) -> bool:
        return self.status is ReviewStatus.OPEN

    def plan(self, action: str, target: Correction | None = None) -> list[Correction]:
        """The corrections for ``action``: ``keep`` (nothing changes), ``remove`` (undo what was
        applied), ``assign`` (undo, then apply ``target``). ``charge`` is :meth:`plan_charge`."""
        if not self.is_open:
            raise ReviewError(f"review {self.id} is already {self.status}")
        if action == "keep":
            return []
        undo = [Correction(a.session_id, a.sku, -a.quantity)] if (a := self.applied) else []
        if action == "remove":
            return undo
        if action == "charge":
            raise ReviewError("charge needs the cart: see plan_charge")
        if action != "assign":
            raise ReviewError(f"unknown action {action!r} (keep, remove, assign or charge)")
        if target is None or target.quantity == 0:
            raise ReviewError("assign needs a session, a product and a non-zero quantity")
        return net([*undo, target])

    def plan_charge(self, cart: dict[str, int], quantities: dict[str, int] | None = None) -> list[Correction]:
        """The corrections before staff charge a timed-out visit: ``quantities`` replace the cart's
        for those products (0 removes a line, a product not listed stays as it is; None charges the
        cart as it stands). Refused when the item is closed, is no visit timeout, or nothing is left."""
        if not self.is_open:
            raise ReviewError(f"review {self.id} is already {self.status}")
        if self.kind is not ReviewKind.VISIT_TIMEOUT or self.session_id is None:
            raise ReviewError(
                f"only a {ReviewKind.VISIT_TIMEOUT.value} item can be charged, not {self.kind.value}"
            )
        wanted = dict(cart)
        for sku, quantity in (quantities or {}).items():
            if quantity < 0:
                raise ReviewError(f"quantity of {sku!r}: {quantity} is below 0")
            wanted[sku] = quantity
        if not any(q > 0 for q in wanted.values()):
            raise ReviewError("nothing to charge: the cart would be empty (dismiss the item instead)")
        corrections = [
            Correction(self.session_id, sku, wanted.get(sku, 0) - cart.get(sku, 0))
            for sku in sorted(set(cart) | set(wanted))
        ]
        return [c for c in corrections if c.quantity != 0]


def review_id_for(kind: ReviewKind, event_id: str) -> str:
    """Deterministic, so a replayed decision finds the item it opened the first time."""
    return f"rv-{kind.value.replace('_', '-')}-" + event_id.replace(":", "-")


def net(corrections: list[Correction]) -> list[Correction]:
    """Sum per (session, sku) and drop what cancels out (keep, then undo+redo of the same line)."""
    total: dict[tuple[str, str], int] = {}
    for c in corrections:
        key = (c.session_id, c.sku)
        total[key] = total.get(key, 0) + c.quantity
    return [Correction(s, sku, q) for (s, sku), q in total.items() if q != 0]


def candidate_products(
    layout: StoreLayout,
    plate_ids: list[str],
    delta_g: float,
    noise_g: float,
    cart: dict[str, int] | None = None,
    limit: int = 4,
) -> list[dict[str, Any]]:
    """Products that could explain a weight change, best first, with quantity, expected weight and a
    share of the likelihood. Picks come from the plates, put-backs from the cart (or the plates)."""
    magnitude = abs(delta_g)
    on_plates = {layout.sku_on_plate[p] for p in plate_ids if p in layout.sku_on_plate}
    pool = set(on_plates) | ({s for s, q in (cart or {}).items() if q > 0} if delta_g > 0 else set())
    scored: list[tuple[float, str, int]] = []
    for sku in sorted(pool):
        product = layout.products.get(sku)
        if product is None:
            continue
        qty = max(1, round(magnitude / product.unit_weight_g))
        sigma = math.sqrt(qty * product.weight_std_g**2 + noise_g**2 + 1.0)
        z = (magnitude - qty * product.unit_weight_g) / sigma
        scored.append((z * z + (0.0 if sku in on_plates else 1.0), sku, qty))
    scored.sort()
    weights = [math.exp(-min(c, 700.0) / 2) for c, _, _ in scored]
    total = sum(weights) or 1.0
    sign = -1 if delta_g < 0 else 1
    return [
        {
            "sku": sku,
            "name": layout.products[sku].name,
            "quantity": qty,
            "expected_g": round(sign * qty * layout.products[sku].unit_weight_g, 1),
            "likelihood": round(w / total, 4),
            "on_plate": sku in on_plates,
        }
        for (_, sku, qty), w in list(zip(scored, weights, strict=True))[:limit]
    ]


def apply_to_cart(cart: dict[str, int], corrections: list[Correction], session_id: str) -> dict[str, int]:
    """The cart after the corrections meant for ``session_id`` (never below zero per line)."""
    out = dict(cart)
    for c in corrections:
        if c.session_id == session_id:
            out[c.sku] = max(0, out.get(c.sku, 0) + c.quantity)
    return {sku: q for sku, q in out.items() if q > 0}


@dataclass(frozen=True)
class ReceiptCorrection:
    """A receipt changed after it was issued: what changed, the new totals, the money that moves."""

    id: str
    receipt_id: str
    review_id: str
    lines: tuple[dict[str, Any], ...]  # {sku, name, quantity, amount_cents}, signed
    total_before_cents: int
    total_after_cents: int
    refund_cents: int  # > 0: back to the shopper; < 0: charged on top; 0: nothing moves
    currency: str
    status: str  # pending | refunded | charged | declined | adjusted | failed | none
    note: str = ""
    created_at: float = 0.0


def correct_receipt(
    layout: StoreLayout,
    receipt_id: str,
    review_id: str,
    before: list[CartLine],
    after: list[CartLine],
    paid: bool,
    note: str = "",
) -> ReceiptCorrection:
    """Re-price the corrected cart; the refund is the difference of the totals (tax included)."""
    old: Bill = price_cart(before, layout.products, layout.tax_rates, layout.currency)
    new: Bill = price_cart(after, layout.products, layout.tax_rates, layout.currency)
    was = {ln.sku: ln for ln in old.lines}
    now = {ln.sku: ln for ln in new.lines}
    lines = []
    for sku in sorted(set(was) | set(now)):
        q = (now[sku].quantity if sku in now else 0) - (was[sku].quantity if sku in was else 0)
        if q:
            amount = (now[sku].amount_cents if sku in now else 0) - (
                was[sku].amount_cents if sku in was else 0
            )
            name = (now.get(sku) or was[sku]).name
            lines.append({"sku": sku, "name": name, "quantity": q, "amount_cents": amount})
    refund = old.total_cents - new.total_cents if paid else 0
    # Pending until the money (if any) has moved and the backend order knows; "none": nothing changed.
    status = "pending" if lines else "none"
    return ReceiptCorrection(
        id=f"rc-{review_id.removeprefix('rv-')}-{receipt_id.removeprefix('r-')}",
        receipt_id=receipt_id,
        review_id=review_id,
        lines=tuple(lines),
        total_before_cents=old.total_cents,
        total_after_cents=new.total_cents,
        refund_cents=refund,
        currency=old.currency,
        status=status,
        note=note,
    )


@dataclass(frozen=True)
class RefundCaps:
    """How much a shopper's disputes may take back without staff. Every cap must hold for an automatic
    refund; a dispute over any of them waits for staff, with the reason. ``0`` turns a cap off."""

    per_line_cents: int = 500
    per_receipt_cents: int = 1000
    receipt_share: float = 0.5  # of the receipt's total: a whole receipt never comes back unseen
    per_shopper_cents: int = 2000
    period_s: float = 30 * 86400.0


def refund_cap_reason(
    caps: RefundCaps,
    refund_cents: int,
    receipt_total_cents: int,
    receipt_refunded_cents: int,
    shopper_refunded_cents: int,
    currency: str,
) -> str | None:
    """None when ``refund_cents`` may be refunded at once; otherwise why staff must look first.

    ``receipt_refunded_cents`` and ``shopper_refunded_cents`` are what automatic refunds already gave
    back on this receipt and to this shopper within the period."""

    def amount(cents: int) -> str:
        return f"{cents / 100:.2f} {currency}"

    if caps.per_line_cents and refund_cents > caps.per_line_cents:
        return f"sent to staff: {amount(refund_cents)} is over {amount(caps.per_line_cents)} for one line"
    on_receipt = receipt_refunded_cents + refund_cents
    if caps.per_receipt_cents and on_receipt > caps.per_receipt_cents:
        return (
            f"sent to staff: automatic refunds on this receipt would reach {amount(on_receipt)}, "
            f"over {amount(caps.per_receipt_cents)}"
        )
    share_cap = math.floor(receipt_total_cents * caps.receipt_share)
    if caps.receipt_share and on_receipt > share_cap:
        percent = on_receipt * 100 // max(1, receipt_total_cents)
        return (
            f"sent to staff: automatic refunds would reach {percent}% of this receipt, "
            f"over {caps.receipt_share:.0%}"
        )
    to_shopper = shopper_refunded_cents + refund_cents
    if caps.per_shopper_cents and to_shopper > caps.per_shopper_cents:
        days = caps.period_s / 86400
        period = f"{days:g} days" if days >= 1 else f"{caps.period_s / 3600:g} hours"
        return (
            f"sent to staff: automatic refunds to you in the last {period} would reach "
            f"{amount(to_shopper)}, over {amount(caps.per_shopper_cents)}"
        )
    return None
