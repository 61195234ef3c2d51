"""Decisions: one function per kind of message, each inside the caller's unit of work.

They read only the message, the layout, the track history and the repositories, so a replay at any
speed, or after a crash, takes the same decisions.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Any

from edge.contracts import GatePass, WeightEvent
from store_server import metrics
from store_server.domain.explain import Explanation, Line
from store_server.domain.fusion import TrackHistory, continuation, nearest_shopper
from store_server.domain.layout import StoreLayout, Zone, distance
from store_server.domain.pricing import price_cart
from store_server.domain.receipt import Receipt, receipt_id_for
from store_server.domain.session import LineChange, ShopperSession, session_id_for
from store_server.domain.sightings import Sightings
from store_server.service import event_join, exit_wait
from store_server.service import review_open as review
from store_server.service.accounts import EntryRejected, admit
from store_server.service.ports import DeadLetter, PaymentGateway, UnitOfWork
from store_server.service.sensor_health import SensorHealth
from store_server.service.vision_picks import unweighed_picks, visit_evidence
from store_server.service.weight_decision import (
    carts_of,
    count_noise,
    explain_event,
    one_taker_of_several,
    owners,
    reach_points,
    visits_at,
    weighed_items,
    when_moved,
)

logger = logging.getLogger(__name__)


ALONE_CONFIDENCE = 0.95  # an event given to the only shopper in the store, none seen within reach
LOST_AFTER_S = 30.0  # a group member unseen this long before another member's exit has left


@dataclass
class Context:
    layout: StoreLayout
    tracks: TrackHistory
    payments: PaymentGateway
    assign_window_s: float = 0.5
    reach_m: float = 1.5
    gate_margin_m: float = 0.6
    # Set by bootstrap from the settings: entry codes (bare tokens off unless switched on) and review.
    secret_key: bytes | None = None
    accept_raw_tokens: bool = False
    review_below: float = 0.6
    sightings: Sightings | None = None  # camera item detections (the processor keeps them)
    sensor_health: SensorHealth | None = None  # what the shelf nodes say of their load cells


@dataclass(frozen=True)
class Outcome:
    """What a decision did, for logs, metrics and the latency measurement."""

    kind: str
    session_id: str | None = None
    receipt_id: str | None = None


def reject(
    uow: UnitOfWork,
    msg_id: str,
    topic: str,
    payload: dict[str, Any],
    reason: str,
    field: str,
    received_at: float,
) -> Outcome:
    data = json.dumps(payload).encode()
    uow.dead_letters.add(DeadLetter(topic, data, reason, field, received_at))
    metrics.DEAD_LETTERS.labels(field=field).inc()
    logger.warning("message %s rejected: %s (%s)", msg_id, reason, field)
    return Outcome("rejected")


def _tracks_at_gate(ctx: Context, zone: Zone, ts: float, candidates: list[str]) -> list[str]:
    """Candidate tracks seen inside the gate zone around ``ts``, closest to its centre first."""
    w = ctx.assign_window_s
    closest: dict[str, float] = {}
    for track_id in candidates:
        for _, x, y in ctx.tracks.window(track_id, ts - w, ts + w):
            if zone.contains(x, y, ctx.gate_margin_m):
                d = distance((x, y), zone.centre)
                closest[track_id] = min(d, closest.get(track_id, d))
    return sorted(closest, key=lambda t: (closest[t], t))


def _bound_tracks(uow: UnitOfWork) -> dict[str, ShopperSession]:
    """Every track of every open session (members and continuations), to its session."""
    return {t: s for s in uow.sessions.open_sessions() for t in s.track_ids()}


def follow_tracks(ctx: Context, uow: UnitOfWork, at: float) -> None:
    """Carry each open session over to the new id of a track the tracker lost and found again."""
    bound = _bound_tracks(uow)
    free = [t for t in ctx.tracks.track_ids() if t not in bound]
    if not free:
        return
    for session in {id(s): s for s in bound.values()}.values():
        for track_id in session.active_track_ids():
            new = continuation(ctx.tracks, track_id, at, free)
            if new is not None:
                session.end_track(track_id, at, "continued")
                session.bind(new, at)
                free.remove(new)
                uow.sessions.save(session)
                metrics.DECISIONS.labels(outcome="track_continued").inc()
                logger.info("session %s: track %s continues as %s", session.id, track_id, new)


def open_session(ctx: Context, uow: UnitOfWork, msg: GatePass, topic: str, received_at: float) -> Outcome:
    gate = ctx.layout.gate(msg.gate_id)
    if gate is None or gate.direction != "entry":
        return reject(
            uow,
            msg.msg_id,
            topic,
            msg.model_dump(mode="json"),
            f"gate {msg.gate_id!r} is not an entry gate of this store",
            "gate_id",
            received_at,
        )
    session_id = session_id_for(msg.msg_id)
    if uow.sessions.get(session_id) is not None:
        return Outcome("duplicate", session_id)
    # A signed entry code is looked up, checked against this pass's event time and used once; its group
    # size is the only one that counts (the message's is the gate's claim, read only for bare tokens
    # the operator switched on). A refused entry is dead-lettered and opens no session (docs/WEB.md).
    try:
        admitted = admit(
            uow,
            msg.account_token or "",
            msg.ts,
            session_id,
            ctx.secret_key,
            ctx.accept_raw_tokens,
            msg.group_size,
        )
    except EntryRejected as exc:
        metrics.DECISIONS.labels(outcome="entry_refused").inc()
        reject(uow, msg.msg_id, topic, msg.model_dump(mode="json"), str(exc), "account_token", received_at)
        return Outcome("entry_refused")
    group_size = admitted.group_size
    bound = _bound_tracks(uow)
    free = [t for t in ctx.tracks.track_ids() if t not in bound]
    members = _tracks_at_gate(ctx, gate.zone, msg.ts, free)[:group_size]
    session = ShopperSession(
        session_id, ctx.layout.store_id, admitted.account_token, msg.ts, group_size=group_size
    )
    for track_id in members:
        session.bind(track_id, msg.ts)
    uow.sessions.add(session)
    if len(members) < group_size:
        logger.warning(
            "session %s: %d of %d shoppers seen at gate %s", session_id, len(members), group_size, gate.id
        )
        metrics.DECISIONS.labels(outcome="entry_without_track").inc()
    metrics.DECISIONS.labels(outcome="session_opened").inc()
    return Outcome("opened", session_id)


def change_cart(ctx: Context, uow: UnitOfWork, msg: WeightEvent, topic: str, received_at: float) -> Outcome:
    """Explain a weight event as a whole and apply every line of it to its shopper's cart at once.

    One event opens at most one review item, whatever number of plates it moved: unattributed (nobody
    within reach), unexplained (no product fits) or low confidence (applied, but doubtful). A change
    below the noise floor of those plates opens none."""
    unknown = [p for p in msg.plate_ids if p not in ctx.layout.plates]
    if unknown:
        return reject(
            uow,
            msg.msg_id,
            topic,
            msg.model_dump(mode="json"),
            f"plate {unknown[0]!r} is not in the store layout",
            "plate_ids",
            received_at,
        )
    sessions = _bound_tracks(uow)
    parts = event_join.split_parts(uow, msg)
    if parts:
        # An earlier event on this shelf that fitted nothing may be a piece of this interaction the
        # edge cut off (shoppers side by side): explained together, neither needs staff.
        whole = event_join.joined(msg, [event for event, _ in parts])
        attributed = _attribute(ctx, uow, whole, sessions)
        if attributed is not None:
            reading = _read(ctx, uow, whole, sessions, *attributed)
            fragments = [event for event, _ in parts]
            if _decisive(reading) and not _surer_alone(ctx, uow, msg, sessions, reading.exp, fragments):
                event_join.close_by_fusion(uow, [item for _, item in parts], msg.msg_id)
                decided = _decide_lines(ctx, uow, whole, sessions, reading)
                return _after_take(ctx, uow, whole, sessions, decided)
    attributed = _attribute(ctx, uow, msg, sessions)
    if attributed is None:
        in_store = uow.sessions.open_sessions()
        # Whoever it was, a put-back came from one of the carts in the store.
        weighed = weighed_items(uow, in_store) if msg.delta_g > 0 and in_store else None
        unattributed = explain_event(ctx, msg, carts_of(in_store), weighed=weighed)
        if unattributed.verdict == "noise":
            count_noise(msg, unattributed)
            return Outcome("noise")
        logger.warning("weight event %s (%+.0f g) has no shopper within reach", msg.msg_id, msg.delta_g)
        metrics.DECISIONS.labels(outcome="no_shopper").inc()
        if in_store:  # staff decide whose it was
            review.open_unattributed(ctx, uow, msg, in_store, unattributed)
        return Outcome("unattributed")
    if attributed[0].has_applied(msg.msg_id):
        return Outcome("duplicate", attributed[0].id)
    reading = _read(ctx, uow, msg, sessions, *attributed)
    exp, session = reading.exp, reading.session
    if exp.verdict == "noise":
        count_noise(msg, exp)
        return Outcome("noise", session.id)
    if reading.blind_pick is not None:
        # The coupling of a pick from a plate the node could not read (5-25 % of it: it cannot
        # count items): the camera puts the product on the bill at the exit (service/vision_picks).
        logger.info(
            "weight event %s (%+.0f g) is %s taken from a blind plate",
            msg.msg_id,
            msg.delta_g,
            reading.blind_pick,
        )
        metrics.DECISIONS.labels(outcome="blind_plate_pick").inc()
        return Outcome("blind_pick", session.id)
    if not exp.explained:
        rest = _rest_of_decided(ctx, uow, msg, sessions)
        if rest is not None:
            return rest
        logger.warning("weight event %s (%+.0f g) matches no product", msg.msg_id, msg.delta_g)
        metrics.DECISIONS.labels(outcome="no_product").inc()
        review.open_unexplained(ctx, uow, msg, session, exp)  # staff decide what it was
        return Outcome("unexplained", session.id)
    rest = _rest_of_decided(ctx, uow, msg, sessions, reading)
    if rest is not None:
        return rest
    return _after_take(ctx, uow, msg, sessions, _decide_lines(ctx, uow, msg, sessions, reading))


def _rest_of_decided(
    ctx: Context,
    uow: UnitOfWork,
    msg: WeightEvent,
    sessions: dict[str, ShopperSession],
    alone: _Reading | None = None,
) -> Outcome | None:
    """The edge cut one interaction of hands side by side and published first a part that fitted,
    or that was decided doubtfully (a coupled share of this part's weight in it): ``msg`` fits
    nothing alone (``alone`` None), or fits worse than joined with such doubtful parts (each part
    costing what its own reading does, see :func:`_surer_alone`), and joined
    with the events on its shelf that overlapped it and were decided already, the whole fits. What
    the whole holds beyond those parts is ``msg``'s, and a doubtful part's lines the whole does
    not hold are taken back out."""
    parts = event_join.decided_parts(uow, msg, {s.id: s for s in sessions.values()}.values())
    if alone is not None:
        parts = [p for p in parts if p.doubt is not None]
    if not parts:
        return None
    whole = event_join.joined(msg, [p.event for p in parts])
    attributed = _attribute(ctx, uow, whole, sessions)
    if attributed is None:
        return None
    reading = _read(ctx, uow, whole, sessions, *attributed)
    if not _decisive(reading):
        return None
    if alone is not None and alone.exp.cost + sum(
        _fragment_cost(ctx, uow, p.event, sessions) for p in parts
    ) <= reading.exp.cost:
        return None
    rest = event_join.remainder({ln.sku: ln.quantity for ln in reading.exp.lines}, parts)
    if rest is None:
        return None
    joined_lines = {ln.sku: ln for ln in reading.exp.lines}
    lines = tuple(
        replace(joined_lines[sku], quantity=q) if sku in joined_lines else Line(sku, q)
        for sku, q in sorted(rest.items())
    )
    event_join.close_by_fusion(uow, [p.doubt for p in parts if p.doubt is not None], msg.msg_id)
    metrics.DECISIONS.labels(outcome="rest_of_decided_event").inc()
    return _decide_lines(ctx, uow, whole, sessions, replace(reading, exp=replace(reading.exp, lines=lines)))


def _decisive(reading: _Reading) -> bool:
    return reading.exp.explained and reading.blind_pick is None


def _surer_alone(
    ctx: Context,
    uow: UnitOfWork,
    msg: WeightEvent,
    sessions: dict[str, ShopperSession],
    joined: Explanation,
    fragments: list[WeightEvent],
) -> bool:
    """``msg`` on its own is explained at least as surely as joined with the earlier ``fragments``
    (which fitted nothing: they were another interaction that overlapped it, not pieces of it): by
    a fit no worse than the joined one's, which explains the fragments too (alone, each costs what
    its best reading does, at most ``UNEXPLAINED_COST``)."""
    attributed = _attribute(ctx, uow, msg, sessions)
    if attributed is None:
        return False
    alone = _read(ctx, uow, msg, sessions, *attributed)
    left = sum(_fragment_cost(ctx, uow, f, sessions) for f in fragments)
    return _decisive(alone) and alone.exp.cost + left <= joined.cost


UNEXPLAINED_COST = 25.0  # a weight event nothing fits costs at least what a 5-sigma weight misfit does


def _fragment_cost(
    ctx: Context, uow: UnitOfWork, msg: WeightEvent, sessions: dict[str, ShopperSession]
) -> float:
    attributed = _attribute(ctx, uow, msg, sessions)
    if attributed is None:
        return UNEXPLAINED_COST
    exp = _read(ctx, uow, msg, sessions, *attributed).exp
    return min(UNEXPLAINED_COST, *(c.cost for c in exp.candidates))


def _after_take(
    ctx: Context, uow: UnitOfWork, msg: WeightEvent, sessions: dict[str, ShopperSession], outcome: Outcome
) -> Outcome:
    """A take just decided may be what an earlier, still unexplained put-back returned (published
    first because this shelf settled later): read those again with the carts as they are now."""
    if msg.delta_g >= 0 or outcome.kind != "cart_changed":
        return outcome
    for other, item in event_join.returns_during(uow, msg):
        attributed = _attribute(ctx, uow, other, sessions)
        if attributed is None:
            continue
        reading = _read(ctx, uow, other, sessions, *attributed)
        if _decisive(reading):
            event_join.close_by_fusion(uow, [item], msg.msg_id, "explained_after")
            _decide_lines(ctx, uow, other, sessions, reading)
    return outcome


@dataclass(frozen=True)
class _Reading:
    """A weight event explained at its shelf: whose it most likely is and what moved."""

    session: ShopperSession
    shopper_confidence: float
    at_shelf: list[ShopperSession]
    exp: Explanation
    blind_pick: str | None = None  # a product of a blind plate seen in a hand there (the camera's)


def _attribute(
    ctx: Context, uow: UnitOfWork, msg: WeightEvent, sessions: dict[str, ShopperSession]
) -> tuple[ShopperSession, float] | None:
    """The shopper nearest to where the hand was, or the only one in the store; None: nobody."""
    t0, t1 = when_moved(ctx, msg)
    for point in reach_points(ctx.layout, msg):
        match = nearest_shopper(ctx.tracks, sorted(sessions), point, t0, t1, ctx.reach_m)
        if match is not None:
            return sessions[match.track_id], match.confidence
    in_store = uow.sessions.open_sessions()
    if len(in_store) == 1:
        # Nobody seen within reach, but only one shopper is in the store: it can only be theirs.
        metrics.DECISIONS.labels(outcome="only_shopper").inc()
        return in_store[0], ALONE_CONFIDENCE
    return None


def _read(
    ctx: Context,
    uow: UnitOfWork,
    msg: WeightEvent,
    sessions: dict[str, ShopperSession],
    session: ShopperSession,
    shopper_confidence: float,
) -> _Reading:
    w = ctx.assign_window_s
    at_shelf = visits_at(ctx, msg, sessions)
    # Put-backs come from the carts at the shelf: this shopper's, or a neighbour's beside them.
    cart = carts_of([session, *(s for s in at_shelf if s.id != session.id)])
    # Camera evidence: products seen around the event at these plates, in nobody's hands or in the
    # hands of the shoppers at the shelf (side by side, they make one event between them).
    hands = sorted({t for s in (session, *at_shelf) for t in s.track_ids()})
    vision = (
        ctx.sightings.scores(
            ctx.layout, [*msg.plate_ids, *(msg.blind_plate_ids or ())], msg.t_start - w, msg.t_end + w, hands
        )
        if ctx.sightings is not None
        else None
    )
    carts = [session, *(s for s in at_shelf if s.id != session.id)]
    weighed = weighed_items(uow, carts) if msg.delta_g > 0 else None
    exp = explain_event(ctx, msg, cart, vision or None, len(at_shelf), weighed)
    if one_taker_of_several(ctx, msg, exp, sessions, session, at_shelf):
        exp = explain_event(ctx, msg, cart, vision or None, 1, weighed)
    return _Reading(session, shopper_confidence, at_shelf, exp, blind_pick(ctx, msg, exp, vision or {}))


BLIND_SEEN = 0.5  # a product of a blind plate seen at least this surely in a hand there took it


def blind_pick(ctx: Context, msg: WeightEvent, exp: Explanation, vision: dict[str, float]) -> str | None:
    """A product standing only on the event's blind plates that the camera saw in a hand there and
    the explanation left out: the event is that pick's coupling onto the readable plates."""
    blind = set(msg.blind_plate_ids or ())
    if not blind:
        return None
    chosen = {ln.sku for ln in exp.lines}
    for sku, score in sorted(vision.items(), key=lambda kv: (-kv[1], kv[0])):
        plates = set(ctx.layout.plates_of_sku.get(sku, []))
        if score >= BLIND_SEEN and plates and plates <= blind and sku not in chosen:
            return sku
    return None


