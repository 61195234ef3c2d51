"""The store server's web: the HTTP API, the staff dashboard, the shopper app and the live push.

Routers per resource (``store_api``, ``auth``, ``staff``, ``shopper``, ``live``); every route declares
who may call it through one of the dependencies in :mod:`store_server.api.access`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from store_server.api import auth, live, payments, shopper, staff, store_api
from store_server.api.access import Public
from store_server.api.security import SecurityHeaders
from store_server.api.templating import STATIC_DIR, page
from store_server.service.rate_limit import LoginThrottle

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _wants_html(request: Request) -> bool:
    path = request.url.path
    return not path.startswith(("/api/", "/live/")) and "text/html" in request.headers.get("accept", "")


def create_app(server: Any) -> FastAPI:
    """``server`` is a :class:`store_server.bootstrap.StoreServer` (layout, uow_factory, backend, web...)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if server.web is not None:
            server.web.hub.bind(asyncio.get_running_loop())
        yield

    app = FastAPI(
        title="Walkout store server",
        version="0.1.0",
        description="Walk in, take, walk out: sessions, carts and receipts of one store; the staff "
        "dashboard and the shopper app.",
        lifespan=lifespan,
        docs_url=None,  # our own /docs below: vendored Swagger UI, no CDN, no inline script
        redoc_url=None,
    )
    app.state.server = server
    settings = getattr(server, "settings", None)
    app.state.login_throttle = LoginThrottle(
        per_account=getattr(settings, "login_max_failures_per_account", 5),
        per_address=getattr(settings, "login_max_failures_per_address", 20),
        window_s=getattr(settings, "login_failure_window_s", 900.0),
    )

    @app.middleware("http")
    async def same_origin_writes(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # SameSite=Lax already keeps the cookie off cross-site POSTs; refusing a foreign Origin on
        # every write is the second lock on the door (CSRF).
        # "null" is what an opaque origin (a sandboxed frame, a file) sends: never our own pages.
        origin = request.headers.get("origin")
        if request.method in UNSAFE and origin:
            host = request.headers.get("host", "")
            if urlsplit(origin).netloc != host:
                return JSONResponse({"detail": "cross-origin request refused"}, status_code=403)
        return await call_next(request)

    @app.exception_handler(StarletteHTTPException)
    async def friendly_errors(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_html(request):
            if exc.status_code == 401:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
            if exc.status_code in (403, 404):
                return page(request, "error.html", exc.status_code, status=exc.status_code, detail=exc.detail)
        return await http_exception_handler(request, exc)

    app.include_router(store_api.ops)
    app.include_router(store_api.router)
    app.include_router(auth.router)
    app.include_router(staff.router)
    app.include_router(shopper.router)
    app.include_router(payments.router)
    app.include_router(live.router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    @app.get("/docs", dependencies=[Public], include_in_schema=False)
    def docs() -> FileResponse:
        return FileResponse(STATIC_DIR / "docs" / "index.html", media_type="text/html")

    # Added last, so it is the outermost middleware: its headers are on every response.
    app.add_middleware(SecurityHeaders, hsts=bool(getattr(settings, "cookie_secure", False)))
    return app
