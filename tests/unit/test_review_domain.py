"""Review items: opened inside the cart decision from the same evidence; planned corrections; re-priced
receipts. Fast, on fakes and the small test store."""

from __future__ import annotations

import pytest

from edge.contracts import WeightEvent
from store_server.domain.fusion import TrackHistory
from store_server.domain.review import (
    Correction,
    ReviewError,
    ReviewItem,
    ReviewKind,
    candidate_products,
    correct_receipt,
    net,
)
from store_server.domain.session import CartLine, ShopperSession
from store_server.service import handlers
from tests.fakes import FakePaymentGateway, FakeUnitOfWork


def _weight(seq: int, delta: float, confidence: float = 1.0, plate: str = "P1") -> WeightEvent:
    return WeightEvent(
        node_id="shelf-g1",
        seq=seq,
        ts=102.0,
        gondola_id="G1",
        shelf_id="G1-S1",
        plate_ids=[plate],
        delta_g=delta,
        t_start=100.0,
        t_end=101.0,
        noise_g=1.0,
        confidence=confidence,
    )


def _store(layout, shoppers: dict[str, tuple[float, float]]):
    tracks = TrackHistory()
    uow = FakeUnitOfWork()
    for i, (track, (x, y)) in enumerate(shoppers.items()):
        for t in (99.0, 100.0, 101.0, 102.0):
            tracks.add(track, t, x, y)
        session = ShopperSession(f"s-{i}", "t", f"acct-{i}", 90.0)
        session.bind(track, 90.0)
        uow.sessions.add(session)
    ctx = handlers.Context(layout, tracks, FakePaymentGateway({}), review_below=0.6)
    return ctx, uow


def test_a_doubtful_pick_still_goes_in_the_cart_and_opens_a_review(layout):
    ctx, uow = _store(layout, {"t1": (2.5, 3.9)})
    outcome = handlers.change_cart(ctx, uow, _weight(1, -350.0, confidence=0.4), "topic", 0.0)
    assert outcome.kind == "cart_changed"
    assert [(ln.sku, ln.quantity) for ln in uow.sessions.get("s-0").cart()] == [("cola", 1)]
    (item,) = uow.reviews.list()
    assert item.kind is ReviewKind.LOW_CONFIDENCE and item.applied == Correction("s-0", "cola", 1)
    assert item.evidence["nearby"][0]["session_id"] == "s-0" and item.evidence["delta_g"] == -350.0
    handlers.change_cart(ctx, uow, _weight(1, -350.0, confidence=0.4), "topic", 0.0)  # a replay
    assert len(uow.reviews.list()) == 1


def test_a_confident_pick_opens_nothing(layout):
    ctx, uow = _store(layout, {"t1": (2.5, 3.9)})
    handlers.change_cart(ctx, uow, _weight(1, -180.0, plate="P3"), "topic", 0.0)
    assert uow.reviews.list() == []


def test_nobody_within_reach_with_several_shoppers_is_unattributed(layout):
    ctx, uow = _store(layout, {"t1": (9.0, 1.0), "t2": (8.0, 0.5)})
    assert handlers.change_cart(ctx, uow, _weight(1, -350.0), "topic", 0.0).kind == "unattributed"
    (item,) = uow.reviews.list()
    assert item.kind is ReviewKind.UNATTRIBUTED and item.applied is None
    assert {n["session_id"] for n in item.evidence["nearby"]} == {"s-0", "s-1"}


def test_a_weight_no_product_explains_is_unexplained(layout):
    ctx, uow = _store(layout, {"t1": (2.5, 3.9)})
    assert handlers.change_cart(ctx, uow, _weight(1, -1234.0), "topic", 0.0).kind == "unexplained"
    assert uow.reviews.list()[0].kind is ReviewKind.UNEXPLAINED


def test_plans_undo_what_was_applied_and_apply_the_choice():
    item = ReviewItem(
        "rv-1", ReviewKind.LOW_CONFIDENCE, 1.0, "e", "s-1", "", applied=Correction("s-1", "cola", 1)
    )
    assert item.plan("keep") == []
    assert item.plan("remove") == [Correction("s-1", "cola", -1)]
    assert item.plan("assign", Correction("s-2", "cola", 1)) == [
        Correction("s-1", "cola", -1),
        Correction("s-2", "cola", 1),
    ]
    assert item.plan("assign", Correction("s-1", "cola", 1)) == []  # the same as decided: nothing moves
    with pytest.raises(ReviewError):
        item.plan("assign", None)
    assert net([Correction("a", "x", 2), Correction("a", "x", -2), Correction("a", "y", 1)]) == [
        Correction("a", "y", 1)
    ]


def test_candidates_and_a_repriced_receipt(layout):
    candidates = candidate_products(layout, ["P1", "P2"], -351.0, 1.0)
    assert [c["sku"] for c in candidates] == ["cola", "lemon"] and candidates[0]["expected_g"] == -350.0
    rc = correct_receipt(
        layout,
        "r-1",
        "rv-1",
        [CartLine("cola", 2), CartLine("chips", 1)],
        [CartLine("cola", 1), CartLine("chips", 1)],
        paid=True,
    )
    assert rc.lines == ({"sku": "cola", "name": "Cola 330 ml", "quantity": -1, "amount_cents": -129},)
    assert rc.refund_cents == rc.total_before_cents - rc.total_after_cents == 155  # 129 + 20 % tax
    assert rc.status == "pending"
    assert correct_receipt(layout, "r-1", "rv-1", [CartLine("cola", 1)], [], paid=False).refund_cents == 0
