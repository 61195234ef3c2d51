"""Opening review items inside a cart decision, from the same evidence and the same event time.

Called by :mod:`store_server.service.handlers` in the decision's unit of work: an item commits with
the cart change it doubts, and a replayed decision finds the item it opened (deterministic ids).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from edge.contracts import WeightEvent
from store_server import metrics
from store_server.domain.explain import Explanation
from store_server.domain.layout import StoreLayout
from store_server.domain.pricing import price_cart
from store_server.domain.review import (
    Correction,
    ReviewItem,
    ReviewKind,
    review_id_for,
)
from store_server.domain.session import ShopperSession
from store_server.service.ports import UnitOfWork

if TYPE_CHECKING:
    from store_server.service.handlers import Context
    from store_server.service.vision_picks import VisionLine

NEARBY_FACTOR = 3.0  # shoppers up to 3x the reach are listed as "nearby"
NEARBY_MARGIN_S = 2.0  # and seen up to this long around the event


def explanation_evidence(layout: StoreLayout, exp: Explanation) -> dict[str, Any]:
    """The explanation as JSON for a review item and the run report."""

    def name(sku: str) -> str:
        p = layout.products.get(sku)
        return p.name if p else sku

    return {
        "verdict": exp.verdict,
        "total_g": round(exp.total_g, 1),
        "plate_deltas_g": {p: round(d, 1) for p, d in exp.plate_changes.items()},
        "centroid": exp.centroid,
        "noise_floor_g": round(exp.noise_floor_g, 1),
        "product_confidence": exp.confidence,
        "decision": [
            {
                "sku": ln.sku,
                "name": name(ln.sku),
                "quantity": ln.quantity,
                "misplaced": ln.misplaced,
                "evidence": ln.evidence,
            }
            for ln in exp.lines
        ],
        "candidates": [
            {
                # The first line's product and quantity stay at the top level for single-product readers.
                "sku": c.lines[0][0],
                "name": " + ".join(name(s) for s, _ in c.lines),
                "quantity": abs(c.lines[0][1]),
                "expected_g": c.expected_g,
                "likelihood": c.share,
                "on_plate": c.near,
                "lines": [{"sku": s, "name": name(s), "quantity": q} for s, q in c.lines],
                "scores": {
                    "weight": round(c.weight, 2),
                    "planogram": round(c.planogram, 2),
                    "complexity": round(c.complexity, 2),
                    "vision": round(c.vision, 2),
                    "total": round(c.cost, 2),
                },
                "z": round(c.z, 2),
                "fits": c.fits,
            }
            for c in exp.candidates
        ],
    }


def weight_evidence(ctx: Context, msg: WeightEvent, exp: Explanation) -> dict[str, Any]:
    """The whole interaction for staff: plates and their deltas, the shelf total, the candidates
    with their scores, and what was decided on which evidence."""
    plate = ctx.layout.plates.get(msg.plate_ids[0])
    x, y = ctx.layout.plate_centroid(msg.plate_ids)
    return {
        "event_id": msg.msg_id,
        "gondola_id": msg.gondola_id,
        "shelf_id": msg.shelf_id,
        "plate_ids": list(msg.plate_ids),
        "plate_xy": [round(x, 2), round(y, 2)],
        "level": ctx.layout.shelves[msg.shelf_id][1].level if msg.shelf_id in ctx.layout.shelves else None,
        "index": plate.index if plate else None,
        "delta_g": round(msg.delta_g, 1),
        "shelf_delta_g": None if msg.shelf_delta_g is None else round(msg.shelf_delta_g, 1),
        "noise_g": round(msg.noise_g, 2),
        "t_start": msg.t_start,
        "t_end": msg.t_end,
        "edge_confidence": msg.confidence,
    } | explanation_evidence(ctx.layout, exp)


def nearby_shoppers(ctx: Context, msg: WeightEvent, sessions: list[ShopperSession]) -> list[dict[str, Any]]:
    """Open sessions whose tracks came near the plate around the event, closest first."""
    point = ctx.layout.plate_centroid(msg.plate_ids)
    t0 = msg.t_start - ctx.assign_window_s - NEARBY_MARGIN_S
    t1 = msg.t_end + ctx.assign_window_s + NEARBY_MARGIN_S
    out: list[dict[str, Any]] = []
    for s in sessions:
        best: tuple[float, str] | None = None
        for track_id in s.track_ids():
            d = ctx.tracks.closest_approach(track_id, point, t0, t1)
            if d is not None and (best is None or d < best[0]):
                best = (d, track_id)
        if best is not None and best[0] <= ctx.reach_m * NEARBY_FACTOR:
            out.append({"session_id": s.id, "track_id": best[1], "distance_m": round(best[0], 2)})
    out.sort(key=lambda n: (n["distance_m"], n["session_id"]))
    known = {n["session_id"] for n in out}
    # Everyone in the store is a candidate; the ones seen close come first.
    out += [
        {"session_id": s.id, "track_id": s.track_id, "distance_m": None}
        for s in sessions
        if s.id not in known
    ]
    return out


def _add(uow: UnitOfWork, item: ReviewItem) -> None:
    if uow.reviews.add(item):
        metrics.DECISIONS.labels(outcome=f"review_{item.kind.value}").inc()


def _name(ctx: Context, sku: str) -> str:
    product = ctx.layout.products.get(sku)
    return product.name if product else sku


def _what(ctx: Context, quantities: list[tuple[str, int]]) -> str:
    return " + ".join(f"{abs(q)}x {_name(ctx, sku)}" for sku, q in quantities)


def open_low_confidence(
    ctx: Context,
    uow: UnitOfWork,
    msg: WeightEvent,
    session: ShopperSession,
    exp: Explanation,
    shopper_confidence: float,
    confidence: float,
) -> None:
    """One item for the whole event, however many lines it put in the cart."""
    changes = [c for c in session.changes if c.event_id == msg.msg_id]
    evidence = weight_evidence(ctx, msg, exp)
    evidence |= {
        "nearby": nearby_shoppers(ctx, msg, uow.sessions.open_sessions()),
        "shopper_confidence": round(shopper_confidence, 4),
        "confidence": confidence,
        "guess": {
            "sku": changes[0].sku,
            "quantity": changes[0].quantity,
            "lines": [{"sku": c.sku, "quantity": c.quantity, "evidence": c.evidence} for c in changes],
        },
    }
    verb = "took" if changes[0].quantity > 0 else "put back"
    what = _what(ctx, [(c.sku, c.quantity) for c in changes])
    _add(
        uow,
        ReviewItem(
            id=review_id_for(ReviewKind.LOW_CONFIDENCE, msg.msg_id),
            kind=ReviewKind.LOW_CONFIDENCE,
            created_at=msg.t_end,
            event_id=msg.msg_id,
            session_id=session.id,
            summary=f"{session.id} {verb} {what}? (confidence {confidence:.2f})",
            evidence=evidence,
            # A review item undoes one line; the event's other lines are listed in the evidence.
            applied=Correction(session.id, changes[0].sku, changes[0].quantity),
        ),
    )


def _where(msg: WeightEvent) -> str:
    plates = len(msg.plate_ids)
    return f"{msg.shelf_id}" + (f" ({plates} plates)" if plates > 1 else "")


def open_unattributed(
    ctx: Context, uow: UnitOfWork, msg: WeightEvent, in_store: list[ShopperSession], exp: Explanation
) -> None:
    evidence = weight_evidence(ctx, msg, exp) | {"nearby": nearby_shoppers(ctx, msg, in_store)}
    what = "taken from" if msg.delta_g < 0 else "put on"
    _add(
        uow,
        ReviewItem(
            id=review_id_for(ReviewKind.UNATTRIBUTED, msg.msg_id),
            kind=ReviewKind.UNATTRIBUTED,
            created_at=msg.t_end,
            event_id=msg.msg_id,
            session_id=None,
            summary=f"{abs(msg.delta_g):.0f} g {what} {_where(msg)} with nobody within reach "
            f"({len(in_store)} shoppers in store)",
            evidence=evidence,
        ),
    )


def open_unexplained(
    ctx: Context, uow: UnitOfWork, msg: WeightEvent, session: ShopperSession, exp: Explanation
) -> None:
    evidence = weight_evidence(ctx, msg, exp) | {
        "nearby": nearby_shoppers(ctx, msg, uow.sessions.open_sessions())
    }
    _add(
        uow,
        ReviewItem(
            id=review_id_for(ReviewKind.UNEXPLAINED, msg.msg_id),
            kind=ReviewKind.UNEXPLAINED,
            created_at=msg.t_end,
            event_id=msg.msg_id,
            session_id=session.id,
            summary=f"{msg.delta_g:+.0f} g on {_where(msg)} matches no product ({session.id})",
            evidence=evidence,
        ),
    )


def open_visit_timeout(
    layout: StoreLayout,
    uow: UnitOfWork,
    session: ShopperSession,
    last_seen: float,
    decided_at: float,
    timeout_s: float,
) -> None:
    """A visit closed by the timeout with goods in its cart: nothing was charged, staff decide.

    Called after :meth:`ShopperSession.time_out`, in the same transaction; ``decided_at`` is the event
    time at which the timeout ran out (so a replay opens the same item)."""
    # Never fails on its data: this runs before every decision once a timeout ran out, so an error
    # here would stop the store. A product gone from the catalog is listed unpriced.
    cart = session.cart()
    bill = price_cart(
        [ln for ln in cart if ln.sku in layout.products], layout.products, layout.tax_rates, layout.currency
    )
    unpriced = [ln for ln in cart if ln.sku not in layout.products]
    try:
        seen = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(last_seen))
    except (OverflowError, OSError, ValueError):
        seen = f"{last_seen:.0f}"
    items = sum(line.quantity for line in cart)
    _add(
        uow,
        ReviewItem(
            id=review_id_for(ReviewKind.VISIT_TIMEOUT, session.id),
            kind=ReviewKind.VISIT_TIMEOUT,
            created_at=decided_at,
            event_id=session.id,
            session_id=session.id,
            summary=f"visit timed out: shopper not seen since {seen} ({session.id}, {items} items, "
            f"{bill.total_cents / 100:.2f} {bill.currency} not charged)",
            evidence={
                "session_id": session.id,
                "account_token": session.account_token,
                "entered_at": session.entered_at,
                "last_seen_at": last_seen,
                "timeout_s": timeout_s,
                "track_ids": session.track_ids(),
                "cart": [
                    {
                        "sku": ln.sku,
                        "name": ln.name,
                        "quantity": ln.quantity,
                        "unit_price_cents": ln.unit_price_cents,
                        "amount_cents": ln.amount_cents,
                    }
                    for ln in bill.lines
                ]
                + [
                    {
                        "sku": ln.sku,
                        "name": ln.sku,
                        "quantity": ln.quantity,
                        "unit_price_cents": None,
                        "amount_cents": None,
                    }
                    for ln in unpriced
                ],
                "total_cents": bill.total_cents,
                "currency": bill.currency,
                "charged": False,
            },
        ),
    )


def open_vision_pick(ctx: Context, uow: UnitOfWork, session: ShopperSession, line: VisionLine) -> None:
    """A line only the cameras saw (its plate could not weigh it), applied at the exit but doubtful."""
    what = _what(ctx, [(line.sku, line.quantity)])
    _add(
        uow,
        ReviewItem(
            id=review_id_for(ReviewKind.LOW_CONFIDENCE, line.event_id),
            kind=ReviewKind.LOW_CONFIDENCE,
            created_at=line.at,
            event_id=line.event_id,
            session_id=session.id,
            summary=f"{session.id} took {what}? seen by the camera only (confidence {line.confidence:.2f})",
            evidence={
                "evidence": "vision",
                "plate_ids": [line.plate_id],
                "track_id": line.track_id,
                "confidence": line.confidence,
                "note": line.note,
                "guess": {"sku": line.sku, "quantity": line.quantity,
                          "lines": [{"sku": line.sku, "quantity": line.quantity, "evidence": "vision"}]},
            },
            applied=Correction(session.id, line.sku, line.quantity),
        ),
    )
