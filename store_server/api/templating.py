"""Jinja2 templates of the shopper app and the staff pages (autoescaped), and their filters."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))

SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF "}


def money(cents: int | None, currency: str = "EUR") -> str:
    if cents is None:
        return "–"
    sign = "-" if cents < 0 else ""
    return f"{sign}{SYMBOLS.get(currency, currency + ' ')}{abs(cents) / 100:,.2f}"


def when(ts: float | None) -> str:
    if ts is None:
        return "–"
    return dt.datetime.fromtimestamp(ts).strftime("%d %b %Y, %H:%M")


templates.env.filters["money"] = money
templates.env.filters["when"] = when


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    server = request.app.state.server
    context.setdefault("store_name", server.layout.name)
    context.setdefault("currency", server.layout.currency)
    context.setdefault("user", getattr(request.state, "user", None))
    return templates.TemplateResponse(request, template, context, status_code=status_code)
