"""What a store server decided about every weight event of a run, and why a receipt line went wrong.

:func:`collect` reads, after a ``walkout run``, the weight events the store server received (as the
edge detector published them), the cart changes each of them made and the review items they opened.
From that and the ground truth:

- :func:`review_figures`: review items, unexplained (or unattributed) weight events, review items per visit;
- :func:`vanished_events`: true shelf events that left no trace, neither a cart change nor a review item
  (the number that must be 0: a weight change never vanishes silently);
- :func:`explain_misses`: for every wrong or missing receipt line, the true events behind it, the detected
  events around them (plates, per-plate deltas, times), what each decided (which shopper, which product,
  on which evidence, with which candidates and scores) and one sentence saying why the line went wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sim_data.evaluate import session_of_event
from store_server.domain.layout import StoreLayout
from store_server.domain.review import FUSION, ReviewKind
from store_server.domain.session import session_id_for

if TYPE_CHECKING:
    from store_server.bootstrap import StoreServer

NETTED_S = 10.0  # an item put back this soon after it was taken, with no decision on either, netted out
NEAR_S = 1.0  # a detected event within this long of a true event's span is "around" it
MAX_EXPLAINED = 200  # explanations kept in the metrics (the worst runs have hundreds of misses)
UNEXPLAINED_KINDS = frozenset({ReviewKind.UNEXPLAINED.value, ReviewKind.UNATTRIBUTED.value})
WEIGHT_REVIEW_KINDS = UNEXPLAINED_KINDS | {ReviewKind.LOW_CONFIDENCE.value}


@dataclass(frozen=True)
class Change:
    session_id: str
    sku: str
    quantity: int  # + taken, - put back
    confidence: float
    evidence: str
    note: str


@dataclass
class DetectedEvent:
    """One weight event as the store server received it, with what it decided."""

    msg_id: str
    shelf_id: str
    gondola_id: str
    plate_ids: list[str]
    plate_deltas_g: list[float]
    delta_g: float
    t_start: float
    t_end: float
    noise_g: float
    changes: list[Change] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)

    @property
    def decided(self) -> bool:
        return bool(self.changes or self.reviews)

    def brief(self, t0: float = 0.0) -> dict[str, Any]:
        return {
            "event_id": self.msg_id,
            "shelf_id": self.shelf_id,
            "plates": dict(zip(self.plate_ids, [round(d, 1) for d in self.plate_deltas_g], strict=True)),
            "delta_g": round(self.delta_g, 1),
            "t_start": round(self.t_start - t0, 2),
            "t_end": round(self.t_end - t0, 2),
            "cart_changes": [
                {"session": c.session_id, "sku": c.sku, "quantity": c.quantity,
                 "confidence": round(c.confidence, 3), "evidence": c.evidence, "note": c.note}
                for c in self.changes
            ],
            "review_items": [{"kind": r["kind"], "id": r["id"]} for r in self.reviews],
        }


@dataclass
class RunDecisions:
    events: list[DetectedEvent]
    reviews: list[dict[str, Any]]  # every review item of the run: id, kind, event_id, session_id, summary
    candidates: dict[str, list[dict[str, Any]]]  # event id -> the candidates staff were shown
    camera_only: list[Change] = field(default_factory=list)  # lines no weight event made (vision)

    def near(self, shelf_id: str | None, gondola_id: str | None, t0: float, t1: float) -> list[DetectedEvent]:
        return [
            e for e in self.events
            if (e.shelf_id == shelf_id or shelf_id is None and e.gondola_id == gondola_id)
            and e.t_start <= t1 + NEAR_S and e.t_end >= t0 - NEAR_S
        ]


def collect(server: StoreServer) -> RunDecisions:
    """Everything the server decided about weight events (read after the run, from its database)."""
    with server.uow_factory() as uow:
        rows = uow.inbox.of_kind_since("weight", 0.0)
        sessions = uow.sessions.list(limit=1_000_000)
        reviews = uow.reviews.list(limit=1_000_000)
    events: dict[str, DetectedEvent] = {}
    for row in sorted(rows, key=lambda r: (r.payload.get("t_start", r.ts), r.msg_id)):
        p = row.payload
        plates = [str(x) for x in p.get("plate_ids") or []]
        deltas = p.get("plate_deltas_g") or [float(p["delta_g"]) / max(1, len(plates))] * len(plates)
        events[row.msg_id] = DetectedEvent(
            row.msg_id, str(p.get("shelf_id")), str(p.get("gondola_id")), plates,
            [float(d) for d in deltas], float(p["delta_g"]), float(p["t_start"]), float(p["t_end"]),
            float(p.get("noise_g", 0.0)),
        )
    camera_only: list[Change] = []
    for s in sessions:
        for c in s.changes:
            evidence = str(getattr(c, "evidence", "") or "weight")
            change = Change(s.id, c.sku, c.quantity, c.confidence, evidence, c.note)
            if c.event_id in events:
                events[c.event_id].changes.append(change)
            elif change.evidence == "vision":
                camera_only.append(change)
    out_reviews: list[dict[str, Any]] = []
    candidates: dict[str, list[dict[str, Any]]] = {}
    for r in reviews:
        item = {"id": r.id, "kind": r.kind.value, "event_id": r.event_id, "session_id": r.session_id,
                "summary": r.summary, "resolved_by": r.resolved_by}
        out_reviews.append(item)
        if r.event_id in events:
            events[r.event_id].reviews.append(item)
            if r.evidence.get("candidates"):
                candidates[r.event_id] = list(r.evidence["candidates"])
    return RunDecisions(list(events.values()), out_reviews, candidates, camera_only)


def review_figures(decisions: RunDecisions, visits: int) -> dict[str, Any]:
    """``review_items`` (all kinds) staff had to decide, ``unexplained_events`` (weight events no
    product or shopper explains) and ``review_items_per_visit``; ``review_items_joined``: items fusion
    closed itself, a part of an interaction the edge split explained with the rest of it, or a
    put-back explained once the take it returned was decided (staff never decide those)."""
    staff = [r for r in decisions.reviews if r.get("resolved_by") != FUSION]
    total = len(staff)
    unexplained = sum(1 for r in staff if r["kind"] in UNEXPLAINED_KINDS)
    by_kind: dict[str, int] = {}
    for r in staff:
        by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + 1
    return {
        "review_items": total,
        "unexplained_events": unexplained,
        "review_items_per_visit": round(total / visits, 4) if visits else 0.0,
        "review_items_by_kind": dict(sorted(by_kind.items())),
        "review_items_joined": len(decisions.reviews) - total,
        "weight_events": len(decisions.events),
        "undecided_weight_events": sum(1 for e in decisions.events if not e.decided),
    }


def _shelf_of(layout: StoreLayout, plate_ids: list[str]) -> tuple[str | None, str | None]:
    plate = layout.plates.get(plate_ids[0]) if plate_ids else None
    return (plate.shelf_id, plate.gondola_id) if plate else (None, None)


def vanished_events(decisions: RunDecisions, truth_events: list[dict[str, Any]], layout: StoreLayout) -> int:
    """Observable true shelf events with no detected event around them that changed a cart or opened a
    review item: changes of weight nobody will ever look at.

    An item taken and put back on the same shelf within ``NETTED_S`` leaves the shelf as it was; when
    neither made a decision, the pair changed no weight and did not vanish (the detector saw one
    interaction that netted to nothing, or a touch)."""
    undecided = []
    for ev in truth_events:
        if not ev.get("observable", True):
            continue
        shelf, gondola = _shelf_of(layout, list(ev.get("plate_ids") or []))
        near = decisions.near(shelf, gondola, float(ev["t_start"]), float(ev["t_end"]))
        if not any(e.decided for e in near):
            undecided.append((shelf, ev))
    netted: set[int] = set()
    for i, (shelf, a) in enumerate(undecided):
        for j in range(i + 1, len(undecided)):
            other, b = undecided[j]
            if i in netted or j in netted or other != shelf:
                continue
            close = abs(float(b["t_start"]) - float(a["t_end"])) <= NETTED_S
            if close and _grams(layout, a) and abs(_grams(layout, a) + _grams(layout, b)) <= 0.5 * min(
                abs(_grams(layout, a)), abs(_grams(layout, b))
            ):
                netted |= {i, j}
    return len(undecided) - len(netted)


def _grams(layout: StoreLayout, ev: dict[str, Any]) -> float:
    """What a true event did to its shelf's weight (- taken)."""
    product = layout.products.get(str(ev.get("sku")))
    return -_signed(ev) * product.unit_weight_g if product else 0.0


