"""``walkout maintenance``: retention of the store server's database, by hand.

The store server prunes by itself every ``WALKOUT_HOUSEKEEPING_INTERVAL_S``; this command does the
same at once (a first run on a database that grew for months, or from a cron job while the server is
down), with the same settings and the same guarantees (service/housekeeping.py).
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from store_server.settings import Settings

maintenance_app = typer.Typer(
    help="Database upkeep: retention of the inbox and dead letters.", no_args_is_help=True
)


@maintenance_app.command("prune")
def prune_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count what would be deleted, delete nothing")
    ] = False,
    batch_rows: Annotated[
        int | None, typer.Option(min=1, help="rows per transaction (default WALKOUT_HOUSEKEEPING_BATCH_ROWS)")
    ] = None,
) -> None:
    """Delete processed inbox rows and dead letters older than their retention, in short batches."""
    from dataclasses import replace

    from store_server.adapters.db import make_engine, make_session_factory, migrate
    from store_server.adapters.unit_of_work import SqlAlchemyUnitOfWork
    from store_server.bootstrap import retention_policy
    from store_server.service.housekeeping import prune

    settings = Settings()
    policy = retention_policy(settings)
    if batch_rows is not None:
        policy = replace(policy, batch_rows=batch_rows)
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        factory = make_session_factory(engine)
        start = time.perf_counter()
        report = prune(lambda: SqlAlchemyUnitOfWork(factory), policy, time.time(), dry_run=dry_run)
        seconds = time.perf_counter() - start
    finally:
        engine.dispose()
    where = settings.database_url.split("@")[-1]
    typer.echo(f"{where}: {report} in {seconds:.1f} s")
    typer.echo(
        f"(retention: inbox {policy.inbox_retention_s:g} s, dead letters "
        f"{policy.dead_letter_retention_s:g} s; always kept: the last {policy.keep_event_s:g} s of event "
        "time and the newest row of every node)"
    )
