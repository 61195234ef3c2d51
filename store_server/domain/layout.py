"""The store layout: gondolas, shelves, plates, planogram, catalog, cameras and gates.

One YAML file describes a store. It is validated with ``extra="forbid"`` so a misspelt key is an
error, and :func:`load_layout` turns every error into a message naming the file, the key and the fix.
Geometry is in metres on the store floor: x to the east, y to the north, origin at a corner.
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Metres = Annotated[float, Field(ge=0, le=1000)]


class _Config(BaseModel):
    # A NaN in a layout (a homography, a plate position) would only fail later, far from its cause.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Product(_Config):
    sku: Id
    name: Annotated[str, Field(min_length=1)]
    barcode: Annotated[str, Field(pattern=r"^[0-9]{8,14}$")]
    unit_weight_g: Annotated[float, Field(gt=0)]
    weight_std_g: Annotated[float, Field(ge=0)] = 2.0
    price_cents: Annotated[int, Field(ge=0)]
    tax_class: Id = "standard"


class Shelf(_Config):
    id: Id
    level: Annotated[int, Field(ge=1, le=20)]
    plates: Annotated[list[Id], Field(min_length=1)]


class Gondola(_Config):
    """A straight run of shelves. Shoppers stand on its ``facing`` side; plates split its length evenly."""

    id: Id
    x_m: Metres
    y_m: Metres
    length_m: Annotated[float, Field(gt=0, le=100)]
    depth_m: Annotated[float, Field(gt=0, le=5)] = 0.6
    axis: Literal["x", "y"] = "x"
    facing: Literal["north", "south", "east", "west"] = "south"
    node_id: Id | None = None
    shelves: Annotated[list[Shelf], Field(min_length=1)]

    @model_validator(mode="after")
    def _facing_matches_axis(self) -> Gondola:
        ok = {"x": ("north", "south"), "y": ("east", "west")}[self.axis]
        if self.facing not in ok:
            raise ValueError(f"a gondola along axis {self.axis} faces {' or '.join(ok)}")
        return self

    def footprint(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max) of the gondola on the floor."""
        if self.axis == "x":
            return (self.x_m, self.y_m, self.x_m + self.length_m, self.y_m + self.depth_m)
        return (self.x_m, self.y_m, self.x_m + self.depth_m, self.y_m + self.length_m)

    def plate_front(self, index: int, count: int) -> tuple[float, float]:
        """Floor point at the front edge of plate ``index`` of ``count`` (where a shopper reaches in)."""
        x0, y0, x1, y1 = self.footprint()
        along = (index + 0.5) / count * self.length_m
        if self.axis == "x":
            return (self.x_m + along, y0 if self.facing == "south" else y1)
        return (x0 if self.facing == "west" else x1, self.y_m + along)


class PlanogramEntry(_Config):
    sku: Id
    plates: Annotated[list[Id], Field(min_length=1)]
    stock: Annotated[int, Field(ge=0)] = 10


class Zone(_Config):
    x_min: Metres
    y_min: Metres
    x_max: Metres
    y_max: Metres

    @model_validator(mode="after")
    def _ordered(self) -> Zone:
        if self.x_max <= self.x_min or self.y_max <= self.y_min:
            raise ValueError("x_max must exceed x_min and y_max must exceed y_min")
        return self

    def contains(self, x: float, y: float, margin: float = 0.0) -> bool:
        return (
            self.x_min - margin <= x <= self.x_max + margin
            and self.y_min - margin <= y <= self.y_max + margin
        )

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.x_min + self.x_max) / 2, (self.y_min + self.y_max) / 2)


class Gate(_Config):
    id: Id
    direction: Literal["entry", "exit"]
    zone: Zone
    node_id: Id | None = None


class Camera(_Config):
    """A camera and its floor calibration: a 3x3 homography from image pixels to floor metres."""

    id: Id
    kind: Literal["ceiling", "shelf"] = "ceiling"
    node_id: Id | None = None
    image_size: tuple[int, int] = (640, 480)
    homography: Annotated[list[list[float]], Field(min_length=3, max_length=3)]

    @model_validator(mode="after")
    def _square(self) -> Camera:
        if any(len(row) != 3 for row in self.homography):
            raise ValueError("homography must be 3 rows of 3 numbers")
        return self

    def to_floor(self, u: float, v: float) -> tuple[float, float]:
        h = self.homography
        w = h[2][0] * u + h[2][1] * v + h[2][2]
        return ((h[0][0] * u + h[0][1] * v + h[0][2]) / w, (h[1][0] * u + h[1][1] * v + h[1][2]) / w)


class Floor(_Config):
    width_m: Annotated[float, Field(gt=0, le=1000)]
    depth_m: Annotated[float, Field(gt=0, le=1000)]


class PlateInfo(BaseModel):
    """Where a plate is, derived from its gondola (not part of the YAML)."""

    model_config = ConfigDict(frozen=True)
    id: str
    gondola_id: str
    shelf_id: str
    index: int
    x_m: float
    y_m: float


