"""Money into wallets: the card provider's webhook (the only way a card payment credits a wallet) and
staff top-ups (cash at the till, goodwill). A shopper's own top-up starts in the shopper app."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from store_server.adapters.card_provider import SIGNATURE_HEADER, WebhookRejected
from store_server.api.access import Public, StaffUser, WebDep
from store_server.domain.accounts import AccountError

logger = logging.getLogger(__name__)

router = APIRouter(tags=["payments"])


@router.post("/payments/webhook", dependencies=[Public])
async def card_webhook(request: Request, web: WebDep) -> dict[str, Any]:
    """Called by the card provider, authenticated by its signature (not by a cookie)."""
    card = web.card
    if card is None:
        raise HTTPException(404, "this store takes no card payments (WALKOUT_CARD_PROVIDER_URL is unset)")
    body = await request.body()
    try:
        outcome = await run_in_threadpool(card.handle_webhook, body, request.headers.get(SIGNATURE_HEADER))
    except WebhookRejected as exc:
        logger.warning("card webhook refused: %s", exc)
        raise HTTPException(400, str(exc)) from None
    answer: dict[str, Any] = {"status": outcome.status, "type": outcome.event_type}
    if outcome.settled is not None:
        answer["checkout_id"] = outcome.settled.checkout.id
    return answer


class StaffTopUpIn(BaseModel):
    amount_cents: int = Field(ge=100, le=100_000)
    request_id: str = Field(min_length=1, max_length=64, description="idempotency key of this top-up")


@router.post("/api/accounts/{account_token}/top-ups")
async def staff_top_up(
    web: WebDep, user: StaffUser, account_token: str, body: StaffTopUpIn
) -> dict[str, Any]:
    try:
        balance = await run_in_threadpool(
            web.people.staff_top_up, user, account_token, body.amount_cents, body.request_id
        )
    except AccountError as exc:
        raise HTTPException(404 if "no account" in str(exc) else 400, str(exc)) from None
    return {"account_token": account_token, "balance_cents": balance}
