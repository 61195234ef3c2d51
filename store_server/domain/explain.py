"""The joint explanation of one weight event: which products, how many, and on which evidence.

An event (one hand on one shelf, however many plates it moved) is explained as a whole. Hypotheses
are one product x 1..N items, or several products at once (a few of each: two, or three when several
shoppers reach into neighbouring plates at the same moment, which the shelf cannot tell apart); picks
come from the products on or next to the moved plates, put-backs from the shopper's cart; an item put
back and another taken in one interaction is a pair of both, and items taken of which one or two
were put straight back (on their plate or beside it) are their net, shaped by both moves (when
plates moved both ways, or nothing one-way fits). Each hypothesis has a cost, chi-square like
(likelihood ~ exp(-cost / 2)), the sum of:

(a) ``weight``: the shelf total against sum(q * unit), with variance noise^2 + sum(q * (unit * s)^2) and
    ``s`` = max(the product's own relative spread, ``SIGMA_REL_MIN``): real items vary about the catalogue;
    a put-back of one item of a product the cart got single items of is also weighed against what
    those items weighed when taken (the very item weighs the same within the plates' noise);
(b) ``planogram``: the per-plate shape (store_server.domain.shelf_shape): how well the hypothesis's items,
    taken from (or put back on) where their products stand, explain each plate's change once the
    shelf's mechanical coupling and items standing across two plates are allowed for; a put-back may
    land on a wrong plate or shelf at ``MISPLACED_COST``; beyond ``SHAPE_MAX`` the plates rule the
    hypothesis out, whatever the weight says;
(c) ``complexity``: each product beyond the first pays ``EXTRA_PRODUCT_COST``, so a set needs real
    support; beyond the number of shoppers at the shelf, when several stood there (each takes what is
    in front of them); a put-back with a take pays ``MIXED_COST`` too;
(d) ``vision``: camera scores (sku -> 0..1) when given, against the best-seen candidate, and for each
    product of the pool that was seen but is left out (``VISION_MISS`` x its score).

Each decided line says which of them decided it (``Line.evidence``). Pure and deterministic: a function
of the event, the layout, the cart, the camera scores and the number of shoppers at the shelf only.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import combinations, product
from typing import Literal

from store_server.domain.layout import StoreLayout
from store_server.domain.shelf_shape import COUPLING_MEAN, COUPLING_SD, Source, fit

Evidence = Literal["weight", "planogram", "vision"]
Verdict = Literal["explained", "unexplained", "noise"]
Lines = tuple[tuple[str, int], ...]  # (sku, quantity: + taken, - put back), sorted by sku
Change = tuple[tuple[str, int], ...]  # (sku, items: - taken, + put back): the weight's own sign

SIGMA_REL_MIN = 0.01  # real unit weights spread at least 1 % around the catalogue
HUBER_Z = 3.0  # beyond this many sigmas the weight misfit counts linearly: real spreads have tails
EXTRA_PRODUCT_COST = 6.0  # two products must beat one by this much, three beat two
VISION_GAIN = 6.0  # cost of a candidate never seen when another one was seen for certain
VISION_MISS = 3.0  # cost of leaving out a product that could have moved and was seen for certain
MISPLACED_COST = 4.0  # shape cost of a put-back where its product does not stand
MIXED_COST = 2.0  # a put-back and a take in one interaction (beside the second product's cost)
MIXED_QUANTITY = 3  # the most items of each side of such a pair
TWO_WAY_MIN_G = 15.0  # plates gained and lost at least this much (and ...
TWO_WAY_SHARE = 0.3  # ... this share of the lightest product around): both ways at once
MAX_QUANTITY = 20
SET_QUANTITY = {2: 3, 3: 2}  # products in one event -> the most items of each
PUT_BACK_PRODUCTS = 2  # put-backs come from one cart: no three-product put-backs
MAX_Z = 5.0  # beyond this one product does not fit the weight ...
MAX_RELATIVE_ERROR = 0.1  # ... unless within 10 % of whole items (catalogues understate the spread)
SET_MAX_Z = 3.0  # several products are only believed on a close fit
SHAPE_MAX = 30.0  # nor anything whose plates moved nothing like it (right ones stay under ~7)
NOISE_SHARE = 0.5  # a change below half the lightest product around is noise, never an item
NOISE_SIGMAS = 4.0  # the noise floor (in sigmas of the total) where no product stands around
DECISIVE = 4.0  # the cost margin (likelihood ratio ~7) at which one kind of evidence decided alone
KEPT = 6  # candidates kept for staff and the report
STAGES: tuple[Evidence, ...] = ("weight", "planogram", "vision")


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int  # + taken, - put back
    misplaced: bool = False  # a put-back of a product that stands neither on nor next to these plates
    evidence: Evidence = "weight"


@dataclass(frozen=True)
class Candidate:
    """One hypothesis with its cost terms (lower is better) and its share of the likelihood."""

    lines: Lines
    expected_g: float  # signed, like the event
    weight: float
    planogram: float
    complexity: float
    vision: float
    z: float  # the weight misfit in standard deviations
    fits: bool  # the weight is close enough to believe it at all
    near: bool = True  # every product of it stands on or next to the moved plates
    share: float = 0.0

    @property
    def cost(self) -> float:
        return self.weight + self.planogram + self.complexity + self.vision


@dataclass(frozen=True)
class Explanation:
    verdict: Verdict
    lines: tuple[Line, ...]
    confidence: float
    candidates: tuple[Candidate, ...]  # best first, at most KEPT
    total_g: float
    plate_changes: dict[str, float]
    centroid: float | None  # the plate position (index on its shelf) the weight left from
    noise_floor_g: float

    @property
    def explained(self) -> bool:
        return self.verdict == "explained"

    @property
    def cost(self) -> float:
        """The chosen hypothesis's cost (lower fits better); infinite when none was chosen."""
        if not self.explained:
            return math.inf
        return min((c.cost for c in self.candidates if c.fits), default=math.inf)