def _decide_lines(
    ctx: Context, uow: UnitOfWork, msg: WeightEvent, sessions: dict[str, ShopperSession], reading: _Reading
) -> Outcome:
    """Apply every line of an explained event to the cart of whoever took it."""
    exp, session = reading.exp, reading.session
    doubtful: tuple[ShopperSession, float, float] | None = None
    decided = owners(ctx, msg, exp, sessions, session, reading.shopper_confidence, reading.at_shelf)
    for owner, owner_confidence, owned in decided:
        confidence = round(exp.confidence * owner_confidence * msg.confidence, 4)
        lines = [
            LineChange(ln.sku, ln.quantity, "misplaced" if ln.misplaced else "", ln.evidence) for ln in owned
        ]
        if owner.apply(msg.msg_id, msg.t_end, confidence, lines):
            for ln in owned:
                kind = "pick" if ln.quantity > 0 else "misplaced_return" if ln.misplaced else "putback"
                metrics.DECISIONS.labels(outcome=kind).inc()
        uow.sessions.save(owner)
        if owner.has_applied(msg.msg_id) and (doubtful is None or confidence < doubtful[2]):
            doubtful = (owner, owner_confidence, confidence)
    if doubtful is not None and doubtful[2] < ctx.review_below:
        # The best guess stays in the cart and staff get the evidence to confirm or fix it (one item
        # for the event, on its least certain shopper).
        review.open_low_confidence(ctx, uow, msg, doubtful[0], exp, doubtful[1], doubtful[2])
    return Outcome("cart_changed", session.id)


