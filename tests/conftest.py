"""Fixtures every tier may use: the real services (Mosquitto, PostgreSQL) and simulated datasets.

The services must be up (``.ci/run`` starts them): when one is not, the fixture FAILS with what to
start. It never skips, so a green run always means the real broker and database were exercised.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from edge.mqtt import parse_broker_url
from store_server.adapters.db import scratch_database

MOSQUITTO_URL = os.environ.get("WALKOUT_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


@pytest.fixture(scope="session")
def mosquitto_url() -> str:
    address = parse_broker_url(MOSQUITTO_URL)
    try:
        socket.create_connection((address.host, address.port), timeout=3).close()
    except OSError as exc:
        pytest.fail(
            f"Mosquitto is required but {address} does not answer ({exc}). Start it "
            "(mosquitto -d -c /etc/mosquitto/mosquitto.conf) or set WALKOUT_TEST_MQTT_URL.",
            pytrace=False,
        )
    return MOSQUITTO_URL


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
    try:
        scratch = scratch_database(ADMIN_URL, "walkout_test")
        url = scratch.__enter__()
    except Exception as exc:
        shown = make_url(ADMIN_URL).render_as_string(hide_password=True)
        pytest.fail(
            f"PostgreSQL is required for the integration tests but {shown} is not usable ({exc!r}). "
            "Start it (docker compose up -d postgres) or point WALKOUT_TEST_POSTGRES_ADMIN_URL at a "
            "server where this user may CREATE DATABASE.",
            pytrace=False,
        )
    try:
        yield url
    finally:
        scratch.__exit__(None, None, None)


@pytest.fixture(scope="session")
def basic_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``basic`` scenario, seed 7: eight shoppers, picks and a put-back (as ``walkout sim`` writes it)."""
    from sim_data.dataset import write_dataset
    from sim_data.simulator import simulate
    from store_server.domain.layout import load_layout
    from store_server.settings import DEFAULT_STORE

    result = simulate(load_layout(DEFAULT_STORE), "basic", seed=7)
    return write_dataset(
        tmp_path_factory.mktemp("basic") / "basic-7",
        result.manifest(),
        DEFAULT_STORE.read_text(),
        result.messages,
        result.ground_truth,
    )
