"""A shopper's visit: opened at the entry gate, bound to a track, a cart that follows the shelves."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class SessionState(StrEnum):
    OPEN = "open"  # in the store
    PAID = "paid"  # left, charged, receipt issued
    DECLINED = "declined"  # left, the charge was declined: staff follow up
    EMPTY = "empty"  # left with nothing: no charge, no receipt
    # Not seen for the visit timeout and never passed the exit: closed without a charge, and a cart
    # with anything in it goes to staff review.
    TIMED_OUT = "timed_out"


@dataclass
class CartLine:
    sku: str
    quantity: int
    confidence: float = 1.0


@dataclass(frozen=True)
class CartChange:
    """One change to a cart and the evidence for it (the message id of the weight event)."""

    event_id: str
    sku: str
    quantity: int  # + taken, - put back
    at: float
    confidence: float
    note: str = ""


@dataclass
class TrackBinding:
    """A camera track that belongs to this visit: one per group member, plus any continuation of a
    track whose id changed (a tracker id switch)."""

    track_id: str
    bound_at: float
    ended_at: float | None = None
    end_reason: str = ""  # "exit" | "continued" | "lost" | "timeout"

    @property
    def active(self) -> bool:
        return self.ended_at is None


@dataclass
class ShopperSession:
    id: str
    store_id: str
    account_token: str
    entered_at: float
    track_id: str | None = None  # the first member's track
    exited_at: float | None = None
    state: SessionState = SessionState.OPEN
    changes: list[CartChange] = field(default_factory=list)
    group_size: int = 1
    tracks: list[TrackBinding] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.state is SessionState.OPEN

    def track_ids(self) -> list[str]:
        return [b.track_id for b in self.tracks]

    def active_track_ids(self) -> list[str]:
        return [b.track_id for b in self.tracks if b.active]

    def bind(self, track_id: str, at: float) -> None:
        if track_id not in self.track_ids():
            self.tracks.append(TrackBinding(track_id, at))
            if self.track_id is None:
                self.track_id = track_id

    def end_track(self, track_id: str, at: float, reason: str) -> None:
        for binding in self.tracks:
            if binding.track_id == track_id and binding.active:
                binding.ended_at, binding.end_reason = at, reason

    def has_applied(self, event_id: str) -> bool:
        return any(c.event_id == event_id for c in self.changes)

    def cart(self) -> list[CartLine]:
        """The cart as lines, derived from the changes (so replaying changes rebuilds it exactly)."""
        qty: dict[str, int] = {}
        conf: dict[str, float] = {}
        for c in self.changes:
            qty[c.sku] = qty.get(c.sku, 0) + c.quantity
            if c.quantity > 0:
                conf[c.sku] = min(conf.get(c.sku, 1.0), c.confidence)
        return [CartLine(sku, q, conf.get(sku, 1.0)) for sku, q in sorted(qty.items()) if q > 0]

    def quantity_of(self, sku: str) -> int:
        return sum(c.quantity for c in self.changes if c.sku == sku)

    def take(self, event_id: str, sku: str, quantity: int, at: float, confidence: float) -> bool:
        """Add ``quantity`` of ``sku``; False when this event was applied already (idempotent)."""
        if not self.is_open or self.has_applied(event_id) or quantity <= 0:
            return False
        self.changes.append(CartChange(event_id, sku, quantity, at, confidence))
        return True

    def put_back(
        self, event_id: str, sku: str, quantity: int, at: float, confidence: float, note: str = ""
    ) -> bool:
        """Remove up to ``quantity`` of ``sku`` (never below zero)."""
        if not self.is_open or self.has_applied(event_id):
            return False
        quantity = min(quantity, self.quantity_of(sku))
        if quantity <= 0:
            return False
        self.changes.append(CartChange(event_id, sku, -quantity, at, confidence, note))
        return True

    def last_evidence(self) -> float:
        """The latest event time the visit itself records: the entry, a track bound, a cart change."""
        return max([self.entered_at, *(b.bound_at for b in self.tracks), *(c.at for c in self.changes)])

    def time_out(self, last_seen: float) -> None:
        """Close a visit whose shopper is gone for good: no charge (nobody passed the exit)."""
        for binding in self.tracks:
            if binding.active:
                binding.ended_at, binding.end_reason = last_seen, "timeout"
        self.exited_at = last_seen
        self.state = SessionState.TIMED_OUT

    def leave(self, at: float, charged: bool | None) -> None:
        """Close the visit: ``charged`` None means the cart was empty, False a declined charge."""
        self.exited_at = at
        if charged is None:
            self.state = SessionState.EMPTY
        else:
            self.state = SessionState.PAID if charged else SessionState.DECLINED


def session_id_for(entry_event_id: str) -> str:
    """Deterministic session id from the entry gate message, so a replay yields the same ids."""
    return "s-" + entry_event_id.replace(":", "-")
