"""`walkout config check FILE`: validate a store layout YAML and summarise it.

Errors come from :func:`load_layout` (file, key, fix). A file that loads can still be a poor store, so the
check also warns about what the fusion will find hard: catalog products that are on no plate, plates that
hold nothing, and neighbouring plates whose products weigh too alike to tell apart by weight alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from store_server.domain.layout import LayoutError, StoreLayout, load_layout

# Two unit weights closer than this many standard deviations are hard to tell apart by weight.
CONFUSABLE_SIGMAS = 3.0

EXIT_OK = 0
EXIT_INVALID = 2


def layout_warnings(layout: StoreLayout) -> list[str]:
    """Things that load but will hurt: each a one-line message naming what to look at."""
    warnings: list[str] = []
    on_planogram = {e.sku for e in layout.planogram}
    for product in layout.catalog:
        if product.sku not in on_planogram:
            warnings.append(
                f"catalog sku {product.sku!r} is on no plate (add it to the planogram or it cannot be taken)"
            )
    sku_on_plate = layout.sku_on_plate
    for gondola in layout.gondolas:
        for shelf in gondola.shelves:
            for plate in shelf.plates:
                if plate not in sku_on_plate:
                    warnings.append(f"plate {plate!r} (shelf {shelf.id!r}) holds no product on the planogram")
    warnings.extend(_confusable_neighbours(layout))
    warnings.extend(_off_floor(layout))
    return warnings


def _confusable_neighbours(layout: StoreLayout) -> list[str]:
    out: list[str] = []
    sku_on_plate = layout.sku_on_plate
    products = layout.products
    for gondola in layout.gondolas:
        for shelf in gondola.shelves:
            for left, right in zip(shelf.plates, shelf.plates[1:], strict=False):
                sku_a, sku_b = sku_on_plate.get(left), sku_on_plate.get(right)
                if sku_a is None or sku_b is None or sku_a == sku_b:
                    continue
                a, b = products[sku_a], products[sku_b]
                diff = abs(a.unit_weight_g - b.unit_weight_g)
                limit = CONFUSABLE_SIGMAS * max(a.weight_std_g, b.weight_std_g)
                if diff < limit:
                    out.append(
                        f"neighbouring plates {left!r} ({sku_a}, {a.unit_weight_g:g} g) and {right!r} "
                        f"({sku_b}, {b.unit_weight_g:g} g) on shelf {shelf.id!r} differ by {diff:g} g, less "
                        f"than {CONFUSABLE_SIGMAS:g} x weight_std ({limit:g} g): hard to tell apart by weight"
                    )
    return out


def _off_floor(layout: StoreLayout) -> list[str]:
    width, depth = layout.floor.width_m, layout.floor.depth_m
    out: list[str] = []
    for gondola in layout.gondolas:
        _, _, x1, y1 = gondola.footprint()
        if x1 > width or y1 > depth:
            out.append(f"gondola {gondola.id!r} reaches past the floor ({width:g} m x {depth:g} m)")
    for gate in layout.gates:
        if gate.zone.x_max > width or gate.zone.y_max > depth:
            out.append(f"gate {gate.id!r} zone reaches past the floor ({width:g} m x {depth:g} m)")
    return out


def summarise(layout: StoreLayout) -> str:
    shelves = sum(len(g.shelves) for g in layout.gondolas)
    entries = sum(1 for g in layout.gates if g.direction == "entry")
    lines = [
        f"store {layout.store_id!r} ({layout.name}), currency {layout.currency}",
        f"  gondolas:         {len(layout.gondolas)}",
        f"  shelves:          {shelves}",
        f"  plates:           {len(layout.plates)}",
        f"  products:         {len(layout.catalog)}",
        f"  planogram plates: {len(layout.sku_on_plate)}",
        f"  gates:            {len(layout.gates)} ({entries} entry, {len(layout.gates) - entries} exit)",
        f"  cameras:          {len(layout.cameras)}",
    ]
    return "\n".join(lines)


def check_store_file(path: Path) -> tuple[bool, str]:
    """Load ``path``; return (ok, report). The report is a summary plus warnings, or the error."""
    try:
        layout = load_layout(path)
    except LayoutError as exc:
        return False, str(exc)
    report = [f"{path}: OK", summarise(layout)]
    warnings = layout_warnings(layout)
    if warnings:
        report.append(f"{len(warnings)} warning(s):")
        report.extend(f"  - {w}" for w in warnings)
    else:
        report.append("no warnings")
    return True, "\n".join(report)


def config_check_command(
    file: Annotated[Path, typer.Argument(help="the store layout YAML to check", show_default=False)],
) -> None:
    """Validate a store layout YAML: print a summary and warnings, or what is wrong and how to fix it."""
    ok, report = check_store_file(file)
    typer.echo(report, err=not ok)
    raise typer.Exit(EXIT_OK if ok else EXIT_INVALID)
