"""The receipt a shopper gets at exit, and the order it becomes in the backend."""

from __future__ import annotations

from dataclasses import dataclass

from store_server.domain.pricing import Bill


@dataclass(frozen=True)
class Receipt:
    id: str
    session_id: str
    store_id: str
    account_token: str
    exited_at: float  # event time of the exit gate pass
    bill: Bill
    payment_status: str  # "approved" | "declined"
    charge_id: str | None
    decline_reason: str | None = None


def receipt_id_for(session_id: str) -> str:
    return "r-" + session_id.removeprefix("s-")
