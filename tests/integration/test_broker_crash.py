"""kill -9 of a Mosquitto configured like the shipped one, mid-stream: every message it acknowledged
reaches the store server.

One publisher streams heartbeats at QoS 1, at 100 msg/s (a store's nodes together publish ~35), and
records every id the broker PUBACKed. The store server (SQLite, its MQTT consumer on a persistent
session) goes away for a while, so a backlog queues in the broker; the broker is killed with that
backlog, restarted on the same port and files, and the store server comes back. Later the broker is
killed again with the store server connected, which reconnects on its own. At the end every
acknowledged id is in the inbox (or a dead letter).

Each kill comes right after a PUBACK: the moment Mosquitto has acknowledged a message it has not saved
yet (it saves at the end of that loop pass). The publisher covers that gap by sending again what was
acknowledged just before the broker went away; without it about one run in four lost that message.

Run it against another config with WALKOUT_TEST_MOSQUITTO_CONF=path (the old ``autosave_interval 30``
loses the backlog and the store server's subscription with it).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.contracts import Heartbeat, encode, topic
from edge.mqtt import parse_broker_url
from edge.publisher import Publisher
from store_server.bootstrap import bootstrap
from store_server.settings import DEFAULT_STORE, Settings
from tests.integration.crash_helpers import (
    SHIPPED_CONF,
    MosquittoProcess,
    conf_lines,
    conf_under_test,
    kept_lines,
    wait_for_store,
)

pytestmark = pytest.mark.integration

NODE = "shelf-g1"
RATE = 100.0  # msg/s: the backlog is older than the publisher's re-send window when the broker dies
TOTAL = 2700
STORE_AWAY_AT = 300  # acknowledged messages when the store server goes away
FIRST_KILL_AT = 1500  # ~1200 queued for the store server, most acknowledged > RESEND_ACKED_S ago
STORE_BACK_AT = 1800
SECOND_KILL_AT = 2400  # the store server connected


def test_the_shipped_config_saves_on_every_change() -> None:
    lines = conf_lines(SHIPPED_CONF)
    assert "persistence true" in lines
    # Without these a kill -9 loses everything acknowledged since the last periodic save.
    assert "autosave_on_changes true" in lines and "autosave_interval 1" in lines, lines


def test_the_crash_test_runs_the_shipped_persistence_lines(tmp_path: Path) -> None:
    broker = MosquittoProcess(tmp_path, kept_lines(SHIPPED_CONF))
    used = conf_lines(broker.conf)
    shipped = conf_lines(SHIPPED_CONF)
    for line in shipped:
        key = line.split()[0]
        if key in ("persistence", "autosave_interval", "autosave_on_changes", "max_queued_messages"):
            assert line in used, f"{line!r} of {SHIPPED_CONF} is not what the crash test runs"
    assert set(kept_lines(SHIPPED_CONF)) <= set(used)
    assert [ln for ln in used if ln.startswith("persistence_location")] == [
        f"persistence_location {broker.dir}/"
    ]


def wait_until(
    what: str, pred: Callable[[], bool], broker: MosquittoProcess, timeout_s: float = 120.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(
                f"waited {timeout_s:.0f} s for {what}; broker log:\n{broker.log_tail()}", pytrace=False
            )
        time.sleep(0.02)


def test_kill_9_of_the_broker_mid_stream_loses_no_acknowledged_message(tmp_path: Path) -> None:
    broker = MosquittoProcess(tmp_path, kept_lines(conf_under_test())).start()
    run = uuid.uuid4().hex[:8]
    prefix = f"crash-{run}"
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
        store_config=DEFAULT_STORE,
        receipts_dir=tmp_path / "receipts",
        secret_key_file=tmp_path / "secret.key",
        topic_prefix=prefix,
        mqtt_client_id=f"crash-store-{run}",
    )
    server = bootstrap(settings)
    acked: set[str] = set()

    def on_ack(_topic: str, payload: bytes) -> None:
        message = json.loads(payload)
        acked.add(f"{message['node_id']}:{message['seq']}")

    publisher = Publisher(
        parse_broker_url(broker.url), server.layout.store_id, f"crash-edge-{run}", on_ack=on_ack
    )
    errors: list[BaseException] = []

    def stream() -> None:
        try:
            name = topic(server.layout.store_id, NODE, "heartbeat", prefix)
            start = time.monotonic()
            for seq in range(TOTAL):
                time.sleep(max(0.0, start + seq / RATE - time.monotonic()))
                publisher.publish_raw(name, encode(Heartbeat(node_id=NODE, seq=seq, ts=time.time())))
            publisher.flush()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    try:
        server.start_consumer(broker.url).wait_connected(30)
        publisher.connect()
        streaming = threading.Thread(target=stream, daemon=True)
        streaming.start()

        wait_until(f"{STORE_AWAY_AT} acknowledgements", lambda: len(acked) >= STORE_AWAY_AT, broker)
        assert server.consumer is not None
        server.consumer.stop()  # away, its persistent session kept: the broker queues for it
        wait_until(f"{FIRST_KILL_AT} acknowledgements", lambda: len(acked) >= FIRST_KILL_AT, broker)
        broker.kill9()
        acked_at_first_kill = len(acked)
        broker.start()

        wait_until(f"{STORE_BACK_AT} acknowledgements", lambda: len(acked) >= STORE_BACK_AT, broker)
        consumer = server.start_consumer(broker.url)
        consumer.wait_connected(30)
        wait_until(f"{SECOND_KILL_AT} acknowledgements", lambda: len(acked) >= SECOND_KILL_AT, broker)
        broker.kill9()  # the store server is connected: it must reconnect on its own
        broker.start()

        streaming.join(180)
        assert not streaming.is_alive(), "the publisher did not finish after the broker came back"
        assert not errors, errors
        store = wait_for_store(server, acked)
    finally:
        publisher.close(offline=False, timeout_s=2.0)
        server.stop()
        broker.stop()

    lost = acked - store
    assert len(acked) == TOTAL  # every message was acknowledged in the end (some twice)
    assert not lost, (
        f"{len(lost)} of {len(acked)} acknowledged messages lost across {broker.kills} kill -9 "
        f"({acked_at_first_kill} acknowledged at the first kill), e.g. {sorted(lost)[:5]}"
    )
