"""The shopper app (mobile-first pages) and its JSON twin under /api/me. A shopper only ever reaches
their own wallet, visits and receipts: every query is keyed by the signed-in user's account, and a
receipt of someone else answers 404, exactly like one that does not exist."""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

import segno
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from store_server.adapters.users import ShopperReads
from store_server.api.access import ServerDep, ShopperUser, WebDep
from store_server.api.templating import page
from store_server.domain.accounts import AccountError, TopUpRefused, User
from store_server.domain.review import ReviewError
from store_server.service import views
from store_server.service.ports import TopUpStarted

router = APIRouter(tags=["shopper"])
TOP_UPS = (1000, 2000, 5000)
TOP_UP_STATES = {
    "done": "Thank you! Your top-up shows here as soon as the card provider confirms the payment.",
    "cancelled": "The top-up was cancelled: nothing was charged.",
}


def _receipts(srv: Any, user: User, receipt_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    token = user.account_token or ""
    ids = ShopperReads(srv.session_factory).receipt_ids(token, limit) if receipt_id is None else [receipt_id]
    with srv.uow_factory() as uow:
        found = [r for rid in ids if (r := uow.receipts.get(rid)) and r.account_token == token]
        return views.receipts_with_corrections(uow, found)


def _wallet(web: WebDep, user: User) -> dict[str, Any]:
    account = web.people.wallet(user)
    return {
        "account_token": account.token,
        "balance_cents": account.balance_cents,
        "credit_limit_cents": account.credit_limit_cents,
        "available_cents": account.balance_cents + account.credit_limit_cents,
    }


def _in_store(srv: Any, user: User) -> list[dict[str, Any]]:
    ids = ShopperReads(srv.session_factory).open_session_ids(user.account_token or "")
    with srv.uow_factory() as uow:
        return [views.session_view(s, srv.layout) for sid in ids if (s := uow.sessions.get(sid))]


# -- pages --------------------------------------------------------------------------------------


@router.get("/app", response_class=HTMLResponse, include_in_schema=False)
def home(request: Request, srv: ServerDep, web: WebDep, user: ShopperUser) -> HTMLResponse:
    return page(
        request,
        "app_home.html",
        wallet=_wallet(web, user),
        visits=_in_store(srv, user),
        receipts=_receipts(srv, user, limit=3),
        top_ups=TOP_UPS if web.people.takes_top_ups else (),
        top_up_state=TOP_UP_STATES.get(request.query_params.get("top_up", "")),
        request_id=secrets.token_hex(8),
        error=request.query_params.get("error"),
    )


def _start_top_up(
    request: Request, web: WebDep, user: User, amount_cents: int, request_id: str
) -> TopUpStarted:
    # The provider sends the shopper back here; the redirect itself credits nothing.
    return_url = str(request.url_for("home"))
    return web.people.start_top_up(user, amount_cents, request_id[:32], return_url)


@router.post("/app/top-up", include_in_schema=False)
async def top_up(
    request: Request,
    web: WebDep,
    user: ShopperUser,
    amount_cents: Annotated[int, Form()],
    request_id: Annotated[str, Form()],
) -> Response:
    try:
        started = await run_in_threadpool(_start_top_up, request, web, user, amount_cents, request_id)
    except AccountError as exc:
        return RedirectResponse(f"/app?{urlencode({'error': str(exc)})}", status_code=303)
    if started.redirect_url:
        # On to the card provider's page through a link the app follows (a cross-origin redirect of
        # a form post is blocked by CSP form-action 'self'). Reloading re-posts the same request id:
        # the same checkout.
        return page(request, "app_pay.html", amount_cents=amount_cents, checkout_url=started.redirect_url)
    return RedirectResponse("/app", status_code=303)


@router.get("/app/enter", response_class=HTMLResponse, include_in_schema=False)
def enter(request: Request, web: WebDep, user: ShopperUser, group: int = 1) -> HTMLResponse:
    group = min(max(group, 1), 6)
    issued = web.people.issue_entry_code(user, group)
    svg = segno.make(issued.code, error="m").svg_inline(scale=6, border=2, dark="#0b1020", light="#ffffff")
    return page(request, "app_enter.html", code=issued, qr_svg=svg, group=group)


@router.get("/app/receipts", response_class=HTMLResponse, include_in_schema=False)
def receipts_page(request: Request, srv: ServerDep, user: ShopperUser) -> HTMLResponse:
    return page(request, "app_receipts.html", receipts=_receipts(srv, user))


@router.get("/app/receipts/{receipt_id}", response_class=HTMLResponse, include_in_schema=False)
def receipt_page(request: Request, srv: ServerDep, user: ShopperUser, receipt_id: str) -> HTMLResponse:
    found = _receipts(srv, user, receipt_id)
    if not found:
        raise HTTPException(404, "no such receipt")
    return page(request, "app_receipt.html", r=found[0], error=request.query_params.get("error"))


@router.post("/app/receipts/{receipt_id}/dispute", include_in_schema=False)
async def dispute_form(
    web: WebDep,
    user: ShopperUser,
    receipt_id: str,
    sku: Annotated[str, Form()],
    quantity: Annotated[int, Form()] = 1,
    reason: Annotated[str, Form()] = "",
) -> Response:
    try:
        await run_in_threadpool(
            web.reviews.dispute, user.account_token or "", receipt_id, sku, quantity, reason
        )
    except LookupError:
        raise HTTPException(404, "no such receipt") from None
    except ReviewError as exc:
        return RedirectResponse(f"/app/receipts/{receipt_id}?error={exc}", status_code=303)
    return RedirectResponse(f"/app/receipts/{receipt_id}", status_code=303)


# -- JSON -----------------------------------------------------------------------------------------


@router.get("/api/me")
def me(srv: ServerDep, web: WebDep, user: ShopperUser) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "wallet": _wallet(web, user),
        "in_store": _in_store(srv, user),
    }


