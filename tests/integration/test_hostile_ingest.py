"""Hostile messages through a real Mosquitto into a store server on SQLite and PostgreSQL: each one is
one dead letter with its field and reason, the good messages around it are all stored, and a database
outage is retried without dead-lettering anything. /health says when ingest is stuck."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, make_url, text

from edge.contracts import Heartbeat
from edge.mqtt import parse_broker_url
from edge.publisher import Publisher
from store_server.api.store_api import health, prometheus_metrics
from store_server.bootstrap import StoreServer, bootstrap
from store_server.domain.layout import load_layout
from store_server.settings import DEFAULT_STORE, Settings
from tests.conftest import ADMIN_URL

pytestmark = pytest.mark.integration

T0 = 1_780_000_000.0  # a recorded day, months ago: the store runs on the replay's clock
NODES = ("shelf-g1", "shelf-g2", "shelf-g3", "shelf-g4", "shelf-g5", "cam-ceiling", "gate-in", "gate-out")
IN_FLIGHT = 400  # never run further ahead of the store than Mosquitto queues for it (1000 by default)


class LiveStore:
    def __init__(self, server: StoreServer, broker_url: str, prefix: str) -> None:
        self.server, self.prefix = server, prefix
        self.consumer = server.start_consumer(broker_url)
        self.consumer.wait_connected()
        address = parse_broker_url(broker_url)
        self.publisher = Publisher(address, "demo", f"hostile-pub-{uuid.uuid4().hex[:8]}").connect()
        self.published = 0
        self.seq = dict.fromkeys(NODES, 0)

    def topic(self, node: str, feature: str) -> str:
        return f"{self.prefix}/demo/{node}/{feature}"

    def send(self, topic: str, payload: bytes | dict[str, Any]) -> None:
        while self.published - self.consumer.handled > IN_FLIGHT:
            time.sleep(0.001)
        self.publisher.publish_raw(topic, payload)
        self.published += 1

    def heartbeats(self, n: int, t: float = T0) -> None:
        """``n`` good messages: heartbeats from every node of the layout, in event-time order."""
        for i in range(n):
            node = NODES[i % len(NODES)]
            self.seq[node] += 1
            beat = Heartbeat(node_id=node, seq=self.seq[node], ts=t + i * 0.01)
            self.send(self.topic(node, "heartbeat"), beat.model_dump(mode="json"))

    def drain(self, timeout_s: float = 120.0) -> None:
        self.publisher.flush()
        wait_for(lambda: self.consumer.handled >= self.published and self.consumer.idle(), timeout_s)

    def stored(self) -> int:
        with self.server.uow_factory() as uow:
            return uow.inbox.count()

    def letters(self) -> list[tuple[str, str]]:
        with self.server.uow_factory() as uow:
            return sorted((d.field, d.reason) for d in uow.dead_letters.list(100_000))

    def close(self) -> None:
        self.publisher.close(offline=False)
        self.server.stop()


def wait_for(condition: Callable[[], bool], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def live(db_url: str, mosquitto_url: str, tmp_path: Path) -> Iterator[LiveStore]:
    run = uuid.uuid4().hex[:8]
    prefix = f"walkout-hostile-{run}"
    settings = Settings(
        database_url=db_url,
        store_config=DEFAULT_STORE,
        receipts_dir=tmp_path / "receipts",
        secret_key_file=tmp_path / "secret.key",
        topic_prefix=prefix,
        mqtt_client_id=f"walkout-hostile-{run}",
        event_clock="replay",
        replay_start_ts=T0,
        health_stuck_after_s=1.0,
    )
    store = LiveStore(bootstrap(settings, layout=load_layout(DEFAULT_STORE)), mosquitto_url, prefix)
    try:
        yield store
    finally:
        store.close()


def test_a_100_kb_nested_array_is_one_dead_letter_and_1000_good_messages_are_stored(live):
    live.heartbeats(500)
    live.send(live.topic("shelf-g1", "weight"), b"[" * 100_000)
    live.heartbeats(500, t=T0 + 5.0)
    live.drain()
    assert [f for f, _ in live.letters()] == ["payload"]
    assert live.stored() == 1000
    assert health(live.server).status == "ok"


def test_non_finite_numbers_are_dead_letters_naming_the_field_and_the_store_goes_on(live):
    base = {"v": 1, "node_id": "shelf-g1", "ts": T0 + 1.0, "gondola_id": "g1", "shelf_id": "g1-s1",
            "plate_ids": ["g1-s1-p1"], "t_start": T0, "t_end": T0 + 0.5}
    for seq, literal in enumerate(["NaN", "Infinity", "-Infinity", "1e999"], start=10_000):
        body = json.dumps({**base, "seq": seq, "delta_g": 12345.0}).replace("12345.0", literal)
        live.send(live.topic("shelf-g1", "weight"), body.encode())
        live.heartbeats(50, t=T0 + seq - 10_000)
    live.drain()
    assert [f for f, _ in live.letters()] == ["delta_g"] * 4
    assert live.stored() == 200


def test_a_heartbeat_from_the_year_2100_is_refused_and_the_watermark_stays_with_the_store(live):
    for seq, ts in ((9_000, 4_102_444_800.0), (9_001, 1e30), (9_002, T0 - 3 * 86_400)):
        live.send(live.topic("gate-in", "heartbeat"), {"v": 1, "node_id": "gate-in", "seq": seq, "ts": ts})
    live.heartbeats(400)
    live.drain()
    assert [f for f, _ in live.letters()] == ["ts", "ts", "ts"]
    assert T0 <= live.server.processor.watermark.value() < T0 + 10.0
    assert health(live.server).status == "ok"


def test_a_node_may_speak_only_for_the_gates_and_shelves_the_layout_gives_it(live):
    live.heartbeats(100)
    gate = {"v": 1, "node_id": "shelf-g1", "seq": 9_000, "ts": T0 + 1.0, "gate_id": "gate-in",
            "direction": "entry", "account_token": "acct-intruder", "group_size": 20}
    live.send(live.topic("shelf-g1", "gate"), gate)
    other = {"v": 1, "node_id": "shelf-g1", "seq": 9_001, "ts": T0 + 1.5, "gondola_id": "g2",
             "shelf_id": "g2-s1", "plate_ids": ["g2-s1-p1"], "delta_g": -350.0, "t_start": T0 + 1.0,
             "t_end": T0 + 1.2}
    live.send(live.topic("shelf-g1", "weight"), other)
    live.send(live.topic("intruder", "heartbeat"), {"v": 1, "node_id": "intruder", "seq": 1, "ts": T0 + 1})
    live.heartbeats(100, t=T0 + 2.0)
    live.drain()
    assert [f for f, _ in live.letters()] == ["gate_id", "gondola_id", "node_id"]
    assert live.stored() == 200
    with live.server.uow_factory() as uow:
        assert uow.sessions.list() == []


def _label_values(metric_name: str, label: str) -> set[str]:
    return {
        s.labels[label]
        for m in REGISTRY.collect()
        if m.name == metric_name
        for s in m.samples
        if label in s.labels
    }


def test_5000_messages_with_unique_long_extra_keys_keep_the_metrics_small(live):
    for i in range(5000):
        key = f"k{i:05d}-{uuid.uuid4().hex}" * 2
        beat = {"v": 1, "node_id": "shelf-g3", "seq": 100_000 + i, "ts": T0, key: 1}
        live.send(live.topic("shelf-g3", "heartbeat"), beat)
    live.drain(timeout_s=300)
    assert len(live.letters()) == 5000
    assert len(_label_values("walkout_dead_letters", "field")) <= 40
    body = prometheus_metrics().body
    assert b"k00042-" not in body and len(body) < 200_000


def test_one_tracks_message_with_14k_points_is_refused_without_stalling_ingest(live):
    points = [{"track_id": f"p{i}", "x_m": 3.0 + i % 9, "y_m": 4.0} for i in range(14_000)]
    live.send(live.topic("cam-ceiling", "tracks"),
              {"v": 1, "node_id": "cam-ceiling", "seq": 9_000, "ts": T0, "camera_id": "cam-ceiling",
               "tracks": points})
    live.heartbeats(300)
    live.drain()
    assert [f for f, _ in live.letters()] in (["payload"], ["tracks"])
    assert live.stored() == 300
    assert live.server.processor.tracks.track_ids() == []


def test_a_message_the_database_refuses_is_found_by_splitting_its_batch(live, monkeypatch):
    """A hole in the contract (a NaN that reached the inbox) must cost one message, not the store."""
    from store_server.service import ingest

    real = ingest.parse

    def leaky(topic: str, payload: bytes, prefix: str) -> Any:
        message = real(topic, payload, prefix)
        if getattr(message, "seq", None) == 4_242:
            nan = float("nan")
            return Heartbeat.model_construct(v=1, kind="heartbeat", node_id="shelf-g4", seq=4_242, ts=nan)
        return message

    monkeypatch.setattr(ingest, "parse", leaky)
    live.heartbeats(300)
    poison = {"v": 1, "node_id": "shelf-g4", "seq": 4_242, "ts": T0 + 1}
    live.send(live.topic("shelf-g4", "heartbeat"), poison)
    live.heartbeats(300, t=T0 + 3.0)
    live.drain()
    ((field, reason),) = live.letters()
    assert field == "payload" and "could not be stored" in reason
    assert live.stored() == 600


class Outage:
    """Makes the store's database refuse service for real, then gives it back."""

    def __init__(self, db_url: str) -> None:
        self.url = make_url(db_url)
        self._lock: sqlite3.Connection | None = None

    def begin(self) -> None:
        if self.url.get_backend_name() == "sqlite":
            self._lock = sqlite3.connect(str(self.url.database), isolation_level=None)
            self._lock.execute("BEGIN EXCLUSIVE")  # every other writer waits, then gives up
            return
        admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{self.url.database}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db"),
                {"db": self.url.database},
            )
        admin.dispose()

    def end(self) -> None:
        if self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
            return
        admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{self.url.database}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def test_a_database_outage_is_retried_dead_letters_nothing_and_health_says_so(live, db_url):
    live.heartbeats(100)
    live.drain()
    outage = Outage(db_url)
    outage.begin()
    try:
        live.heartbeats(200, t=T0 + 2.0)
        live.publisher.flush()

        def stuck() -> bool:
            state = health(live.server)
            return state.status == "degraded" and any(r.startswith("ingest stuck") for r in state.reasons)

        wait_for(stuck, timeout_s=120)
    finally:
        outage.end()
    live.drain(timeout_s=180)
    assert live.letters() == []
    assert live.stored() == 300
    wait_for(lambda: health(live.server).status == "ok", timeout_s=60)
