"""The embedded order & inventory backend: the default for one store, on its own tables in the store
server's database. Callers only see :class:`~store_server.backend.api.OrderBackend`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Select, case, select, update
from sqlalchemy.orm import Session, sessionmaker

from store_server.adapters.db import dialect_insert
from store_server.backend.api import OrderAdjustmentIn, OrderIn, OrderLineIn, OrderOut, StockLevel
from store_server.backend.tables import (
    backend_order_adjustments,
    backend_order_lines,
    backend_orders,
    backend_stock,
)

logger = logging.getLogger(__name__)


class EmbeddedBackend:
    def __init__(self, session_factory: sessionmaker[Session], now: Callable[[], float] = time.time) -> None:
        self._sessions = session_factory
        self._now = now

    def place_order(self, order: OrderIn) -> OrderOut:
        with self._sessions() as s:
            head = order.model_dump(exclude={"lines"})
            stmt = (
                dialect_insert(s, backend_orders)
                .values(**head, created_at=self._now())
                .on_conflict_do_nothing(index_elements=["order_id"])
                .returning(backend_orders.c.order_id)
            )
            # A concurrent duplicate waits on the primary key and then inserts nothing, so stock is
            # taken exactly once however often the outbox delivers.
            if s.execute(stmt).scalar_one_or_none() is None:
                s.rollback()
                logger.info("order %s already placed", order.order_id)
            else:
                if order.lines:
                    s.execute(
                        backend_order_lines.insert(),
                        [
                            {"order_id": order.order_id, "position": i, **ln.model_dump()}
                            for i, ln in enumerate(order.lines)
                        ],
                    )
                # Stock is physical: the goods left the shelf whether or not the charge went through,
                # so a declined order takes them off the count as well (staff settle the payment).
                self._take_stock(s, order.store_id, order.lines)
                s.commit()
            stored = self._get(s, order.order_id)
        assert stored is not None
        return stored

    def get_order(self, order_id: str) -> OrderOut | None:
        with self._sessions() as s:
            return self._get(s, order_id)

    def adjust_order(self, adjustment: OrderAdjustmentIn) -> bool:
        with self._sessions() as s:
            stmt = (
                dialect_insert(s, backend_order_adjustments)
                .values(
                    **adjustment.model_dump(exclude={"lines"}),
                    lines=[ln.model_dump() for ln in adjustment.lines],
                    created_at=self._now(),
                )
                .on_conflict_do_nothing(index_elements=["adjustment_id"])
                .returning(backend_order_adjustments.c.adjustment_id)
            )
            if s.execute(stmt).scalar_one_or_none() is None:
                s.rollback()
                return False
            # Removed lines go back on the count, added ones come off it (clamped at 0 like a sale).
            added = [
                OrderLineIn(
                    sku=ln.sku,
                    name=ln.sku,
                    quantity=ln.quantity,
                    unit_price_cents=0,
                    amount_cents=0,
                    tax_class="standard",
                )
                for ln in adjustment.lines
                if ln.quantity > 0
            ]
            self._take_stock(s, adjustment.store_id, added)
            t = backend_stock
            for ln in adjustment.lines:
                if ln.quantity < 0:
                    s.execute(
                        update(t)
                        .where(t.c.store_id == adjustment.store_id, t.c.sku == ln.sku)
                        .values(quantity=t.c.quantity - ln.quantity, updated_at=self._now())
                    )
            s.commit()
            return True

    def list_orders(self, store_id: str, limit: int = 100) -> list[OrderOut]:
        o = backend_orders
        with self._sessions() as s:
            return self._load(
                s,
                select(o)
                .where(o.c.store_id == store_id)
                .order_by(o.c.placed_at.desc(), o.c.order_id.desc())
                .limit(limit),
            )

    def stock_levels(self, store_id: str) -> list[StockLevel]:
        t = backend_stock
        with self._sessions() as s:
            rows = s.execute(select(t).where(t.c.store_id == store_id).order_by(t.c.sku))
            return [StockLevel(store_id=r.store_id, sku=r.sku, quantity=r.quantity) for r in rows]

    def set_stock(self, store_id: str, sku: str, quantity: int) -> None:
        if quantity < 0:
            raise ValueError("stock cannot be negative")
        with self._sessions() as s:
            stmt = dialect_insert(s, backend_stock).values(
                store_id=store_id, sku=sku, quantity=quantity, updated_at=self._now()
            )
            s.execute(
                stmt.on_conflict_do_update(
                    index_elements=["store_id", "sku"],
                    set_={"quantity": quantity, "updated_at": stmt.excluded.updated_at},
                )
            )
            s.commit()

    def ensure_stock(self, store_id: str, levels: dict[str, int]) -> None:
        if not levels:
            return
        now = self._now()
        with self._sessions() as s:
            s.execute(
                dialect_insert(s, backend_stock)
                .values(
                    [
                        {"store_id": store_id, "sku": sku, "quantity": max(0, q), "updated_at": now}
                        for sku, q in levels.items()
                    ]
                )
                .on_conflict_do_nothing(index_elements=["store_id", "sku"])
            )
            s.commit()

    def _take_stock(self, s: Session, store_id: str, lines: list[OrderLineIn]) -> None:
        taken: dict[str, int] = {}
        for ln in lines:
            taken[ln.sku] = taken.get(ln.sku, 0) + ln.quantity
        if not taken:
            return
        t = backend_stock
        # Lock the rows (PostgreSQL; SQLite holds the database write lock already) so the clamp below
        # and the log line see the same count.
        rows = s.execute(
            select(t.c.sku, t.c.quantity)
            .where(t.c.store_id == store_id, t.c.sku.in_(sorted(taken)))
            .order_by(t.c.sku)
            .with_for_update()
        )
        current = {sku: quantity for sku, quantity in rows}
        now = self._now()
        for sku, qty in sorted(taken.items()):
            if sku not in current:
                logger.warning("store %s sold %d of %s, which has no stock record", store_id, qty, sku)
                continue
            if current[sku] < qty:
                # The shelf sold more than the books said: the count was wrong, not the sale.
                logger.warning(
                    "store %s: stock of %s would go negative (%d - %d); clamped at 0",
                    store_id,
                    sku,
                    current[sku],
                    qty,
                )
            s.execute(
                update(t)
                .where(t.c.store_id == store_id, t.c.sku == sku)
                .values(
                    quantity=case((t.c.quantity < qty, 0), else_=t.c.quantity - qty),
                    updated_at=now,
                )
            )

    def _get(self, s: Session, order_id: str) -> OrderOut | None:
        found = self._load(s, select(backend_orders).where(backend_orders.c.order_id == order_id))
        return found[0] if found else None

    def _load(self, s: Session, stmt: Select[Any]) -> list[OrderOut]:
        heads = list(s.execute(stmt))
        lines: dict[str, list[OrderLineIn]] = {h.order_id: [] for h in heads}
        t = backend_order_lines
        if lines:  # one query for the lines of all the orders
            rows = s.execute(
                select(t).where(t.c.order_id.in_(list(lines))).order_by(t.c.order_id, t.c.position)
            )
            for r in rows:
                lines[r.order_id].append(
                    OrderLineIn(
                        sku=r.sku,
                        name=r.name,
                        quantity=r.quantity,
                        unit_price_cents=r.unit_price_cents,
                        amount_cents=r.amount_cents,
                        tax_class=r.tax_class,
                    )
                )
        return [OrderOut(**dict(h._mapping), lines=lines[h.order_id]) for h in heads]
