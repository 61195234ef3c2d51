"""The review queue end to end on SQLite and PostgreSQL: a doubtful pick opens an item inside the
decision; staff resolve it after the receipt, which is corrected and refunded once through the ledger;
the backend order and stock follow; disputes are refunded automatically or queued for staff."""

from __future__ import annotations

import json

import pytest

from sim_data.dataset import Dataset
from sim_data.entry_signing import EntrySigner
from sim_data.pipeline import provision_accounts
from store_server.bootstrap import bootstrap
from store_server.domain.review import Correction, ReviewError, ReviewKind, ReviewStatus, review_id_for
from store_server.domain.session import session_id_for
from store_server.service.ingest import RawMessage
from store_server.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def store(basic_dataset, db_url, tmp_path):
    dataset = Dataset.open(basic_dataset)
    srv = bootstrap(
        Settings(
            database_url=db_url,
            store_config=dataset.layout_path,
            receipts_dir=tmp_path / "receipts",
            secret_key_file=tmp_path / "secret.key",
            auto_refund_max_cents=200,
            event_clock="replay",  # a recorded day: its event times are months old
        )
    )
    provision_accounts(srv, dataset.ground_truth)
    truth = next(s for s in dataset.ground_truth["sessions"] if sum(s["items"].values()) >= 2)
    pick = next(
        e
        for e in dataset.ground_truth["events"]
        if e.get("track_id") in truth["track_ids"] and e.get("kind") == "pick"
    )
    raw = []
    for m in EntrySigner(srv.web.people).messages(dataset.messages()):  # shoppers enter on codes
        payload = dict(m.payload)
        if f"{payload.get('node_id')}:{payload.get('seq')}" == pick["msg_id"]:
            payload["confidence"] = 0.4
        raw.append(RawMessage(m.topic, json.dumps(payload).encode(), 0.0))
    for i in range(0, len(raw), 500):
        srv.processor.handle_batch(raw[i : i + 500])
    srv.case = (session_id_for(truth["entry_msg_id"]), pick, truth)  # type: ignore[attr-defined]
    yield srv
    srv.stop()


def _receipt(srv, session_id):
    with srv.uow_factory() as uow:
        receipt = uow.receipts.for_session(session_id)
        return receipt, uow.reviews.corrections_for([receipt.id])


def test_a_doubtful_pick_is_reviewed_and_the_receipt_refunded_once(store):
    session_id, pick, truth = store.case
    review_id = review_id_for(ReviewKind.LOW_CONFIDENCE, pick["msg_id"])
    with store.uow_factory() as uow:
        item = uow.reviews.get(review_id)
    assert (
        item is not None
        and item.is_open
        and item.applied == Correction(session_id, pick["sku"], pick["quantity"])
    )
    assert item.evidence["candidates"][0]["sku"] == pick["sku"] and item.evidence["nearby"]
    receipt, corrections = _receipt(store, session_id)
    assert corrections == [] and any(
        ln.sku == pick["sku"] for ln in receipt.bill.lines
    )  # the guess was charged
    balance = store.accounts.balance(receipt.account_token)
    stock = {s.sku: s.quantity for s in store.backend.stock_levels("demo")}

    resolved = store.web.reviews.resolve(review_id, "remove", None, "staff@test")
    assert resolved.status is ReviewStatus.RESOLVED
    _, corrections = _receipt(store, session_id)
    (rc,) = corrections
    assert rc.status == "refunded" and rc.refund_cents > 0
    assert rc.total_after_cents == rc.total_before_cents - rc.refund_cents
    assert store.accounts.balance(receipt.account_token) == balance + rc.refund_cents
    assert {s.sku: s.quantity for s in store.backend.stock_levels("demo")}[pick["sku"]] == stock[
        pick["sku"]
    ] + pick["quantity"]
    with pytest.raises(ReviewError):  # resolved once
        store.web.reviews.resolve(review_id, "remove", None, "staff@test")
    assert store.web.reviews.settle() == 0  # nothing pending: the refund is not paid twice
    refunds = [e for e in store.accounts.entries(receipt.account_token) if e.kind == "refund"]
    assert len(refunds) == 1
    with store.uow_factory() as uow:
        session = uow.sessions.get(session_id)
    assert any(c.note == f"review:{review_id}" for c in session.changes)


def test_disputes_small_ones_refund_at_once_larger_ones_go_to_staff(store):
    session_id, _, truth = store.case
    receipt, _ = _receipt(store, session_id)
    token = receipt.account_token
    lines = sorted(receipt.bill.lines, key=lambda ln: ln.amount_cents)
    with pytest.raises(LookupError):  # not this shopper's receipt
        store.web.reviews.dispute("acct-someone-else", receipt.id, lines[0].sku, 1, "not mine")
    small = [ln for ln in lines if ln.unit_price_cents * 1.2 <= 200]
    big = [ln for ln in lines if ln.unit_price_cents > 200]
    if small:
        item = store.web.reviews.dispute(token, receipt.id, small[0].sku, 1, "put it back")
        assert item.status is ReviewStatus.RESOLVED and item.resolved_by == "auto"
        with pytest.raises(ReviewError):
            store.web.reviews.dispute(token, receipt.id, small[0].sku, 1, "again")
    if big:
        item = store.web.reviews.dispute(token, receipt.id, big[-1].sku, 1, "never took it")
        assert item.status is ReviewStatus.OPEN and item.kind is ReviewKind.DISPUTE
        before = store.accounts.balance(token)
        store.web.reviews.resolve(item.id, "keep", None, "staff@test")  # rejected: nothing moves
        assert store.accounts.balance(token) == before
    assert small or big
