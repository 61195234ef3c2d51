"""Database fixtures for integration tests: a fresh SQLite file and a fresh PostgreSQL database.

PostgreSQL must be reachable (CI runs it as a service): when it is not, the fixture fails with a
message that says what to start, and never skips, so a green run always means both dialects passed.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from store_server.adapters.db import make_engine, make_session_factory, migrate

# The server the tests create their databases on; the `postgres` maintenance database is only used
# to CREATE and DROP them.
ADMIN_URL = os.environ.get(
    "WALKOUT_TEST_POSTGRES_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'walkout.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    name = f"walkout_test_{secrets.token_hex(6)}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        shown = make_url(ADMIN_URL).render_as_string(hide_password=True)
        pytest.fail(
            f"PostgreSQL is required for the integration tests but {shown} is not usable ({exc!r}). "
            "Start it (docker compose up -d postgres) or point WALKOUT_TEST_POSTGRES_ADMIN_URL at a "
            "server where this user may CREATE DATABASE.",
            pytrace=False,
        )
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    fixture = {"sqlite": "sqlite_url", "postgresql": "postgres_url"}[request.param]
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated engine on a fresh database of each dialect."""
    eng = make_engine(db_url)
    migrate(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)
