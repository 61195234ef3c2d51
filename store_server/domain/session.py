"""A shopper's visit: opened at the entry gate, bound to a track, a cart that follows the shelves."""

from __future__ import annotations

from collections.abc import Sequence
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
    """One change to a cart and the evidence for it: the message id of the weight event, and what
    decided the product (``evidence``: "weight", "planogram" or "vision"; "" when nothing was
    recorded, e.g. a staff correction). One event may change several lines, one change per product."""

    event_id: str
    sku: str
    quantity: int  # + taken, - put back
    at: float
    confidence: float
    note: str = ""
    evidence: str = ""


@dataclass(frozen=True)
class LineChange:
    """One line of an event's decision, before it is applied to a cart."""

    sku: str
    quantity: int  # + taken, - put back
    note: str = ""
    evidence: str = ""


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

    def apply(self, event_id: str, at: float, confidence: float, lines: Sequence[LineChange]) -> bool:
        """Apply every line of one event at once, or none; False when nothing changed (a closed visit,
        an event applied already, or only put-backs of what the cart does not hold).

        Lines of the same product are summed; a put-back removes at most what the cart holds."""
        if not self.is_open or self.has_applied(event_id):
            return False
        merged: dict[str, LineChange] = {}
        for ln in lines:
            first = merged.get(ln.sku, ln)
            quantity = ln.quantity + (first.quantity if ln.sku in merged else 0)
            merged[ln.sku] = LineChange(ln.sku, quantity, first.note, first.evidence)
        out: list[CartChange] = []
        for ln in merged.values():
            quantity = ln.quantity if ln.quantity > 0 else -min(-ln.quantity, self.quantity_of(ln.sku))
            if quantity:
                out.append(CartChange(event_id, ln.sku, quantity, at, confidence, ln.note, ln.evidence))
        self.changes.extend(out)
        return bool(out)

    def take(
        self, event_id: str, sku: str, quantity: int, at: float, confidence: float, evidence: str = ""
    ) -> bool:
        """Add ``quantity`` of ``sku``; False when this event was applied already (idempotent)."""
        if quantity <= 0:
            return False
        return self.apply(event_id, at, confidence, [LineChange(sku, quantity, "", evidence)])

    def put_back(
        self,
        event_id: str,
        sku: str,
        quantity: int,
        at: float,
        confidence: float,
        note: str = "",
        evidence: str = "",
    ) -> bool:
        """Remove up to ``quantity`` of ``sku`` (never below zero)."""
        if quantity <= 0:
            return False
        return self.apply(event_id, at, confidence, [LineChange(sku, -quantity, note, evidence)])

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
