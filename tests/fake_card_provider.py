"""A FAKE hosted-checkout card provider for tests: a real HTTP server on 127.0.0.1 that behaves like a
small Stripe Checkout, so the store's card adapter is tested over the wire.

- ``POST /v1/checkout/sessions`` (Bearer API key, ``Idempotency-Key``): a checkout session and the
  URL of its payment page.
- ``GET /pay/{id}``: the payment page, one "Pay" button (what a shopper's browser is sent to).
- ``POST /pay/{id}``: the card is "charged"; the provider delivers the signed
  ``checkout.session.completed`` webhook to ``webhook_url``, then redirects to the success URL.

It takes no card and moves no money. Tests drive it from Python too: :meth:`pay` (what the button
does), :meth:`deliver` (send an event again, or with a wrong secret or an old timestamp).
"""

from __future__ import annotations

import html
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from store_server.adapters.card_provider import SIGNATURE_HEADER, sign_webhook


@dataclass
class FakeCheckout:
    id: str
    amount: int
    currency: str
    client_reference_id: str
    success_url: str
    cancel_url: str
    status: str = "open"  # open | complete
    payment_id: str | None = None


@dataclass
class Delivery:
    status_code: int
    body: dict[str, Any]


@dataclass
class FakeCardProvider:
    api_key: str = "sk_test_fake_provider_key"
    webhook_secret: bytes = b"whsec_fake_provider_secret"
    webhook_url: str | None = None  # our store's /payments/webhook, set once the store is up
    checkouts: dict[str, FakeCheckout] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    _by_key: dict[str, str] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> FakeCardProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/v1/checkout/sessions":
                    provider._create(self, body)
                elif self.path.startswith("/pay/"):
                    provider._pay_form(self, self.path.removeprefix("/pay/"))
                else:
                    _answer(self, 404, {"error": "no such route"})

            def do_GET(self) -> None:
                if self.path.startswith("/pay/"):
                    provider._page(self, self.path.removeprefix("/pay/"))
                else:
                    _answer(self, 404, {"error": "no such route"})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-card-provider", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- what a shopper's browser (or a test) does -------------------------------------------------
    def pay(self, checkout_id: str) -> dict[str, Any]:
        """Charge the checkout's card and deliver the webhook; return the event."""
        with self._lock:
            checkout = self.checkouts[checkout_id]
            if checkout.payment_id is None:
                checkout.status, checkout.payment_id = "complete", f"pi_fake_{next(self._ids)}"
        event = self.event(checkout)
        self.deliver(event)
        return event

    def event(self, checkout: FakeCheckout) -> dict[str, Any]:
        return {
            "id": f"evt_fake_{checkout.id}",
            "type": "checkout.session.completed",
            "created": int(time.time()),
            "data": {
                "object": {
                    "id": checkout.id,
                    "object": "checkout.session",
                    "amount_total": checkout.amount,
                    "currency": checkout.currency,
                    "client_reference_id": checkout.client_reference_id,
                    "payment_status": "paid",
                    "payment_intent": checkout.payment_id,
                }
            },
        }

    def deliver(
        self, event: dict[str, Any], secret: bytes | None = None, timestamp: int | None = None
    ) -> Delivery:
        """POST a signed event to the store's webhook, as the provider does (and retries)."""
        assert self.webhook_url, "set webhook_url to the store's /payments/webhook first"
        body = json.dumps(event).encode()
        signature = sign_webhook(secret or self.webhook_secret, body, timestamp or int(time.time()))
        response = httpx.post(
            self.webhook_url,
            content=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
            timeout=30,
        )
        delivery = Delivery(response.status_code, response.json())
        self.deliveries.append(delivery)
        return delivery

    # -- the provider's routes ---------------------------------------------------------------------
    def _create(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        if h.headers.get("Authorization") != f"Bearer {self.api_key}":
            _answer(h, 401, {"error": "invalid API key"})
            return
        data = json.loads(body)
        key = h.headers.get("Idempotency-Key") or ""
        with self._lock:
            if key and key in self._by_key:
                checkout = self.checkouts[self._by_key[key]]
            else:
                checkout = FakeCheckout(
                    f"cs_fake_{next(self._ids)}",
                    int(data["amount"]),
                    str(data["currency"]),
                    str(data["client_reference_id"]),
                    str(data["success_url"]),
                    str(data["cancel_url"]),
                )
                self.checkouts[checkout.id] = checkout
                self._by_key[key] = checkout.id
        _answer(
            h, 200, {"id": checkout.id, "url": f"{self.url}/pay/{checkout.id}", "status": checkout.status}
        )

    def _page(self, h: BaseHTTPRequestHandler, checkout_id: str) -> None:
        checkout = self.checkouts.get(checkout_id)
        if checkout is None:
            _answer(h, 404, {"error": "no such checkout"})
            return
        amount = f"{checkout.amount / 100:.2f} {checkout.currency.upper()}"
        page = (
            "<!doctype html><title>Fake card provider</title><h1>Fake card provider (test)</h1>"
            f"<p>Pay <b id=amount>{html.escape(amount)}</b></p>"
            f"<form method=post action='/pay/{html.escape(checkout.id)}'><button id=pay>Pay</button></form>"
        ).encode()
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Content-Length", str(len(page)))
        h.end_headers()
        h.wfile.write(page)

    def _pay_form(self, h: BaseHTTPRequestHandler, checkout_id: str) -> None:
        if checkout_id not in self.checkouts:
            _answer(h, 404, {"error": "no such checkout"})
            return
        self.pay(checkout_id)  # the webhook first, then the shopper goes back (as Stripe usually does)
        h.send_response(303)
        h.send_header("Location", self.checkouts[checkout_id].success_url)
        h.send_header("Content-Length", "0")
        h.end_headers()


def _answer(h: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)
