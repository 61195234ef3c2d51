"""When and where shoppers walk: visits planned one after another around those already planned.

A *unit* enters together: one shopper (most scenarios), a group on one account (``groups``: one
entry gate pass for k people), or a cluster meeting at one gondola (``crowded-shelf``: they enter one
by one, and their hands go to the shelf only once all of them stand there, so nobody walks past a
plate while it is being used). Outside a cluster's shared stop, nobody else comes within
SEPARATION_M + SAFETY_M of a shopper during their shelf event; a leg that cannot be kept clear by
waiting shifts the whole unit later.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim_data.paths import Motion, Point, WalkGrid, stand_point, walk_knots
from sim_data.scenarios import ShopperPlan, Stop
from store_server.domain.layout import Gate, StoreLayout

logger = logging.getLogger(__name__)

GATE_DWELL_S = 1.5  # a shopper stands this long in a gate zone
GATE_SIGNAL_S = 0.5  # the gate publishes this long after the shopper arrives in its zone
PICK_AFTER_S = 1.0  # hand on the shelf this long after arriving
PUBLISH_AFTER_S = 0.3  # the edge detector settles for this long before it publishes
SEPARATION_M = 2.0  # nobody else this close during a shelf event
SAFETY_M = 0.3  # margin so 5 cm track noise cannot bring two shoppers under SEPARATION_M
WAIT_STEP_S, LEG_MAX_WAIT_S = 0.5, 20.0  # wait in place before a leg, up to this long
SHIFT_STEP_S, MAX_SHIFT_S = 1.0, 1800.0  # then shift the unit's whole visit later
MIN_ENTRY_GAP_S = 4.0  # one party at a time in the entry zone
GROUP_MAX_WAIT_S = 60.0
GROUP_LINGER_S = (0.0, 3.0, 6.0, 10.0, 15.0, 20.0, 30.0)
LINGER_S = 1.0  # a synchronised shopper stays this long after their own shelf event


def _r(t: float) -> float:
    return round(t, 3)


@dataclass
class Shopper:
    plan: ShopperPlan
    motion: Motion
    windows: list[tuple[float, float]] = field(default_factory=list)  # shelf events, padded
    exit_span: tuple[float, float] = (math.inf, math.inf)
    switch: tuple[float, str] | None = None  # sensor-faults: from this time the camera says another id
    shared: tuple[float, float] | None = None  # crowded-shelf: the window of the event beside the mates
    berth: dict[tuple[float, float], float] = field(default_factory=dict)  # windows needing more than NEAR_M

    @property
    def track_id(self) -> str:
        return f"t{self.plan.number}"

    def track_at(self, t: float) -> str:
        return self.switch[1] if self.switch and t >= self.switch[0] else self.track_id


@dataclass
class Out:
    """A message before sequencing: the node's seq is only known once its stream is ordered."""

    t: float
    node: str
    kind: str
    fields: dict[str, Any]
    truth: dict[str, Any] | None = None


@dataclass
class Ctx:
    layout: StoreLayout
    grid: WalkGrid
    weight_noise: float = 1.0  # sensor-faults doubles the deviation from nominal
    clear_entry: bool = False  # nobody else in the entry zone during a party's pass ("basic" predates it)

    @property
    def entry(self) -> Gate:
        return next(g for g in self.layout.gates if g.direction == "entry")

    @property
    def exit(self) -> Gate:
        return next(g for g in self.layout.gates if g.direction == "exit")


@dataclass
class _Visit:
    me: Shopper
    here: tuple[float, Point]
    out: list[Out]


NEAR_M = SEPARATION_M + SAFETY_M


def _too_close(a: Motion, b: Motion, lo: float, hi: float, berth: float = NEAR_M) -> bool:
    ts = np.linspace(lo, hi, max(2, int((hi - lo) / 0.1) + 2))
    ax, ay, am = a.at(ts)
    bx, by, bm = b.at(ts)
    both = am & bm
    return bool(np.any(np.hypot(ax - bx, ay - by)[both] < berth))


def _berth(layout: StoreLayout, stop: Stop, stand: Point) -> float:
    """How far others keep from a shopper during this stop's event. Standing r from a plate (two hands
    between two gondolas), anyone within 2r of the shopper could be nearer that plate than they are."""
    if stop.second is None:
        return NEAR_M
    r = max(math.dist(stand, (layout.plates[p].x_m, layout.plates[p].y_m))
            for p in (stop.plate_id, stop.second.plate_id))
    return max(NEAR_M, 2 * r + SAFETY_M)


