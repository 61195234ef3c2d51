"""Live push as Server-Sent Events: staff get everything (starting with a snapshot), a shopper only the
events about their own account. The browser's EventSource reconnects by itself; no polling."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from store_server.api.access import ShopperUser, StaffUser, WebDep
from store_server.service.live import Event, LiveHub, Subscription

router = APIRouter(prefix="/live", tags=["live"])
KEEPALIVE_S = 15.0
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def _sse(event: Event) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


async def _stream(
    request: Request, hub: LiveHub, sub: Subscription, first: Event | None
) -> AsyncIterator[str]:
    try:
        yield "retry: 2000\n\n"
        if first is not None:
            yield _sse(first)
        while not await request.is_disconnected():
            event = await sub.next(KEEPALIVE_S)
            if event is None:
                if sub.dropped:
                    return  # fell behind: the browser reconnects to a fresh snapshot
                yield ": keep-alive\n\n"
                continue
            yield _sse(event)
    finally:
        hub.unsubscribe(sub)


@router.get("/staff")
async def staff_stream(request: Request, web: WebDep, _: StaffUser) -> StreamingResponse:
    sub = web.hub.subscribe(lambda e: True)  # before the snapshot, so nothing falls in between
    snapshot: dict[str, Any] = await run_in_threadpool(web.feed.snapshot)
    return StreamingResponse(
        _stream(request, web.hub, sub, snapshot), media_type="text/event-stream", headers=HEADERS
    )


@router.get("/me")
async def shopper_stream(request: Request, web: WebDep, user: ShopperUser) -> StreamingResponse:
    token = user.account_token

    def mine(e: Event) -> bool:
        return bool(token) and e.get("account") == token and e["type"] in ("session", "receipt", "review")

    sub = web.hub.subscribe(mine)
    hello = {"type": "hello", "account": token}
    return StreamingResponse(
        _stream(request, web.hub, sub, hello), media_type="text/event-stream", headers=HEADERS
    )
