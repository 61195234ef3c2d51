"""Security headers on every HTTP response: pages, JSON, static files, live streams and errors.

The Content-Security-Policy lets the pages run only this origin's own scripts and styles: no inline
script, no inline style attribute, no framing, no plugins, forms post only here. The templates and
static scripts are written for it (styles are classes, dynamic values go through the CSSOM), and
``/docs`` is a page of ours that loads the vendored Swagger UI. Anything showing a person's data or an
entry code must not stay in a cache, so every response outside ``/static`` is ``no-store``.
"""

from __future__ import annotations

import logging

from starlette.datastructures import MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # Swagger UI draws its icons as data: SVG in its stylesheet
        "font-src 'self'",
        "connect-src 'self'",  # fetch and the live EventSource, same origin only
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: that would turn our own forms' Origin header into "null", and the Origin
    # check on writes (app.same_origin_writes) wants the real one.
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
CACHEABLE = ("/static/",)  # everything else may carry personal data or an entry code


class SecurityHeaders:
    """Pure ASGI (it never buffers a body, so live streams stay live)."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    def headers_for(self, path: str) -> dict[str, str]:
        headers = dict(HEADERS)
        if not path.startswith(CACHEABLE):
            headers["Cache-Control"] = "no-store"
        if self.hsts:  # only behind TLS (WALKOUT_COOKIE_SECURE): over plain HTTP it would lock users out
            headers["Strict-Transport-Security"] = "max-age=31536000"
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers_for(scope["path"])
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers[name] = value
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # The server's own 500 page is written outside this middleware: write it here instead.
            if not started:
                await PlainTextResponse("Internal Server Error", 500)(scope, receive, send_with_headers)
            raise
