"""What shoppers do in each scenario beyond "basic": their plans, drawn from the seed.

Each scenario has its own random stream (``default_rng([seed, k])`` with a k of its own), so adding
a scenario never changes another one's data, and "basic" (sim_data.scenarios.plan_basic) stays
byte for byte what it was. Plans say *what* happens; sim_data.schedule decides *when* and *where*.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim_data.hands import (
    add_two_hands,
    carry_and_misplace,
    misplace_on_other_shelf,
    put_back,
    two_hand_spots,
)
from sim_data.scenarios import (
    ShopperPlan,
    Stop,
    _identity,
    _offset,
    _plate_xy,
    _route,
    _stop,
    plan_basic,
)
from store_server.domain.layout import StoreLayout

Rng = np.random.Generator
Plans = list[ShopperPlan]
NEAR_IDENTICAL_G = 5.0  # "same-weight": neighbouring products at most this far apart per unit


def _arrivals(rng: Rng, shoppers: int | None, duration_s: float | None,
              mean_gap_s: float = 15.0) -> list[float]:
    """Arrival times after t0. A count and a window: the count spread over the window (a Poisson process
    given its count); otherwise gaps of 4 s + exponential, cut at the window or the count."""
    if shoppers is None and duration_s is None:
        raise ValueError("a scenario needs a shopper count or a duration")
    if shoppers is not None and duration_s is not None:
        return sorted(round(float(t), 3) for t in rng.uniform(2.0, max(2.0, duration_s), shoppers))
    out: list[float] = []
    t = 2.0
    for n in range(shoppers if shoppers is not None else 10_000):
        if n:
            t += 4.0 + float(rng.exponential(mean_gap_s - 4.0))
        if duration_s is not None and t > duration_s:
            break
        out.append(round(t, 3))
    return out


def _in_stock(layout: StoreLayout, stock: dict[str, int]) -> list[str]:
    return sorted(sku for sku, q in stock.items() if q > 0 and layout.plates_of_sku.get(sku))


def _take(layout: StoreLayout, rng: Rng, stock: dict[str, int], sku: str, qty_p: list[float],
          plate: str | None = None) -> Stop:
    qty = min(stock[sku], int(rng.choice([1, 2, 3], p=qty_p)))
    stock[sku] -= qty
    plates = layout.plates_of_sku[sku]
    plate = plate or plates[int(rng.integers(len(plates)))]
    return _stop(rng, plate, sku, "pick", qty)


Chooser = Callable[[Rng, list[str]], str]


def _uniform(rng: Rng, skus: list[str]) -> str:
    return skus[int(rng.integers(len(skus)))]


def _shopper(layout: StoreLayout, rng: Rng, seed: int, n: int, t: float, stock: dict[str, int],
             k_p: list[float], qty_p: list[float], choose: Chooser = _uniform,
             start: tuple[float, float] | None = None, party: int | None = None) -> ShopperPlan:
    """A shopper taking 1-4 distinct products (``k_p``), routed nearest-first from ``start``."""
    name, email = _identity(rng, n)
    plan = ShopperPlan(n, f"acct-{seed}-{party or n}", name, email, t, float(rng.uniform(1.0, 1.3)))
    picks: list[Stop] = []
    for _ in range(int(rng.choice([1, 2, 3, 4], p=k_p))):
        skus = [s for s in _in_stock(layout, stock) if s not in {p.sku for p in picks}]
        if skus:
            picks.append(_take(layout, rng, stock, choose(rng, skus), qty_p))
    entry = next(g for g in layout.gates if g.direction == "entry").zone.centre
    plan.stops = _route(layout, start or entry, picks)
    plan.entry_offset, plan.exit_offset = _offset(rng, 0.2), _offset(rng, 0.2)
    return plan


def _putback(layout: StoreLayout, rng: Rng, plan: ShopperPlan, stock: dict[str, int], rate: float,
             partial: bool) -> None:
    """Return (part of) one or two picks to their own plate, right away or later in the visit."""
    picks = [s for s in plan.stops if s.action == "pick"]
    if not picks or rng.random() >= rate:
        return
    count = min(len(picks), 1 + int(rng.random() < 0.3 if partial else 0))
    for idx in sorted(int(i) for i in rng.choice(len(picks), size=count, replace=False)):
        pick = picks[idx]
        qty = 1
        if partial and pick.quantity > 1:
            qty = pick.quantity if rng.random() < 0.4 else int(rng.integers(1, pick.quantity))
        # Never return more than is still in the cart (an item may already have been misplaced).
        gone = sum(x.quantity for x in plan.stops if x.sku == pick.sku and x.action != "pick")
        qty = min(qty, sum(x.quantity for x in plan.stops if x.sku == pick.sku and x.action == "pick") - gone)
        if qty <= 0:
            continue
        stock[pick.sku] += qty
        back = _stop(rng, pick.plate_id, pick.sku, "putback", qty)
        if rng.random() < 0.5:  # changed their mind on the spot
            at = next(i for i, s in enumerate(plan.stops) if s is pick)
            plan.stops.insert(at + 1, back)
        else:
            plan.stops.append(back)


def _misplace(layout: StoreLayout, rng: Rng, plan: ShopperPlan) -> None:
    """Drop one picked item on a plate of another product: at the next gondola the shopper visits (just
    before taking what they came for), or, at their last stop, on another shelf of that gondola."""
    picks = [(i, s) for i, s in enumerate(plan.stops) if s.action == "pick"]
    if not picks:
        return
    at, item = picks[int(rng.integers(len(picks)))]
    nxt = plan.stops[at + 1] if at + 1 < len(plan.stops) else None
    g_id = layout.plates[(nxt or item).plate_id].gondola_id
    plates = [p for p, info in layout.plates.items() if info.gondola_id == g_id
              and layout.sku_on_plate.get(p) != item.sku
              and (nxt is not None or info.shelf_id != layout.plates[item.plate_id].shelf_id)]
    if not plates:
        return
    plate = sorted(plates)[int(rng.integers(len(plates)))]
    drop = _stop(rng, plate, item.sku, "misplaced_return", 1)
    plan.stops.insert(at + 1, drop)


def _pairs(layout: StoreLayout) -> list[tuple[str, str]]:
    """Neighbouring plates of one shelf holding different products within NEAR_IDENTICAL_G per unit."""
    out = []
    for _, shelf in sorted(layout.shelves.values(), key=lambda gs: gs[1].id):
        for a, b in zip(shelf.plates, shelf.plates[1:], strict=False):
            sa, sb = layout.sku_on_plate.get(a), layout.sku_on_plate.get(b)
            if not (sa and sb and sa != sb):
                continue
            if abs(layout.products[sa].unit_weight_g - layout.products[sb].unit_weight_g) <= NEAR_IDENTICAL_G:
                out.append((a, b))
    return out


def near_identical_plates(layout: StoreLayout) -> set[str]:
    return {p for pair in _pairs(layout) for p in pair}


# -- the planners ------------------------------------------------------------------------------------
K_P, QTY_P = [0.25, 0.35, 0.25, 0.15], [0.75, 0.18, 0.07]


def _plan_putbacks(layout: StoreLayout, seed: int, shoppers: int | None, dur: float | None) -> Plans:
    rng = np.random.default_rng([seed, 11])
    stock = {e.sku: e.stock for e in layout.planogram}
    plans = []
    for n, t in enumerate(_arrivals(rng, shoppers, dur), start=1):
        plan = _shopper(layout, rng, seed, n, t, stock, K_P, [0.45, 0.3, 0.25])
        _putback(layout, rng, plan, stock, rate=0.8, partial=True)
        plans.append(plan)
    return plans


def _plan_misplaced(layout: StoreLayout, seed: int, shoppers: int | None, dur: float | None) -> Plans:
    rng = np.random.default_rng([seed, 12])
    stock = {e.sku: e.stock for e in layout.planogram}
    plans = []
    for n, t in enumerate(_arrivals(rng, shoppers, dur), start=1):
        plan = _shopper(layout, rng, seed, n, t, stock, [0.1, 0.4, 0.3, 0.2], QTY_P)
        if rng.random() < 0.6:
            _misplace(layout, rng, plan)
        _putback(layout, rng, plan, stock, rate=0.2, partial=False)
        plans.append(plan)
    return plans


def _plan_same_weight(layout: StoreLayout, seed: int, shoppers: int | None, dur: float | None) -> Plans:
    rng = np.random.default_rng([seed, 14])
    stock = {e.sku: e.stock for e in layout.planogram}
    hard = sorted({layout.sku_on_plate[p] for p in near_identical_plates(layout)})

    def choose(r: Rng, skus: list[str]) -> str:
        pool = [s for s in hard if s in skus]
        return _uniform(r, pool if pool and r.random() < 0.85 else skus)

    plans = []
    for n, t in enumerate(_arrivals(rng, shoppers, dur), start=1):
        plan = _shopper(layout, rng, seed, n, t, stock, [0.3, 0.4, 0.3, 0.0], QTY_P, choose)
        _putback(layout, rng, plan, stock, rate=0.2, partial=False)
        plans.append(plan)
    return plans


def _plan_busy(layout: StoreLayout, seed: int, shoppers: int | None, dur: float | None) -> Plans:
    rng = np.random.default_rng([seed, 15])
    stock = {e.sku: e.stock for e in layout.planogram}
    plans = []
    for n, t in enumerate(_arrivals(rng, shoppers, dur, mean_gap_s=30.0), start=1):
        plan = _shopper(layout, rng, seed, n, t, stock, K_P, QTY_P)
        _putback(layout, rng, plan, stock, rate=0.2, partial=False)
        plans.append(plan)
    return plans


def _plan_faults(layout: StoreLayout, seed: int, shoppers: int | None, dur: float | None) -> Plans:
    rng = np.random.default_rng([seed, 17])
    stock = {e.sku: e.stock for e in layout.planogram}
    plans = []
    for n, t in enumerate(_arrivals(rng, shoppers, dur), start=1):
        plan = _shopper(layout, rng, seed, n, t, stock, [0.1, 0.35, 0.35, 0.2], QTY_P)
        _putback(layout, rng, plan, stock, rate=0.2, partial=False)
        plans.append(plan)
    return plans


_CORNERS = ((-0.3, -0.3), (0.3, 0.3), (0.3, -0.3), (-0.3, 0.3))


def _plan_groups(layout: StoreLayout, seed: int, shoppers: int | None, dur: float | None) -> Plans:
    """Parties of 2-4 (the last one takes what is left); ``shoppers`` counts people, not parties."""
    rng = np.random.default_rng([seed, 16])
    stock = {e.sku: e.stock for e in layout.planogram}
    plans: list[ShopperPlan] = []
    people = shoppers if shoppers is not None else 10_000
    n, t = 0, 2.0
    while n < people:
        if n:
            t += 8.0 + float(rng.exponential(20.0))
        if dur is not None and t > dur:
            break
        k = int(rng.choice([2, 3, 4], p=[0.4, 0.35, 0.25]))
        if people - n - k == 1:  # nobody is left to come alone
            k += 1 if k < 4 else -1
        k = min(people - n, k)
        party = n + 1
        spots = [_CORNERS[int(i)] for i in rng.permutation(4)[:k]]
        for m in range(k):
            plan = _shopper(layout, rng, seed, n + 1, round(t, 3), stock, [0.3, 0.4, 0.3, 0.0], QTY_P,
                            party=party)
            jx, jy = _offset(rng, 0.05)
            plan.entry_offset = (spots[m][0] + jx, spots[m][1] + jy)
            plan.group = party
            _putback(layout, rng, plan, stock, rate=0.15, partial=False)
            plans.append(plan)
            n += 1
    return plans


def _cluster_offsets(rng: Rng, k: int, spacing: float) -> list[float]:
    """Offsets along the gondola so neighbours stand 0.6-1.5 m apart, each still nearest their own plate."""
    lim = min(0.3, spacing / 4)
    offs = [0.0] * k
    for _ in range(200):
        offs = [float(rng.uniform(-lim, lim)) for _ in range(k)]
        if all(0.6 <= spacing + b - a <= 1.5 for a, b in zip(offs, offs[1:], strict=False)):
            break
    return offs


def _plan_crowded(layout: StoreLayout, seed: int, shoppers: int | None, dur: float | None) -> Plans:
    """Clusters of 2-3 shoppers whose first stop is one gondola, side by side on adjacent plates."""
    rng = np.random.default_rng([seed, 13])
    stock = {e.sku: e.stock for e in layout.planogram}
    plans: list[ShopperPlan] = []
    people = shoppers if shoppers is not None else 10_000
    n, t, cluster = 0, 2.0, 0
    while n < people:
        if n:
            t += 30.0 + float(rng.exponential(15.0))
        if dur is not None and t > dur:
            break
        k = min(people - n, int(rng.choice([2, 3], p=[0.4, 0.6])))
        shelves = [s for g, s in layout.shelves.values() if len(s.plates) >= k
                   and all(stock.get(layout.sku_on_plate.get(p, ""), 0) > 0 for p in s.plates)]
        if not shelves:
            break
        shelf = shelves[int(rng.integers(len(shelves)))]
        gondola, _ = layout.shelves[shelf.id]
        col = int(rng.integers(len(shelf.plates) - k + 1))
        offs = _cluster_offsets(rng, k, gondola.length_m / len(shelf.plates))
        cluster += 1
        for m in range(k):
            plate = shelf.plates[col + m]
            plan = _shopper(layout, rng, seed, n + 1, round(t + 4.0 * m, 3), stock, [0.5, 0.35, 0.15, 0.0],
                            QTY_P, start=_plate_xy(layout, plate))
            first = _take(layout, rng, stock, layout.sku_on_plate[plate], [0.8, 0.2, 0.0], plate)
            first = Stop(first.plate_id, first.sku, "pick", first.quantity, first.dwell_s, first.reach_s,
                         offs[m], first.noise_z, first.confidence,
                         sync_delay_s=round(float(rng.uniform(0.0, 2.5)), 3))
            # Later stops elsewhere: a mate still standing at this gondola would be in the way.
            plan.stops = [first] + [s for s in plan.stops
                                    if layout.plates[s.plate_id].gondola_id != gondola.id]
            plan.cluster = cluster
            plans.append(plan)
            n += 1
    return plans


HANDS_QTY_P = [0.45, 0.4, 0.15]  # two (or three) in one motion is common


def _plan_hands(layout: StoreLayout, seed: int, shoppers: int | None, dur: float | None) -> Plans:
    """1-3 products each, often two at once. Shoppers take turns (by number) at the other behaviours:
    both hands on two gondolas, a put-back on the right shelf, one misplaced a shelf up or down, one
    carried to another gondola and left there; anyone else also uses both hands one time in four."""
    rng = np.random.default_rng([seed, 21])
    stock = {e.sku: e.stock for e in layout.planogram}
    spots = two_hand_spots(layout)
    plans = []
    for n, t in enumerate(_arrivals(rng, shoppers, dur), start=1):
        role = (n - 1) % 4
        k_p = [0.0, 0.5, 0.5, 0.0] if role == 3 else [0.3, 0.45, 0.25, 0.0]  # carrying needs two stops
        plan = _shopper(layout, rng, seed, n, t, stock, k_p, HANDS_QTY_P)
        if role == 0 or rng.random() < 0.25:
            add_two_hands(layout, rng, plan, stock, HANDS_QTY_P, spots)
        if role == 1:
            put_back(layout, rng, plan, stock)
        elif role == 2:
            misplace_on_other_shelf(layout, rng, plan)
        elif role == 3:
            carry_and_misplace(layout, rng, plan)
        plans.append(plan)
    return plans


PLANNERS: dict[str, Callable[[StoreLayout, int, int | None, float | None], list[ShopperPlan]]] = {
    "basic": plan_basic,
    "putbacks": _plan_putbacks,
    "misplaced": _plan_misplaced,
    "crowded-shelf": _plan_crowded,
    "same-weight": _plan_same_weight,
    "groups": _plan_groups,
    "busy": _plan_busy,
    "sensor-faults": _plan_faults,
    "hands": _plan_hands,
}


def plan_scenario(name: str, layout: StoreLayout, seed: int, shoppers: int | None,
                  duration_s: float | None) -> list[ShopperPlan]:
    return PLANNERS[name](layout, seed, shoppers, duration_s)
