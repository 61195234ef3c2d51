"""Picks only a camera saw: a product in a shopper's hand that no weight event of the visit explains,
taken from a plate that could not have weighed it (its node reports it failed, or it stayed silent
through the whole visit).

Called at the exit, before the cart is priced. It is conservative on purpose, because a line added
here charges a shopper on a camera's word alone:

* a sighting near the time of a cart change of that product (a pick or a return) is explained;
* so is one near any weight event at the hand's shelf big enough to be an item (the label may be a
  neighbouring product's: the weight has the last word);
* a product already in the cart at that time adds nothing (a return, or the item carried about);
* a plate that weighed something during the visit is alive: if it saw nothing, nothing was taken;
* a product seen twice, both times unweighed, is a pick and a return or two picks: on a plate
  reported failed, one line at half the confidence, so staff look; on a silent plate nothing, since
  a plate that weighed nothing and was never reported failing says the item went back (a third
  sighting starts over).

One box in a hand is one item: a camera does not count three cans held together as reliably as a
plate weighs them, so a quantity from vision is a lower bound.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

from store_server.domain.layout import StoreLayout, distance
from store_server.domain.session import ShopperSession
from store_server.domain.sightings import NEAR_PLATE_M, Sighting, Sightings, combine
from store_server.service.ports import UnitOfWork

EXPLAIN_WINDOW_S = 2.0  # a camera frame and a settled weight event of one pick are this close in time
EPISODE_GAP_S = 3.0  # sightings of one product in one visit's hands this close are one holding
ITEM_SHARE = 0.5  # a weight event explains a sighting when it weighs at least half an item
SILENT_FACTOR = 0.8  # a silent plate is likelier dead than a plate its node reports failed
TWICE_FACTOR = 0.5
MOVED_G = 1.0  # a plate whose reading changed less than this did not weigh anything


@dataclass(frozen=True)
class Weighed:
    """A weight event as vision checks it against: when, where, how much."""

    msg_id: str
    t_start: float
    t_end: float
    plate_ids: tuple[str, ...]
    delta_g: float
    plate_deltas_g: tuple[float, ...] | None = None  # v2 events: each plate's own change
    blind_plate_ids: tuple[str, ...] = ()  # v3: plates beside it the node could not read

    def weighing_plates(self) -> tuple[str, ...]:
        """The plates that moved: a v2 event may list a plate whose own change was nothing."""
        if self.plate_deltas_g is None:
            return self.plate_ids
        return tuple(p for p, d in zip(self.plate_ids, self.plate_deltas_g, strict=True) if abs(d) >= MOVED_G)


@dataclass(frozen=True)
class VisitEvidence:
    """What the server knows of one visit's time span: sightings, weight events, failed plates."""

    layout: StoreLayout
    sightings: Sightings
    weighed: tuple[Weighed, ...]
    failed_plates: frozenset[str] = frozenset()


@dataclass(frozen=True)
class VisionLine:
    """A cart line only a camera saw. ``event_id`` ("vision:" + the detections message id) keeps
    ``session.take(event_id, ...)`` idempotent when an exit is decided twice."""

    event_id: str
    sku: str
    quantity: int
    confidence: float
    at: float
    plate_id: str
    track_id: str
    note: str
    evidence: str = "vision"


def visit_evidence(
    uow: UnitOfWork,
    layout: StoreLayout,
    session: ShopperSession,
    at: float,
    failed_plates: Collection[str] = (),
) -> VisitEvidence:
    """The visit's evidence from the inbox (kept for a visit timeout and more, see housekeeping), so
    it is complete however long the visit and after a restart; only what happened up to ``at``
    counts: sightings until then, weight events begun by then (an interaction can settle after the
    shopper passed the exit gate: the exit waits for it, service/exit_wait.py)."""
    since = session.entered_at
    sightings = Sightings(horizon_s=float("inf"), max_kept=10**9)
    for row in uow.inbox.of_kind_since("detections", since):
        if row.ts <= at:
            sightings.add_message(row.msg_id, row.ts, row.payload, layout.products)
    weighed = []
    for row in uow.inbox.of_kind_since("weight", since):
        p = row.payload
        if p["t_start"] <= at:
            deltas = p.get("plate_deltas_g")
            weighed.append(
                Weighed(
                    row.msg_id,
                    p["t_start"],
                    p["t_end"],
                    tuple(p["plate_ids"]),
                    p["delta_g"],
                    None if deltas is None else tuple(deltas),
                    tuple(p.get("blind_plate_ids") or ()),
                )
            )
    return VisitEvidence(layout, sightings, tuple(weighed), frozenset(failed_plates))


@dataclass
class _Holding:
    """Sightings of one product in this visit's hands, close in time: one item held."""

    sku: str
    seen: list[Sighting]

    @property
    def first(self) -> Sighting:
        return self.seen[0]


