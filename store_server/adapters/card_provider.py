"""Card top-ups through a hosted-checkout provider (a TopUpPort), shaped like Stripe Checkout.

1. The app asks the provider for a checkout session (``POST {provider}/v1/checkout/sessions`` with our
   API key and an idempotency key) and redirects the shopper to the provider's page.
2. The shopper pays there; the provider sends them back to our ``success_url``. That redirect proves
   nothing and credits nothing.
3. The provider calls our webhook (``POST /payments/webhook``) with the event, signed with the shared
   secret: header ``Webhook-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">``. Only a
   verified, fresh ``checkout.session.completed`` event with ``payment_status == "paid"`` credits the
   wallet, with the account and amount of the checkout *we* started, once per provider payment id.

The provider's URL, our API key and the webhook secret come from the settings (``WALKOUT_CARD_*``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from store_server.adapters.checkouts import Settled, TopUpCheckouts
from store_server.domain.accounts import TopUpRefused
from store_server.service.ports import TopUpStarted

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Webhook-Signature"
PAID_EVENT = "checkout.session.completed"


class WebhookRejected(ValueError):
    """A webhook call that is not acted on; the message says why (it goes back in the 400 answer)."""


def sign_webhook(secret: bytes, body: bytes, timestamp: int) -> str:
    """The signature header value a provider sends (used by the test's fake provider)."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_webhook(secret: bytes, body: bytes, header: str | None, now: float, tolerance_s: float) -> None:
    """Raise :class:`WebhookRejected` unless ``header`` signs ``body`` with ``secret`` within
    ``tolerance_s`` of ``now`` (a captured call replayed later is refused)."""
    if not header:
        raise WebhookRejected(f"{SIGNATURE_HEADER} header is missing")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise WebhookRejected(
            f"{SIGNATURE_HEADER} header is malformed (want t=<unix time>,v1=<hex>)"
        ) from None
    expected = sign_webhook(secret, body, timestamp).split("v1=", 1)[1]
    # Several v1 values may be sent while a secret is being rotated: one match is enough.
    if not any(hmac.compare_digest(expected, v) for v in parts.get("v1", [])):
        raise WebhookRejected("webhook signature does not match (wrong secret, or the body was altered)")
    age = now - timestamp
    if abs(age) > tolerance_s:
        when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
        raise WebhookRejected(
            f"webhook timestamp is {when} (tolerance {tolerance_s:.0f} s): refused as a replay"
        )


@dataclass(frozen=True)
class WebhookOutcome:
    status: Literal["credited", "duplicate", "ignored"]
    event_type: str
    settled: Settled | None = None


class CardCheckoutTopUps:
    def __init__(
        self,
        provider_url: str,
        api_key: str,
        webhook_secret: bytes,
        checkouts: TopUpCheckouts,
        *,
        tolerance_s: float = 300.0,
        http: httpx.Client | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.provider_url = provider_url.rstrip("/")
        self._api_key = api_key
        self._secret = webhook_secret
        self.checkouts = checkouts
        self.tolerance_s = tolerance_s
        self._http = http or httpx.Client(timeout=10.0)
        self._now = now

    def start_top_up(
        self, account_token: str, amount_cents: int, currency: str, idempotency_key: str, return_url: str
    ) -> TopUpStarted:
        """A checkout session at the provider; the shopper is sent to its page. Nothing is credited."""
        existing = self.checkouts.by_key(idempotency_key)
        if existing is not None:  # the same form submitted twice: the same checkout
            return TopUpStarted("redirect", existing.id, existing.url)
        body = {
            "amount": amount_cents,
            "currency": currency.lower(),
            "client_reference_id": idempotency_key,
            "success_url": f"{return_url}?top_up=done",
            "cancel_url": f"{return_url}?top_up=cancelled",
        }
        try:
            response = self._http.post(
                f"{self.provider_url}/v1/checkout/sessions",
                json=body,
                headers={"Authorization": f"Bearer {self._api_key}", "Idempotency-Key": idempotency_key},
            )
        except httpx.HTTPError as exc:
            logger.error("card provider unreachable: %s", exc)
            raise TopUpRefused("the card provider cannot be reached: try again in a moment") from None
        if response.status_code >= 300:
            logger.error(
                "card provider refused a checkout (%d): %s", response.status_code, response.text[:300]
            )
            raise TopUpRefused(f"the card provider refused the top-up (HTTP {response.status_code})")
        session = response.json()
        checkout = self.checkouts.add(
            str(session["id"]),
            idempotency_key,
            account_token,
            amount_cents,
            currency.upper(),
            str(session["url"]),
        )
        logger.info("checkout %s started: %d cents for %s", checkout.id, amount_cents, account_token)
        return TopUpStarted("redirect", checkout.id, checkout.url)

    def handle_webhook(self, body: bytes, signature: str | None) -> WebhookOutcome:
        """Verify and act on one webhook call; raises :class:`WebhookRejected` with the reason."""
        verify_webhook(self._secret, body, signature, self._now(), self.tolerance_s)
        try:
            event = json.loads(body)
            event_type = str(event["type"])
            obj: dict[str, Any] = event["data"]["object"]
        except (ValueError, KeyError, TypeError):
            raise WebhookRejected("webhook body is not an event (want type and data.object)") from None
        if event_type != PAID_EVENT or obj.get("payment_status") != "paid":
            return WebhookOutcome("ignored", event_type)  # answered 200: the provider stops sending it
        checkout = self.checkouts.get(str(obj.get("id")))
        if checkout is None:
            raise WebhookRejected(f"data.object.id: checkout {obj.get('id')!r} was not started by this store")
        payment_id = obj.get("payment_intent")
        if not isinstance(payment_id, str) or not payment_id:
            raise WebhookRejected("data.object.payment_intent: the provider's payment id is missing")
        amount, currency = obj.get("amount_total"), str(obj.get("currency", "")).upper()
        if amount != checkout.amount_cents or currency != checkout.currency:
            logger.error(
                "checkout %s paid %r %s, started for %d %s",
                checkout.id,
                amount,
                currency,
                checkout.amount_cents,
                checkout.currency,
            )
            raise WebhookRejected(
                f"data.object.amount_total: paid {amount} {currency}, the checkout was for "
                f"{checkout.amount_cents} {checkout.currency}"
            )
        settled = self.checkouts.settle(checkout.id, payment_id)
        return WebhookOutcome("credited" if settled.credited else "duplicate", event_type, settled)

    def close(self) -> None:
        self._http.close()
