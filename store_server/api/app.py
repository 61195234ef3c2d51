"""The store server's HTTP API: health, store, sessions and carts, receipts, orders, inventory, metrics.

Read-only for now; every route is public on the address the settings bind to (loopback by default).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from store_server.api.schemas import (
    DeadLetterPublic,
    Health,
    ReceiptPublic,
    SessionDetail,
    SessionPublic,
    receipt_public,
    session_public,
)
from store_server.backend.api import OrderOut, StockLevel
from store_server.domain.layout import StoreLayout
from store_server.domain.session import SessionState


def _server(request: Request) -> Any:
    return request.app.state.server


ServerDep = Annotated[Any, Depends(_server)]
Limit = Annotated[int, Query(ge=1, le=1000)]


def create_app(server: Any) -> FastAPI:
    """``server`` is a :class:`store_server.bootstrap.StoreServer` (layout, uow_factory, backend...)."""
    app = FastAPI(
        title="Walkout store server",
        version="0.1.0",
        description="Walk in, take, walk out: sessions, carts and receipts of one store.",
    )
    app.state.server = server

    @app.get("/health", response_model=Health, tags=["ops"])
    def health(srv: ServerDep) -> Health:
        database = "ok"
        inbox = 0
        try:
            with srv.engine.connect() as conn:
                conn.execute(text("select 1"))
            with srv.uow_factory() as uow:
                inbox = uow.inbox.count()
        except Exception as exc:  # report, do not crash the health check
            database = f"error: {exc.__class__.__name__}"
        consumer = getattr(srv, "consumer", None)
        wm = srv.processor.watermark.value()
        return Health(
            status="ok" if database == "ok" else "degraded",
            store_id=srv.layout.store_id,
            database=database,
            mqtt_connected=consumer.connected.is_set() if consumer else None,
            watermark=wm if wm != float("-inf") else None,
            inbox_messages=inbox,
        )

    @app.get("/metrics", response_class=PlainTextResponse, tags=["ops"])
    def prometheus_metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/store", tags=["store"])
    def store(srv: ServerDep) -> dict[str, Any]:
        layout: StoreLayout = srv.layout
        return layout.model_dump(mode="json")

    @app.get("/api/sessions", response_model=list[SessionPublic], tags=["sessions"])
    def sessions(
        srv: ServerDep, state: SessionState | None = None, limit: Limit = 100
    ) -> list[SessionPublic]:
        names = {p.sku: p.name for p in srv.layout.catalog}
        with srv.uow_factory() as uow:
            return [session_public(s, names) for s in uow.sessions.list(state, limit)]

    @app.get("/api/sessions/{session_id}", response_model=SessionDetail, tags=["sessions"])
    def session(srv: ServerDep, session_id: str) -> SessionPublic:
        with srv.uow_factory() as uow:
            found = uow.sessions.get(session_id)
        if found is None:
            raise HTTPException(404, f"no session {session_id!r}")
        return session_public(found, {p.sku: p.name for p in srv.layout.catalog}, detail=True)

    @app.get("/api/receipts", response_model=list[ReceiptPublic], tags=["receipts"])
    def receipts(srv: ServerDep, limit: Limit = 100) -> list[ReceiptPublic]:
        with srv.uow_factory() as uow:
            return [receipt_public(r) for r in uow.receipts.list(limit)]

    @app.get("/api/receipts/{receipt_id}", response_model=ReceiptPublic, tags=["receipts"])
    def receipt(srv: ServerDep, receipt_id: str) -> ReceiptPublic:
        with srv.uow_factory() as uow:
            found = uow.receipts.get(receipt_id)
        if found is None:
            raise HTTPException(404, f"no receipt {receipt_id!r}")
        return receipt_public(found)

    @app.get("/api/orders", response_model=list[OrderOut], tags=["backend"])
    def orders(srv: ServerDep, limit: Limit = 100) -> list[OrderOut]:
        return list(srv.backend.list_orders(srv.layout.store_id, limit))

    @app.get("/api/inventory", response_model=list[StockLevel], tags=["backend"])
    def inventory(srv: ServerDep) -> list[StockLevel]:
        return list(srv.backend.stock_levels(srv.layout.store_id))

    @app.get("/api/dead-letters", response_model=list[DeadLetterPublic], tags=["ops"])
    def dead_letters(srv: ServerDep, limit: Limit = 100) -> list[DeadLetterPublic]:
        with srv.uow_factory() as uow:
            letters = uow.dead_letters.list(limit)
        return [
            DeadLetterPublic(
                id=d.id,
                topic=d.topic,
                reason=d.reason,
                field=d.field,
                received_at=d.received_at,
                payload_preview=d.payload[:200].decode("utf-8", "replace"),
            )
            for d in letters
        ]

    return app