class StoreLayout(_Config):
    store_id: Id
    name: Annotated[str, Field(min_length=1)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"
    tax_rates: dict[Id, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: {"standard": 0.0}
    )
    floor: Floor
    gondolas: Annotated[list[Gondola], Field(min_length=1)]
    catalog: Annotated[list[Product], Field(min_length=1)]
    planogram: list[PlanogramEntry]
    cameras: list[Camera] = Field(default_factory=list)
    gates: Annotated[list[Gate], Field(min_length=1)]

    @model_validator(mode="after")
    def _references_resolve(self) -> StoreLayout:
        _unique("gondolas", [g.id for g in self.gondolas])
        _unique("catalog", [p.sku for p in self.catalog])
        _unique("gates", [g.id for g in self.gates])
        _unique("cameras", [c.id for c in self.cameras])
        shelf_ids = [s.id for g in self.gondolas for s in g.shelves]
        _unique("shelves", shelf_ids)
        plate_ids = [p for g in self.gondolas for s in g.shelves for p in s.plates]
        _unique("plates", plate_ids)
        skus = {p.sku for p in self.catalog}
        known_plates = set(plate_ids)
        used: dict[str, str] = {}
        for i, entry in enumerate(self.planogram):
            if entry.sku not in skus:
                raise ValueError(f"planogram[{i}].sku {entry.sku!r} is not in the catalog")
            for plate in entry.plates:
                if plate not in known_plates:
                    raise ValueError(f"planogram[{i}].plates: plate {plate!r} is not on any shelf")
                if plate in used:
                    raise ValueError(f"planogram[{i}].plates: plate {plate!r} already holds {used[plate]!r}")
                used[plate] = entry.sku
        for product in self.catalog:
            if product.tax_class not in self.tax_rates:
                raise ValueError(
                    f"catalog sku {product.sku!r}: tax_class {product.tax_class!r} is not in tax_rates"
                )
        if not any(g.direction == "entry" for g in self.gates):
            raise ValueError("gates: the store needs at least one entry gate")
        if not any(g.direction == "exit" for g in self.gates):
            raise ValueError("gates: the store needs at least one exit gate")
        return self

    # Derived look-ups, computed once per layout.
    @cached_property
    def products(self) -> dict[str, Product]:
        return {p.sku: p for p in self.catalog}

    @cached_property
    def plates(self) -> dict[str, PlateInfo]:
        out: dict[str, PlateInfo] = {}
        for g in self.gondolas:
            for s in g.shelves:
                for i, plate_id in enumerate(s.plates):
                    x, y = g.plate_front(i, len(s.plates))
                    out[plate_id] = PlateInfo(
                        id=plate_id, gondola_id=g.id, shelf_id=s.id, index=i, x_m=x, y_m=y
                    )
        return out

    @cached_property
    def sku_on_plate(self) -> dict[str, str]:
        return {plate: e.sku for e in self.planogram for plate in e.plates}

    @cached_property
    def plates_of_sku(self) -> dict[str, list[str]]:
        return {e.sku: list(e.plates) for e in self.planogram}

    @cached_property
    def shelves(self) -> dict[str, tuple[Gondola, Shelf]]:
        return {s.id: (g, s) for g in self.gondolas for s in g.shelves}

    def neighbours(self, plate_id: str) -> list[str]:
        """The plates beside ``plate_id`` on its shelf (none for an unknown plate)."""
        info = self.plates.get(plate_id)
        if info is None:
            return []
        row = self.shelves[info.shelf_id][1].plates
        return [row[i] for i in (info.index - 1, info.index + 1) if 0 <= i < len(row)]

    def gate(self, gate_id: str) -> Gate | None:
        return next((g for g in self.gates if g.id == gate_id), None)

    def plate_centroid(self, plate_ids: list[str]) -> tuple[float, float]:
        pts = [self.plates[p] for p in plate_ids if p in self.plates]
        if not pts:
            raise KeyError(f"none of the plates {plate_ids} are in the layout")
        return (sum(p.x_m for p in pts) / len(pts), sum(p.y_m for p in pts) / len(pts))

    def walkable(self, x: float, y: float, clearance: float = 0.0) -> bool:
        if not (0 <= x <= self.floor.width_m and 0 <= y <= self.floor.depth_m):
            return False
        for g in self.gondolas:
            x0, y0, x1, y1 = g.footprint()
            if x0 - clearance < x < x1 + clearance and y0 - clearance < y < y1 + clearance:
                return False
        return True


def _unique(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise ValueError(f"{what}: id {item!r} appears more than once; ids must be unique")
        seen.add(item)


class LayoutError(ValueError):
    """A store file that cannot be used; the message names the file, the key and the fix."""


FIXES = {
    "missing": "add it",
    "string_pattern_mismatch": "use letters, digits and _ . : - only",
    "literal_error": "use one of the values listed",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than_equal": "use a smaller value",
    "float_parsing": "write a number",
    "int_parsing": "write a whole number",
    "too_short": "add at least one entry",
}


def explain_errors(
    source: str, what: str, exc: ValidationError, doc: str, fixes: dict[str, str] | None = None
) -> str:
    """Every validation error of a YAML file as ``key: reason -> fix: ...``, under the file's name.

    Shared by every strictly validated config file (store layouts, edge and camera nodes); ``doc``
    is where the expected form is described, ``fixes`` adds fixes for that file's own error types.
    """
    known = {**FIXES, "extra_forbidden": f"remove it or check its spelling against {doc}", **(fixes or {})}
    lines = [f"{source}: {exc.error_count()} problem(s) in the {what}"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        fix = known.get(err["type"], f"see {doc} for the expected form")
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  - {key}: {msg} -> fix: {fix}")
    return "\n".join(lines)


def parse_layout(data: Any, source: str = "<layout>") -> StoreLayout:
    if not isinstance(data, dict):
        raise LayoutError(f"{source}: the file must hold a mapping of keys (store_id, gondolas, ...)")
    try:
        return StoreLayout.model_validate(data)
    except ValidationError as exc:
        raise LayoutError(explain_errors(source, "store layout", exc, "docs/STORE_CONFIG.md")) from None


def load_layout(path: str | Path) -> StoreLayout:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LayoutError(f"{path}: no such file; pass the path of a store YAML file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise LayoutError(f"{path}: not valid YAML{where}: fix the syntax ({exc})") from None
    return parse_layout(data, str(path))


def distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])