def _clash(cand: Motion, own: list[tuple[float, float]], others: list[Shopper],
           exit_span: tuple[float, float] | None = None, standing: Motion | None = None,
           own_berth: float = NEAR_M) -> bool:
    """Would ``cand`` come too close to someone's shelf event, or someone to its own (``own``)?

    ``standing``: the same leg without the wait before it. A cluster mate's shared event is judged
    against it: standing beside a mate while they reach in is the point of crowded-shelf.
    """
    lo, hi = cand.t_in, cand.t_out
    for o in others:
        if exit_span and exit_span[0] - 1.0 < o.exit_span[1] and o.exit_span[0] < exit_span[1] + 1.0:
            return True  # one shopper at a time in the exit zone, or the gate cannot tell who left
        if o.motion.t_out < lo or o.motion.t_in > hi:
            continue
        for ws, we in o.windows:
            m = standing if standing is not None and (ws, we) == o.shared else cand
            berth = o.berth.get((ws, we), NEAR_M)
            if max(ws, lo) <= min(we, hi) and _too_close(m, o.motion, max(ws, lo), min(we, hi), berth):
                return True
        if any(_too_close(cand, o.motion, ws, we, own_berth) for ws, we in own):
            return True
    return False


def _leg(grid: WalkGrid, here: tuple[float, Point], target: Point, speed: float, wait: float,
         stay: float) -> tuple[Motion, float]:
    """Wait where you are, walk to ``target``, stay there: the candidate motion and the arrival time."""
    t, pos = here
    knots, arrive = walk_knots(t + wait, grid.path(pos, target), speed)
    return Motion([(t, pos[0], pos[1])] + knots + [(arrive + stay, target[0], target[1])]), arrive


def _begin(ctx: Ctx, plan: ShopperPlan, t_in: float, group_size: int | None = 1) -> _Visit:
    """Stand in the entry zone; ``group_size`` None: a group member whose leader's pass counts."""
    entry = ctx.entry
    pos: Point = (entry.zone.centre[0] + plan.entry_offset[0], entry.zone.centre[1] + plan.entry_offset[1])
    me = Shopper(plan, Motion([(t_in, *pos), (t_in + GATE_DWELL_S, *pos)]))
    out = []
    if group_size is not None:
        fields: dict[str, Any] = {"gate_id": entry.id, "direction": "entry", "account_token": plan.token}
        if group_size > 1:
            fields["group_size"] = group_size
        out.append(Out(_r(t_in + GATE_SIGNAL_S), entry.node_id or entry.id, "gate", fields,
                       {"role": "entry", "party": plan.party}))
    return _Visit(me, (t_in + GATE_DWELL_S, pos), out)


def _walk(ctx: Ctx, v: _Visit, stop: Stop | None, others: list[Shopper], keep_apart: bool,
          start_at: float | None = None, max_wait: float = LEG_MAX_WAIT_S, beside_mates: bool = False,
          first_wait: float = 0.0) -> bool:
    """Plan the leg to ``stop`` (None: the exit) and its event; False when it cannot be kept clear.

    ``beside_mates``: waiting where it stands next to a cluster mate's shared event is fine; only
    the walk away from there must keep clear of it.
    """
    layout, plan = ctx.layout, v.me.plan
    exit_ = ctx.exit
    exit_pt = (exit_.zone.centre[0] + plan.exit_offset[0], exit_.zone.centre[1] + plan.exit_offset[1])
    target = exit_pt if stop is None else stop.stand_at or stand_point(layout, stop.plate_id, stop.offset_m)
    stay = GATE_DWELL_S if stop is None else stop.dwell_s
    berth = NEAR_M if stop is None else _berth(layout, stop, target)
    wait = first_wait
    while True:
        cand, arrive = _leg(ctx.grid, v.here, target, plan.speed_mps, wait, stay)
        t_start = arrive + PICK_AFTER_S
        if stop is not None and start_at is not None:
            t_start = max(t_start, start_at)
            cand, arrive = _leg(ctx.grid, v.here, target, plan.speed_mps, wait,
                                max(stay, t_start + stop.reach_s + LINGER_S - arrive))
        t_end = t_start + (stop.reach_s if stop else 0.0)
        last_out = t_end
        if stop is not None and stop.second is not None:
            last_out = max(t_end, t_start + stop.second_after_s + stop.second.reach_s)
        own = [(t_start - 0.5, last_out + PUBLISH_AFTER_S + 0.2)] if stop else []
        span = (arrive, arrive + GATE_DWELL_S) if stop is None else None
        standing = None
        if beside_mates:
            go = v.here[0] + wait
            standing = Motion([(go, *v.here[1])] + [k for k in cand.knots if k[0] > go + 1e-9])
        if not keep_apart or not _clash(cand, own, others, span, standing, berth):
            break
        wait += WAIT_STEP_S  # wait where you are until the shelf is clear
        if wait > max_wait:
            return False  # waiting here does not help (we may be the one in the way): shift the entry
    for t, x, y in cand.knots:
        v.me.motion.add(t, (x, y))
    v.here = (cand.t_out, target)
    if stop is None:
        v.me.exit_span = (arrive, arrive + GATE_DWELL_S)
        v.out.append(Out(_r(arrive + GATE_SIGNAL_S), exit_.node_id or exit_.id, "gate",
                         {"gate_id": exit_.id, "direction": "exit"},
                         {"role": "exit", "shopper": plan.number}))
        return True
    v.me.windows += own
    if berth > NEAR_M:
        v.me.berth[own[0]] = berth
    v.out.append(_weight(ctx, v.me, stop, t_start, t_end))
    if stop.second is not None:  # the other hand, on another gondola, at (nearly) the same moment
        t2 = t_start + stop.second_after_s
        v.out.append(_weight(ctx, v.me, stop.second, t2, t2 + stop.second.reach_s))
    return True


