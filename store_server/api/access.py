"""Who may call a route. Every route declares exactly one of these dependencies:

- ``public``  — anyone (health, metrics, sign-in and sign-up pages, static assets)
- ``shopper`` — a signed-in shopper, and only about their own data
- ``staff``   — a signed-in staff member or admin
- ``admin``   — a signed-in admin

The signed-in user comes from the session cookie (signed, expiring, HttpOnly, SameSite=Lax).
``tests/integration/test_auth.py`` walks every route of the app and fails on one without a declaration.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from store_server.bootstrap import WebServices
from store_server.domain.accounts import Role, User

COOKIE = "walkout_session"


class NotSignedIn(HTTPException):
    def __init__(self) -> None:
        super().__init__(401, "sign in first")


def server_of(request: Request) -> Any:
    return request.app.state.server


def web_of(request: Request) -> WebServices:
    web: WebServices | None = request.app.state.server.web
    if web is None:
        raise HTTPException(503, "the web services are not wired (bootstrap() does it)")
    return web


def current_user(request: Request) -> User | None:
    """The signed-in user or None (cached on the request: one lookup per request)."""
    if not hasattr(request.state, "user"):
        cookie = request.cookies.get(COOKIE)
        request.state.user = web_of(request).people.user_for_cookie(cookie) if cookie else None
    user: User | None = request.state.user
    return user


# -- the four access levels ---------------------------------------------------------------------


def public() -> None:
    """Anyone may call this route."""


def shopper(request: Request) -> User:
    user = current_user(request)
    if user is None:
        raise NotSignedIn()
    if user.role is not Role.SHOPPER:
        raise HTTPException(403, "this page is for shoppers")
    return user


def staff(request: Request) -> User:
    user = current_user(request)
    if user is None:
        raise NotSignedIn()
    if not user.is_staff:
        raise HTTPException(403, "staff only")
    return user


def admin(request: Request) -> User:
    user = current_user(request)
    if user is None:
        raise NotSignedIn()
    if user.role is not Role.ADMIN:
        raise HTTPException(403, "admins only")
    return user


ACCESS_LEVELS = {public: "public", shopper: "shopper", staff: "staff", admin: "admin"}

Public = Depends(public)
ServerDep = Annotated[Any, Depends(server_of)]
WebDep = Annotated[WebServices, Depends(web_of)]
ShopperUser = Annotated[User, Depends(shopper)]
StaffUser = Annotated[User, Depends(staff)]
AdminUser = Annotated[User, Depends(admin)]
