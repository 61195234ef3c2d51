"""Parts of the cart decision on a weight event (:func:`store_server.service.handlers.change_cart`):
the event explained as a whole, noise, and which shopper took each line when several stood at it."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import TYPE_CHECKING

from edge.contracts import WeightEvent
from store_server import metrics
from store_server.domain.explain import Explanation, Line, explain
from store_server.domain.fusion import line_shoppers, nearest_shopper
from store_server.domain.layout import StoreLayout, distance
from store_server.domain.session import ShopperSession
from store_server.domain.shelf_shape import COUPLING_MEAN
from store_server.domain.sightings import NEAR_PLATE_M, combine

if TYPE_CHECKING:
    from store_server.service.handlers import Context
    from store_server.service.ports import UnitOfWork

logger = logging.getLogger(__name__)

ONLY_HOLDER_CONFIDENCE = 0.9  # a put-back beside others, of a product only one cart there held
STEP_REACH_S = 1.0  # the taker's hand is at the shelf this long around the moment the weight moved
UNIT_SHARE = 0.5  # a plate lost at least half an item itself to have given one
MAIN_SHARE = 0.5  # plates that moved at least this share of the most-moved one are where the hand was


def when_moved(ctx: Context, msg: WeightEvent, plates: list[str] | None = None) -> tuple[float, float]:
    """When to look for whose hand moved ``plates`` (default: the event's main plates): around the
    node's step times of those plates, else the whole event; widened by the assignment window.

    An interaction that chained several shoppers' hands on one shelf starts with the first of them;
    the one standing there when the weight moved is the taker."""
    w = ctx.assign_window_s
    if plates is None:
        changes = msg.plate_changes
        most = max(abs(d) for d in changes.values())
        plates = [p for p, d in changes.items() if abs(d) >= MAIN_SHARE * most]
    steps = msg.step_times(plates)
    if not steps:
        return msg.t_start - w, msg.t_end + w
    return max(msg.t_start, min(steps) - STEP_REACH_S) - w, min(msg.t_end, max(steps) + STEP_REACH_S) + w


def explain_event(
    ctx: Context,
    msg: WeightEvent,
    cart: dict[str, int],
    vision: dict[str, float] | None = None,
    shoppers: int = 1,
    weighed: dict[str, tuple[float, ...]] | None = None,
) -> Explanation:
    """The joint explanation of ``msg``; put-backs are explained from ``cart`` (and what its single
    items ``weighed`` when taken)."""
    blind = msg.blind_plate_ids or ()
    return explain(
        ctx.layout, msg.plate_changes, msg.delta_g, msg.noise_g, cart, vision, shoppers, blind, weighed
    )


def weighed_items(uow: UnitOfWork, sessions: list[ShopperSession]) -> dict[str, tuple[float, ...]]:
    """What the single items in these carts weighed when taken (sku -> grams, one per item): each
    from an event that took one item of one product. A put-back of that very item weighs the same
    to within the plates' noise, far closer than products vary about the catalogue."""
    lines: dict[str, list[tuple[str, int]]] = {}
    for s in sessions:
        for c in s.changes:
            lines.setdefault(c.event_id, []).append((c.sku, c.quantity))
    single = {e: ls[0][0] for e, ls in lines.items() if len(ls) == 1 and ls[0][1] == 1}
    if not single or not sessions:
        return {}
    out: dict[str, list[float]] = {}
    for row in uow.inbox.of_kind_since("weight", min(s.entered_at for s in sessions)):
        sku = single.get(row.msg_id)
        if sku is not None and float(row.payload.get("delta_g", 0.0)) < 0:
            out.setdefault(sku, []).append(-float(row.payload["delta_g"]))
    return {sku: tuple(w) for sku, w in out.items()}


def visits_at(ctx: Context, msg: WeightEvent, sessions: dict[str, ShopperSession]) -> list[ShopperSession]:
    """The visits with a track within reach of the event's plates while it happened."""
    w = ctx.assign_window_s
    spots = [ctx.layout.plate_centroid([p]) for p in msg.plate_ids if p in ctx.layout.plates]
    near: dict[str, ShopperSession] = {}
    for track_id in sorted(sessions):
        for spot in spots:
            d = ctx.tracks.closest_approach(track_id, spot, msg.t_start - w, msg.t_end + w)
            if d is not None and d <= ctx.reach_m:
                near.setdefault(sessions[track_id].id, sessions[track_id])
    return list(near.values())


def count_noise(msg: WeightEvent, exp: Explanation) -> None:
    # Far below anything stocked around those plates: counted and logged, never worth a look by staff.
    logger.info(
        "weight event %s (%+.1f g) is below the noise floor (%.0f g) of %s",
        msg.msg_id,
        msg.delta_g,
        exp.noise_floor_g,
        msg.shelf_id,
    )
    metrics.DECISIONS.labels(outcome="noise").inc()


def carts_of(sessions: list[ShopperSession]) -> dict[str, int]:
    held: dict[str, int] = {}
    for s in sessions:
        for line in s.cart():
            held[line.sku] = held.get(line.sku, 0) + line.quantity
    return held


def _holder(sku: str, session: ShopperSession, others: list[ShopperSession]) -> tuple[ShopperSession, bool]:
    """Whose cart a put-back of ``sku`` came from: ``session``'s if it holds one, else the first of
    the ``others`` at the shelf that does; and whether that cart is the only one there holding it."""
    holding = [s for s in (session, *others) if any(ln.sku == sku and ln.quantity > 0 for ln in s.cart())]
    return (holding[0] if holding else session), len(holding) == 1


def reach_points(layout: StoreLayout, msg: WeightEvent) -> list[tuple[float, float]]:
    """Where the hand was, best guess first: the plate fronts weighted by how much each plate changed
    (coupling moves the neighbours less than the plate the item left), then the plate that changed
    most (a shopper at the end of a shelf is within reach of its end plate, not of the middle)."""
    changes = {p: abs(d) for p, d in msg.plate_changes.items() if p in layout.plates}
    total = sum(changes.values())
    if total <= 0:
        return [layout.plate_centroid(msg.plate_ids)]
    x = sum(layout.plates[p].x_m * w for p, w in changes.items()) / total
    y = sum(layout.plates[p].y_m * w for p, w in changes.items()) / total
    main = layout.plates[max(changes, key=lambda p: (changes[p], p))]
    return [(x, y), (main.x_m, main.y_m)]


def _seen_in_hands(
    ctx: Context, msg: WeightEvent, ln: Line, sessions: dict[str, ShopperSession], count: bool = True
) -> list[tuple[ShopperSession, float, Line]] | None:
    """Who the ceiling camera saw holding the product at these plates during the event: with
    shoppers side by side it names the taker better than where they stood. Several hands share the
    items by the boxes seen in each (at least one each)."""
    if ctx.sightings is None:
        return None
    w = ctx.assign_window_s
    spots = [ctx.layout.plate_centroid([p]) for p in msg.plate_ids if p in ctx.layout.plates]
    held: dict[str, tuple[ShopperSession, list[float], int]] = {}
    t0, t1 = when_moved(ctx, msg)

    def stood_there(track_id: str) -> bool:  # not a hand that only came by as the weight settled
        typical = (ctx.tracks.typical_distance(track_id, spot, t0, t1) for spot in spots)
        return min((d for d in typical if d is not None), default=math.inf) <= ctx.reach_m

    for s in ctx.sightings.window(msg.t_start - w, msg.t_end + w):
        if s.sku != ln.sku or s.track_id not in sessions:
            continue
        if min(distance((s.x_m, s.y_m), spot) for spot in spots) > NEAR_PLATE_M:
            continue
        if not stood_there(s.track_id):
            continue
        owner = sessions[s.track_id]
        _, seen, boxes = held.get(owner.id, (owner, [], 0))
        held[owner.id] = (owner, [*seen, s.confidence], max(boxes, s.count))
    if not held or len(held) > ln.quantity:
        return None
    ranked = sorted(held.values(), key=lambda h: (-h[2], -combine(h[1]), h[0].id))
    counts = [1] * len(ranked)
    for _ in range(ln.quantity - len(ranked)):  # the rest to whoever held more than they are given
        k = max(range(len(ranked)), key=lambda i: (ranked[i][2] - counts[i], -i))
        counts[k] += 1
    if count:
        metrics.DECISIONS.labels(outcome="taker_seen").inc()
    return [
        (s, combine(seen), replace(ln, quantity=n)) for (s, seen, _), n in zip(ranked, counts, strict=True)
    ]


def _own_losses(layout: StoreLayout, changes: dict[str, float]) -> dict[str, float]:
    """What each plate lost itself: its loss less the usual coupling of its neighbours' losses."""
    def loss(plate: str | None) -> float:
        return max(0.0, -changes.get(plate, 0.0)) if plate else 0.0

    out = {}
    for plate in changes:
        beside = layout.neighbours(plate)
        own = loss(plate) - COUPLING_MEAN * sum(loss(b) for b in beside)
        if own > 0:
            out[plate] = own
    return out


def _split_by_plate(
    ctx: Context, msg: WeightEvent, ln: Line, sessions: dict[str, ShopperSession]
) -> list[tuple[ShopperSession, float, Line]] | None:
    """Items of one product standing on several plates, taken by two shoppers each at their own
    plate in one event: the items shared out by how much each plate lost beyond what its
    neighbours' losses couple onto it (at least one each); a plate whose own loss is under half an
    item took nothing (a pick of three from one plate moves its neighbour by hundreds of grams)."""
    unit = ctx.layout.products[ln.sku].unit_weight_g
    lost = {
        p: g for p, g in _own_losses(ctx.layout, msg.plate_changes).items()
        if p in ctx.layout.plates_of_sku.get(ln.sku, []) and g >= UNIT_SHARE * unit
    }
    if ln.quantity < 2 or len(lost) < 2:
        return None
    takers: dict[str, tuple[ShopperSession, float, float]] = {}  # session -> (it, confidence, grams)
    for plate, grams in sorted(lost.items()):
        spot = ctx.layout.plate_centroid([plate])
        m = nearest_shopper(ctx.tracks, sorted(sessions), spot, *when_moved(ctx, msg, [plate]), ctx.reach_m)
        if m is None:
            return None
        s = sessions[m.track_id]
        _, was, got = takers.get(s.id, (s, 1.0, 0.0))
        takers[s.id] = (s, min(was, m.confidence), got + grams)
    if len(takers) < 2:
        return None
    total = sum(g for _, _, g in takers.values())
    ranked = sorted(takers.values(), key=lambda t: -t[2])[: ln.quantity]
    counts = [1] * len(ranked)
    for _ in range(ln.quantity - len(ranked)):  # the rest where the most weight is not yet counted
        k = max(range(len(ranked)), key=lambda i: ranked[i][2] / total * ln.quantity - counts[i])
        counts[k] += 1
    return [(s, conf, replace(ln, quantity=n)) for (s, conf, _), n in zip(ranked, counts, strict=True)]


def owners(
    ctx: Context,
    msg: WeightEvent,
    exp: Explanation,
    sessions: dict[str, ShopperSession],
    session: ShopperSession,
    shopper_confidence: float,
    at_shelf: list[ShopperSession] | None = None,
    count: bool = True,
) -> list[tuple[ShopperSession, float, list[Line]]]:
    """Who took each line: a product taken goes to the shopper standing at it (shoppers side by side
    reach in at once and make one event); a put-back to ``session`` if its cart holds the product,
    else to the other shopper at the shelf (``at_shelf``) whose cart does; lines nobody stood at go to
    ``session``. ``count``: a decision, counted in the metrics (not a what-if)."""
    others = [s for s in at_shelf or [] if s.id != session.id]
    groups: dict[str, tuple[ShopperSession, float, list[Line]]] = {}

    def give(owner: ShopperSession, confidence: float, ln: Line) -> None:
        _, was, owned = groups.get(owner.id, (owner, 1.0, []))
        groups[owner.id] = (owner, min(was, confidence), [*owned, ln])

    takes = [ln for ln in exp.lines if ln.quantity > 0]
    known = session.id in {s.id for s in sessions.values()}
    matches = (
        line_shoppers(
            ctx.tracks,
            ctx.layout,
            sorted(sessions),
            [ln.sku for ln in takes],
            list(msg.plate_ids),
            lambda plates: when_moved(ctx, msg, plates),
            ctx.reach_m,
        )
        if takes and known
        else {}
    )
    for ln in exp.lines:
        if ln.quantity < 0:
            holder, only = _holder(ln.sku, session, others)
            # Of the shoppers at the shelf, only this one had the product to put back: theirs.
            sure = only and bool(others)
            give(holder, max(shopper_confidence, ONLY_HOLDER_CONFIDENCE) if sure else shopper_confidence, ln)
            continue
        split = None
        if known:  # who the camera saw holding it, else the plates each shopper stood at
            split = _seen_in_hands(ctx, msg, ln, sessions, count) or _split_by_plate(ctx, msg, ln, sessions)
        m = matches.get(ln.sku)
        if split:
            for owner, confidence, part in split:
                agrees = len(split) == 1 and m is not None and sessions[m.track_id].id == owner.id
                give(owner, max(confidence, m.confidence) if agrees and m else confidence, part)
            continue
        owner, confidence = (sessions[m.track_id], m.confidence) if m else (session, shopper_confidence)
        give(owner, confidence, ln)
    if count and len(groups) > 1:
        metrics.DECISIONS.labels(outcome="split_between_shoppers").inc()
    return list(groups.values())


def one_taker_of_several(
    ctx: Context,
    msg: WeightEvent,
    exp: Explanation,
    sessions: dict[str, ShopperSession],
    session: ShopperSession,
    at_shelf: list[ShopperSession],
) -> bool:
    """``exp`` takes several products, which it may as several shoppers stood at the shelf (each
    takes what is in front of them), yet one of them would get every product taken: the discount
    for several hands does not hold, and the event is explained as one shopper's."""
    taken = {ln.sku for ln in exp.lines if ln.quantity > 0}
    if len(at_shelf) < 2 or len(taken) < 2:
        return False
    decided = owners(ctx, msg, exp, sessions, session, 1.0, at_shelf, count=False)
    return sum(1 for _, _, lines in decided if any(ln.quantity > 0 for ln in lines)) == 1
