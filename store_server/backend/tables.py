"""Tables of the embedded order & inventory backend. They share the database with the store server
but not its metadata: the backend is reached only through :class:`OrderBackend`, never by joins."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from store_server.adapters.orm import NAMING_CONVENTION

metadata = MetaData(naming_convention=NAMING_CONVENTION)

backend_orders = Table(
    "backend_orders",
    metadata,
    Column("order_id", String(128), primary_key=True),  # idempotency key: the outbox may deliver twice
    Column("store_id", String(64), nullable=False),
    Column("session_id", String(128), nullable=False),
    Column("account_token", String(128), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("subtotal_cents", BigInteger, nullable=False),
    Column("tax_cents", BigInteger, nullable=False),
    Column("total_cents", BigInteger, nullable=False),
    Column("payment_status", String(16), nullable=False),
    Column("charge_id", String(128), nullable=True),
    Column("placed_at", Double, nullable=False),  # event time of the exit
    Column("created_at", Double, nullable=False),  # wall clock at the backend
    Index("ix_backend_orders_store_placed", "store_id", "placed_at"),
)

backend_order_lines = Table(
    "backend_order_lines",
    metadata,
    Column(
        "order_id", String(128), ForeignKey("backend_orders.order_id", ondelete="CASCADE"), primary_key=True
    ),
    Column("position", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_cents", BigInteger, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("tax_class", String(64), nullable=False),
)

backend_stock = Table(
    "backend_stock",
    metadata,
    Column("store_id", String(64), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("quantity", Integer, nullable=False),
    Column("updated_at", Double, nullable=False),
)

# A change to a placed order after the fact (a staff correction or a refunded dispute): the order
# itself stays as placed; stock follows the signed quantities. Migration 0003.
backend_order_adjustments = Table(
    "backend_order_adjustments",
    metadata,
    Column("adjustment_id", String(200), primary_key=True),  # idempotency key (the correction id)
    Column("order_id", String(128), ForeignKey("backend_orders.order_id"), nullable=False),
    Column("store_id", String(64), nullable=False),
    Column("lines", JSON, nullable=False),  # [{sku, quantity, amount_cents}], signed
    Column("total_delta_cents", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Index("ix_backend_order_adjustments_order", "order_id"),
)