@router.get("/api/me/receipts")
def my_receipts(srv: ServerDep, user: ShopperUser) -> list[dict[str, Any]]:
    return _receipts(srv, user)


@router.get("/api/me/receipts/{receipt_id}")
def my_receipt(srv: ServerDep, user: ShopperUser, receipt_id: str) -> dict[str, Any]:
    found = _receipts(srv, user, receipt_id)
    if not found:
        raise HTTPException(404, "no such receipt")
    return found[0]


class EntryCodeIn(BaseModel):
    group_size: int = Field(1, ge=1, le=6)


@router.post("/api/me/entry-code")
def entry_code(web: WebDep, user: ShopperUser, body: EntryCodeIn) -> dict[str, Any]:
    issued = web.people.issue_entry_code(user, body.group_size)
    return {"code": issued.code, "group_size": issued.group_size, "expires_at": issued.expires_at}


class TopUpIn(BaseModel):
    amount_cents: int = Field(ge=100, le=100_000)
    request_id: str = Field(min_length=1, max_length=32, description="makes a repeated request start once")


@router.post("/api/me/top-ups")
async def my_top_up(request: Request, web: WebDep, user: ShopperUser, body: TopUpIn) -> dict[str, Any]:
    """Start a top-up: ``checkout`` (pay at ``checkout_url``; the wallet is credited when the card
    provider confirms) or ``credited`` (the demo's free top-ups)."""
    try:
        started = await run_in_threadpool(
            _start_top_up, request, web, user, body.amount_cents, body.request_id
        )
    except AccountError as exc:
        raise HTTPException(409 if isinstance(exc, TopUpRefused) else 400, str(exc)) from None
    return {
        "status": "checkout" if started.redirect_url else "credited",
        "checkout_url": started.redirect_url,
        "wallet": _wallet(web, user),
    }


class DisputeIn(BaseModel):
    sku: str
    quantity: int = Field(1, ge=1, le=100)
    reason: str = Field("", max_length=500)


@router.post("/api/me/receipts/{receipt_id}/disputes")
async def dispute(web: WebDep, user: ShopperUser, receipt_id: str, body: DisputeIn) -> dict[str, Any]:
    try:
        item = await run_in_threadpool(
            web.reviews.dispute, user.account_token or "", receipt_id, body.sku, body.quantity, body.reason
        )
    except LookupError:
        raise HTTPException(404, "no such receipt") from None
    except ReviewError as exc:
        raise HTTPException(409, str(exc)) from None
    return views.dispute_state(item)