def order_payload(receipt: Receipt) -> dict[str, Any]:
    bill = receipt.bill
    return {
        "order_id": receipt.session_id,
        "store_id": receipt.store_id,
        "session_id": receipt.session_id,
        "account_token": receipt.account_token,
        "currency": bill.currency,
        "lines": [
            {
                "sku": ln.sku,
                "name": ln.name,
                "quantity": ln.quantity,
                "unit_price_cents": ln.unit_price_cents,
                "amount_cents": ln.amount_cents,
                "tax_class": ln.tax_class,
            }
            for ln in bill.lines
        ],
        "subtotal_cents": bill.subtotal_cents,
        "tax_cents": bill.tax_cents,
        "total_cents": bill.total_cents,
        "payment_status": receipt.payment_status,
        "charge_id": receipt.charge_id,
        "placed_at": receipt.exited_at,
    }


def charge_visit(
    layout: StoreLayout, payments: PaymentGateway, uow: UnitOfWork, session: ShopperSession, at: float
) -> Receipt:
    """Price the session's cart, charge it, store the receipt, queue the order and the receipt mail,
    and close the visit as paid or declined at ``at`` (event time), all in ``uow``.

    The exit does this, and so does staff charging a timed-out visit from the review queue: one
    charge per visit whichever comes first. A decline is a result (a receipt that says so), not an
    error; an unknown product raises ``UnknownProduct``."""
    bill = price_cart(session.cart(), layout.products, layout.tax_rates, layout.currency)
    # The session id is the idempotency key: a crash after this call, a second exit or a second
    # staff resolution all get the first result back, so the shopper is charged once.
    charge = payments.charge(session.account_token, bill.total_cents, bill.currency, session.id)
    receipt = Receipt(
        id=receipt_id_for(session.id),
        session_id=session.id,
        store_id=layout.store_id,
        account_token=session.account_token,
        exited_at=at,
        bill=bill,
        payment_status=charge.status,
        charge_id=charge.charge_id,
        decline_reason=charge.reason,
    )
    if uow.receipts.for_session(session.id) is None:
        uow.receipts.add(receipt)
    uow.outbox.add("order", session.id, order_payload(receipt))
    uow.outbox.add("receipt_mail", receipt.id, {"receipt_id": receipt.id})
    session.leave(at, charge.status == "approved")
    uow.sessions.save(session)
    metrics.RECEIPTS.labels(status=charge.status).inc()
    return receipt