def _truth_events_of(truth: dict[str, Any], entry_msg_id: str) -> list[dict[str, Any]]:
    sessions = truth.get("sessions", [])
    return [
        ev for ev in truth.get("events", [])
        if (s := session_of_event(ev, sessions)) is not None and s["entry_msg_id"] == entry_msg_id
    ]


def _signed(ev: dict[str, Any]) -> int:
    return int(ev.get("quantity", 1)) * (1 if ev.get("kind") == "pick" else -1)


def _why_missing(
    ev: dict[str, Any], near: list[DetectedEvent], session_id: str, sku: str, t0: float, seen: int
) -> str:
    """Why a true event did not end up as (session, sku) in the receipt (``seen``: units the cameras
    alone put on this line)."""
    span = f"{ev['t_start'] - t0:.1f}-{ev['t_end'] - t0:.1f} s"
    what = f"{ev.get('kind')} of {ev.get('quantity', 1)} x {sku} at {span}"
    if not ev.get("observable", True):
        recovered = f"the cameras alone recovered {seen}" if seen else "nothing else recovered it"
        return f"{what}: the plate could not weigh it (dead plate); {recovered}"
    if not near:
        return f"{what}: the edge detector published no weight event on that shelf around it"
    mine = [c for e in near for c in e.changes if c.session_id == session_id and c.sku == sku]
    if mine:
        got = sum(c.quantity for c in mine)
        return f"{what}: decided as {got:+d} x {sku} for this shopper (the quantity is off)"
    other_shopper = [c for e in near for c in e.changes if c.sku == sku and c.session_id != session_id]
    if other_shopper:
        return f"{what}: given to another shopper ({other_shopper[0].session_id})"
    other_sku = [c for e in near for c in e.changes if c.session_id == session_id]
    if other_sku:
        c = other_sku[0]
        return f"{what}: explained as {c.quantity:+d} x {c.sku} ({c.evidence}, confidence {c.confidence:.2f})"
    reviewed = [r for e in near for r in e.reviews]
    if reviewed:
        return f"{what}: sent to staff as a {reviewed[0]['kind']} review item ({reviewed[0]['id']})"
    elsewhere = [c for e in near for c in e.changes]
    if elsewhere:
        c = elsewhere[0]
        return f"{what}: the event went to {c.session_id} as {c.quantity:+d} x {c.sku}"
    return f"{what}: {len(near)} detected event(s) around it decided nothing (below every threshold?)"