def _weight(ctx: Ctx, me: Shopper, stop: Stop, t_start: float, t_end: float) -> Out:
    layout, f = ctx.layout, ctx.weight_noise
    product = layout.products[stop.sku]
    z_unit, z_scale = stop.noise_z
    grams = (stop.quantity * product.unit_weight_g
             + z_unit * product.weight_std_g * math.sqrt(stop.quantity) * f + z_scale * 0.5 * f)
    plate = layout.plates[stop.plate_id]
    gondola = next(g for g in layout.gondolas if g.id == plate.gondola_id)
    return Out(_r(t_end + PUBLISH_AFTER_S), gondola.node_id or gondola.id, "weight", {
        "gondola_id": gondola.id, "shelf_id": plate.shelf_id, "plate_ids": [stop.plate_id],
        "delta_g": round(-grams if stop.action == "pick" else grams, 2),
        "t_start": _r(t_start), "t_end": _r(t_end), "noise_g": 0.5 * f, "confidence": stop.confidence,
    }, {"t_start": _r(t_start), "t_end": _r(t_end), "kind": stop.action, "sku": stop.sku,
        "quantity": stop.quantity, "plate_ids": [stop.plate_id], "shopper": me.plan.number,
        "observable": True})


Planned = tuple[list[Shopper], list[Out]]
Unit = list[ShopperPlan]


def _single(ctx: Ctx, unit: Unit, t_in: float, done: list[Shopper], keep_apart: bool) -> Planned | None:
    v = _begin(ctx, unit[0], t_in)
    for stop in [*unit[0].stops, None]:
        if not _walk(ctx, v, stop, done, keep_apart):
            return None
    return [v.me], v.out


def _group(ctx: Ctx, unit: Unit, t_in: float, done: list[Shopper], keep_apart: bool) -> Planned | None:
    """k people stand in the entry zone together behind one gate pass, then go their own ways."""
    members: list[Shopper] = []
    out: list[Out] = []
    for i, plan in enumerate(unit):
        # Shifting the group cannot part its own members: a member lingers at the entrance a little
        # longer, or waits longer for a mate to finish, until its visit fits around theirs.
        for linger in GROUP_LINGER_S:
            v = _begin(ctx, plan, t_in, len(unit) if i == 0 else None)
            stops: list[Stop | None] = [*plan.stops, None]
            if all(_walk(ctx, v, stop, done + members, keep_apart, max_wait=GROUP_MAX_WAIT_S,
                         first_wait=linger if k == 0 else 0.0) for k, stop in enumerate(stops)):
                break
        else:
            return None
        members.append(v.me)
        out += v.out
    return members, out


