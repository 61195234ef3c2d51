"""kill -9 of the store server in the middle of a replay, then a restart: the same receipts, one charge each.

The server runs as its own process against real Mosquitto (persistent session, QoS 1) and PostgreSQL.
The replay goes on while it is dead; the broker keeps those messages for the server's session. The
broker is one of the test's own with the shipped config: the machine's broker queues at most 1,000
messages per client, which a server slow to restart on a busy machine would overrun.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from edge.mqtt import parse_broker_url
from edge.publisher import Publisher
from sim_data.dataset import Dataset
from sim_data.pipeline import run_dataset
from sim_data.replay import replay
from store_server.adapters.db import make_engine, make_session_factory, migrate
from store_server.adapters.ledger import Accounts
from tests.e2e.helpers import ServerProcess, charges_per_account, free_port, stored_receipts
from tests.integration.crash_helpers import SHIPPED_CONF, MosquittoProcess, kept_lines

pytestmark = pytest.mark.e2e


def open_accounts(database_url: str, dataset: Dataset) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    accounts = Accounts(make_session_factory(engine))
    for a in dataset.ground_truth["accounts"]:
        accounts.open_account(a["token"], a["name"], a["email"], balance_cents=a["balance_cents"])
    engine.dispose()


def closed(database_url: str, expected: int) -> bool:
    from sqlalchemy import text

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return (
                conn.execute(text("select count(*) from sessions where state != 'open'")).scalar_one()
                >= expected
            )
    finally:
        engine.dispose()


def test_kill_9_mid_replay_then_restart_gives_the_same_receipts(basic_dataset, postgres_url, tmp_path):
    broker = MosquittoProcess(tmp_path, kept_lines(SHIPPED_CONF)).start()
    try:
        run_with_kills(basic_dataset, broker.url, postgres_url, tmp_path)
    finally:
        broker.stop()


def run_with_kills(basic_dataset, mosquitto_url, postgres_url, tmp_path):
    dataset = Dataset.open(basic_dataset)
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    assert run_dataset(basic_dataset, mosquitto_url, reference)["exact_receipts"] == 1.0

    run = uuid.uuid4().hex[:8]
    prefix = f"walkout-crash-{run}"
    open_accounts(postgres_url, dataset)
    server = ServerProcess(
        {
            "WALKOUT_DATABASE_URL": postgres_url,
            "WALKOUT_MQTT_URL": mosquitto_url,
            "WALKOUT_MQTT_CLIENT_ID": f"walkout-crash-{run}",
            "WALKOUT_TOPIC_PREFIX": prefix,
            "WALKOUT_STORE_CONFIG": str(dataset.layout_path),
            "WALKOUT_HTTP_PORT": str(free_port()),
            "WALKOUT_RECEIPTS_DIR": str(tmp_path / "receipts"),
            "WALKOUT_EVENT_CLOCK": "replay",  # `walkout replay` of a recorded day, months old
            # `walkout replay` of a simulated dataset: its shoppers enter on bare ledger tokens.
            "WALKOUT_ACCEPT_RAW_ACCOUNT_TOKENS": "true",
        },
        tmp_path / "server.log",
    )
    server.start()
    messages = list(dataset.messages())
    kills_at = {len(messages) * 3 // 10, len(messages) * 7 // 10}
    published = threading.Event()
    kill_now = threading.Event()

    def publish() -> None:
        publisher = Publisher(parse_broker_url(mosquitto_url), dataset.layout.store_id, f"crash-replay-{run}")
        publisher.connect()

        def at(n: int) -> None:
            if n in kills_at:
                kill_now.set()

        replay(messages, publisher, speed=8.0, prefix=prefix, on_message=at)
        publisher.close(offline=False)
        published.set()

    threading.Thread(target=publish, daemon=True).start()
    try:
        for _ in kills_at:
            assert kill_now.wait(120), "the replay did not get far enough"
            kill_now.clear()
            server.kill()
            time.sleep(0.5)
            server.start()
        assert published.wait(120)
        sessions = sum(1 for _ in dataset.ground_truth["sessions"])
        deadline = time.monotonic() + 60
        while not closed(postgres_url, sessions) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        server.stop()
    assert "Traceback" not in (tmp_path / "server.log").read_text()
    assert stored_receipts(postgres_url) == stored_receipts(reference)
    tokens = [a["token"] for a in dataset.ground_truth["accounts"]]
    assert charges_per_account(postgres_url, tokens) == charges_per_account(reference, tokens)
    assert set(charges_per_account(postgres_url, tokens).values()) <= {0, 1}
