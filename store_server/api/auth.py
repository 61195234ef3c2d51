"""Sign in, sign out and sign up (shoppers). Staff accounts come from ``walkout users create-staff``
or an admin (``POST /api/staff-users``); nobody signs up as staff.

Sign-in is throttled per account and per client address (:mod:`store_server.service.rate_limit`): once
locked, the answer is 429 with ``Retry-After`` and no password is checked, not even the right one."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from store_server.api.access import COOKIE, Public, WebDep, current_user, public
from store_server.api.templating import page
from store_server.domain.accounts import AccountError, User
from store_server.service.rate_limit import LoginThrottle, Refusal

router = APIRouter(tags=["auth"])


def _safe_next(next_url: str | None, user: User) -> str:
    if next_url and next_url.startswith("/") and not next_url.startswith("//"):
        return next_url
    return "/staff" if user.is_staff else "/app"


def signed_in(request: Request, web: WebDep, user: User, next_url: str | None) -> Response:
    response = RedirectResponse(_safe_next(next_url, user), status_code=303)
    response.set_cookie(
        COOKIE,
        web.people.start_session(user),
        max_age=int(web.people.session_ttl_s),
        httponly=True,
        samesite="lax",
        secure=request.app.state.server.settings.cookie_secure,
        path="/",
    )
    return response


@router.get("/", dependencies=[Public], include_in_schema=False)
def root(request: Request) -> Response:
    user = current_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse("/staff" if user.is_staff else "/app", status_code=303)


@router.get("/login", response_class=HTMLResponse, dependencies=[Public])
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return page(request, "login.html", next=next or "", error=None, email="")


@router.post("/login", dependencies=[Public])
def login(
    request: Request,
    web: WebDep,
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "",
) -> Response:
    throttle: LoginThrottle = request.app.state.login_throttle
    attempt = throttle.begin(email, request.client.host if request.client else "unknown")
    if isinstance(attempt, Refusal):
        return _too_many(request, attempt, next, email)
    user = web.people.authenticate(email, password)
    if user is None:  # counted already: begin() counts every attempt as a failure until it succeeds
        return page(request, "login.html", 401, next=next, error="Wrong e-mail or password.", email=email)
    throttle.succeeded(attempt)
    return signed_in(request, web, user, next)


def _too_many(request: Request, refused: Refusal, next_url: str, email: str) -> Response:
    seconds = math.ceil(refused.retry_after_s)
    minutes = math.ceil(seconds / 60)
    wait = f"{minutes} minute{'s' if minutes != 1 else ''}" if seconds > 90 else f"{seconds} seconds"
    whose = "for this account" if refused.reason == "account" else "from this network"
    error = f"Too many failed sign-ins {whose}. Try again in {wait}."
    response = page(request, "login.html", 429, next=next_url, error=error, email=email)
    response.headers["Retry-After"] = str(seconds)
    return response


@router.post("/logout", dependencies=[Depends(public)])
def logout(request: Request, web: WebDep) -> Response:
    web.people.end_session(request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/signup", response_class=HTMLResponse, dependencies=[Public])
def signup_page(request: Request) -> HTMLResponse:
    return page(request, "signup.html", error=None, email="", name="")


@router.post("/signup", dependencies=[Public])
def signup(
    request: Request,
    web: WebDep,
    name: Annotated[str, Form()],
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
) -> Response:
    try:
        user = web.people.sign_up(email, name, password)
    except AccountError as exc:
        return page(request, "signup.html", 400, error=str(exc), email=email, name=name)
    return signed_in(request, web, user, "/app")
