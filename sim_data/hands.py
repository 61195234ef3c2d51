"""What a shopper's hands do in the ``hands`` scenario, and how to count it in a ground truth.

- **Two hands on two gondolas at once**: a plate of one gondola and a plate of another, both within
  arm's reach (ARM_M to the nearest point of each plate's front edge) of one walkable spot, which is
  also within the store server's reach of each plate's front centre (or the event could not be
  attributed). In a store with a narrow aisle that spot is mid-aisle between two facing gondolas;
  the demo store's aisles are 4.2 m wide, so there it is the 1.6 m gap between the ends of the island
  gondolas g3 and g4, beside their end plates. The second hand reaches in up to MAX_LAG_S after the
  first: the two weight events overlap in time.
- **Put back on the right shelf**: on the plate it came from, or on another plate of the same product.
- **Misplaced on a wrong shelf**: at the spot it was taken from, one shelf up or down.
- **An item carried from another shelf**: dropped at the next gondola the shopper visits.

Every draw uses the caller's generator; nothing here changes another scenario's plans.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sim_data.scenarios import ShopperPlan, Stop, _stop
from store_server.domain.layout import StoreLayout, distance

ARM_M = 0.9  # from where one stands to the nearest point of a plate's front edge
SERVER_REACH_M = 1.5  # store_server.settings.reach_m: furthest a shopper may stand from a plate's front
REACH_MARGIN_M = 0.05  # so track noise rarely puts the shopper out of the server's reach
CLEARANCE_M = 0.3  # body clearance to gondolas (sim_data.paths.WalkGrid)
MAX_LAG_S = 0.6  # the second hand reaches in at most this long after the first
SAME_MOMENT_S = 1.0  # two events of one shopper starting this close together: one motion


@dataclass(frozen=True)
class TwoHands:
    """Two plates of two gondolas, reachable together from ``stand``."""

    left: str
    right: str
    stand: tuple[float, float]


def _front_edge(layout: StoreLayout, plate_id: str) -> tuple[tuple[float, float], tuple[float, float]]:
    plate = layout.plates[plate_id]
    gondola, shelf = layout.shelves[plate.shelf_id]
    half = gondola.length_m / len(shelf.plates) / 2
    dx, dy = (half, 0.0) if gondola.axis == "x" else (0.0, half)
    return (plate.x_m - dx, plate.y_m - dy), (plate.x_m + dx, plate.y_m + dy)


def _to_segment(p: tuple[float, float], seg: tuple[tuple[float, float], tuple[float, float]]) -> float:
    (ax, ay), (bx, by) = seg
    vx, vy = bx - ax, by - ay
    k = max(0.0, min(1.0, ((p[0] - ax) * vx + (p[1] - ay) * vy) / (vx * vx + vy * vy or 1.0)))
    return math.hypot(p[0] - ax - k * vx, p[1] - ay - k * vy)


def two_hand_spots(layout: StoreLayout) -> list[TwoHands]:
    """Every pair of plates on two gondolas that one shopper can hold at once, sorted by plate ids."""
    out = []
    limit = SERVER_REACH_M - REACH_MARGIN_M
    for a, b in itertools.combinations(sorted(layout.plates), 2):
        pa, pb = layout.plates[a], layout.plates[b]
        if pa.gondola_id == pb.gondola_id or distance((pa.x_m, pa.y_m), (pb.x_m, pb.y_m)) > 2 * limit:
            continue
        stand = ((pa.x_m + pb.x_m) / 2, (pa.y_m + pb.y_m) / 2)
        if not layout.walkable(stand[0], stand[1], CLEARANCE_M):
            continue
        near = all(_to_segment(stand, _front_edge(layout, p)) <= ARM_M for p in (a, b))
        if near and max(distance(stand, (p.x_m, p.y_m)) for p in (pa, pb)) <= limit:
            out.append(TwoHands(a, b, (round(stand[0], 3), round(stand[1], 3))))
    return out


def _qty(rng: np.random.Generator, stock: dict[str, int], sku: str, qty_p: list[float]) -> int:
    qty = min(stock[sku], int(rng.choice([1, 2, 3], p=qty_p)))
    stock[sku] -= qty
    return qty


def add_two_hands(layout: StoreLayout, rng: np.random.Generator, plan: ShopperPlan, stock: dict[str, int],
                  qty_p: list[float], spots: list[TwoHands]) -> bool:
    """Add one stop where the shopper takes from two gondolas at once, in route order; False if none fits."""
    mine = {s.sku for s in plan.stops}
    ok = [s for s in spots if all(stock.get(layout.sku_on_plate.get(p, ""), 0) > 0
                                  and layout.sku_on_plate[p] not in mine for p in (s.left, s.right))]
    if not ok:
        return False
    spot = ok[int(rng.integers(len(ok)))]
    first, second = (spot.left, spot.right) if rng.random() < 0.5 else (spot.right, spot.left)
    hands = []
    for plate in (first, second):
        sku = layout.sku_on_plate[plate]
        hands.append(_stop(rng, plate, sku, "pick", _qty(rng, stock, sku, qty_p)))
    lag = round(float(rng.uniform(0.0, MAX_LAG_S)), 3)
    one, two = hands
    # Stand until both hands are out again, with a moment to spare.
    dwell = max(one.dwell_s, round(1.0 + max(one.reach_s, lag + two.reach_s) + 0.8, 3))
    stop = replace(one, dwell_s=dwell, second=two, second_after_s=lag, stand_at=spot.stand)
    here = plan.stops
    at = min(range(len(here) + 1), key=lambda i: _detour(layout, here, i, stop))
    here.insert(at, stop)
    return True


def _detour(layout: StoreLayout, stops: list[Stop], i: int, new: Stop) -> tuple[float, int]:
    """How much longer the route gets with ``new`` at position ``i`` (ties: earlier)."""
    pts = [_where(layout, s) for s in stops]
    if not pts:
        return (0.0, i)
    p = _where(layout, new)
    if i == 0:
        return (distance(p, pts[0]), i)
    if i == len(pts):
        return (distance(pts[-1], p), i)
    return (distance(pts[i - 1], p) + distance(p, pts[i]) - distance(pts[i - 1], pts[i]), i)


def _where(layout: StoreLayout, stop: Stop) -> tuple[float, float]:
    if stop.stand_at is not None:
        return stop.stand_at
    plate = layout.plates[stop.plate_id]
    return (plate.x_m, plate.y_m)


def put_back(layout: StoreLayout, rng: np.random.Generator, plan: ShopperPlan, stock: dict[str, int]) -> bool:
    """Return (part of) one pick to its own shelf: its plate, or another plate of that product there."""
    picks = [s for s in plan.stops if s.action == "pick" and s.second is None]
    if not picks:
        return False
    pick = picks[int(rng.integers(len(picks)))]
    qty = int(rng.integers(1, pick.quantity + 1))
    shelf = layout.plates[pick.plate_id].shelf_id
    beside = [p for p in layout.plates_of_sku[pick.sku]
              if p != pick.plate_id and layout.plates[p].shelf_id == shelf]
    plate = beside[int(rng.integers(len(beside)))] if beside and rng.random() < 0.5 else pick.plate_id
    stock[pick.sku] += qty
    at = next(i for i, s in enumerate(plan.stops) if s is pick)
    back = _stop(rng, plate, pick.sku, "putback", qty)
    plan.stops.insert(at + 1 if rng.random() < 0.5 else len(plan.stops), back)
    return True


def misplace_on_other_shelf(layout: StoreLayout, rng: np.random.Generator, plan: ShopperPlan) -> bool:
    """Right after a pick, put one of it down one shelf up or down at the same spot (a foreign plate)."""
    picks = [s for s in plan.stops if s.action == "pick" and s.second is None]
    if not picks:
        return False
    pick = picks[int(rng.integers(len(picks)))]
    plate = layout.plates[pick.plate_id]
    gondola, _ = layout.shelves[plate.shelf_id]
    rank = [s.id for s in sorted(gondola.shelves, key=lambda s: s.level)]
    i = rank.index(plate.shelf_id)
    options = []
    for j in (i - 1, i + 1):
        if 0 <= j < len(rank):
            other = layout.shelves[rank[j]][1]
            target = other.plates[min(plate.index, len(other.plates) - 1)]
            if layout.sku_on_plate.get(target) != pick.sku:
                options.append(target)
    if not options:
        return False
    drop = _stop(rng, options[int(rng.integers(len(options)))], pick.sku, "misplaced_return", 1)
    plan.stops.insert(next(i for i, s in enumerate(plan.stops) if s is pick) + 1, drop)
    return True


def carry_and_misplace(layout: StoreLayout, rng: np.random.Generator, plan: ShopperPlan) -> bool:
    """Carry one picked item to the next stop on another gondola and leave it on a plate there."""
    for at, pick in enumerate(plan.stops):
        if pick.action != "pick" or pick.second is not None:
            continue
        g = layout.plates[pick.plate_id].gondola_id
        nxt = next((s for s in plan.stops[at + 1:] if layout.plates[s.plate_id].gondola_id != g
                    and s.second is None), None)
        if nxt is None:
            continue
        shelf = layout.shelves[layout.plates[nxt.plate_id].shelf_id][1]
        plates = [p for p in shelf.plates if layout.sku_on_plate.get(p) != pick.sku]
        if not plates:
            continue
        drop = _stop(rng, plates[int(rng.integers(len(plates)))], pick.sku, "misplaced_return", 1)
        plan.stops.insert(plan.stops.index(nxt), drop)
        return True
    return False


def count_behaviours(truth: dict[str, Any], layout: StoreLayout) -> dict[str, int]:
    """How often a run's ground truth shows each behaviour of the hands scenario (any scenario works)."""
    events = truth.get("events", [])
    gondola = {p: info.gondola_id for p, info in layout.plates.items()}
    shelf = {p: info.shelf_id for p, info in layout.plates.items()}
    two_hands = 0
    for a, b in itertools.combinations(events, 2):
        if a["track_id"] == b["track_id"] and gondola[a["plate_ids"][0]] != gondola[b["plate_ids"][0]]:
            overlap = a["t_start"] < b["t_end"] and b["t_start"] < a["t_end"]
            two_hands += overlap and abs(a["t_start"] - b["t_start"]) < SAME_MOMENT_S
    counts = {"multi_quantity": 0, "two_hands": two_hands, "putback_same_plate": 0, "putback_other_plate": 0,
              "misplaced_other_shelf": 0, "misplaced_carried": 0}
    for ev in events:
        counts["multi_quantity"] += ev["quantity"] >= 2 and ev["kind"] == "pick"
        plate = ev["plate_ids"][0]
        taken = [e for e in events if e["kind"] == "pick" and e["sku"] == ev["sku"]
                 and e["track_id"] == ev["track_id"] and e["t_end"] <= ev["t_start"]]
        if not taken or ev["kind"] == "pick":
            continue
        source = taken[-1]["plate_ids"][0]
        if ev["kind"] == "putback":
            counts["putback_same_plate" if plate == source else "putback_other_plate"] += 1
        elif gondola[plate] == gondola[source]:
            counts["misplaced_other_shelf"] += shelf[plate] != shelf[source]
        else:
            counts["misplaced_carried"] += 1
    return counts
