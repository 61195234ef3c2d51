"""Public shapes of the HTTP API (separate from tables and domain objects)."""

from __future__ import annotations

from pydantic import BaseModel

from store_server.domain.receipt import Receipt
from store_server.domain.review import ReceiptCorrection
from store_server.domain.session import ShopperSession
from store_server.service.views import line_evidence


class CartLinePublic(BaseModel):
    sku: str
    name: str
    quantity: int
    confidence: float
    evidence: list[str] = []  # what decided the changes behind this line (weight, planogram, vision, staff)


class CartChangePublic(BaseModel):
    event_id: str
    sku: str
    quantity: int
    at: float
    confidence: float
    note: str
    evidence: str = ""  # what decided the product: weight, planogram or vision ("": a staff correction)


class SessionPublic(BaseModel):
    id: str
    account_token: str
    track_id: str | None
    entered_at: float
    exited_at: float | None
    state: str
    cart: list[CartLinePublic]


class SessionDetail(SessionPublic):
    changes: list[CartChangePublic]


class ReceiptLinePublic(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price_cents: int
    amount_cents: int
    tax_class: str


class CorrectionLinePublic(BaseModel):
    sku: str
    name: str
    quantity: int
    amount_cents: int


class ReceiptCorrectionPublic(BaseModel):
    """A change to an issued receipt (staff review or dispute): refund > 0 went back to the shopper."""

    id: str
    review_id: str
    lines: list[CorrectionLinePublic]
    total_before_cents: int
    total_after_cents: int
    refund_cents: int
    status: str


class ReceiptPublic(BaseModel):
    id: str
    session_id: str
    store_id: str
    exited_at: float
    currency: str
    lines: list[ReceiptLinePublic]
    subtotal_cents: int
    tax_cents: int
    total_cents: int
    payment_status: str
    charge_id: str | None
    decline_reason: str | None
    corrections: list[ReceiptCorrectionPublic] = []
    adjusted_total_cents: int | None = None


class DeadLetterPublic(BaseModel):
    id: int | None
    topic: str
    reason: str
    field: str
    received_at: float
    payload_preview: str


class Health(BaseModel):
    status: str  # "ok" or "degraded"; ``reasons`` says why
    store_id: str
    database: str
    mqtt_connected: bool | None
    watermark: float | None
    inbox_messages: int
    reasons: list[str] = []
    queued_messages: int | None = None  # received, not yet stored (None: no consumer)


def session_public(s: ShopperSession, names: dict[str, str], detail: bool = False) -> SessionPublic:
    evidence = line_evidence(s)
    cart = [
        CartLinePublic(
            sku=ln.sku,
            name=names.get(ln.sku, ln.sku),
            quantity=ln.quantity,
            confidence=ln.confidence,
            evidence=evidence.get(ln.sku, []),
        )
        for ln in s.cart()
    ]
    base = dict(
        id=s.id,
        account_token=s.account_token,
        track_id=s.track_id,
        entered_at=s.entered_at,
        exited_at=s.exited_at,
        state=str(s.state),
        cart=cart,
    )
    if not detail:
        return SessionPublic(**base)
    changes = [
        CartChangePublic(
            event_id=c.event_id,
            sku=c.sku,
            quantity=c.quantity,
            at=c.at,
            confidence=c.confidence,
            note=c.note,
            evidence=c.evidence,
        )
        for c in s.changes
    ]
    return SessionDetail(**base, changes=changes)


def receipt_public(r: Receipt, corrections: list[ReceiptCorrection] | None = None) -> ReceiptPublic:
    b = r.bill
    mine = [c for c in corrections or [] if c.receipt_id == r.id]
    return ReceiptPublic(
        id=r.id,
        session_id=r.session_id,
        store_id=r.store_id,
        exited_at=r.exited_at,
        currency=b.currency,
        lines=[
            ReceiptLinePublic(
                sku=ln.sku,
                name=ln.name,
                quantity=ln.quantity,
                unit_price_cents=ln.unit_price_cents,
                amount_cents=ln.amount_cents,
                tax_class=ln.tax_class,
            )
            for ln in b.lines
        ],
        subtotal_cents=b.subtotal_cents,
        tax_cents=b.tax_cents,
        total_cents=b.total_cents,
        payment_status=r.payment_status,
        charge_id=r.charge_id,
        decline_reason=r.decline_reason,
        corrections=[
            ReceiptCorrectionPublic(
                id=c.id,
                review_id=c.review_id,
                lines=[CorrectionLinePublic(**ln) for ln in c.lines],
                total_before_cents=c.total_before_cents,
                total_after_cents=c.total_after_cents,
                refund_cents=c.refund_cents,
                status=c.status,
            )
            for c in mine
        ],
        adjusted_total_cents=mine[-1].total_after_cents if mine else b.total_cents,
    )
