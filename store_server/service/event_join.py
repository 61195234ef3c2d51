"""Weight events explained with others: parts the edge split, and put-backs published before their take.

When several shoppers reach into one shelf at almost the same moment, coupling mixes their plates'
signals and the edge detector may cut the interaction in the wrong place: part of one item's weight
goes into the neighbouring event (one pick of 212 g published as -156 g beside a -1136 g event that
holds the other 56 g). Neither part then fits a product, although the two together fit exactly.

So an event that arrives while an earlier event on the same shelf, overlapping it in time, is still
an open *unexplained* review item is also explained joined with it: plates' changes and totals
summed, from the first start to the last end. When the joined event is explained (and the new
event on its own is not explained as surely: then the earlier one was another hand's), it is decided
under the new event's id and the earlier review item is closed by fusion (``resolved_by`` =
``store_server.domain.review.FUSION``, ``resolution.action`` = ``"joined"``): staff never have to
decide it. The new event alone is surer only if its fit, plus what each earlier part costs left
on its own, is no worse than the joined fit. The part that fitted may also come first: then a new
event that fits nothing alone (or worse than joined with an earlier part that was decided with
low confidence) is what the joined interaction holds beyond the parts decided already, and a
doubtful part's lines the whole does not hold are taken back out (its review item closed the same
way). Deterministic: it reads only the inbox, the carts and the review items, all replayed in the
same order.

The other way round, a put-back can be published before the pick it returns: a shopper takes an
item and puts it straight back on another shelf while the first shelf is still settling (its event
ends later). The put-back then fits nothing in the cart and opens an *unexplained* item. So once a
take is decided, the open unexplained put-backs that began while it was under way are read again
with the cart it made; one explained now is decided and its item closed by fusion
(``resolution.action`` = ``"explained_after"``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

from edge.contracts import WeightEvent, decode_any
from store_server import metrics
from store_server.domain.review import FUSION, ReviewItem, ReviewKind, ReviewStatus, review_id_for
from store_server.domain.session import ShopperSession
from store_server.service.ports import UnitOfWork

OVERLAP_S = 1.0  # events this close in time (or overlapping) on one shelf may be one interaction
LOOK_BACK_S = 30.0  # the longest an earlier part can have started before this event


def _open_unexplained(uow: UnitOfWork, msg: WeightEvent) -> list[tuple[WeightEvent, ReviewItem]]:
    """Earlier events, begun at most ``LOOK_BACK_S`` before ``msg``, whose unexplained item is open."""
    out = []
    for row in uow.inbox.of_kind_since("weight", msg.t_start - LOOK_BACK_S):
        if row.msg_id == msg.msg_id:
            continue
        item = uow.reviews.get(review_id_for(ReviewKind.UNEXPLAINED, row.msg_id))
        if item is None or not item.is_open:  # decided otherwise, or not decided yet
            continue
        other = decode_any(row.payload)
        if isinstance(other, WeightEvent):
            out.append((other, item))
    return out


@dataclass(frozen=True)
class DecidedPart:
    """An earlier event already decided into carts: the lines it applied (sku -> quantity, summed
    over the carts it changed) and its open low-confidence review item, if staff were asked."""

    event: WeightEvent
    lines: dict[str, int]
    doubt: ReviewItem | None


def decided_parts(uow: UnitOfWork, msg: WeightEvent, sessions: Iterable[ShopperSession]) -> list[DecidedPart]:
    """Earlier events on ``msg``'s shelf, overlapping it in time, already decided into carts."""
    applied: dict[str, dict[str, int]] = {}
    for session in sessions:
        for change in session.changes:
            lines = applied.setdefault(change.event_id, {})
            lines[change.sku] = lines.get(change.sku, 0) + change.quantity
    out = []
    for row in uow.inbox.of_kind_since("weight", msg.t_start - LOOK_BACK_S):
        lines = applied.get(row.msg_id, {})
        if row.msg_id == msg.msg_id or not any(lines.values()):
            continue
        other = decode_any(row.payload)
        if isinstance(other, WeightEvent) and _overlapping(other, msg):
            item = uow.reviews.get(review_id_for(ReviewKind.LOW_CONFIDENCE, row.msg_id))
            doubt = item if item is not None and item.is_open else None
            out.append(DecidedPart(other, {sku: q for sku, q in lines.items() if q}, doubt))
    return out


