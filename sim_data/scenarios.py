"""The scenario catalog and the shopper plans each scenario makes.

Every random choice about a shopper lives in its plan (down to which exact can, a few grams off
nominal, they take), so the simulator can re-plan a visit shifted in time without new draws.

A scenario decides *what* shoppers do (who arrives when, what they take, what they put back); the
simulator decides *how* it looks on the wire (paths, timing, sensor noise, message contracts). The
catalog is data so that ``walkout sim --list`` and the error for an unknown name cannot drift from
what is really built. Planned scenarios are listed but refused: a stub that quietly produced "basic"
traffic under another name would make an evaluation look better than it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from store_server.domain.layout import StoreLayout, distance


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    default_shoppers: int
    default_duration_s: float | None  # None: until the last shopper has left
    built: bool
    detections: bool = True  # cam-ceiling publishes an ItemDetections at every pick and put-back
    faults: bool = False  # sensor faults (noise, drops, id switch, outage, dead plate)


# "basic" publishes no detections: its messages are pinned byte for byte (seed 7: 5,011 messages).
CATALOG: tuple[Scenario, ...] = (
    Scenario("basic", "shoppers one at a time at each shelf (2 m apart), 1-4 products each, "
             "~20% put one back; every event attributable", 8, None, True, detections=False),
    Scenario("putbacks", "most shoppers put back some of what they took, on the same plate, "
             "sometimes part of it (took 3, put back 1), right away or later in the visit", 8, None, True),
    Scenario("misplaced", "some put-backs land on a wrong plate of a shelf the shopper passes "
             "(misplaced_return: the cart loses the item, the shelf holds a foreign one)", 8, None, True),
    Scenario("crowded-shelf", "2-3 shoppers at one gondola within seconds, 0.6-1.5 m apart, each "
             "taking from the plate in front of them", 8, None, True),
    Scenario("same-weight", "picks concentrate on neighbouring plates whose products weigh within "
             "5 g of each other (cola / cola zero cans)", 8, None, True),
    Scenario("groups", "2-4 people enter on one account (one gate pass, group_size k), pick on "
             "their own tracks, leave separately; one receipt when the last one leaves", 12, None, True),
    Scenario("busy", "rush hour: 120 shoppers spread over an hour, overlapping, still 2 m apart "
             "at shelf events", 120, 3600.0, True),
    Scenario("sensor-faults", "15 cm track noise, 5% missed track points, one track id switch, "
             "a 3 s camera outage, a dead plate, doubled weight noise, 10% product confusions",
             8, None, True, faults=True),
    Scenario("hands", "two of a product in one motion; both hands on two gondolas within the same "
             "second; put-backs on the right shelf (same or another plate of the product); one misplaced a "
             "shelf up or down; one carried from another shelf and left on a foreign plate", 8, None, True),
    Scenario("node-outage", "a gondola node goes offline and replays its spool late", 8, None, False),
)
FIDELITIES = ("event", "signal")


class ScenarioError(ValueError):
    """An unknown or not-yet-built scenario; the message lists what is available."""


def available() -> list[str]:
    return [s.name for s in CATALOG if s.built]


def get_scenario(name: str, fidelity: str = "event") -> Scenario:
    """The built scenario called ``name``, or a ScenarioError saying what to use instead."""
    if fidelity not in FIDELITIES:
        raise ScenarioError(f"unknown fidelity {fidelity!r}; expected one of {', '.join(FIDELITIES)}")
    for s in CATALOG:
        if s.name == name:
            if not s.built:
                raise ScenarioError(
                    f"scenario {name!r} is planned, not built yet; available: {', '.join(available())}"
                )
            return s
    planned = [s.name for s in CATALOG if not s.built]
    raise ScenarioError(
        f"unknown scenario {name!r}; available: {', '.join(available())}"
        + (f" (planned: {', '.join(planned)})" if planned else "")
    )


Action = Literal["pick", "putback", "misplaced_return"]


@dataclass(frozen=True)
class Stop:
    """One shelf visit: stand at ``plate_id``'s front, dwell, and take or return ``quantity``."""

    plate_id: str
    sku: str
    action: Action
    quantity: int
    dwell_s: float
    reach_s: float  # how long the hand is on the shelf: t_end - t_start of the weight event
    offset_m: float = 0.0  # where along the plate the shopper stands
    noise_z: tuple[float, float] = (0.0, 0.0)  # standard normals: this item's weight, the scale's noise
    confidence: float = 1.0  # the edge detector's confidence in the event
    sync_delay_s: float | None = None  # crowded-shelf: reach in this long after the last mate arrives
    # hands: the other hand takes from a plate of another gondola in the same motion, reaching in
    # ``second_after_s`` after this one, while the shopper stands at ``stand_at`` (between the two).
    second: Stop | None = None
    second_after_s: float = 0.0
    stand_at: tuple[float, float] | None = None


