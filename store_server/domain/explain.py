"""The joint explanation of one weight event: which products, how many, and on which evidence.

An event (one hand on one shelf, however many plates it moved) is explained as a whole. Hypotheses
are one product x 1..N items, or several products at once (a few of each: two, or three when several
shoppers reach into neighbouring plates at the same moment, which the shelf cannot tell apart); picks
come from the products on or next to the moved plates, put-backs from the shopper's cart. Each
hypothesis has a cost, chi-square like (likelihood ~ exp(-cost / 2)), the sum of:

(a) ``weight``: the shelf total against sum(q * unit), with variance noise^2 + sum(q * (unit * s)^2) and
    ``s`` = max(the product's own relative spread, ``SIGMA_REL_MIN``): real items vary about the catalogue;
(b) ``planogram``: where the weight left the shelf (the centroid of the per-plate deltas, in plate
    positions) against where the products stand: coupling onto the neighbours and items standing across
    two plates move the centroid by up to half a plate, hence ``POSITION_SD``; and ``PEAK_COST`` when
    none of the products stands on the plate that lost most (it is the item's own plate unless strong,
    one-sided coupling meets an item standing half across);
(c) ``complexity``: each product beyond the first pays ``EXTRA_PRODUCT_COST``, so a set needs real
    support; beyond the number of shoppers at the shelf, when several stood there (each takes what is
    in front of them);
(d) ``vision``: camera scores (sku -> 0..1) when given, against the best-seen candidate.

Each decided line says which of them decided it (``Line.evidence``). Pure and deterministic: a function
of the event, the layout, the cart, the camera scores and the number of shoppers at the shelf only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from itertools import combinations, product
from typing import Literal

from store_server.domain.layout import StoreLayout

Evidence = Literal["weight", "planogram", "vision"]
Verdict = Literal["explained", "unexplained", "noise"]
Lines = tuple[tuple[str, int], ...]  # (sku, quantity: + taken, - put back), sorted by sku

SIGMA_REL_MIN = 0.01  # real unit weights spread at least 1 % around the catalogue
POSITION_SD = 0.3  # plates: how far the centroid of one item's weight strays from its product
PEAK_COST = 3.0  # the plate that changed most is not one of the products' own
ABSENT_COST = 6.0  # per product none of whose plates moved at all (its own plate would have)
HUBER_Z = 3.0  # beyond this many sigmas the weight misfit counts linearly: real spreads have tails
EXTRA_PRODUCT_COST = 6.0  # two products must beat one by this much, three beat two
VISION_GAIN = 6.0  # cost of a candidate never seen when another one was seen for certain
MISPLACED_COST = 4.0  # shape cost of a put-back where its product does not stand
MAX_QUANTITY = 20
SET_QUANTITY = {2: 3, 3: 2}  # products in one event -> the most items of each
PUT_BACK_PRODUCTS = 2  # put-backs come from one cart: no three-product put-backs
MAX_Z = 5.0  # beyond this one product does not fit the weight ...
MAX_RELATIVE_ERROR = 0.1  # ... unless within 10 % of whole items (catalogues understate the spread)
SET_MAX_Z = 3.0  # several products are only believed on a close fit
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


@dataclass(frozen=True)
class _Shape:
    centroid: float  # the weighted mean plate position of the change
    var: float  # its variance from the plates' noise
    peaks: frozenset[int]  # the plates that changed most (several when they changed alike)
    moved: frozenset[int]  # every plate the event reports


def _shape(shelf: _Shelf, changes: dict[str, float], sign: int, noise_g: float) -> _Shape | None:
    w = {shelf.index[p]: sign * d for p, d in changes.items() if p in shelf.index}
    mass = sum(w.values())
    if mass <= 0:
        return None
    c = sum(i * v for i, v in w.items()) / mass
    top = max(w.values())
    peaks = frozenset(i for i, v in w.items() if v >= top - max(1e-6 * top, 1e-9))
    return _Shape(c, sum((i - c) ** 2 for i in w) * noise_g**2 / mass**2, peaks, frozenset(w))


def _span(layout: StoreLayout, shelf: _Shelf, sku: str) -> tuple[int, int] | None:
    at = [shelf.index[p] for p in layout.plates_of_sku.get(sku, []) if p in shelf.index]
    return (min(at), max(at)) if at else None


def _stands_near(layout: StoreLayout, shelf: _Shelf, sku: str) -> bool:
    return any(p in shelf.near for p in layout.plates_of_sku.get(sku, []))


def _pool(layout: StoreLayout, shelf: _Shelf, sign: int, cart: dict[str, int] | None) -> dict[str, int]:
    """Candidate products and how many items of each the event may be."""
    if sign < 0:
        local = {layout.sku_on_plate[p] for p in shelf.near if p in layout.sku_on_plate}
        return {s: MAX_QUANTITY for s in sorted(local) if s in layout.products}
    return {
        s: min(q, MAX_QUANTITY) for s, q in sorted((cart or {}).items()) if q > 0 and s in layout.products
    }


def _hypotheses(
    layout: StoreLayout, pool: dict[str, int], magnitude: float, most_products: int
) -> list[tuple[tuple[str, int], ...]]:
    out: list[tuple[tuple[str, int], ...]] = []
    for sku, cap in pool.items():
        q0 = round(magnitude / layout.products[sku].unit_weight_g)
        out += [((sku, q),) for q in range(max(1, q0 - 1), min(cap, q0 + 1) + 1)]
    for k in range(2, most_products + 1):
        for skus in combinations(pool, k):
            counts = [range(1, min(pool[s], SET_QUANTITY[k]) + 1) for s in skus]
            out += [tuple(zip(skus, qs, strict=True)) for qs in product(*counts)]
    return out


class _Scorer:
    """Cost terms of hypotheses for one event."""

    def __init__(
        self,
        layout: StoreLayout,
        shelf: _Shelf,
        shape: _Shape | None,
        sign: int,
        magnitude: float,
        noise_total: float,
        vision: dict[str, float],
        pool: dict[str, int],
        free_products: int,
    ) -> None:
        self.layout, self.shelf, self.shape, self.sign = layout, shelf, shape, sign
        self.magnitude, self.noise_total, self.vision = magnitude, noise_total, vision
        self.top_seen = max((vision.get(s, 0.0) for s in pool), default=0.0)
        self.free_products = free_products

    def score(self, lines: tuple[tuple[str, int], ...]) -> Candidate | None:
        products = [self.layout.products[s] for s, _ in lines]
        masses = [q * p.unit_weight_g for (_, q), p in zip(lines, products, strict=True)]
        expected = sum(masses)
        var = sum(
            q * (p.unit_weight_g * max(p.weight_std_g / p.unit_weight_g, SIGMA_REL_MIN)) ** 2
            for (_, q), p in zip(lines, products, strict=True)
        )
        z = (self.magnitude - expected) / math.sqrt(self.noise_total**2 + var)
        several = len(lines) > 1
        if several and abs(z) > SET_MAX_Z:
            return None  # not worth listing: a set is never believed on a loose fit
        fits = abs(z) <= MAX_Z or abs(self.magnitude - expected) / expected <= MAX_RELATIVE_ERROR
        seen = sum(
            m * (self.top_seen - self.vision.get(s, 0.0)) for (s, _), m in zip(lines, masses, strict=True)
        )
        return Candidate(
            lines=tuple((s, -self.sign * q) for s, q in lines),  # a weight loss is a take
            expected_g=round(self.sign * expected, 1),
            weight=z * z if abs(z) <= HUBER_Z else HUBER_Z * (2 * abs(z) - HUBER_Z),
            planogram=self._planogram(lines, masses),
            complexity=EXTRA_PRODUCT_COST * max(0, len(lines) - self.free_products),
            vision=VISION_GAIN * seen / expected,
            z=z,
            fits=several or fits,
            near=all(_stands_near(self.layout, self.shelf, s) for s, _ in lines),
        )

    def _planogram(self, lines: tuple[tuple[str, int], ...], masses: list[float]) -> float:
        if self.shape is None:
            return 0.0  # the plates moved every which way: the shape tells nothing
        spans = [_span(self.layout, self.shelf, s) for s, _ in lines]
        if any(sp is None for sp in spans):
            return MISPLACED_COST  # a product from another shelf: put back in the wrong place
        total = sum(masses)
        lo = sum(m * sp[0] for m, sp in zip(masses, spans, strict=True) if sp) / total
        hi = sum(m * sp[1] for m, sp in zip(masses, spans, strict=True) if sp) / total
        c, var = self.shape.centroid, self.shape.var
        d = max(0.0, lo - c, c - hi)
        cost = d * d / (POSITION_SD**2 + var)
        if not any(sp and sp[0] <= i <= sp[1] for sp in spans for i in self.shape.peaks):
            cost += PEAK_COST
        cost += ABSENT_COST * sum(
            1 for sp in spans if sp and not any(sp[0] <= i <= sp[1] for i in self.shape.moved)
        )
        # Returned on a wrong plate is possible, so a put-back's shape cost is bounded.
        return min(cost, MISPLACED_COST) if self.sign > 0 else cost


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
) -> Explanation:
    """Explain a weight event: ``plate_changes`` (plate -> grams), its shelf total ``total_g``
    (negative: taken), the plates' noise, the shopper's ``cart`` (put-backs come from it), camera
    scores ``vision`` (sku -> 0..1), if any, and how many ``shoppers`` stood within reach."""
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
    pool = _pool(layout, shelf, sign, cart)
    around = {layout.sku_on_plate[p] for p in shelf.near if p in layout.sku_on_plate} | set(pool)
    units = [layout.products[s].unit_weight_g for s in around if s in layout.products]
    floor = NOISE_SHARE * min(units) if units else NOISE_SIGMAS * noise_total
    if magnitude < floor:
        return verdict("noise", floor)
    shape = _shape(shelf, changes, sign, noise_g)
    seen = {s: min(1.0, max(0.0, float(v))) for s, v in (vision or {}).items()}
    free = max(1, shoppers) if sign < 0 else 1  # put-backs come out of one cart
    scorer = _Scorer(layout, shelf, shape, sign, magnitude, noise_total, seen, pool, free)
    most = max(SET_QUANTITY) if sign < 0 else PUT_BACK_PRODUCTS
    scored = [c for h in _hypotheses(layout, pool, magnitude, most) if (c := scorer.score(h)) is not None]
    scored.sort(key=lambda c: (c.cost, c.lines))
    if scored:
        likelihood = [math.exp(-(c.cost - scored[0].cost) / 2) for c in scored]
        scored = [
            replace(c, share=round(w / sum(likelihood), 4)) for c, w in zip(scored, likelihood, strict=True)
        ]
    centroid = round(shape.centroid, 3) if shape else None
    fitting = [c for c in scored if c.fits]
    if not fitting:
        return verdict("unexplained", floor, centroid, tuple(scored))
    best = fitting[0]
    confidence = best.share * (3.0 / abs(best.z) if abs(best.z) > 3.0 else 1.0)
    lines = tuple(
        Line(
            sku,
            q,
            sign > 0 and not _stands_near(layout, shelf, sku),
            _decider(best, scored, (sku, q), bool(seen)),
        )
        for sku, q in best.lines
    )
    return Explanation(
        "explained", lines, round(confidence, 4), tuple(scored[:KEPT]), total_g, changes, centroid, floor
    )
