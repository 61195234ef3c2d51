"""The edge node's on-disk spool and the MQTT link that drains it in order.

Every event is written to the spool before it is published.

SQLite in WAL mode with ``synchronous=FULL``: an append is on disk when :meth:`Spool.append`
returns, so a crash or a power cut after it loses nothing. The publisher reads the oldest entries,
publishes them in order and deletes each one only after the broker acknowledged it (QoS 1), so
while the broker is unreachable the spool simply grows, and after a reconnect (or a restart of the
node) it drains in the original order. A message may be published twice around a crash; the store
server drops the repeat by its ``node_id:seq`` id. Entries the broker acknowledged in the last seconds
before it went away go back into the spool and are published again: a broker killed between its PUBACK
and its next save has forgotten them (see :class:`edge.mqtt.AckedTail`).

The spool also keeps the node's sequence counter: a node must never reuse a ``seq``. Numbers are
reserved on disk in blocks, so a restart continues after the last reserved block (a gap in the
numbering is harmless; a reused number would hide a real event behind a duplicate id).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge.mqtt import RESEND_ACKED_S, AckedTail, BrokerAddress

logger = logging.getLogger(__name__)

SEQ_BLOCK = 1000


class SpoolError(RuntimeError):
    """The spool file cannot be used; the message names it and what to do."""


@dataclass(frozen=True)
class SpoolEntry:
    id: int
    topic: str
    payload: bytes
    retain: bool = False


class Spool:
    def __init__(self, path: str | Path, max_messages: int = 1_000_000, seq_block: int = SEQ_BLOCK) -> None:
        self.path = Path(path)
        self.max_messages = max_messages
        self._lock = threading.Lock()
        self._seq_block = seq_block
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "topic TEXT NOT NULL, payload BLOB NOT NULL, retain INTEGER NOT NULL DEFAULT 0)"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            row = self._db.execute("SELECT value FROM meta WHERE key = 'seq_reserved'").fetchone()
            self._count = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(
                f"cannot open the spool {self.path} ({exc}); set spool.path in the node config to a "
                "writable file"
            ) from None
        self._next_seq = int(row[0]) if row else 0
        self._reserved = self._next_seq
        if self._count:
            logger.info("spool %s holds %d unsent message(s) from before", self.path, self._count)

    def __len__(self) -> int:
        return self._count

    def next_seq(self) -> int:
        """The next sequence number of this node, never handed out before (also across restarts)."""
        with self._lock:
            if self._next_seq >= self._reserved:
                self._reserved = self._next_seq + self._seq_block
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('seq_reserved', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (self._reserved,),
                )
            seq = self._next_seq
            self._next_seq += 1
            return seq

    def append(self, topic: str, payload: bytes, retain: bool = False) -> int:
        """Store one message durably; returns its spool id (the publish order)."""
        with self._lock:
            if self._count >= self.max_messages:
                self._db.execute("DELETE FROM outbox WHERE id = (SELECT MIN(id) FROM outbox)")
                self._count -= 1
                logger.error(
                    "spool %s is full (%d messages): dropped the oldest; raise spool.max_messages "
                    "or fix the broker connection",
                    self.path,
                    self.max_messages,
                )
            cur = self._db.execute(
                "INSERT INTO outbox (topic, payload, retain) VALUES (?, ?, ?)", (topic, payload, int(retain))
            )
            self._count += 1
            return int(cur.lastrowid or 0)

    def peek(self, limit: int = 100, after_id: int = 0) -> list[SpoolEntry]:
        """The oldest ``limit`` entries with an id above ``after_id``, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, retain FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [SpoolEntry(int(r[0]), str(r[1]), bytes(r[2]), bool(r[3])) for r in rows]

    def restore(self, entries: list[SpoolEntry]) -> None:
        """Put acknowledged entries back under their old ids (so they drain first, in order)."""
        if not entries:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO outbox (id, topic, payload, retain) VALUES (?, ?, ?, ?)",
                [(e.id, e.topic, e.payload, int(e.retain)) for e in entries],
            )
            self._db.execute("COMMIT")
            self._count = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def remove(self, ids: list[int]) -> None:
        """Forget entries the broker acknowledged."""
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
            self._db.execute("COMMIT")
            self._count = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class SpooledLink:
    """The node's MQTT connection: drains the spool in order, QoS 1, with a retained status and will.

    Everything that must arrive goes through :class:`Spool` first. :meth:`pump` (called from the
    node's loop, one thread) publishes the oldest entries, at most ``max_inflight`` unacknowledged,
    and deletes each after its PUBACK. On a reconnect the unacknowledged ones are published again
    from the spool, after those acknowledged within ``resend_acked_s`` before the connection dropped.
    Heartbeats go out directly, and only when the spool is empty, so the node's messages always reach
    the broker in ``ts`` order.
    """

    def __init__(
        self,
        client: mqtt.Client,
        address: BrokerAddress,
        spool: Spool,
        status_topic: str,
        status: Callable[[str], bytes],
        max_inflight: int = 100,
        keepalive_s: int = 30,
        resend_acked_s: float = RESEND_ACKED_S,
    ) -> None:
        self.client = client
        self.address = address
        self.spool = spool
        self.status_topic = status_topic
        self._status = status
        self._max_inflight = max_inflight
        self._keepalive = keepalive_s
        self._connected = threading.Event()
        self._restart = threading.Event()
        self._closing = False
        self._inflight: dict[int, tuple[SpoolEntry, mqtt.MQTTMessageInfo]] = {}
        self._tail: AckedTail[SpoolEntry] = AckedTail(resend_acked_s)
        self._tail_lock = threading.Lock()
        self._lost = False  # the connection dropped: send the tail again on the next one
        self.published = 0
        # The window is the link's (max_inflight); paho holding messages back would let what it
        # re-sends after a reconnect overtake the older tail sent from _on_connect.
        client.max_inflight_messages_set(0)
        client.will_set(status_topic, status("offline"), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            logger.error(
                "the broker %s refused the node: %s (check broker.username / password / tls)",
                self.address,
                reason,
            )
            return
        logger.info("connected to %s; %d spooled message(s) to send", self.address, len(self.spool))
        client.publish(self.status_topic, self._status("online"), qos=1, retain=True)
        if self._lost:
            self._lost = False
            with self._tail_lock:
                again = self._tail.take()
            if again:
                logger.info("publishing again %d message(s) acknowledged just before the loss", len(again))
            for entry in again:  # in order, before paho re-sends what was in flight (newer)
                client.publish(entry.topic, entry.payload, qos=1, retain=entry.retain)
            self.spool.restore(again)  # and on disk again until acknowledged again
        self._restart.set()
        self._connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not self._closing:
            self._lost = True
        if self._connected.is_set() and not self._closing:
            logger.warning(
                "lost the broker %s (%s); spooling to %s until it is back",
                self.address,
                reason,
                self.spool.path,
            )
        self._connected.clear()

    def start(self) -> None:
        """Connect in the background; paho keeps retrying (reconnect_min_s .. reconnect_max_s)."""
        self.client.connect_async(self.address.host, self.address.port, keepalive=self._keepalive)
        self.client.loop_start()

    def publish_status(self) -> None:
        if self.connected:
            self.client.publish(self.status_topic, self._status("online"), qos=1, retain=True)

    def pump(self) -> int:
        """Collect acknowledgements and publish more of the spool; returns how many are unsent."""
        if not self.connected:
            return len(self.spool)
        if self._restart.is_set():  # a new connection: whatever was in flight goes again
            self._restart.clear()
            self._inflight.clear()
        acked = [i for i, (_, info) in self._inflight.items() if info.is_published()]
        with self._tail_lock:
            for i in acked:
                self._tail.add(self._inflight.pop(i)[0])
        self.spool.remove(acked)
        self.published += len(acked)
        room = self._max_inflight - len(self._inflight)
        if room > 0:
            last = max(self._inflight, default=0)
            for entry in self.spool.peek(room, after_id=last):
                info = self.client.publish(entry.topic, entry.payload, qos=1, retain=entry.retain)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    break
                self._inflight[entry.id] = (entry, info)
        return len(self.spool)

    def can_send_direct(self) -> bool:
        return self.connected and len(self.spool) == 0

    def send_direct(self, topic: str, payload: bytes) -> bool:
        if not self.can_send_direct():
            return False
        return self.client.publish(topic, payload, qos=1).rc == mqtt.MQTT_ERR_SUCCESS

    def drain(self, timeout_s: float) -> bool:
        """Publish the spool until it is empty or ``timeout_s`` passed; True when empty."""
        deadline = time.monotonic() + timeout_s
        while self.pump() and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.spool) == 0

    def close(self, timeout_s: float = 5.0) -> None:
        self._closing = True
        if self.connected:
            if not self.drain(timeout_s):
                logger.warning(
                    "%d message(s) stay in the spool %s for the next start", len(self.spool), self.spool.path
                )
            info = self.client.publish(self.status_topic, self._status("offline"), qos=1, retain=True)
            try:
                info.wait_for_publish(2.0)
            except (RuntimeError, ValueError):
                logger.debug("offline status not acknowledged")
        self.client.disconnect()
        self.client.loop_stop()
