"""The caps on automatic dispute refunds: which cap holds a dispute for staff and how it says so, and
the in-memory tally of what automatic refunds already gave back."""

from __future__ import annotations

from store_server.domain.receipt import Receipt
from store_server.domain.review import RefundCaps, ReviewItem, ReviewKind, ReviewStatus, refund_cap_reason
from store_server.service.review import ReviewItemsTally
from tests.fakes import FakeUnitOfWork

CAPS = RefundCaps(per_line_cents=500, per_receipt_cents=1000, receipt_share=0.5, per_shopper_cents=2000)


def reason(refund: int, total: int = 3000, on_receipt: int = 0, to_shopper: int = 0, caps=CAPS) -> str | None:
    return refund_cap_reason(caps, refund, total, on_receipt, to_shopper, "EUR")


def test_within_every_cap_the_refund_is_automatic():
    assert reason(500, on_receipt=500, to_shopper=1500) is None


def test_each_cap_sends_the_dispute_to_staff_and_says_which():
    assert reason(501) == "sent to staff: 5.01 EUR is over 5.00 EUR for one line"
    assert reason(400, total=5000, on_receipt=700) == (
        "sent to staff: automatic refunds on this receipt would reach 11.00 EUR, over 10.00 EUR"
    )
    assert reason(300, total=1000, on_receipt=300) == (
        "sent to staff: automatic refunds would reach 60% of this receipt, over 50%"
    )
    assert reason(300, to_shopper=1800) == (
        "sent to staff: automatic refunds to you in the last 30 days would reach 21.00 EUR, over 20.00 EUR"
    )


def test_a_one_line_receipt_never_comes_back_whole_at_once():
    assert reason(229, total=229) is not None
    assert reason(114, total=229) is None  # half of it may


def test_a_cap_of_zero_is_off():
    off = RefundCaps(per_line_cents=0, per_receipt_cents=0, receipt_share=0, per_shopper_cents=0)
    assert reason(10_000, total=10_000, on_receipt=10_000, to_shopper=10**6, caps=off) is None


def _dispute(receipt_id: str, cents: int, by: str | None, at: float) -> ReviewItem:
    status = ReviewStatus.RESOLVED if by else ReviewStatus.OPEN
    return ReviewItem(
        id=f"rv-dispute-{receipt_id}-{cents}",
        kind=ReviewKind.DISPUTE,
        created_at=0.0,
        event_id=receipt_id,
        session_id=None,
        summary="",
        evidence={"refund_cents": cents},
        status=status,
        resolved_by=by,
        resolved_at=at if by else None,
    )


def test_the_in_memory_tally_counts_automatic_refunds_only():
    uow = FakeUnitOfWork()
    for rid, token in (("r-1", "acct-a"), ("r-2", "acct-a"), ("r-3", "acct-b")):
        uow.receipts.by_id[rid] = Receipt(rid, "s" + rid, "demo", token, 0.0, None, "approved", None)  # type: ignore[arg-type]
    for item in (
        _dispute("r-1", 100, "auto", at=1000.0),
        _dispute("r-1", 200, "staff@test", at=1000.0),  # staff accepted it: not an automatic refund
        _dispute("r-2", 300, "auto", at=10.0),  # before the period
        _dispute("r-2", 400, None, at=0.0),  # waiting for staff
        _dispute("r-3", 500, "auto", at=1000.0),  # another shopper
    ):
        uow.reviews.add(item)
    assert ReviewItemsTally().hold_and_sum(uow, "acct-a", "r-1", since=500.0) == (100, 100)
    assert ReviewItemsTally().hold_and_sum(uow, "acct-a", "r-2", since=0.0) == (300, 400)