def _meet(ctx: Ctx, unit: Unit, t_in: float, done: list[Shopper], keep_apart: bool) -> list[_Visit] | None:
    """Enter one by one and walk to the shared stop; reach in only once all of them stand there."""
    visits = [_begin(ctx, plan, t_in + i * MIN_ENTRY_GAP_S) for i, plan in enumerate(unit)]
    arrivals = []
    for v in visits:
        stop = v.me.plan.stops[0]
        target = stand_point(ctx.layout, stop.plate_id, stop.offset_m)
        arrivals.append(_leg(ctx.grid, v.here, target, v.me.plan.speed_mps, 0.0, 0.0)[1])
    meet = max(arrivals) + PICK_AFTER_S
    for v in visits:
        stop = v.me.plan.stops[0]
        if not _walk(ctx, v, stop, done, keep_apart, start_at=meet + (stop.sync_delay_s or 0.0)):
            return None
        if v.me.windows[-1][0] + 0.5 > meet + (stop.sync_delay_s or 0.0) + 1e-6:
            return None  # had to wait on the way in: the mates would be reaching in as it walks up
        v.me.shared = v.me.windows[-1]
    return visits


def _cluster(ctx: Ctx, unit: Unit, t_in: float, done: list[Shopper], keep_apart: bool) -> Planned | None:
    """Meet at the first stop, then go on. Members are planned one after the other from there, and the
    order matters (the first assumes the others leave when their stay ends), so try each order."""
    for order in itertools.permutations(range(len(unit))):
        visits = _meet(ctx, unit, t_in, done, keep_apart)
        if visits is None:
            return None
        members = [v.me for v in visits]
        for i in order:
            v = visits[i]
            mates = [m for m in members if m is not v.me]
            if not all(_walk(ctx, v, stop, done + mates, keep_apart, beside_mates=True)
                       for stop in [*v.me.plan.stops[1:], None]):
                break
        else:
            return members, [o for v in visits for o in v.out]
    return None


def _entry_taken(ctx: Ctx, party: list[Shopper], done: list[Shopper]) -> bool:
    """Someone else in the entry zone while a member of ``party`` stands there for its gate pass."""
    zone = ctx.entry.zone
    cluster = party[0].plan.cluster is not None  # a cluster's members enter one by one
    for me in party:
        ts = np.arange(me.motion.t_in, me.motion.t_in + GATE_DWELL_S + 0.05, 0.1)
        for o in done + ([m for m in party if m is not me] if cluster else []):
            if o.motion.t_out < ts[0] or o.motion.t_in > ts[-1]:
                continue
            x, y, present = o.motion.at(ts)
            points = zip(x, y, present, strict=True)
            if any(p and zone.contains(float(a), float(b), margin=0.3) for a, b, p in points):
                return True
    return False


def units(plans: list[ShopperPlan]) -> list[list[ShopperPlan]]:
    """Consecutive plans of one group or cluster form a unit; everyone else is on their own."""
    out: list[list[ShopperPlan]] = []
    for plan in plans:
        key = (plan.group, plan.cluster)
        prev = out[-1][0] if out else None
        if prev is not None and key != (None, None) and (prev.group, prev.cluster) == key:
            out[-1].append(plan)
        else:
            out.append([plan])
    return out


def schedule(ctx: Ctx, plans: list[ShopperPlan], t0: float, keep_apart: bool,
             progress: Callable[[int, int], None] | None = None) -> tuple[list[Shopper], list[Out]]:
    """Plan units in arrival order, each around those already planned.

    When a visit cannot be kept clear by waiting, the unit's whole visit shifts later (the entry
    gap to the previous unit is kept), which always resolves once the others have left.
    """
    done: list[Shopper] = []
    out: list[Out] = []
    last_in = -math.inf
    for unit in units(plans):
        kind = _group if unit[0].group is not None else _cluster if unit[0].cluster is not None else _single
        t_in = max(t0 + unit[0].arrival_s, last_in + MIN_ENTRY_GAP_S)
        planned = None
        while planned is None:
            planned = kind(ctx, unit, t_in, done, keep_apart)
            if planned and keep_apart and ctx.clear_entry and _entry_taken(ctx, planned[0], done):
                planned = None
            t_in += SHIFT_STEP_S
            alone = all(o.motion.t_out < t_in - SHIFT_STEP_S for o in done)  # then shifting cannot help
            if planned is None and (alone or t_in - (t0 + unit[0].arrival_s) > MAX_SHIFT_S):
                logger.warning("shopper %d could not be kept apart; planning without", unit[0].number)
                planned = kind(ctx, unit, t_in, done, False)
        people, msgs = planned
        last_in = max(p.motion.t_in for p in people)
        done += people
        out += msgs
        if progress:
            progress(len(done), len(plans))
    return done, out