def _why_extra(change_events: list[DetectedEvent], truth: dict[str, Any], layout: StoreLayout) -> str:
    if not change_events:
        return "charged without any weight event of this shopper (a correction or a vision-only line)"
    e = change_events[0]
    true_near = [
        ev for ev in truth.get("events", [])
        if _shelf_of(layout, list(ev.get("plate_ids") or []))[0] == e.shelf_id
        and float(ev["t_start"]) - NEAR_S <= e.t_end and float(ev["t_end"]) + NEAR_S >= e.t_start
    ]
    if not true_near:
        return (
            f"event {e.msg_id} ({e.delta_g:+.0f} g) matches no true event: "
            "a phantom (touch, noise or a fragment)"
        )
    ev = true_near[0]
    return (
        f"event {e.msg_id} ({e.delta_g:+.0f} g) was really {ev.get('kind')} of {ev.get('quantity', 1)} x "
        f"{ev.get('sku')} by {ev.get('track_id')}"
    )


def explain_misses(
    decisions: RunDecisions, metrics: dict[str, Any], truth: dict[str, Any], layout: StoreLayout
) -> list[dict[str, Any]]:
    """One entry per wrong or missing receipt line of ``metrics['mismatches']``."""
    out: list[dict[str, Any]] = []
    t0 = float(truth.get("t0") or 0.0)  # times are shown from the start of the run
    for miss in metrics.get("mismatches", []):
        entry = str(miss["session"])
        session_id = session_id_for(entry)
        mine = _truth_events_of(truth, entry)
        for problem in miss.get("problems", []):
            sku = problem["sku"]
            true_events = [ev for ev in mine if ev.get("sku") == sku]
            detected: dict[str, DetectedEvent] = {}
            reasons: list[str] = []
            for ev in true_events:
                shelf, gondola = _shelf_of(layout, list(ev.get("plate_ids") or []))
                near = decisions.near(shelf, gondola, float(ev["t_start"]), float(ev["t_end"]))
                detected.update({e.msg_id: e for e in near})
                seen = sum(
                    c.quantity for c in decisions.camera_only if c.session_id == session_id and c.sku == sku
                )
                reasons.append(_why_missing(ev, near, session_id, sku, t0, seen))
            changed = [e for e in decisions.events if any(
                c.session_id == session_id and c.sku == sku for c in e.changes)]
            detected.update({e.msg_id: e for e in changed})
            if problem["charged"] > problem["truth"]:
                truly = {e["msg_id"] for e in true_events if e.get("msg_id")}
                unmatched = [e for e in changed if e.msg_id not in truly]
                reasons.append(_why_extra(unmatched, truth, layout))
            out.append({
                "session": entry,
                "sku": sku,
                "problem": problem["problem"],
                "truth": problem["truth"],
                "charged": problem["charged"],
                "true_events": [
                    {"kind": ev.get("kind"), "sku": ev.get("sku"), "quantity": ev.get("quantity", 1),
                     "plates": ev.get("plate_ids"), "t_start": round(ev["t_start"] - t0, 2),
                     "t_end": round(ev["t_end"] - t0, 2),
                     "observable": ev.get("observable", True)}
                    for ev in true_events
                ],
                "detected_events": [
                    {**e.brief(t0), "candidates": decisions.candidates.get(e.msg_id, [])}
                    for e in sorted(detected.values(), key=lambda e: e.t_start)
                ],
                "why": "; ".join(dict.fromkeys(reasons)) or "no true event of this product for this shopper",
            })
            if len(out) >= MAX_EXPLAINED:
                return out
    return out
