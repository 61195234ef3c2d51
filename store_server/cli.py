"""The ``walkout`` command line: every subcommand a store operator or developer needs."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edge.cli import calibrate_command, edge_command
from edge.vision_cli import models_export_command, models_train_command, vision_command
from sim_data.importers.cli import import_autocheckout_command
from sim_data.tools_cli import evaluate_command, record_command, replay_command
from store_server.config_check import config_check_command
from store_server.maintenance_cli import maintenance_app
from store_server.settings import Settings

app = typer.Typer(
    help="Walkout: an open cashier-less store. Walk in, take, walk out, get charged.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check store configuration files.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
accounts_app = typer.Typer(help="Shopper accounts of the built-in ledger.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(accounts_app, name="accounts")
users_app = typer.Typer(
    help="People who sign in: staff and admins (shoppers sign up in the app).", no_args_is_help=True
)
app.add_typer(users_app, name="users")
import_app = typer.Typer(help="Import public recordings as Walkout datasets.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(maintenance_app, name="maintenance")
config_app.command("check")(config_check_command)
sensors_app = typer.Typer(help="Load cells of an edge node: calibration.", no_args_is_help=True)
app.add_typer(sensors_app, name="sensors")
sensors_app.command("calibrate", help="Tare a plate, or set its scale from a known weight.")(
    calibrate_command
)
models_app = typer.Typer(
    help="The detector model: train it on rendered frames, export ONNX.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
models_app.command("train")(models_train_command)
models_app.command("export")(models_export_command)
app.command(
    "edge-vision", help="Run camera nodes: YOLO detection, ByteTrack tracking, floor positions over MQTT."
)(vision_command)
app.command("edge", help="Run an edge node: read its shelves, detect weight events, publish them.")(
    edge_command
)

console = Console(stderr=True)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _sim_command() -> Any:
    from sim_data.cli import sim_command

    return sim_command


app.command("sim", help="Simulate shoppers in a store and write a dataset (event or signal fidelity).")(
    _sim_command()
)
import_app.command(
    "autocheckout", help="Convert an AiFi AutoCheckout weight recording into a signal-level dataset."
)(import_autocheckout_command)
app.command("record")(record_command)
app.command("replay")(replay_command)
app.command("evaluate")(evaluate_command)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database named by WALKOUT_DATABASE_URL."""
    from store_server.adapters.db import migrate

    settings = Settings()
    migrate(settings.database_url)
    console.print(f"database at {settings.database_url.split('@')[-1]} is up to date")


@accounts_app.command("open")
def accounts_open(
    token: str,
    name: Annotated[str, typer.Option(help="Shopper's name")] = "",
    email: Annotated[str, typer.Option(help="Where receipts go")] = "",
    balance_cents: Annotated[int, typer.Option(help="Opening balance in cents")] = 0,
    credit_limit_cents: Annotated[int, typer.Option(help="Credit allowed below zero, cents")] = 0,
) -> None:
    """Open (or update) a ledger account a shopper enters with."""
    from store_server.adapters.db import make_engine, make_session_factory, migrate
    from store_server.adapters.ledger import Accounts

    engine = make_engine(Settings().database_url)
    migrate(engine)
    Accounts(make_session_factory(engine)).open_account(
        token, name or token, email, balance_cents=balance_cents, credit_limit_cents=credit_limit_cents
    )
    console.print(f"account {token} is open")


@users_app.command("create-staff")
def users_create_staff(
    email: str,
    role: Annotated[str, typer.Option(help="staff or admin")] = "staff",
    name: Annotated[str, typer.Option(help="Shown on the dashboard")] = "",
) -> None:
    """Create a staff (or admin) account. The password comes from WALKOUT_NEW_PASSWORD or a prompt."""
    import os

    from store_server.bootstrap import bootstrap
    from store_server.domain.accounts import AccountError, Role

    if role not in ("staff", "admin"):
        _fail("--role is staff or admin")
    password = os.environ.get("WALKOUT_NEW_PASSWORD") or typer.prompt(
        "Password (10+ characters)", hide_input=True, confirmation_prompt=True
    )
    server = bootstrap(Settings())
    try:
        assert server.web is not None
        user = server.web.people.create_staff(email, name, password, Role(role))
    except AccountError as exc:
        _fail(str(exc))
    finally:
        server.stop()
    console.print(f"{user.role.value} account {user.email} created")


def _demo_people(server: Any) -> list[str]:
    """Demo accounts with fresh random passwords, shown once and kept in var/demo-credentials.txt."""
    from store_server.service.accounts import provision_demo_users

    assert server.web is not None
    lines = [
        f"{role.value:<8} {email}  password: {password}"
        for email, password, role in provision_demo_users(server.web.people)
    ]
    path = Path("var/demo-credentials.txt")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return lines


