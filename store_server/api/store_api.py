"""Operations and the read-only store API: health and metrics are public (the server listens on
loopback unless told otherwise); everything under /api/ is for staff."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from store_server.api.access import Public, ServerDep, StaffUser
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
from store_server.service.health import Thresholds, degraded_reasons

Limit = Annotated[int, Query(ge=1, le=1000)]
MAX_REASONS = 20

ops = APIRouter(tags=["ops"])
router = APIRouter(prefix="/api")


@ops.get("/health", response_model=Health, dependencies=[Public])
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
    ingest = consumer.health() if consumer else None
    settings = srv.settings
    limits = Thresholds(
        settings.health_stuck_after_s, settings.health_max_lag_s, settings.health_max_queued
    )
    reasons = [] if database == "ok" else [f"database: {database}"]
    reasons += degraded_reasons(ingest, srv.processor.watermark, limits)[:MAX_REASONS]
    wm = srv.processor.watermark.value()
    return Health(
        status="ok" if not reasons else "degraded",
        store_id=srv.layout.store_id,
        database=database,
        mqtt_connected=ingest.connected if ingest else None,
        watermark=wm if wm != float("-inf") else None,
        inbox_messages=inbox,
        reasons=reasons,
        queued_messages=ingest.queued if ingest else None,
    )


@ops.get("/metrics", response_class=PlainTextResponse, dependencies=[Public])
def prometheus_metrics() -> PlainTextResponse:
    return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)


@router.get("/store", tags=["store"])
def store(srv: ServerDep, _: StaffUser) -> dict[str, Any]:
    layout: StoreLayout = srv.layout
    return layout.model_dump(mode="json")


@router.get("/sessions", response_model=list[SessionPublic], tags=["sessions"])
def sessions(
    srv: ServerDep, _: StaffUser, state: SessionState | None = None, limit: Limit = 100
) -> list[SessionPublic]:
    names = {p.sku: p.name for p in srv.layout.catalog}
    with srv.uow_factory() as uow:
        return [session_public(s, names) for s in uow.sessions.list(state, limit)]


@router.get("/sessions/{session_id}", response_model=SessionDetail, tags=["sessions"])
def session(srv: ServerDep, _: StaffUser, session_id: str) -> SessionPublic:
    with srv.uow_factory() as uow:
        found = uow.sessions.get(session_id)
    if found is None:
        raise HTTPException(404, f"no session {session_id!r}")
    return session_public(found, {p.sku: p.name for p in srv.layout.catalog}, detail=True)


@router.get("/receipts", response_model=list[ReceiptPublic], tags=["receipts"])
def receipts(srv: ServerDep, _: StaffUser, limit: Limit = 100) -> list[ReceiptPublic]:
    with srv.uow_factory() as uow:
        found = uow.receipts.list(limit)
        corrections = uow.reviews.corrections_for([r.id for r in found])
    return [receipt_public(r, corrections) for r in found]


@router.get("/receipts/{receipt_id}", response_model=ReceiptPublic, tags=["receipts"])
def receipt(srv: ServerDep, _: StaffUser, receipt_id: str) -> ReceiptPublic:
    with srv.uow_factory() as uow:
        found = uow.receipts.get(receipt_id)
        corrections = uow.reviews.corrections_for([receipt_id])
    if found is None:
        raise HTTPException(404, f"no receipt {receipt_id!r}")
    return receipt_public(found, corrections)


@router.get("/orders", response_model=list[OrderOut], tags=["backend"])
def orders(srv: ServerDep, _: StaffUser, limit: Limit = 100) -> list[OrderOut]:
    return list(srv.backend.list_orders(srv.layout.store_id, limit))


@router.get("/inventory", response_model=list[StockLevel], tags=["backend"])
def inventory(srv: ServerDep, _: StaffUser) -> list[StockLevel]:
    return list(srv.backend.stock_levels(srv.layout.store_id))


@router.get("/dead-letters", response_model=list[DeadLetterPublic], tags=["ops"])
def dead_letters(srv: ServerDep, _: StaffUser, limit: Limit = 100) -> list[DeadLetterPublic]:
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