@dataclass
class ShopperPlan:
    number: int  # N in track id "t<N>" and token "acct-<seed>-<N>"
    token: str
    name: str
    email: str
    arrival_s: float  # after t0
    speed_mps: float
    stops: list[Stop] = field(default_factory=list)
    entry_offset: tuple[float, float] = (0.0, 0.0)  # from the gate zone's centre
    exit_offset: tuple[float, float] = (0.0, 0.0)
    group: int | None = None  # groups: the party number (one account, one session) this member belongs to
    cluster: int | None = None  # crowded-shelf: shoppers meeting at one gondola (their first stop)

    @property
    def party(self) -> int:
        """The session this shopper's items go to: their group's, or their own."""
        return self.number if self.group is None else self.group


_FIRST = ("Alice", "Bruno", "Chloe", "David", "Emma", "Farid", "Gabrielle", "Hugo", "Ines", "Jules",
          "Karim", "Lea", "Marc", "Nadia", "Oscar", "Paula", "Quentin", "Rosa", "Samir", "Tina")
_LAST = ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
         "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "Fournier")


def _identity(rng: np.random.Generator, n: int) -> tuple[str, str]:
    first = _FIRST[int(rng.integers(len(_FIRST)))]
    last = _LAST[int(rng.integers(len(_LAST)))]
    return f"{first} {last}", f"{first.lower()}.{last.lower()}.{n}@example.com"


def _route(layout: StoreLayout, start: tuple[float, float], stops: list[Stop]) -> list[Stop]:
    """Nearest-neighbour order from the entry: shoppers do not zigzag across the store."""
    todo, out, here = list(stops), [], start
    while todo:
        nxt = min(todo, key=lambda s: (distance(here, _plate_xy(layout, s.plate_id)), s.plate_id))
        todo.remove(nxt)
        out.append(nxt)
        here = _plate_xy(layout, nxt.plate_id)
    return out


def _plate_xy(layout: StoreLayout, plate_id: str) -> tuple[float, float]:
    p = layout.plates[plate_id]
    return (p.x_m, p.y_m)


def plan_basic(
    layout: StoreLayout,
    seed: int,
    shoppers: int | None,
    duration_s: float | None,
    putback_rate: float = 0.2,
) -> list[ShopperPlan]:
    """Poisson arrivals (gap 4 s + exp(mean 11 s), ~15 s on average), 1-4 distinct products each.

    With ``duration_s`` and no ``shoppers`` count, shoppers keep arriving until ``duration_s``.
    Stock is respected: a product nobody can take any more is not chosen.
    """
    rng = np.random.default_rng([seed, 1])
    entry = next(g for g in layout.gates if g.direction == "entry").zone.centre
    stock = {e.sku: e.stock for e in layout.planogram}
    if shoppers is None and duration_s is None:
        raise ValueError("plan_basic needs a shopper count or a duration")
    limit = shoppers if shoppers is not None else 10_000
    plans: list[ShopperPlan] = []
    t = 2.0
    for n in range(1, limit + 1):
        if n > 1:
            t += 4.0 + float(rng.exponential(11.0))
        if duration_s is not None and t > duration_s:
            break
        name, email = _identity(rng, n)
        plan = ShopperPlan(n, f"acct-{seed}-{n}", name, email, round(t, 3), float(rng.uniform(1.0, 1.3)))
        in_stock = sorted(sku for sku, q in stock.items() if q > 0 and layout.plates_of_sku.get(sku))
        k = min(len(in_stock), int(rng.choice([1, 2, 3, 4], p=[0.25, 0.35, 0.25, 0.15])))
        picks: list[Stop] = []
        for idx in rng.choice(len(in_stock), size=k, replace=False) if k else []:
            sku = in_stock[int(idx)]
            qty = min(stock[sku], int(rng.choice([1, 2, 3], p=[0.75, 0.18, 0.07])))
            stock[sku] -= qty
            plates = layout.plates_of_sku[sku]
            plate = plates[int(rng.integers(len(plates)))]
            picks.append(_stop(rng, plate, sku, "pick", qty))
        plan.stops = _route(layout, entry, picks)
        if picks and rng.random() < putback_rate:
            back = picks[int(rng.integers(len(picks)))]
            stock[back.sku] += 1
            # Later in the visit, at the same plate again: the shopper changed their mind.
            plan.stops.append(_stop(rng, back.plate_id, back.sku, "putback", 1))
        plan.entry_offset = _offset(rng, 0.2)
        plan.exit_offset = _offset(rng, 0.2)
        plans.append(plan)
    return plans


def _stop(rng: np.random.Generator, plate: str, sku: str, action: Action, qty: int) -> Stop:
    """Dwell 3-6 s, hand on the shelf 0.8-1.5 s, stand within 10 cm of the plate's middle."""
    return Stop(plate, sku, action, qty, dwell_s=round(float(rng.uniform(3.0, 6.0)), 3),
                reach_s=round(float(rng.uniform(0.8, 1.5)), 3), offset_m=float(rng.uniform(-0.1, 0.1)),
                noise_z=(float(rng.normal()), float(rng.normal())),
                confidence=round(float(rng.uniform(0.95, 1.0)), 3))


def _offset(rng: np.random.Generator, r: float) -> tuple[float, float]:
    return (float(rng.uniform(-r, r)), float(rng.uniform(-r, r)))