@dataclass(frozen=True)
class _Shelf:
    index: dict[str, int]  # plate -> position on the shelf
    near: frozenset[str]  # the moved plates and their neighbours


def _shelf(layout: StoreLayout, changes: dict[str, float]) -> _Shelf:
    main = max(changes, key=lambda p: (abs(changes[p]), p))
    plates = layout.shelves[layout.plates[main].shelf_id][1].plates
    index = {p: i for i, p in enumerate(plates)}
    moved = [index[p] for p in changes if p in index]
    return _Shelf(index, frozenset(p for p, i in index.items() if any(abs(i - j) <= 1 for j in moved)))


def _centroid(shelf: _Shelf, changes: dict[str, float]) -> float | None:
    """The plate position (index on its shelf) the weight left from (or came to), for people."""
    w = {shelf.index[p]: abs(d) for p, d in changes.items() if p in shelf.index}
    mass = sum(w.values())
    return round(sum(i * v for i, v in w.items()) / mass, 3) if mass > 0 else None


def _span(layout: StoreLayout, shelf: _Shelf, sku: str) -> tuple[int, ...]:
    return tuple(sorted(shelf.index[p] for p in layout.plates_of_sku.get(sku, []) if p in shelf.index))


def _stands_near(layout: StoreLayout, shelf: _Shelf, sku: str) -> bool:
    return any(p in shelf.near for p in layout.plates_of_sku.get(sku, []))


def _local(layout: StoreLayout, shelf: _Shelf) -> dict[str, int]:
    """Products on or next to the moved plates, each of which may have been taken."""
    local = {layout.sku_on_plate[p] for p in shelf.near if p in layout.sku_on_plate}
    return {s: MAX_QUANTITY for s in sorted(local) if s in layout.products}


def _held(layout: StoreLayout, cart: dict[str, int] | None) -> dict[str, int]:
    """Products in the cart, each of which may have been put back (as many as are held)."""
    return {
        s: min(q, MAX_QUANTITY) for s, q in sorted((cart or {}).items()) if q > 0 and s in layout.products
    }


def _two_way(changes: dict[str, float], lightest_g: float) -> bool:
    """Some plates gained and others lost more than coupling or a hand's last touch leaves: an item
    put back and another taken in one interaction."""
    gained = max((d for d in changes.values() if d > 0), default=0.0)
    lost = -min((d for d in changes.values() if d < 0), default=0.0)
    return min(gained, lost) >= max(TWO_WAY_MIN_G, TWO_WAY_SHARE * lightest_g)


