"""Engines and schema migration. Nothing here connects until called (no import-time engines)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine tuned for the dialect: SQLite for the embedded demo, PostgreSQL in production."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        connect_args.update(kwargs.pop("connect_args", {}))
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    kwargs.setdefault("pool_pre_ping", True)  # the database may restart under a long-running server
    return create_engine(url, **kwargs)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while the ingest worker writes; NORMAL is durable across app crashes
    # (only an OS crash can lose the last transactions), which the at-least-once inbox tolerates.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # Repositories return plain domain objects, so nothing needs to stay attached after commit.
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(url: str | None = None) -> Config:
    """A programmatic Alembic config: no alembic.ini, works from any cwd and from an installed wheel."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolates '%', which may appear in URL-encoded passwords.
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine_or_url: Engine | str, revision: str = "head") -> None:
    """Bring the schema (store server and embedded backend tables) up to ``revision``."""
    own_engine = isinstance(engine_or_url, str)
    engine = make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        cfg = alembic_config()
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
        logger.info("database schema at %s (%s)", revision, engine.url.render_as_string(hide_password=True))
    finally:
        if own_engine:
            engine.dispose()


def dialect_insert(session_or_conn: Session | Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """``INSERT`` with ``ON CONFLICT`` support for the bound dialect (SQLite or PostgreSQL).

    Both dialects spell ``on_conflict_do_nothing``/``on_conflict_do_update`` the same way, which is
    what the idempotent writes (inbox, outbox, ledger, orders) rely on.
    """
    bind = session_or_conn.get_bind() if isinstance(session_or_conn, Session) else session_or_conn
    name = bind.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"dialect {name!r} is not supported (use SQLite or PostgreSQL)")


# The session of the unit of work open in this thread (set by SqlAlchemyUnitOfWork). SQLite has one
# writer at a time: an adapter called from inside a unit of work that has already written (the ledger
# at exit) would wait forever for a lock its own thread holds, so on SQLite it joins this session.
_ambient: ContextVar[Session | None] = ContextVar("walkout_ambient_session", default=None)


def ambient_session() -> Session | None:
    return _ambient.get()


def set_ambient_session(session: Session | None) -> Token[Session | None]:
    return _ambient.set(session)


def reset_ambient_session(token: Token[Session | None]) -> None:
    _ambient.reset(token)


def shared_sqlite_session(factory: sessionmaker[Session]) -> Session | None:
    """The ambient unit-of-work session when it is SQLite on the same database as ``factory``."""
    ambient = _ambient.get()
    if ambient is None:
        return None
    bind, own = ambient.get_bind(), factory.kw.get("bind")
    if bind.dialect.name != "sqlite" or own is None or str(bind.engine.url) != str(own.engine.url):
        return None
    return ambient


@contextmanager
def scratch_database(admin_url: str, prefix: str = "walkout_scratch") -> Iterator[str]:
    """Create a fresh PostgreSQL database for a test or benchmark run, yield its URL, drop it after."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
