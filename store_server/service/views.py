"""Read models for people: plain JSON-able dicts of sessions, receipts, review items, stock and KPIs,
shared by the HTTP routes and the live push (so a pushed update looks exactly like a fetched one)."""

from __future__ import annotations

import time
from typing import Any

from store_server.domain.layout import StoreLayout
from store_server.domain.receipt import Receipt
from store_server.domain.review import ReceiptCorrection, ReviewItem
from store_server.domain.session import ShopperSession
from store_server.service.ports import UnitOfWork

RECENT_CLOSED = 8  # closed visits the dashboard keeps showing under the open ones
LOW_STOCK_SHARE = 0.25


def line_evidence(s: ShopperSession) -> dict[str, list[str]]:
    """Per product, what decided the changes that put it in the cart (weight, planogram, vision;
    "staff" for a review correction), in the order they happened, each once."""
    out: dict[str, list[str]] = {}
    for c in s.changes:
        if c.quantity > 0:
            kind = c.evidence or ("staff" if c.note.startswith("review:") else "")
            seen = out.setdefault(c.sku, [])
            if kind and kind not in seen:
                seen.append(kind)
    return out


def session_view(s: ShopperSession, layout: StoreLayout) -> dict[str, Any]:
    products = layout.products
    evidence = line_evidence(s)
    cart: list[dict[str, Any]] = [
        {
            "sku": ln.sku,
            "name": products[ln.sku].name if ln.sku in products else ln.sku,
            "quantity": ln.quantity,
            "confidence": round(ln.confidence, 3),
            "price_cents": products[ln.sku].price_cents if ln.sku in products else 0,
            "evidence": evidence.get(ln.sku, []),
        }
        for ln in s.cart()
    ]
    return {
        "id": s.id,
        "account_token": s.account_token,
        "state": str(s.state),
        "entered_at": s.entered_at,
        "exited_at": s.exited_at,
        "group_size": s.group_size,
        "track_ids": s.track_ids(),
        "active_tracks": s.active_track_ids(),
        "cart": cart,
        "cart_cents": sum(ln["price_cents"] * ln["quantity"] for ln in cart),
        "misplaced": [c.sku for c in s.changes if c.note == "misplaced"],
    }


def correction_view(rc: ReceiptCorrection) -> dict[str, Any]:
    return {
        "id": rc.id,
        "review_id": rc.review_id,
        "lines": list(rc.lines),
        "total_before_cents": rc.total_before_cents,
        "total_after_cents": rc.total_after_cents,
        "refund_cents": rc.refund_cents,
        "status": rc.status,
        "note": rc.note,
        "created_at": rc.created_at,
    }


def receipt_view(
    r: Receipt, corrections: list[ReceiptCorrection], disputes: list[ReviewItem] | None = None
) -> dict[str, Any]:
    b = r.bill
    mine = [c for c in corrections if c.receipt_id == r.id]
    corrected: dict[str, int] = {}
    for c in mine:
        for ln in c.lines:
            corrected[ln["sku"]] = corrected.get(ln["sku"], 0) + int(ln["quantity"])
    return {
        "id": r.id,
        "session_id": r.session_id,
        "account_token": r.account_token,
        "exited_at": r.exited_at,
        "currency": b.currency,
        "lines": [
            {
                "sku": ln.sku,
                "name": ln.name,
                "quantity": ln.quantity,
                "unit_price_cents": ln.unit_price_cents,
                "amount_cents": ln.amount_cents,
                "remaining": max(0, ln.quantity + corrected.get(ln.sku, 0)),  # after corrections
            }
            for ln in b.lines
        ],
        "subtotal_cents": b.subtotal_cents,
        "tax_cents": b.tax_cents,
        "total_cents": b.total_cents,
        "payment_status": r.payment_status,
        "decline_reason": r.decline_reason,
        "corrections": [correction_view(c) for c in mine],
        "adjusted_total_cents": mine[-1].total_after_cents if mine else b.total_cents,
        "refunded_cents": sum(c.refund_cents for c in mine if c.status == "refunded"),
        "disputes": {d.evidence.get("sku", ""): dispute_state(d) for d in disputes or []},
    }


