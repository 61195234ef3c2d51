"""Automatic dispute refunds are capped per line, per receipt (amount and share) and per shopper and
period, on SQLite and PostgreSQL; over a cap the dispute waits for staff and the shopper sees why.
Disputes sent at the same moment (threads, and services that do not share the in-process lock, as two
web processes would) never pass a cap together."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sim_data.dataset import Dataset
from store_server.api.app import create_app
from store_server.bootstrap import bootstrap
from store_server.domain.review import ReviewError, ReviewKind, ReviewStatus
from store_server.service.ingest import RawMessage
from store_server.service.review import ReviewService
from store_server.settings import Settings

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
CAPS = {
    "auto_refund_max_cents": 500,
    "auto_refund_max_per_receipt_cents": 1000,
    "auto_refund_max_receipt_share": 0.5,
    "auto_refund_max_per_shopper_cents": 1000,
    "auto_refund_period_s": 30 * 86400.0,
}


def _store(dataset_dir, db_url, tmp_path, **caps: Any) -> Any:
    """Every simulated visit of the day enters on one signed-up shopper's account."""
    dataset = Dataset.open(dataset_dir)
    srv = bootstrap(
        Settings(
            database_url=db_url,
            store_config=dataset.layout_path,
            receipts_dir=tmp_path / "receipts",
            secret_key_file=tmp_path / "secret.key",
            accept_raw_account_tokens=True,
            event_clock="replay",  # a recorded day: event times are checked against its own clock
            **{**CAPS, **caps},
        )
    )
    ada = srv.web.people.sign_up("ada@test.walkout", "Ada", PASSWORD)
    srv.accounts.top_up(ada.account_token, 100_000, "test-funds")
    raw = []
    for m in dataset.messages():
        payload = dict(m.payload)
        if "account_token" in payload:
            payload["account_token"] = ada.account_token
        raw.append(RawMessage(m.topic, json.dumps(payload).encode(), 0.0))
    for i in range(0, len(raw), 500):
        srv.processor.handle_batch(raw[i : i + 500])
    srv.ada = ada  # type: ignore[attr-defined]
    return srv


@pytest.fixture
def store(basic_dataset, db_url, tmp_path):
    srv = _store(basic_dataset, db_url, tmp_path)
    yield srv
    srv.stop()


def _receipts(srv) -> list[Any]:
    with srv.uow_factory() as uow:
        found = [r for r in uow.receipts.list() if r.account_token == srv.ada.account_token]
    assert len(found) >= 5, "the basic day has several paid visits"
    assert all(r.payment_status == "approved" for r in found)
    return found


def _auto_refunds(srv, receipt_ids: list[str]) -> dict[str, int]:
    """Cents refunded without staff, per receipt, from the corrections the disputes made."""
    out = dict.fromkeys(receipt_ids, 0)
    with srv.uow_factory() as uow:
        for rc in uow.reviews.corrections_for(receipt_ids):
            item = uow.reviews.get(rc.review_id)
            if item and item.kind is ReviewKind.DISPUTE and item.resolved_by == "auto":
                out[rc.receipt_id] += rc.refund_cents
    return out