def _add_unweighed_picks(ctx: Context, uow: UnitOfWork, session: ShopperSession, at: float) -> None:
    """Products the cameras saw in the shopper's hands that no plate could weigh (a dead or silent
    plate) go on the bill at the exit, with evidence "vision"; a doubtful one also goes to staff."""
    failed = ctx.sensor_health.failed_plates() if ctx.sensor_health is not None else frozenset()
    for line in unweighed_picks(visit_evidence(uow, ctx.layout, session, at, failed), session, at):
        change = LineChange(line.sku, line.quantity, line.note, line.evidence)
        if session.apply(line.event_id, line.at, line.confidence, [change]):
            metrics.DECISIONS.labels(outcome="vision_pick").inc()
            if line.confidence < ctx.review_below:
                review.open_vision_pick(ctx, uow, session, line)


def close_session(
    ctx: Context, uow: UnitOfWork, msg: GatePass, topic: str, received_at: float, due: float | None = None
) -> Outcome:
    """Close the visit of the shopper at the exit and charge it; ``postponed`` (decide again later,
    at ``due`` plus a little) while a shelf they stood at is still deciding what they took."""
    gate = ctx.layout.gate(msg.gate_id)
    if gate is None or gate.direction != "exit":
        return reject(
            uow,
            msg.msg_id,
            topic,
            msg.model_dump(mode="json"),
            f"gate {msg.gate_id!r} is not an exit gate of this store",
            "gate_id",
            received_at,
        )
    active = {t: s for s in uow.sessions.open_sessions() for t in s.active_track_ids()}
    at_gate = _tracks_at_gate(ctx, gate.zone, msg.ts, sorted(active))
    if not at_gate:
        logger.warning("exit %s at %s: no shopper with an open session was at the gate", msg.msg_id, gate.id)
        metrics.DECISIONS.labels(outcome="exit_without_session").inc()
        return Outcome("exit_unmatched")
    session = active[at_gate[0]]
    if due is not None and exit_wait.still_deciding(ctx, uow, session, msg.ts, due):
        return Outcome("postponed", session.id)
    session.end_track(at_gate[0], msg.ts, "exit")
    for track_id in session.active_track_ids():  # a group member the cameras lost long ago has gone
        last = ctx.tracks.last_seen(track_id, msg.ts)
        if last is None or last[0] < msg.ts - LOST_AFTER_S:
            session.end_track(track_id, msg.ts, "lost")
    if session.active_track_ids():
        uow.sessions.save(session)
        metrics.DECISIONS.labels(outcome="member_left").inc()
        return Outcome("member_left", session.id)
    _add_unweighed_picks(ctx, uow, session, msg.ts)
    if not session.cart():
        session.leave(msg.ts, None)
        uow.sessions.save(session)
        metrics.DECISIONS.labels(outcome="left_empty").inc()
        return Outcome("left_empty", session.id)
    receipt = charge_visit(ctx.layout, ctx.payments, uow, session, msg.ts)
    return Outcome("receipt", session.id, receipt.id)
