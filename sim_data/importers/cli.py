"""``walkout import autocheckout``: convert an AiFi AutoCheckout recording into a Walkout dataset.

The root CLI (store_server/cli.py) registers :func:`import_autocheckout_command`; this module owns only
the command, so the importer stays usable without the server's dependencies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from sim_data.dataset import DatasetError
from sim_data.importers.autocheckout import (
    FILE_PATTERN,
    AutoCheckoutError,
    ImportSummary,
    import_autocheckout,
)

console = Console()
err_console = Console(stderr=True)
SHOW = 10  # lines of each list (malformed rows, gaps, warnings) printed; the manifest keeps more


def _fail(message: str, hint: str) -> None:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    err_console.print(f"next: {hint}", highlight=False)
    raise typer.Exit(2)


def _print_list(title: str, lines: list[str], total: int, style: str) -> None:
    if not total:
        return
    console.print(f"[{style}]{title} ({total}):[/{style}]", highlight=False)
    for line in lines[:SHOW]:
        console.print(f"  - {line}", highlight=False, markup=False)
    if total > SHOW:
        console.print(f"  ... and {total - SHOW} more (see import_summary in manifest.json)")


def print_summary(summary: ImportSummary, out: Path) -> None:
    table = Table(title=f"AutoCheckout import -> {out}", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, value in (
        ("weight files", summary.weight_files),
        ("plates with samples", summary.plates),
        ("rows read", summary.rows),
        ("malformed rows skipped", summary.malformed_rows),
        ("rows out of order (sorted)", summary.out_of_order_rows),
        ("duplicate timestamps (last kept)", summary.duplicate_rows),
        ("gaps > 0.5 s (value held)", len(summary.gaps)),
        ("products on a shelf", summary.products_on_shelf),
        ("products not on a shelf (catalog only)", summary.products_off_shelf),
        ("product rows skipped", summary.product_rows_skipped),
        ("plates without a product", summary.plates_without_product),
        ("ground-truth sessions", summary.truth_sessions),
        ("duration", f"{summary.duration_s:.1f} s"),
        ("messages", summary.messages),
    ):
        table.add_row(label, str(value))
    console.print(table)
    skipped = summary.malformed_rows + summary.product_rows_skipped
    _print_list("skipped rows", summary.malformed, skipped, "yellow")
    _print_list("gaps", summary.gaps, len(summary.gaps), "yellow")
    _print_list("warnings", summary.warnings, len(summary.warnings), "yellow")


def import_autocheckout_command(
    weights: Annotated[Path, typer.Option(
        "--weights", help=f"folder of per-plate CSV files named {FILE_PATTERN} (rows unix_ts,grams)")],
    products: Annotated[Path, typer.Option(
        "--products", help="products CSV: Name,Gondola,Shelf,Plate,Weight,Price,Image")],
    out: Annotated[Path, typer.Option("--out", help="dataset directory to write")],
    ground_truth: Annotated[Path | None, typer.Option(
        "--ground-truth", help='optional JSON {"sessions": [{"items": {"<product Name>": qty}}]}')] = None,
) -> None:
    """Convert an AiFi AutoCheckout weight recording into a signal-level dataset (docs/AUTOCHECKOUT.md)."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=err_console, transient=True) as progress:
        task = progress.add_task("reading weight files", total=None)

        def report(stage: str, done: int, total: int) -> None:
            progress.update(task, description=stage, completed=done, total=total)

        try:
            result = import_autocheckout(weights, products, out, ground_truth, progress=report)
        except AutoCheckoutError as exc:
            progress.stop()
            _fail(str(exc), exc.hint)
            return
        except (DatasetError, OSError) as exc:
            progress.stop()
            _fail(str(exc), "choose another --out directory (a new or empty one, or an existing dataset)")
            return
    print_summary(result.summary, result.path)
    console.print(f"next: walkout run {result.path}", highlight=False)