def _hypotheses(
    layout: StoreLayout,
    pool: dict[str, int],
    sign: int,
    magnitude: float,
    most_products: int,
    mixed: tuple[dict[str, int], dict[str, int]] | None,
) -> list[Change]:
    """Signed changes (sku, items: - taken, + put back) that could make the event."""
    out: list[Change] = []
    for sku, cap in pool.items():
        q0 = round(magnitude / layout.products[sku].unit_weight_g)
        out += [((sku, sign * q),) for q in range(max(1, q0 - 1), min(cap, q0 + 1) + 1)]
    for k in range(2, most_products + 1):
        for skus in combinations(pool, k):
            counts = [range(1, min(pool[s], SET_QUANTITY[k]) + 1) for s in skus]
            out += [tuple((s, sign * q) for s, q in zip(skus, qs, strict=True)) for qs in product(*counts)]
    if mixed is not None:
        taken, held = mixed
        for a, b in product(taken, held):
            if a == b:
                continue
            for qa, qb in product(range(1, MIXED_QUANTITY + 1), repeat=2):
                if qa <= taken[a] and qb <= held[b]:
                    out.append(tuple(sorted(((a, -qa), (b, qb)))))
        if sign < 0:  # some taken and one or two of them put straight back, not where they stood
            for a in taken:
                out += [((a, -qa), (a, qb)) for qa in range(2, MIXED_QUANTITY + 2) for qb in range(1, qa)
                        if qb <= MIXED_QUANTITY - 1]
    return out


def _net(lines: Change) -> Change:
    """Items of each product, whatever went out and came back in the interaction."""
    net: dict[str, int] = {}
    for sku, q in lines:
        net[sku] = net.get(sku, 0) + q
    return tuple(sorted((s, q) for s, q in net.items() if q))


