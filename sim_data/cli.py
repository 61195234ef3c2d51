"""``walkout sim``: simulate a scenario in a store and write a dataset directory.

The root CLI (store_server/cli.py) registers :func:`sim_command`; this module owns only the command so
the simulator stays usable without the server's dependencies.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from sensors.signal_profile import PROFILES
from sim_data.dataset import DatasetError, SimMessage, write_dataset
from sim_data.importers.autocheckout_writer import AutoCheckoutWriteError, write_autocheckout
from sim_data.scenarios import CATALOG, ScenarioError
from sim_data.simulator import simulate
from store_server.domain.layout import LayoutError, load_layout

DEMO_STORE = Path(__file__).parent / "stores" / "demo.yaml"
FORMATS = ("walkout", "autocheckout")
console = Console()
err_console = Console(stderr=True)


def _fail(message: str, hint: str) -> None:
    err_console.print(f"[red]error:[/red] {message}")
    err_console.print(f"next: {hint}")
    raise typer.Exit(2)


def _print_catalog() -> None:
    table = Table(title="Walkout scenarios")
    for col in ("name", "status", "shoppers", "duration", "description"):
        table.add_column(col, overflow="fold")
    for s in CATALOG:
        duration = f"{s.default_duration_s:g} s" if s.default_duration_s else "until all left"
        status = "[green]built[/green]" if s.built else "[yellow]planned[/yellow]"
        table.add_row(s.name, status, str(s.default_shoppers), duration, s.description)
    console.print(table)
    console.print(
        "fidelity: event (what edge nodes publish); signal (raw 60 Hz load-cell samples instead of "
        "weight events); --video also renders the ceiling camera; --format autocheckout writes the "
        "AiFi AutoCheckout file layout (signal fidelity)"
    )


def sim_command(
    scenario: Annotated[str, typer.Option(help="scenario name; see --list")] = "basic",
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same dataset")] = 7,
    shoppers: Annotated[int | None, typer.Option(help="number of shoppers (default: the scenario's)")] = None,
    duration: Annotated[
        float | None, typer.Option(help="arrival window in seconds; the run ends when everyone has left")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="dataset directory (default: datasets/sim-<scenario>-s<seed>)")
    ] = None,
    store: Annotated[Path, typer.Option(help="store layout YAML")] = DEMO_STORE,
    fidelity: Annotated[
        str, typer.Option(help="event: edge-level messages; signal: raw 60 Hz load-cell samples")
    ] = "event",
    video: Annotated[
        bool, typer.Option("--video", help="also render the ceiling camera: video/ceiling.avi + frame times")
    ] = False,
    format_: Annotated[str, typer.Option(
        "--format", help="walkout: a dataset; autocheckout: AiFi AutoCheckout files (weights/, products.csv, "
        "ground_truth.json) for `walkout import autocheckout`; implies --fidelity signal")] = "walkout",
    profile: Annotated[str, typer.Option(
        help=f"signal profile at --fidelity signal: {' or '.join(PROFILES)} (realistic: noise, coupling, "
        "ringing, hand pressure and item variation of real shelves; ideal: gentle signals)")] = "realistic",
    list_: Annotated[bool, typer.Option("--list", help="list the scenarios and exit")] = False,
) -> None:
    """Simulate shoppers in a store and write an event-level dataset (messages + ground truth)."""
    if list_:
        _print_catalog()
        return
    if format_ not in FORMATS:
        _fail(f"unknown format {format_!r}; expected one of {', '.join(FORMATS)}", "use --format walkout or "
              "--format autocheckout")
    if format_ == "autocheckout":
        if video:
            _fail("--video writes into a Walkout dataset; AutoCheckout files hold no video",
                  "drop --video, or use --format walkout")
        fidelity = "signal"  # the AutoCheckout layout holds raw load-cell signals only
    if profile not in PROFILES:
        _fail(f"unknown signal profile {profile!r}; expected one of {', '.join(PROFILES)}",
              "use --profile realistic (the default) or --profile ideal")
    out = out or Path("datasets") / f"{'ac' if format_ == 'autocheckout' else 'sim'}-{scenario}-s{seed}"
    try:
        layout = load_layout(store)
    except LayoutError as exc:
        _fail(str(exc), "fix the store file, or omit --store to use the demo store")
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"simulating {scenario!r} (seed {seed})", total=None)

        def advance(stage: str, done: int, total: int) -> None:
            progress.update(
                task, description=f"{scenario} (seed {seed}): {stage}", total=total, completed=done
            )

        try:
            result = simulate(
                layout,
                scenario,
                seed=seed,
                shoppers=shoppers,
                duration_s=duration,
                fidelity=fidelity,
                progress=advance,
                signal_profile=profile,
            )
        except ScenarioError as exc:
            _fail(str(exc), "run `walkout sim --list` and pick a built scenario (fidelity: event or signal)")
            return
        except ValueError as exc:
            _fail(str(exc), "check --shoppers and --duration")
            return
        total = len(result.messages)
        progress.update(task, description=f"writing {out}", total=total, completed=0)

        def counted() -> Iterator[SimMessage]:
            for i, message in enumerate(result.messages, start=1):
                if i % 1000 == 0 or i == total:
                    progress.update(task, completed=i)
                yield message

        manifest = {**result.manifest(), "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        try:
            if format_ == "autocheckout":
                path = write_autocheckout(out, layout, counted(), result.ground_truth, manifest).path
            else:
                path = write_dataset(out, manifest, store.read_text(), counted(), result.ground_truth)
        except (DatasetError, AutoCheckoutWriteError, OSError) as exc:
            _fail(str(exc), "choose another --out directory")
            return
        if video:
            from sim_data.render import render_run_video

            def frame(done: int, total: int) -> None:
                progress.update(task, description="rendering the ceiling camera", total=total, completed=done)

            try:
                render_run_video(
                    layout,
                    result.messages,
                    path / "video" / "ceiling.avi",
                    fps=10.0,
                    seed=seed,
                    progress=frame,
                )
            except ValueError as exc:
                _fail(str(exc), "add a ceiling camera to the store file, or drop --video")
                return
    truth = result.ground_truth
    picks = sum(1 for e in truth["events"] if e["kind"] == "pick")
    backs = sum(1 for e in truth["events"] if e["kind"] == "putback")
    wrong = len(truth["events"]) - picks - backs
    misplaced = f", {wrong} misplaced" if wrong else ""
    console.print(
        f"{len(truth['sessions'])} sessions, {total} messages ({picks} picks, {backs} put-backs{misplaced}, "
        f"{result.duration_s:.0f} s) -> {path}"
    )
    if format_ == "autocheckout":
        console.print(f"next: walkout import autocheckout --weights {path}/weights --products "
                      f"{path}/products.csv --ground-truth {path}/ground_truth.json --out {path}-imported",
                      highlight=False, soft_wrap=True)