def dispute_state(d: ReviewItem) -> dict[str, Any]:
    state = {"open": "in review", "resolved": "refunded", "dismissed": "rejected"}[d.status.value]
    return {
        "review_id": d.id,
        "state": state,
        "quantity": d.evidence.get("quantity"),
        "refund_cents": d.evidence.get("refund_cents"),
        # Why it was not refunded at once (a cap), shown to the shopper while staff decide.
        "held_for_staff": d.evidence.get("held_for_staff") if d.is_open else None,
    }


def review_view(item: ReviewItem) -> dict[str, Any]:
    applied = item.applied
    return {
        "id": item.id,
        "kind": item.kind.value,
        "status": item.status.value,
        "created_at": item.created_at,
        "event_id": item.event_id,
        "session_id": item.session_id,
        "summary": item.summary,
        "evidence": item.evidence,
        "applied": {"session_id": applied.session_id, "sku": applied.sku, "quantity": applied.quantity}
        if applied
        else None,
        "resolution": item.resolution,
        "resolved_by": item.resolved_by,
        "resolved_at": item.resolved_at,
    }


def receipts_with_corrections(uow: UnitOfWork, receipts: list[Receipt]) -> list[dict[str, Any]]:
    ids = [r.id for r in receipts]
    corrections = uow.reviews.corrections_for(ids)
    disputes = [d for d in uow.reviews.for_sessions([r.session_id for r in receipts]) if d.kind == "dispute"]
    return [receipt_view(r, corrections, [d for d in disputes if d.event_id == r.id]) for r in receipts]


def stock_view(
    layout: StoreLayout, backend_levels: dict[str, int], open_sessions: list[ShopperSession]
) -> list[dict[str, Any]]:
    """Per sku: the backend count less what open carts hold (goods off the shelf, not yet sold)."""
    in_carts: dict[str, int] = {}
    for s in open_sessions:
        for ln in s.cart():
            in_carts[ln.sku] = in_carts.get(ln.sku, 0) + ln.quantity
    out = []
    for entry in layout.planogram:
        on_shelf = max(0, backend_levels.get(entry.sku, entry.stock) - in_carts.get(entry.sku, 0))
        plate = layout.plates.get(entry.plates[0])
        capacity = max(entry.stock, 1)
        out.append(
            {
                "sku": entry.sku,
                "name": layout.products[entry.sku].name,
                "shelf_id": plate.shelf_id if plate else "",
                "gondola_id": plate.gondola_id if plate else "",
                "quantity": on_shelf,
                "capacity": capacity,
                "low": on_shelf <= max(1, int(capacity * LOW_STOCK_SHARE)),
            }
        )
    return out


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def kpis(uow: UnitOfWork, latencies_s: list[float], now: float | None = None) -> dict[str, Any]:
    """Shoppers in store, today's sales (UTC day, approved charges less refunds), receipt latency."""
    now = now or time.time()
    day_start = now - now % 86400
    receipts = [r for r in uow.receipts.list(limit=2000) if r.exited_at >= day_start]
    corrections = uow.reviews.corrections_for([r.id for r in receipts])
    sales = sum(r.bill.total_cents for r in receipts if r.payment_status == "approved")
    sales -= sum(c.refund_cents for c in corrections if c.status in ("refunded", "charged"))
    p50, p99 = percentile(latencies_s, 0.5), percentile(latencies_s, 0.99)
    return {
        "shoppers_in_store": sum(s.group_size for s in uow.sessions.open_sessions()),
        "sales_today_cents": sales,
        "receipts_today": len(receipts),
        "declined_today": sum(1 for r in receipts if r.payment_status != "approved"),
        "latency_p50_ms": round(p50 * 1000) if p50 is not None else None,
        "latency_p99_ms": round(p99 * 1000) if p99 is not None else None,
    }