def remainder(whole: dict[str, int], parts: list[DecidedPart]) -> dict[str, int] | None:
    """What an interaction explained ``whole`` (sku -> quantity) holds beyond the ``parts`` already
    decided; None when a sure part's lines are not in it (those parts were another interaction). A
    doubtful part's lines that are not are withdrawn (negative quantities: taken back out)."""
    left = dict(whole)
    for part in parts:
        for sku, q in part.lines.items():
            have = left.get(sku, 0)
            if part.doubt is None and (have * q <= 0 or abs(have) < abs(q)):
                return None
            left[sku] = have - q
    return {sku: q for sku, q in left.items() if q} or None


def _overlapping(a: WeightEvent, b: WeightEvent) -> bool:
    return (
        a.shelf_id == b.shelf_id and a.t_start <= b.t_end + OVERLAP_S and b.t_start <= a.t_end + OVERLAP_S
    )


def split_parts(uow: UnitOfWork, msg: WeightEvent) -> list[tuple[WeightEvent, ReviewItem]]:
    """Earlier events on ``msg``'s shelf, overlapping it in time, whose unexplained item is open."""
    return [(other, item) for other, item in _open_unexplained(uow, msg) if _overlapping(other, msg)]


def returns_during(uow: UnitOfWork, msg: WeightEvent) -> list[tuple[WeightEvent, ReviewItem]]:
    """Earlier put-backs (on any shelf) begun while the take ``msg`` was under way, still unexplained."""
    return [
        (other, item)
        for other, item in _open_unexplained(uow, msg)
        if other.delta_g > 0 and msg.t_start - OVERLAP_S <= other.t_start <= msg.t_end + OVERLAP_S
    ]


def joined(msg: WeightEvent, parts: list[WeightEvent]) -> WeightEvent:
    """``msg`` and ``parts`` as one interaction, under ``msg``'s id."""
    changes: dict[str, float] = {}
    for event in (msg, *parts):
        for plate, delta in event.plate_changes.items():
            changes[plate] = changes.get(plate, 0.0) + delta
    plates = sorted(changes)
    events = (msg, *parts)
    # Each plate's step time from the part in which it moved most (when every part has them).
    steps: dict[str, tuple[float, float]] = {}
    for event in events:
        for plate, t in zip(event.plate_ids, event.step_times(), strict=False):
            size = abs(event.plate_changes[plate])
            if plate not in steps or size > steps[plate][0]:
                steps[plate] = (size, t)
    shelf = [e.shelf_delta_g for e in events if e.shelf_delta_g is not None]
    return msg.model_copy(
        update={
            "plate_ids": plates,
            "plate_deltas_g": [changes[p] for p in plates],
            "delta_g": sum(e.delta_g for e in events),
            "shelf_delta_g": sum(shelf) if len(shelf) == len(events) else None,
            "t_start": min(e.t_start for e in events),
            "t_end": max(e.t_end for e in events),
            "noise_g": math.sqrt(sum(e.noise_g**2 for e in events)),
            "confidence": min(e.confidence for e in events),
            "plate_steps_t": [steps[p][1] for p in plates] if len(steps) == len(plates) else None,
            "blind_plate_ids": sorted({b for e in events for b in e.blind_plate_ids or ()} - set(plates))
            or None,
        }
    )


def close_by_fusion(uow: UnitOfWork, items: list[ReviewItem], into: str, action: str = "joined") -> None:
    """Close review items fusion explained itself: ``"joined"`` into the event ``into``, or
    ``"explained_after"`` the take ``into`` was decided."""
    for item in items:
        item.status = ReviewStatus.RESOLVED
        item.resolution = {"action": action, "into": into, "corrections": [], "receipts": [], "note": ""}
        item.resolved_by, item.resolved_at = FUSION, time.time()
        uow.reviews.save(item)
        metrics.DECISIONS.labels(
            outcome="joined_split_event" if action == "joined" else "put_back_explained_after"
        ).inc()