def _serve_http(server: Any, host: str, port: int) -> Any:
    import uvicorn

    from store_server.api.app import create_app

    config = uvicorn.Config(create_app(server), host=host, port=port, log_level="warning")
    return uvicorn.Server(config)


def _start_broker(settings: Settings) -> tuple[str, Any]:
    """The broker to use: WALKOUT_MQTT_URL, or an embedded one on 1883 (another port if 1883 is taken)."""
    if settings.mqtt_url:
        return settings.mqtt_url, None
    from store_server.adapters.embedded_broker import EmbeddedBroker, free_port, port_is_free

    port = 1883 if port_is_free(1883) else free_port()
    if port != 1883:
        console.print(f"port 1883 is taken (another broker?): the embedded broker uses {port}")
    broker = EmbeddedBroker(port=port).start()
    return broker.url, broker


@app.command()
def serve(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Run the store server: MQTT ingest, decisions, the HTTP API (settings from WALKOUT_*)."""
    _logging(verbose)
    from store_server.bootstrap import bootstrap
    from store_server.domain.layout import LayoutError

    settings = Settings()
    try:
        server = bootstrap(settings)
    except LayoutError as exc:
        _fail(
            f"{exc}\n(set WALKOUT_STORE_CONFIG to a valid store file; check it with 'walkout config check')"
        )
    broker_url, broker = _start_broker(settings)
    server.start_consumer(broker_url, protocol=4 if broker else settings.mqtt_protocol)
    http = _serve_http(server, settings.http_host, settings.http_port)
    console.print(
        f"store server for {server.layout.store_id}: API http://{settings.http_host}:{settings.http_port}"
        f"/docs, MQTT {broker_url}"
    )
    try:
        http.run()
    finally:
        server.stop()
        if broker:
            broker.stop()


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="HTTP port of the API")] = 8000,
    seed: Annotated[int, typer.Option(help="First simulation seed")] = 1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Everything in one process: broker, store server on SQLite, and simulated shoppers at 1x."""
    _logging(verbose)
    from edge.mqtt import parse_broker_url
    from edge.publisher import Publisher
    from sim_data.entry_signing import EntrySigner
    from sim_data.live import run_live_edge
    from sim_data.pipeline import provision_accounts
    from store_server.bootstrap import bootstrap

    # The demo's shopper tops up for free (there is no card provider); its simulated shoppers enter
    # on entry codes this server issues, like real ones (bare tokens stay off).
    settings = Settings(
        database_url=Settings().database_url.replace("walkout.db", "demo.db"),
        http_port=port,
        demo_free_top_ups=True,
    )
    server = bootstrap(settings)
    broker_url, broker = _start_broker(settings)
    server.start_consumer(broker_url, protocol=4 if broker else settings.mqtt_protocol).wait_connected()
    http = _serve_http(server, settings.http_host, settings.http_port)
    threading.Thread(target=http.run, name="http", daemon=True).start()

    def announce(session_id: str) -> None:
        with server.uow_factory() as uow:
            receipt = uow.receipts.for_session(session_id)
        if receipt:
            b = receipt.bill
            items = ", ".join(f"{ln.quantity}x {ln.name}" for ln in b.lines)
            console.print(
                f"receipt {receipt.id}: {items} = {b.total_cents / 100:.2f} {b.currency} "
                f"({receipt.payment_status})",
                markup=False,
            )

    server.processor.receipt_listeners.append(announce)
    publisher = Publisher(parse_broker_url(broker_url), server.layout.store_id, "walkout-demo-edge").connect()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    people = "\n    ".join(_demo_people(server))
    base = f"http://{settings.http_host}:{port}"
    console.print(
        f"Walkout demo: {server.layout.name}\n  Dashboard   {base}/staff\n  Shopper app {base}/app "
        f"(open it phone-sized)\n  API  {base}/docs\n  MQTT {broker_url}\n"
        f"  Sign in with (also in var/demo-credentials.txt):\n    {people}\n"
        "  receipts appear below as simulated shoppers leave (Ctrl-C stops)",
        markup=False,
    )
    assert server.web is not None
    try:
        run_live_edge(
            server.layout,
            publisher,
            stop,
            seed,
            lambda truth: provision_accounts(server, truth),
            sign=EntrySigner(server.web.people).messages,
        )
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        publisher.close(offline=False)
        http.should_exit = True
        server.stop()
        if broker:
            broker.stop()


@app.command("demo-edge")
def demo_edge(
    broker: Annotated[str, typer.Option(help="mqtt://user:pass@host:port")],
    seed: int = 1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Only the simulated edge: shoppers at 1x published to a broker (the store server runs elsewhere,
    with WALKOUT_ACCEPT_RAW_ACCOUNT_TOKENS=true: simulated shoppers enter on bare tokens)."""
    _logging(verbose)
    from edge.mqtt import parse_broker_url
    from edge.publisher import Publisher
    from sim_data.live import run_live_edge
    from store_server.domain.layout import load_layout

    settings = Settings()
    layout = load_layout(settings.store_config)
    try:
        publisher = Publisher(parse_broker_url(broker), layout.store_id, "walkout-demo-edge").connect()
    except (ConnectionError, ValueError) as exc:
        _fail(str(exc))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_live_edge(layout, publisher, stop, seed)
    except KeyboardInterrupt:
        pass
    finally:
        publisher.close(offline=False)


def _progress() -> tuple[Progress, Any]:
    bar = Progress(
        TextColumn("{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bar.add_task(phase, total=total or None)
        bar.update(tasks[phase], completed=done, total=total or None)

    return bar, update


@app.command()
def run(
    dataset: Annotated[
        Path, typer.Argument(help="dataset directory (from 'walkout sim' or 'walkout record')")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print the metrics as JSON")] = False,
    broker: Annotated[
        str | None, typer.Option(help="broker URL; default WALKOUT_MQTT_URL or embedded")
    ] = None,
    database_url: Annotated[str | None, typer.Option(help="default: a temporary SQLite file")] = None,
    speed: Annotated[float | None, typer.Option(help="replay pace (1 = real time); default flat out")] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the last receipts")] = 120.0,
    report: Annotated[Path | None, typer.Option(help="also write a report: OUT.html or OUT.md")] = None,
    vision: Annotated[
        bool,
        typer.Option(
            "--vision", help="track shoppers with YOLO on the dataset's video (walkout sim --video)"
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Replay a dataset through a broker into a store server, wait for every receipt, print accuracy."""
    if report is not None and report.suffix.lower() not in (".html", ".md"):
        _fail(f"--report {report}: name the report OUT.html or OUT.md")
    _logging(verbose)
    from sim_data.dataset import DatasetError
    from sim_data.pipeline import run_dataset_with_decisions

    broker = broker or Settings().mqtt_url
    bar, update = _progress()
    try:
        with bar:
            metrics, decisions = run_dataset_with_decisions(
                dataset, broker, database_url, speed, timeout, progress=update, vision=vision
            )
    except (DatasetError, ConnectionError) as exc:
        _fail(str(exc))
    if report is not None:
        from sim_data.dataset import Dataset
        from sim_data.report import write_report

        write_report([metrics], report, [Dataset.open(dataset)], [decisions])
        console.print(f"report written to {report}")
    if as_json:
        sys.stdout.write(json.dumps(metrics, indent=2) + "\n")
        return
    items = metrics["items"]
    lat = metrics["receipt_latency_ms"]
    print(
        f"{metrics['dataset']}: {metrics['sessions']} shoppers, "
        f"exact receipts {metrics['exact_receipts']:.1%}"
    )
    print(
        f"items: precision {items['precision']:.3f} recall {items['recall']:.3f} f1 {items['f1']:.3f} "
        f"(tp {items['tp']}, fp {items['fp']}, fn {items['fn']})"
    )
    print(f"receipt latency: p50 {lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms")
    print(
        f"review items: {metrics['review_items']} ({metrics['review_items_per_visit']:.2f} per visit), "
        f"unexplained weight events {metrics['unexplained_events']}, "
        f"true events that left no trace {metrics['vanished_events']}"
    )
    for miss in metrics.get("explanations", [])[:10]:
        print(f"  {miss['session']} {miss['sku']}: {miss['why']}")


@app.command()
def bench(
    broker: Annotated[
        str | None, typer.Option(help="broker URL; default WALKOUT_MQTT_URL or local Mosquitto")
    ] = None,
    postgres_admin_url: Annotated[
        str, typer.Option(help="PostgreSQL where a scratch database may be created; 'none' to skip")
    ] = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    out: Annotated[Path, typer.Option(help="where the results go")] = Path("BENCHMARKS.md"),
) -> None:
    """Measure store-server ingest against a bare paho subscriber on the same stream; write BENCHMARKS.md."""
    import tempfile
    from contextlib import ExitStack

    from sim_data.bench import run_bench
    from store_server.adapters.db import scratch_database

    broker = broker or Settings().mqtt_url or "mqtt://127.0.0.1:1883"
    bar, update = _progress()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="walkout-bench-")))
        pg = None
        if postgres_admin_url.lower() != "none":
            try:
                pg = stack.enter_context(scratch_database(postgres_admin_url, "walkout_bench"))
            except Exception as exc:
                _fail(
                    f"cannot create a scratch database ({exc.__class__.__name__}: {exc}); start PostgreSQL "
                    "or pass --postgres-admin-url none"
                )
        try:
            with bar:
                results = run_bench(broker, pg, work, out, progress=update)
        except ConnectionError as exc:
            _fail(f"{exc} (the benchmark needs a real broker: start Mosquitto or pass --broker)")
    for r in results:
        console.print(f"{r.name:<36} {r.rate:>9,.0f} messages/s", markup=False)
    console.print(f"written to {out}")


if __name__ == "__main__":
    app()