def _holdings(sightings: list[Sighting]) -> list[_Holding]:
    ordered = sorted(sightings, key=lambda s: (s.ts, s.msg_id, s.sku, s.track_id or ""))
    open_: dict[str, _Holding] = {}
    out: list[_Holding] = []
    for s in ordered:
        h = open_.get(s.sku)
        if h is not None and s.ts - h.seen[-1].ts <= EPISODE_GAP_S:
            h.seen.append(s)
            continue
        open_[s.sku] = h = _Holding(s.sku, [s])
        out.append(h)
    return out


def _near(layout: StoreLayout, s: Sighting, plate_ids: Collection[str]) -> bool:
    return any(
        distance((s.x_m, s.y_m), (layout.plates[p].x_m, layout.plates[p].y_m)) <= NEAR_PLATE_M
        for p in plate_ids
        if p in layout.plates
    )


def _weighs_an_item(layout: StoreLayout, event: Weighed, sku: str) -> bool:
    """Could ``event`` be a pick or a return of one item, of ``sku`` or of what its plates hold?"""
    units = [layout.products[sku].unit_weight_g]
    units += [
        layout.products[layout.sku_on_plate[p]].unit_weight_g
        for p in event.plate_ids
        if p in layout.sku_on_plate
    ]
    return abs(event.delta_g) >= ITEM_SHARE * min(units)


def _explained(ev: VisitEvidence, session: ShopperSession, h: _Holding) -> bool:
    t0, t1 = h.first.ts - EXPLAIN_WINDOW_S, h.seen[-1].ts + EXPLAIN_WINDOW_S
    if any(c.sku == h.sku and t0 <= c.at <= t1 for c in session.changes):
        return True
    charged = {c.event_id for c in session.changes}
    own = set(ev.layout.plates_of_sku.get(h.sku, []))
    for event in ev.weighed:
        if own and own <= set(event.blind_plate_ids) and event.msg_id not in charged:
            continue  # the coupling of a pick from a plate that could not weigh it: the camera's
        for s in h.seen:
            if (
                event.t_start - EXPLAIN_WINDOW_S <= s.ts <= event.t_end + EXPLAIN_WINDOW_S
                and _near(ev.layout, s, event.plate_ids)
                and _weighs_an_item(ev.layout, event, h.sku)
            ):
                return True
    return False


def _unweighing_plate(ev: VisitEvidence, h: _Holding) -> tuple[str, str] | None:
    """The plate of ``h.sku`` the item came from that could not weigh it, and why; None if none."""
    layout = ev.layout
    near = sorted(
        (min(distance((s.x_m, s.y_m), (layout.plates[p].x_m, layout.plates[p].y_m)) for s in h.seen), p)
        for p in layout.plates_of_sku.get(h.sku, [])
        if p in layout.plates
    )
    weighing = {p for event in ev.weighed for p in event.weighing_plates()}
    for d, plate in near:
        if d > NEAR_PLATE_M:
            break
        if plate in ev.failed_plates:
            return plate, "plate failed"
        if plate not in weighing:
            return plate, "plate silent"
    return None


def unweighed_picks(ev: VisitEvidence, session: ShopperSession, at: float) -> list[VisionLine]:
    """Lines to add to ``session``'s cart at its exit (event time ``at``) that only vision saw."""
    tracks = session.track_ids()
    held = ev.sightings.in_hands(tracks, session.entered_at, at)
    lines: list[VisionLine] = []
    for h in _holdings(held):
        event_id = f"vision:{h.first.msg_id}"
        if session.has_applied(event_id) or _explained(ev, session, h):
            continue
        in_cart = sum(c.quantity for c in session.changes if c.sku == h.sku and c.at <= h.first.ts)
        if in_cart > 0:
            continue
        found = _unweighing_plate(ev, h)
        if found is None:
            continue
        plate, why = found
        earlier = next((i for i, ln in enumerate(lines) if ln.sku == h.sku), None)
        if earlier is not None:  # at an unweighing plate again: where a return would go
            line = lines[earlier]
            if line.note == "plate silent" and why == "plate silent":
                # A plate that never reported failing and weighed nothing, and the product in a hand
                # twice: taken and put straight back is what both the weight and the camera say.
                lines.pop(earlier)
                continue
            lines[earlier] = replace(
                line,
                confidence=round(line.confidence * TWICE_FACTOR, 4),
                note=f"{line.note}; seen again unweighed: a return, or another pick",
            )
            continue
        factor = 1.0 if why == "plate failed" else SILENT_FACTOR
        confidence = round(combine(s.confidence for s in h.seen) * factor, 4)
        quantity = max(s.count for s in h.seen)
        track = h.first.track_id or ""
        lines.append(VisionLine(event_id, h.sku, quantity, confidence, h.first.ts, plate, track, why))
    return lines