class _Scorer:
    """Cost terms of hypotheses for one event."""

    def __init__(
        self,
        layout: StoreLayout,
        shelf: _Shelf,
        changes: dict[str, float],
        total_g: float,
        noise_g: float,
        noise_total: float,
        vision: dict[str, float],
        free_products: int,
        blind: frozenset[int] = frozenset(),
        weighed: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.layout, self.shelf, self.total_g = layout, shelf, total_g
        self.weighed = weighed or {}
        self.blind = blind
        self.noise_g, self.noise_total, self.vision = noise_g, noise_total, vision
        self.free_products = free_products
        self.expect_seen: dict[str, float] = {}  # products seen that such an event would move
        self.observed = [0.0] * len(shelf.index)
        for p, d in changes.items():
            if p in shelf.index:
                self.observed[shelf.index[p]] += d
        gained = [i for i, d in enumerate(self.observed) if d > 0]
        self.landing = tuple(sorted(gained, key=lambda i: -self.observed[i])[:2]) or (0,)

    def score(self, moves: Change) -> Candidate | None:
        """``moves``: what went out and came back; a product in it twice was taken and partly put
        straight back (its net is the line, its two moves shape the plates)."""
        lines = _net(moves)
        if not lines:
            return None
        products = [self.layout.products[s] for s, _ in lines]
        masses = [q * p.unit_weight_g for (_, q), p in zip(lines, products, strict=True)]
        # What a plate the node could not read would have shown is missing from the total: the
        # coupling it took from a neighbour.
        seen_share = [self._seen_share(s) for s, _ in lines]
        expected = sum(m * f for m, (f, _) in zip(masses, seen_share, strict=True))
        var = (
            sum(
                abs(q) * (p.unit_weight_g * max(p.weight_std_g / p.unit_weight_g, SIGMA_REL_MIN)) ** 2
                for (_, q), p in zip(lines, products, strict=True)
            )
            + sum(abs(m) * sd for m, (_, sd) in zip(masses, seen_share, strict=True)) ** 2
        )
        z = (self.total_g - expected) / math.sqrt(self.noise_total**2 + var)
        if len(moves) == 1 and moves[0][1] == 1 and self.weighed.get(moves[0][0]):
            # The very item put back: what it weighed when taken, measured twice by the plates.
            f, sd = seen_share[0][0], math.sqrt(2.0) * self.noise_total
            z = min([z, *((self.total_g - w * f) / sd for w in self.weighed[moves[0][0]])], key=abs)
        several = len(lines) > 1
        if several and abs(z) > SET_MAX_Z:
            return None  # not worth listing: a set is never believed on a loose fit
        fits = abs(z) <= MAX_Z or abs(self.total_g - expected) / abs(expected) <= MAX_RELATIVE_ERROR
        top_seen = max((self.vision.get(s, 0.0) for s in self.vision), default=0.0)
        seen = sum(
            abs(m) * (top_seen - self.vision.get(s, 0.0)) for (s, _), m in zip(lines, masses, strict=True)
        )
        mixed = len({q > 0 for _, q in moves}) > 1
        planogram = self._planogram(moves)
        return Candidate(
            lines=tuple((s, -q) for s, q in lines),  # a weight loss is a take
            expected_g=round(expected, 1),
            weight=z * z if abs(z) <= HUBER_Z else HUBER_Z * (2 * abs(z) - HUBER_Z),
            planogram=planogram,
            complexity=EXTRA_PRODUCT_COST * max(0, len(lines) - self.free_products)
            + (MIXED_COST if mixed else 0.0),
            vision=VISION_GAIN * seen / sum(abs(m) for m in masses)
            + VISION_MISS * sum(v for s, v in self.expect_seen.items() if s not in {sku for sku, _ in lines}),
            z=z,
            fits=(several or fits) and planogram <= SHAPE_MAX,
            near=all(_stands_near(self.layout, self.shelf, s) for s, q in lines if q < 0),
        )

    def _seen_share(self, sku: str) -> tuple[float, float]:
        """The share of ``sku``'s weight the readable plates show, and its sd: all but the coupling
        onto blind plates beside its own. (A pick from a blind plate itself shows only as coupling,
        5-25 % of it, which cannot count items: the camera's business, service/vision_picks.py.)"""
        own = set(_span(self.layout, self.shelf, sku))
        beside = {i + d for i in own for d in (-1, 1) if 0 <= i + d < len(self.shelf.index)} - own
        blind = len(beside & self.blind)
        return 1.0 - COUPLING_MEAN * blind, COUPLING_SD * blind

    def _planogram(self, lines: Change) -> float:
        """The per-plate shape (store_server.domain.shelf_shape): a take from where its product
        stands; a put-back there too, or (at ``MISPLACED_COST``) on a plate that gained."""
        options: list[list[tuple[tuple[int, ...], float]]] = []
        for sku, q in lines:
            own = _span(self.layout, self.shelf, sku)
            here = [(own, 0.0)] if own else []
            if q > 0:  # returned anywhere is possible, at a price
                here += [((i,), MISPLACED_COST) for i in self.landing if (i,) != own]
            options.append(here or [((self.landing[0],), MISPLACED_COST)])
        best = math.inf
        for choice in product(*options):
            sources = [
                Source(q * unit, plates, abs(q), unit)
                for (sku, q), (plates, _) in zip(lines, choice, strict=True)
                if (unit := self.layout.products[sku].unit_weight_g)
            ]
            cost = fit(self.observed, sources, self.noise_g, self.blind).cost + sum(
                extra for _, extra in choice
            )
            best = min(best, cost)
        return best


def _decider(best: Candidate, ranked: list[Candidate], line: tuple[str, int], with_vision: bool) -> Evidence:
    """The first kind of evidence that, added to the ones before, put ``line`` ahead of every
    hypothesis without it by ``DECISIVE``; failing that, the one that gained it most."""
    others = [c for c in ranked if line not in c.lines]
    if not others:
        return "weight"

    def margin(stage: int) -> float:
        def part(c: Candidate) -> float:
            return (
                c.weight
                + c.complexity
                + (c.planogram if stage >= 1 else 0.0)
                + (c.vision if stage >= 2 else 0.0)
            )

        return min(part(c) for c in others) - part(best)

    stages = STAGES if with_vision else STAGES[:2]
    margins = [margin(i) for i in range(len(stages))]
    for stage, m in zip(stages, margins, strict=True):
        if m >= DECISIVE:
            return stage
    gains = [margins[0], *(b - a for a, b in zip(margins, margins[1:], strict=False))]
    return stages[max(range(len(stages)), key=lambda i: (gains[i], -i))]


def explain(
    layout: StoreLayout,
    plate_changes: dict[str, float],
    total_g: float,
    noise_g: float,
    cart: dict[str, int] | None = None,
    vision: dict[str, float] | None = None,
    shoppers: int = 1,
    blind: Collection[str] = (),
    weighed: Mapping[str, Sequence[float]] | None = None,
) -> Explanation:
    """Explain a weight event: ``plate_changes`` (plate -> grams), its shelf total ``total_g``
    (negative: taken), the plates' noise, the shopper's ``cart`` (put-backs come from it), camera
    scores ``vision`` (sku -> 0..1), if any, how many ``shoppers`` stood within reach, and the
    ``blind`` plates beside it the node could not read (their coupled share is not in the total), and
    what single items of the cart's products ``weighed`` when taken (sku -> grams, one per item)."""
    changes = {p: float(d) for p, d in plate_changes.items() if p in layout.plates}
    sign, magnitude = (-1 if total_g < 0 else 1), abs(total_g)
    noise_total = math.sqrt(noise_g**2 * max(1, len(changes)) + 1.0)

    def verdict(
        v: Verdict, floor: float, centroid: float | None = None, ranked: tuple[Candidate, ...] = ()
    ) -> Explanation:
        return Explanation(v, (), 0.0, ranked[:KEPT], total_g, changes, centroid, floor)

    if not changes:
        return verdict("unexplained", NOISE_SIGMAS * noise_total)
    shelf = _shelf(layout, changes)
    taken, held = _local(layout, shelf), _held(layout, cart)
    pool = taken if sign < 0 else held
    around = set(taken) | set(pool)
    units = [layout.products[s].unit_weight_g for s in around if s in layout.products]
    floor = NOISE_SHARE * min(units) if units else NOISE_SIGMAS * noise_total
    if magnitude < floor:
        return verdict("noise", floor)
    seen = {s: min(1.0, max(0.0, float(v))) for s, v in (vision or {}).items()}
    free = max(1, shoppers) if sign < 0 else 1  # put-backs come out of one cart
    unread = frozenset(shelf.index[p] for p in blind if p in shelf.index and p not in changes)
    scorer = _Scorer(layout, shelf, changes, total_g, noise_g, noise_total, seen, free, unread, weighed)
    # A product seen in a hand at these plates and left out of a hypothesis counts against it.
    scorer.expect_seen = {s: v for s, v in seen.items() if s in pool}
    most = max(SET_QUANTITY) if sign < 0 else PUT_BACK_PRODUCTS

    def scored_of(hypotheses: list[Change]) -> list[Candidate]:
        return [c for h in hypotheses if (c := scorer.score(h)) is not None]

    scored = scored_of(_hypotheses(layout, pool, sign, magnitude, most, None))
    if taken and (_two_way(changes, min(units)) or not any(c.fits and abs(c.z) <= SET_MAX_Z for c in scored)):
        scored += scored_of(_hypotheses(layout, {}, sign, magnitude, 0, (taken, held)))
    scored.sort(key=lambda c: (c.cost, c.lines))
    best_of: dict[Lines, Candidate] = {}
    for c in scored:  # the best way to each net change (taken, or taken and partly put straight back)
        best_of.setdefault(c.lines, c)
    scored = list(best_of.values())
    if scored:
        likelihood = [math.exp(-(c.cost - scored[0].cost) / 2) for c in scored]
        scored = [
            replace(c, share=round(w / sum(likelihood), 4)) for c, w in zip(scored, likelihood, strict=True)
        ]
    centroid = _centroid(shelf, changes)
    fitting = [c for c in scored if c.fits]
    if not fitting:
        return verdict("unexplained", floor, centroid, tuple(scored))
    best = fitting[0]
    confidence = best.share * (3.0 / abs(best.z) if abs(best.z) > 3.0 else 1.0)
    lines = tuple(
        Line(
            sku,
            q,
            q < 0 and not _stands_near(layout, shelf, sku),
            _decider(best, scored, (sku, q), bool(seen)),
        )
        for sku, q in best.lines
    )
    return Explanation(
        "explained", lines, round(confidence, 4), tuple(scored[:KEPT]), total_g, changes, centroid, floor
    )
