"""``walkout record``, ``walkout replay`` and ``walkout evaluate``: dataset tools of the command line.

The root CLI (store_server/cli.py) registers these typer-annotated functions; this module owns only the
commands, so the tools stay usable without the store server's HTTP and database dependencies.
Errors print what to do next and exit with code 2; Ctrl-C exits with 130 after a clean stop.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

logger = logging.getLogger(__name__)
err_console = Console(stderr=True)

INTERRUPTED = 130  # the shell's exit code for a process stopped by SIGINT


def _fail(message: str) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def record_command(
    broker: Annotated[str, typer.Option(help="broker to record from: mqtt://user:pass@host:port")],
    out: Annotated[Path, typer.Option(help="dataset directory to write (replaced if it holds a dataset)")],
    store: Annotated[
        Path | None, typer.Option(help="store layout YAML of the recorded store (required)")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="stop after this many seconds (default: until Ctrl-C)")
    ] = None,
    prefix: Annotated[str, typer.Option(help="topic prefix to record: PREFIX/#")] = "walkout",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Record every message under PREFIX/# on a broker into a dataset (Ctrl-C stops and saves)."""
    _logging(verbose)
    from sim_data.dataset import DatasetError
    from sim_data.recorder import record

    bar = Progress(
        TextColumn("recording"),
        BarColumn(),
        TextColumn("{task.fields[count]} messages"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    task = bar.add_task("record", total=duration, count=0)

    def progress(count: int, elapsed: float) -> None:
        bar.update(task, completed=elapsed if duration else None, count=count)

    try:
        with bar:
            result = record(broker, out, duration, prefix, store, progress=progress)
    except (DatasetError, OSError) as exc:
        _fail(str(exc))
    if result.seq_gaps:
        err_console.print(
            f"[yellow]warning:[/yellow] {result.seq_gaps} messages are missing from the node sequences: "
            "they were lost before the recorder got them (a broker queue limit, or a node that dropped them)",
            highlight=False,
        )
    how = "stopped by Ctrl-C: " if result.interrupted else ""
    rejected = f", {result.rejected_count} non-JSON kept in rejected.jsonl" if result.rejected_count else ""
    err_console.print(
        f"{how}recorded {result.message_count} messages in {result.duration_s:.0f} s{rejected} "
        f"-> {result.path}",
        highlight=False,
    )


def replay_command(
    dataset: Annotated[Path, typer.Argument(help="dataset directory")],
    broker: Annotated[str, typer.Option(help="mqtt://user:pass@host:port")],
    speed: Annotated[float, typer.Option(help="1 = original pace, 10 = ten times faster")] = 1.0,
    max_speed: Annotated[bool, typer.Option("--max-speed", help="as fast as the broker takes it")] = False,
    loop: Annotated[
        bool, typer.Option("--loop", help="start over at the end, shifted in time with fresh ids")
    ] = False,
    from_message: Annotated[
        int, typer.Option("--from-message", min=0, help="skip the first N messages (resume a replay)")
    ] = 0,
    prefix: Annotated[
        str | None, typer.Option(help="publish under this topic prefix (default: the dataset's own)")
    ] = None,
    outage_timeout: Annotated[
        float,
        typer.Option(help="seconds to wait for a broker that went away before stopping", min=1),
    ] = 120.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Publish a dataset's messages to a broker, keeping their timing scaled by --speed.

    A broker restart does not stop it: it reconnects and goes on where it was."""
    _logging(verbose)
    from edge.mqtt import parse_broker_url
    from edge.publisher import Publisher
    from sim_data.dataset import Dataset, DatasetError
    from sim_data.replay import ReplayInterrupted, replay_dataset

    if not max_speed and speed <= 0:
        _fail("--speed must be positive (or use --max-speed)")
    try:
        data = Dataset.open(dataset)
        publisher = Publisher(
            parse_broker_url(broker),
            data.layout.store_id,
            f"walkout-replay-{time.time():.0f}",
            outage_timeout_s=outage_timeout,
        )
        publisher.connect()
    except (DatasetError, ConnectionError, ValueError) as exc:
        _fail(str(exc))
    total = int(data.manifest.get("message_count", 0))
    stop = threading.Event()

    def on_sigint(*_: Any) -> None:
        if stop.is_set():  # a second Ctrl-C: do not wait for the broker's acknowledgements
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    bar = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    task = bar.add_task("replay", total=total or None)

    def tick(n: int) -> None:
        if n % 100 and not (total and n % total == 0):
            return
        if total:
            done_loops, position = divmod(n, total)
            if loop:
                bar.update(task, description=f"loop {done_loops + 1}", completed=position)
            else:
                bar.update(task, completed=n)
        else:
            bar.update(task, completed=n)

    try:
        with bar:
            result = replay_dataset(
                data,
                publisher,
                speed=None if max_speed else speed,
                loops=None if loop else 1,
                from_message=from_message,
                prefix=prefix,
                stop=stop,
                on_message=tick,
            )
        publisher.close(offline=False)
    except ReplayInterrupted as exc:
        publisher.close(offline=False, timeout_s=1.0)
        _fail(f"{exc.reason}; resume with --from-message {exc.next_message}")
    finally:
        signal.signal(signal.SIGINT, previous)
    if result.stopped:
        err_console.print(
            f"stopped after {result.next_message} messages; resume with --from-message {result.next_message}",
            highlight=False,
        )
        raise typer.Exit(INTERRUPTED)
    err_console.print(f"published {result.published} messages to {publisher.address}", highlight=False)


def _read_receipts(path: Path) -> Any:
    where = "standard input" if str(path) == "-" else str(path)
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read the receipts file {where} ({exc})")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(
            f"the receipts file {where} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "save what the store server serves: curl -s 'http://127.0.0.1:8000/api/receipts?limit=1000' "
            "> receipts.json"
        )


def evaluate_command(
    dataset: Annotated[Path, typer.Argument(help="dataset directory with the ground truth")],
    receipts: Annotated[
        Path, typer.Option(help="JSON list of receipts from GET /api/receipts ('-' reads stdin)")
    ],
    report: Annotated[
        Path | None, typer.Option(help="also write a report: OUT.html (self-contained) or OUT.md")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Score a store server's receipts against a dataset's ground truth; print the metrics as JSON."""
    _logging(verbose)
    from sim_data.dataset import Dataset, DatasetError
    from sim_data.evaluate import ReceiptsError, evaluate_receipts

    if report is not None and report.suffix.lower() not in (".html", ".htm", ".md"):
        _fail(f"--report {report}: the file name must end in .html or .md")
    try:
        data = Dataset.open(dataset)
        truth = data.ground_truth
    except DatasetError as exc:
        _fail(str(exc))
    if not truth.get("sessions"):
        err_console.print(
            f"warning: {dataset} has no ground-truth sessions (a recording carries none); every receipt "
            "counts as unmatched",
            highlight=False,
        )
    try:
        metrics = evaluate_receipts(data.path.name, data.manifest, truth, _read_receipts(receipts))
    except ReceiptsError as exc:
        _fail(f"the receipts file {receipts} {exc}")
    sys.stdout.write(json.dumps(metrics, indent=2) + "\n")
    if report is not None:
        from sim_data.report import write_report

        try:
            write_report([metrics], report, [data])
        except (OSError, ValueError) as exc:
            _fail(f"cannot write the report {report} ({exc})")
        err_console.print(f"report -> {report}", highlight=False)
