"""No money from nothing: a shopper's top-up goes through a payment step.

Against a FAKE card provider (tests/fake_card_provider.py, a real HTTP server) and the store server's
web app served by uvicorn: starting top-ups credits nothing, only the provider's verified webhook does,
once per payment; a forged or stale webhook is refused with the reason. Without a provider, the
built-in ledger takes top-ups from staff, or from anyone only under the demo setting.
"""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from store_server.api.app import create_app
from store_server.bootstrap import StoreServer, bootstrap
from store_server.settings import DEFAULT_STORE, Settings
from tests.e2e.helpers import free_port
from tests.fake_card_provider import FakeCardProvider

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
ADA = "ada@topups.walkout"


def _settings(db_url: str, tmp: Path, **extra: Any) -> Settings:
    return Settings(
        database_url=db_url,
        store_config=DEFAULT_STORE,
        receipts_dir=tmp / "receipts",
        secret_key_file=tmp / "secret.key",
        **extra,
    )


class Served:
    """The store's web app on a free port, reachable by the fake provider's webhook calls."""

    def __init__(self, server: StoreServer) -> None:
        self.server = server
        self.url = f"http://127.0.0.1:{free_port()}"
        port = int(self.url.rsplit(":", 1)[1])
        self.http = uvicorn.Server(uvicorn.Config(create_app(server), port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.http.run, name="topups-http", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.http.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.http.started, "uvicorn did not start"

    def client(self, email: str) -> httpx.Client:
        c = httpx.Client(base_url=self.url, timeout=30)
        assert c.post("/login", data={"email": email, "password": PASSWORD}).status_code in (200, 303)
        return c

    def close(self) -> None:
        self.http.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def provider() -> Iterator[FakeCardProvider]:
    fake = FakeCardProvider().start()
    yield fake
    fake.stop()


@pytest.fixture
def store(db_url: str, tmp_path: Path, provider: FakeCardProvider) -> Iterator[Served]:
    server = bootstrap(
        _settings(
            db_url,
            tmp_path,
            card_provider_url=provider.url,
            card_provider_api_key=provider.api_key,
            card_webhook_secret=provider.webhook_secret.decode(),
        )
    )
    assert server.web is not None
    server.web.people.sign_up(ADA, "Ada", PASSWORD)
    served = Served(server)
    provider.webhook_url = f"{served.url}/payments/webhook"
    yield served
    served.close()
    server.stop()


def _checkout_link(page: httpx.Response) -> str:
    """Where the app sends the shopper to pay (the link the page's script follows)."""
    match = re.search(r'id="pay-at-provider" data-follow href="([^"]+)"', page.text)
    assert match, page.text[:500]
    return html.unescape(match.group(1))


def _balance(store: Served) -> int:
    user = store.server.web.people.users.by_email(ADA)  # type: ignore[union-attr]
    return store.server.accounts.balance(user.account_token)


def test_twenty_top_ups_without_payment_credit_nothing(store: Served, provider: FakeCardProvider):
    ada = store.client(ADA)
    for i in range(10):
        form = ada.post("/app/top-up", data={"amount_cents": 100_000, "request_id": f"f{i}"})
        assert form.status_code == 200 and _checkout_link(form).startswith(f"{provider.url}/pay/")
        api = ada.post("/api/me/top-ups", json={"amount_cents": 100_000, "request_id": f"a{i}"})
        assert api.status_code == 200 and api.json()["status"] == "checkout"
        assert api.json()["checkout_url"].startswith(provider.url)
    # Coming back to the success URL without paying proves nothing.
    assert ada.get("/app?top_up=done").status_code == 200
    assert _balance(store) == 0
    assert len(provider.checkouts) == 20 and all(c.status == "open" for c in provider.checkouts.values())
    assert ada.get("/api/me").json()["wallet"]["balance_cents"] == 0


def test_a_paid_checkout_credits_once_even_if_the_webhook_comes_twice(
    store: Served, provider: FakeCardProvider
):
    ada = store.client(ADA)
    started = ada.post("/app/top-up", data={"amount_cents": 2000, "request_id": "pay-1"})
    again = ada.post("/app/top-up", data={"amount_cents": 2000, "request_id": "pay-1"})  # double submit
    checkout_page = _checkout_link(started)
    assert _checkout_link(again) == checkout_page and len(provider.checkouts) == 1
    assert "Pay" in httpx.get(checkout_page).text
    paid = httpx.post(checkout_page)  # the shopper presses Pay at the provider
    assert paid.status_code == 303 and paid.headers["location"] == f"{store.url}/app?top_up=done"
    assert provider.deliveries[-1].status_code == 200 and provider.deliveries[-1].body["status"] == "credited"
    assert _balance(store) == 2000
    (checkout,) = provider.checkouts.values()
    redelivered = provider.deliver(provider.event(checkout))  # the provider retries the same event
    assert redelivered.status_code == 200 and redelivered.body["status"] == "duplicate"
    assert _balance(store) == 2000
    user = store.server.web.people.users.by_email(ADA)  # type: ignore[union-attr]
    entries = store.server.accounts.entries(user.account_token)
    assert [(e.kind, e.amount_cents, e.idempotency_key) for e in entries] == [
        ("topup", 2000, f"card-topup:{checkout.payment_id}")
    ]
    page = ada.get("/app?top_up=done").text
    assert "as soon as the card provider confirms" in page and "20.00" in page


def test_a_forged_or_stale_webhook_is_refused_with_the_reason(store: Served, provider: FakeCardProvider):
    ada = store.client(ADA)
    ada.post("/app/top-up", data={"amount_cents": 5000, "request_id": "x"})
    (checkout,) = provider.checkouts.values()
    checkout.payment_id = "pi_never_charged"
    event = provider.event(checkout)
    wrong = provider.deliver(event, secret=b"someone-elses-secret")
    assert wrong.status_code == 400 and "signature does not match" in wrong.body["detail"]
    stale = provider.deliver(event, timestamp=int(time.time()) - 3600)
    assert stale.status_code == 400 and "s old (tolerance 300 s)" in stale.body["detail"]
    unsigned = httpx.post(f"{store.url}/payments/webhook", json=event)
    assert unsigned.status_code == 400 and "Webhook-Signature header is missing" in unsigned.json()["detail"]
    foreign = dict(event, data={"object": {**event["data"]["object"], "id": "cs_not_ours"}})
    assert "was not started by this store" in provider.deliver(foreign).body["detail"]
    cheaper = dict(event, data={"object": {**event["data"]["object"], "amount_total": 1}})
    assert "amount_total" in provider.deliver(cheaper).body["detail"]
    assert _balance(store) == 0
    assert provider.deliver(event).body["status"] == "credited"  # the same event, signed right
    assert _balance(store) == 5000


def test_the_built_in_ledger_takes_top_ups_from_staff_or_under_the_demo_setting_only(
    db_url: str, tmp_path: Path
):
    server = bootstrap(_settings(db_url, tmp_path))
    try:
        people = server.web.people  # type: ignore[union-attr]
        ada = people.sign_up(ADA, "Ada", PASSWORD)
        people.create_staff("till@topups.walkout", "Till", PASSWORD)
        with TestClient(create_app(server)) as shopper, TestClient(create_app(server)) as staff:
            shopper.post("/login", data={"email": ADA, "password": PASSWORD})
            staff.post("/login", data={"email": "till@topups.walkout", "password": PASSWORD})
            refused = shopper.post("/api/me/top-ups", json={"amount_cents": 2000, "request_id": "r"})
            assert refused.status_code == 409 and "ask staff" in refused.json()["detail"]
            form = shopper.post(
                "/app/top-up", data={"amount_cents": 2000, "request_id": "f"}, follow_redirects=False
            )
            assert form.status_code == 303 and "ask+staff" in form.headers["location"]
            assert "ask a member of staff" in shopper.get("/app").text  # no top-up buttons at all
            path = f"/api/accounts/{ada.account_token}/top-ups"
            assert shopper.post(path, json={"amount_cents": 2000, "request_id": "s"}).status_code == 403
            credited = staff.post(path, json={"amount_cents": 2000, "request_id": "till-7"})
            repeated = staff.post(path, json={"amount_cents": 2000, "request_id": "till-7"})
            assert credited.json()["balance_cents"] == repeated.json()["balance_cents"] == 2000
            assert (
                staff.post(
                    "/api/accounts/acct-nobody/top-ups", json={"amount_cents": 100, "request_id": "n"}
                ).status_code
                == 404
            )
    finally:
        server.stop()
    demo = bootstrap(_settings(db_url, tmp_path, demo_free_top_ups=True))
    try:
        with TestClient(create_app(demo)) as shopper:
            shopper.post("/login", data={"email": ADA, "password": PASSWORD})
            free = shopper.post("/api/me/top-ups", json={"amount_cents": 1000, "request_id": "d"})
            assert free.json()["status"] == "credited" and free.json()["wallet"]["balance_cents"] == 3000
    finally:
        demo.stop()