def _check_caps(srv, receipts: list[Any], shopper_cap: int, receipt_cap: int = 1000) -> dict[str, int]:
    auto = _auto_refunds(srv, [r.id for r in receipts])
    for r in receipts:
        assert auto[r.id] <= min(receipt_cap, r.bill.total_cents // 2), (r.id, auto[r.id], r.bill.total_cents)
    assert sum(auto.values()) <= shopper_cap
    return auto


def test_a_whole_receipt_never_comes_back_without_staff_and_the_shopper_sees_why(store):
    receipts = _receipts(store)
    before = store.accounts.balance(store.ada.account_token)
    client = TestClient(create_app(store))
    assert client.post("/login", data={"email": "ada@test.walkout", "password": PASSWORD}).status_code == 200
    held: list[dict[str, Any]] = []
    for r in receipts:
        for ln in sorted(r.bill.lines, key=lambda ln: ln.amount_cents):  # the cheapest first
            answer = client.post(
                f"/api/me/receipts/{r.id}/disputes", json={"sku": ln.sku, "quantity": ln.quantity}
            )
            assert answer.status_code == 200, answer.text
            state = answer.json()
            if state["state"] == "in review":
                assert state["held_for_staff"].startswith("sent to staff: "), state
                held.append({"receipt": r.id, **state})
            else:
                assert state["state"] == "refunded" and state["held_for_staff"] is None
    auto = _check_caps(store, receipts, 1000)
    assert store.accounts.balance(store.ada.account_token) == before + sum(auto.values())
    assert all(auto[r.id] < r.bill.total_cents for r in receipts)  # nothing came back whole
    reasons = " ".join(h["held_for_staff"] for h in held)
    assert "for one line" in reasons and "% of this receipt" in reasons, reasons
    assert "automatic refunds to you in the last 30 days" in reasons

    # The shopper's receipt page says why, and staff see the reason on the item.
    first = held[0]
    page = client.get(f"/app/receipts/{first['receipt']}")
    assert page.status_code == 200 and first["held_for_staff"] in page.text.replace("&#39;", "'")
    with store.uow_factory() as uow:
        item = uow.reviews.get(first["review_id"])
    assert item is not None and item.is_open and item.evidence["held_for_staff"] == first["held_for_staff"]

    # Staff accept it: the money moves then, and the cap does not stand in the way.
    store.web.reviews.resolve(first["review_id"], "remove", None, "staff@test")
    with store.uow_factory() as uow:
        assert uow.reviews.get(first["review_id"]).status is ReviewStatus.RESOLVED
    assert store.accounts.balance(store.ada.account_token) > before + sum(auto.values())


def _race(services: list[ReviewService], jobs: list[tuple[str, str, str]]) -> list[Any]:
    """Run the disputes at the same moment, one thread each, round robin over the services."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def run(i: int, token: str, receipt_id: str, sku: str) -> None:
        barrier.wait(timeout=30)
        try:
            results[i] = services[i % len(services)].dispute(token, receipt_id, sku, 1, "not mine")
        except Exception as exc:  # recorded, asserted on below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, *job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a dispute hung"
    return results


def _unlocked_twins(srv, n: int) -> list[ReviewService]:
    """Review services with a lock of their own each, on the same database: like n web processes."""
    base = srv.web.reviews
    return [
        ReviewService(
            srv.layout,
            srv.uow_factory,
            srv.accounts,
            base.payments,
            srv.backend,
            lock=threading.Lock(),
            caps=base.caps,
            tally=base.tally,
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("shared_lock", [True, False], ids=["one-process", "separate-processes"])
def test_concurrent_disputes_of_one_receipt_never_pass_the_receipt_cap_together(
    basic_dataset, db_url, tmp_path, shared_lock
):
    # 2.50 a receipt: any two of a receipt's cheap lines together are over it, each alone is not.
    srv = _store(
        basic_dataset,
        db_url,
        tmp_path,
        auto_refund_max_per_receipt_cents=250,
        auto_refund_max_per_shopper_cents=100_000,
    )
    try:
        token = srv.ada.account_token
        receipts = [r for r in _receipts(srv) if len(r.bill.lines) >= 2]
        services = [srv.web.reviews] if shared_lock else _unlocked_twins(srv, 4)
        for r in receipts:  # every line of the receipt disputed at once, receipt after receipt
            results = _race(services, [(token, r.id, ln.sku) for ln in r.bill.lines])
            assert not [x for x in results if isinstance(x, Exception)], results
        auto = _check_caps(srv, receipts, 100_000, receipt_cap=250)
        assert sum(1 for r in receipts if auto[r.id] > 0) >= 3  # the cheap lines came back at once
        with srv.uow_factory() as uow:
            held = [i for i in uow.reviews.list(ReviewStatus.OPEN) if i.kind is ReviewKind.DISPUTE]
        assert any(
            "automatic refunds on this receipt would reach" in i.evidence["held_for_staff"] for i in held
        )
    finally:
        srv.stop()


@pytest.mark.parametrize("shared_lock", [True, False], ids=["one-process", "separate-processes"])
def test_concurrent_disputes_across_receipts_never_pass_the_shopper_cap_together(
    basic_dataset, db_url, tmp_path, shared_lock
):
    srv = _store(basic_dataset, db_url, tmp_path, auto_refund_max_per_shopper_cents=400)
    try:
        token = srv.ada.account_token
        receipts = [r for r in _receipts(srv) if len(r.bill.lines) >= 2]  # under the receipt caps
        services = [srv.web.reviews] if shared_lock else _unlocked_twins(srv, len(receipts))
        cheapest = [(token, r.id, min(r.bill.lines, key=lambda ln: ln.amount_cents).sku) for r in receipts]
        results = _race(services, cheapest)
        assert not [x for x in results if isinstance(x, Exception)], results
        auto = _check_caps(srv, receipts, 400)
        assert 0 < sum(auto.values()) <= 400
        held = [x for x in results if x.status is ReviewStatus.OPEN]
        assert held and all("automatic refunds to you" in x.evidence["held_for_staff"] for x in held)
        # The same line twice at once: one dispute, the other is told so.
        again = _race(services, [cheapest[0], cheapest[0]])
        assert all(isinstance(x, ReviewError) for x in again), again
    finally:
        srv.stop()
