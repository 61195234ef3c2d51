"""How a run's ground-truth shelf events become what the load cells feel: changes and touches.

sim_data.signal renders each shelf with sensors.simulated; this module decides what happens on it.
Under the ``ideal`` profile an event is its event-level weight split evenly over its plates, the hand
segment lasts the event's own duration, and there are no touches but the random background ones.
Under a profile with realistic items (``realistic``):

* every physical item has its own weight: the catalogue weight plus a normal draw of sd
  ``max(weight_std_g, item_rel_sd * unit_weight_g)``, clipped at ``item_clip_sd`` sd. An item a
  shopper puts back is the very item they took last of that product (same weight), when known;
* an item of a one-plate product stands across its plate and a neighbour of the same shelf with
  probability ``straddle_share`` (``straddle_fraction`` of its weight on the neighbour); an item of a
  product on several plates stands on the plate the event names, or (``multi_straddle_share``)
  across it and an adjacent plate of the same product, split unevenly;
* the hand's active segment lasts ``hand_duration_s`` (drawn), not the event's duration;
* shoppers touch the shelf while browsing: ``browse_touches_per_event`` touches per pick or put-back
  on the same shelf, before or after it, on its plate or the next one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sensors.signal_profile import SignalProfile, log_uniform
from sensors.simulated import Change, Touch
from store_server.domain.layout import StoreLayout

PUT = ("putback", "misplaced_return")


def event_plate_deltas(
    events: Sequence[dict[str, Any]],
    deltas: Sequence[float],
    layout: StoreLayout,
    profile: SignalProfile,
    rng: np.random.Generator,
) -> list[dict[str, float]]:
    """Each event's true change per plate (grams, signed), in the order of ``events``.

    ``deltas`` are the event-level weights (sim_data.signal.event_deltas), used as they are when
    the profile has no realistic items.
    """
    if not profile.realistic_items:
        return [
            {p: d / len(ev["plate_ids"]) for p in ev["plate_ids"]}
            for ev, d in zip(events, deltas, strict=True)
        ]
    shelf_of = {p: s for g in layout.gondolas for s in g.shelves for p in s.plates}
    product_plates = {e.sku: list(e.plates) for e in layout.planogram}
    held: dict[tuple[Any, str], list[float]] = {}  # items in a shopper's hand or cart, last on top
    out = []
    for ev in events:
        product = layout.products[ev["sku"]]
        sd = max(product.weight_std_g, profile.item_rel_sd * product.unit_weight_g)
        key = (ev.get("track_id"), ev["sku"])
        putting = ev["kind"] in PUT
        plate_deltas: dict[str, float] = {}
        for _ in range(int(ev["quantity"])):
            z = float(np.clip(rng.standard_normal(), -profile.item_clip_sd, profile.item_clip_sd))
            drawn = product.unit_weight_g + z * sd
            weight = held[key].pop() if putting and held.get(key) else drawn
            if not putting:
                held.setdefault(key, []).append(weight)
            named = ev["plate_ids"][int(rng.integers(len(ev["plate_ids"])))]
            shelf = list(shelf_of[named].plates)
            own = [p for p in product_plates.get(ev["sku"], []) if p in shelf]
            for plate, share in _placement(named, shelf, own, profile, rng):
                grams = (weight if putting else -weight) * share
                plate_deltas[plate] = plate_deltas.get(plate, 0.0) + grams
        out.append(plate_deltas)
    return out


def _placement(
    named: str, shelf: list[str], own: list[str], profile: SignalProfile, rng: np.random.Generator
) -> list[tuple[str, float]]:
    """Where one item stands: [(plate, share of its weight)]."""
    i = shelf.index(named)
    beside = [shelf[j] for j in (i - 1, i + 1) if 0 <= j < len(shelf)]
    if len(own) > 1 and named in own:
        partners = [p for p in beside if p in own]
        if partners and rng.random() < profile.multi_straddle_share:
            other = partners[int(rng.integers(len(partners)))]
            f = float(rng.uniform(*profile.straddle_fraction))
            return [(named, 1.0 - f), (other, f)]
        return [(named, 1.0)]
    if beside and rng.random() < profile.straddle_share:
        other = beside[int(rng.integers(len(beside)))]
        f = float(rng.uniform(*profile.straddle_fraction))
        return [(named, 1.0 - f), (other, f)]
    return [(named, 1.0)]


def shelf_changes(
    events: Sequence[dict[str, Any]],
    plate_deltas: Sequence[dict[str, float]],
    plates: Sequence[str],
    profile: SignalProfile,
    rng: np.random.Generator,
) -> list[Change]:
    """The changes one shelf feels: the events whose plates are on it, in the order of ``events``."""
    out = []
    for ev, deltas in zip(events, plate_deltas, strict=True):
        if ev["plate_ids"][0] not in plates:
            continue
        if profile.hand_duration_s is None:
            duration = max(0.2, ev["t_end"] - ev["t_start"])
        else:
            duration = float(rng.uniform(*profile.hand_duration_s))
        out.append(Change(ev["t_start"], {p: d for p, d in deltas.items()}, duration))
    return out


def browse_touches(
    changes: Sequence[Change],
    plates: Sequence[str],
    profile: SignalProfile,
    rng: np.random.Generator,
    t_start: float,
    t_end: float,
) -> list[Touch]:
    """Touches of a shopper browsing around each of the shelf's changes (before or after it)."""
    out: list[Touch] = []
    if profile.browse_touches_per_event <= 0:
        return out
    plate_list = list(plates)
    for c in changes:
        main = max(c.deltas, key=lambda k: abs(c.deltas[k]))
        i = plate_list.index(str(main)) if isinstance(main, str) else int(main)
        for _ in range(int(rng.poisson(profile.browse_touches_per_event))):
            duration = float(rng.uniform(*profile.touch_duration_s))
            gap = float(rng.uniform(*profile.browse_gap_s))
            before = rng.random() < 0.5
            t = c.t - gap - duration if before else c.t + c.duration_s + gap
            j = i
            if rng.random() >= profile.browse_same_plate:
                side = [k for k in (i - 1, i + 1) if 0 <= k < len(plate_list)]
                j = side[int(rng.integers(len(side)))] if side else i
            force = float(log_uniform(rng, profile.touch_force_g))
            if t_start <= t and t + duration < t_end:
                out.append(Touch(t, plate_list[j], duration, force))
    return out
