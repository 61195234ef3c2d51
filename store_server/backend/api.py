"""The API boundary of the order & inventory backend: its schemas and its port.

Everything crossing the boundary is one of these pydantic models, so the embedded backend and an HTTP
client to a shared backend are interchangeable behind :class:`OrderBackend`.
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

PaymentStatus = Literal["approved", "declined"]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrderLineIn(_Schema):
    sku: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=255)
    quantity: int = Field(gt=0)
    unit_price_cents: int = Field(ge=0)
    amount_cents: int = Field(ge=0)
    tax_class: str = Field(min_length=1, max_length=64)


class OrderIn(_Schema):
    order_id: str = Field(min_length=1, max_length=128, description="idempotency key (the receipt id)")
    store_id: str = Field(min_length=1, max_length=64)
    session_id: str = Field(min_length=1, max_length=128)
    account_token: str = Field(min_length=1, max_length=128)
    currency: str = Field(min_length=3, max_length=3)
    lines: list[OrderLineIn]
    subtotal_cents: int = Field(ge=0)
    tax_cents: int = Field(ge=0)
    total_cents: int = Field(ge=0)
    payment_status: PaymentStatus
    charge_id: str | None = None
    placed_at: float = Field(description="event time of the exit, UTC epoch seconds")


class OrderOut(OrderIn):
    created_at: float = Field(description="when the backend stored the order (its wall clock)")


class AdjustmentLineIn(_Schema):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(description="signed: - returned by the shopper (back to stock), + added")
    amount_cents: int = Field(description="signed change of the line amount")


class OrderAdjustmentIn(_Schema):
    """A change to a placed order after the fact (a staff correction or a refunded dispute)."""

    adjustment_id: str = Field(min_length=1, max_length=200, description="idempotency key")
    order_id: str = Field(min_length=1, max_length=128)
    store_id: str = Field(min_length=1, max_length=64)
    lines: list[AdjustmentLineIn]
    total_delta_cents: int
    reason: str = ""


class StockLevel(_Schema):
    store_id: str
    sku: str
    quantity: int


class OrderBackend(Protocol):
    def place_order(self, order: OrderIn) -> OrderOut:
        """Store the order and take its lines off the stock. Idempotent on ``order_id``: a repeat
        returns the stored order and changes nothing."""

    def get_order(self, order_id: str) -> OrderOut | None: ...

    def adjust_order(self, adjustment: OrderAdjustmentIn) -> bool:
        """Record a correction of a placed order and move its quantities on the stock. Idempotent on
        ``adjustment_id``: True the first time, False for a repeat (nothing changes)."""

    def list_orders(self, store_id: str, limit: int = 100) -> list[OrderOut]:
        """Newest first (by placed_at)."""

    def stock_levels(self, store_id: str) -> list[StockLevel]: ...

    def set_stock(self, store_id: str, sku: str, quantity: int) -> None: ...

    def ensure_stock(self, store_id: str, levels: dict[str, int]) -> None:
        """Set the level of every sku not known yet; known skus keep their count (startup seeding)."""
