"""The store server's MQTT consumer: QoS 1, a persistent session, acknowledgements after commit.

paho's network thread only queues messages; one worker thread hands them to the processor in
batches and acknowledges each message after its batch is committed (manual ack). A message the
server crashed on is therefore redelivered by the broker, never lost; the inbox drops the copy.

A message the processor cannot store is its own dead letter (the processor splits a failing batch to
find it); a batch that still fails means the database is down, and it is retried with back-off, never
acknowledged until stored. :meth:`MqttConsumer.health` says how long that has gone on.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from edge.mqtt import MQTT5_ANSWER_S, BrokerAddress, connect_options, make_client
from store_server import metrics
from store_server.service.health import IngestState
from store_server.service.ingest import RawMessage

logger = logging.getLogger(__name__)

Handler = Callable[[list[RawMessage]], None]


class MqttConsumer:
    def __init__(
        self,
        address: BrokerAddress,
        client_id: str,
        subscription: str,
        handle_batch: Handler,
        clock: Callable[[], float] = time.time,
        batch_size: int = 500,
        batch_wait_s: float = 0.01,
        protocol: int = 5,
    ) -> None:
        self.address = address
        self.subscription = subscription
        self.handle_batch = handle_batch
        self.clock = clock
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_s
        self.client_id = client_id
        self.protocol = protocol
        self.client = self._client(protocol)
        self._queue: queue.Queue[tuple[RawMessage, int, int, int]] = queue.Queue()
        # Packet ids belong to one connection: after a reconnect the broker re-sends every message we
        # did not acknowledge (with its old id) and may give old ids to new messages, so a message
        # taken on an earlier connection is never acknowledged on a later one (it comes again instead).
        self._connection = 0
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._worker = threading.Thread(target=self._work, name="mqtt-ingest", daemon=True)
        self.batches = 0
        self.handled = 0  # messages stored and acknowledged
        self._current: list[RawMessage] = []  # the batch being stored
        self._failing_since: float | None = None  # monotonic time of its first failure
        self._last_error: str | None = None

    def _client(self, protocol: int) -> mqtt.Client:
        client = make_client(
            self.address, self.client_id, persistent=True, manual_ack=True, protocol=protocol
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    # paho callbacks (network thread): never block here.
    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            logger.error("broker %s refused the store server: %s", self.address, reason)
            return
        client.subscribe(self.subscription, qos=1)
        self._connection += 1
        self.connected.set()
        logger.info("connected to %s (session present: %s)", self.address, flags.session_present)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            logger.warning("lost the broker %s (%s); reconnecting with back-off", self.address, reason)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        raw = RawMessage(msg.topic, bytes(msg.payload), self.clock())
        self._queue.put((raw, msg.mid, msg.qos, self._connection))

    def start(self) -> MqttConsumer:
        self._connect()
        if self.protocol == 5 and not self.connected.wait(MQTT5_ANSWER_S) and self._reachable():
            # A 3.1.1-only broker (the embedded amqtt) does not answer an MQTT 5 CONNECT at all.
            logger.warning("the broker at %s does not answer MQTT 5; using MQTT 3.1.1", self.address)
            self.client.loop_stop()
            self.client.disconnect()
            self.protocol = 4
            self.client = self._client(4)
            self._connect()
        self._worker.start()
        return self

    def _reachable(self) -> bool:
        try:
            socket.create_connection((self.address.host, self.address.port), timeout=2).close()
        except OSError:
            return False  # down: keep MQTT 5 and let paho retry with back-off
        return True

    def _connect(self) -> None:
        self.client.connect_async(
            self.address.host, self.address.port, keepalive=30, **connect_options(self.protocol, True)
        )
        self.client.loop_start()

    def wait_connected(self, timeout_s: float = 10.0) -> None:
        if not self.connected.wait(timeout_s):
            raise ConnectionError(
                f"cannot reach the MQTT broker at {self.address} within {timeout_s:.0f} s; "
                "start it or set WALKOUT_MQTT_URL"
            )

    def stop(self) -> None:
        self._stop.set()
        self._worker.join(timeout=10)
        self.client.disconnect()
        self.client.loop_stop()

    def idle(self) -> bool:
        return self._queue.empty() and not self._busy

    def health(self) -> IngestState:
        current = self._current
        oldest = current[0].received_at if current else None
        if oldest is None:
            with self._queue.mutex:  # peek at the head of the queue without taking it
                oldest = self._queue.queue[0][0].received_at if self._queue.queue else None
        failing_since = self._failing_since
        return IngestState(
            connected=self.connected.is_set(),
            queued=self._queue.qsize() + len(current),
            oldest_age_s=max(0.0, self.clock() - oldest) if oldest is not None else 0.0,
            failing_for_s=time.monotonic() - failing_since if failing_since is not None else 0.0,
            last_error=self._last_error if failing_since is not None else None,
        )

    _busy = False

    def _take_batch(self) -> list[tuple[RawMessage, int, int, int]]:
        try:
            first = self._queue.get(timeout=0.1)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _work(self) -> None:
        while not self._stop.is_set():
            batch = self._take_batch()
            if not batch:
                continue
            self._busy = True
            self._current = [raw for raw, _, _, _ in batch]
            delay = 0.5
            while not self._stop.is_set():
                try:
                    self.handle_batch(self._current)
                    break
                except Exception as exc:  # the database is down: keep the batch, retry, ack nothing yet
                    if self._failing_since is None:
                        self._failing_since = time.monotonic()
                    self._last_error = f"{exc.__class__.__name__}: {exc}"[:200]
                    metrics.INGEST_RETRIES.inc()
                    logger.exception(
                        "could not store a batch of %d messages; retrying in %.1f s", len(batch), delay
                    )
                    self._stop.wait(delay)
                    delay = min(delay * 2, 30.0)
            else:
                self._busy = False
                return  # stopping: unacknowledged messages come back after the restart
            self._failing_since = None
            self._current = []
            for _, mid, qos, connection in batch:
                if qos > 0 and connection == self._connection:
                    self.client.ack(mid, qos)
            self.batches += 1
            self.handled += len(batch)
            self._busy = False
