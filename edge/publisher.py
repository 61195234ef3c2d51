"""Publishing contract messages over MQTT: QoS 1, a retained status topic with a last will.

The publisher survives a broker restart: paho reconnects on its own and sends the messages that were
not acknowledged yet again; on top of that the publisher sends again what the broker acknowledged in
the last seconds before it went away (:class:`~edge.mqtt.AckedTail`), because a broker that is killed
between its PUBACK and its next save has forgotten those. The store server drops the repeats by their
``node_id:seq`` id. Only a broker that stays away longer than ``outage_timeout_s`` stops a publisher,
with :class:`PublishTimeout` saying how many messages are safe.

Mosquitto's window, for the record: with ``autosave_on_changes`` it saves a queued message at the end
of the loop pass that sent its PUBACK, but a message it passes straight on to a connected subscriber is
no "change" and may never be saved; a kill -9 loses it if it has not reached the subscriber yet. The
re-send covers both for ``resend_acked_s``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from edge.contracts import DEFAULT_PREFIX, NodeStatus, encode, topic
from edge.mqtt import RESEND_ACKED_S, AckedTail, BrokerAddress, make_client

logger = logging.getLogger(__name__)

OUTAGE_TIMEOUT_S = 120.0  # how long to wait for a broker that acknowledges nothing


class PublishTimeout(ConnectionError):
    """The broker acknowledged nothing for too long. ``settled``: how many of the messages handed to
    :meth:`Publisher.publish_raw`, from the first, are safe (see :attr:`Publisher.settled`)."""

    def __init__(self, message: str, settled: int) -> None:
        super().__init__(message)
        self.settled = settled


@dataclass(frozen=True)
class _Out:
    ordinal: int | None  # position among publish_raw calls; None for status messages
    topic: str
    payload: bytes
    retain: bool


class Publisher:
    """One MQTT connection that publishes at QoS 1 and waits for the broker's acknowledgements.

    ``status_nodes`` get a retained ``online`` status now and an ``offline`` last will, so the store
    server knows when a node disappears. ``on_ack(topic, payload)`` is called (on paho's thread) for
    every PUBACK.
    """

    def __init__(
        self,
        address: BrokerAddress,
        store_id: str,
        client_id: str,
        status_nodes: list[str] | None = None,
        prefix: str = DEFAULT_PREFIX,
        max_inflight: int = 200,
        *,
        on_ack: Callable[[str, bytes], None] | None = None,
        outage_timeout_s: float = OUTAGE_TIMEOUT_S,
        resend_acked_s: float = RESEND_ACKED_S,
    ) -> None:
        self.address = address
        self.store_id = store_id
        self.prefix = prefix
        self.outage_timeout_s = outage_timeout_s
        self.client = make_client(address, client_id, persistent=False)
        # The window is ours (max_inflight unacknowledged, then publish_raw waits), not paho's: paho
        # holds back nothing, so after a reconnect the re-sent tail goes out before what paho re-sends.
        self.client.max_inflight_messages_set(0)
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)  # a restarted broker is back soon
        self._connected = threading.Event()
        self._status_nodes = status_nodes or []
        if len(self._status_nodes) == 1:  # MQTT allows one will per connection
            node = self._status_nodes[0]
            will = NodeStatus(node_id=node, state="offline")
            self.client.will_set(topic(store_id, node, "status", prefix), encode(will), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._on_ack = on_ack
        self._max_inflight = max_inflight
        self._cond = threading.Condition()
        self._unacked: dict[int, _Out] = {}  # by MQTT message id
        self._early: set[int] = set()  # PUBACKs that beat the bookkeeping of their publish
        self._tail: AckedTail[_Out] = AckedTail(resend_acked_s)
        self._acks = 0
        self._lost = False  # the connection dropped without close(): re-send the tail on reconnect
        self._closing = False
        self.published = 0  # publish_raw calls

    # paho callbacks (network thread)
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            logger.error("broker %s refused the connection: %s", self.address, reason)
            return
        with self._cond:
            again = self._tail.take() if self._lost else []
            self._lost = False
        if again:
            logger.warning(
                "reconnected to %s: sending again the %d message(s) it acknowledged shortly before it "
                "went away (it may not have saved them)",
                self.address,
                len(again),
            )
        for out in again:  # in order, before paho re-sends the unacknowledged ones (they are newer)
            self._send(out)
        self._connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connected.clear()
        if self._closing:
            return
        with self._cond:
            self._lost = True
            pending = len(self._unacked)
        logger.warning(
            "lost the broker %s (%s); reconnecting, %d message(s) wait for it", self.address, reason, pending
        )

    def _on_publish(self, _c: Any, _u: Any, mid: int, _reason: Any, _p: Any) -> None:
        with self._cond:
            out = self._unacked.pop(mid, None)
            if out is None:
                self._early.add(mid)
                return
            self._acked(out)
        if self._on_ack is not None:
            self._on_ack(out.topic, out.payload)

    def _acked(self, out: _Out) -> None:  # holding self._cond
        self._tail.add(out)
        self._acks += 1
        self._cond.notify_all()

    def _send(self, out: _Out) -> None:
        # Never hold self._cond while calling paho: paho calls _on_publish holding its own lock.
        info = self.client.publish(out.topic, out.payload, qos=1, retain=out.retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            raise ConnectionError(f"the MQTT client for {self.address} cannot queue more messages")
        # MQTT_ERR_NO_CONN is fine: paho keeps the message and sends it after the reconnect.
        with self._cond:
            early = info.mid in self._early
            if early:
                self._early.discard(info.mid)
                self._acked(out)
            else:
                self._unacked[info.mid] = out
        if early and self._on_ack is not None:
            self._on_ack(out.topic, out.payload)

    def connect(self, timeout_s: float = 10.0) -> Publisher:
        try:
            self.client.connect(self.address.host, self.address.port, keepalive=30)
        except OSError as exc:
            raise ConnectionError(
                f"cannot reach the MQTT broker at {self.address} ({exc}); start one or pass --broker URL"
            ) from None
        self.client.loop_start()
        if not self._connected.wait(timeout_s):
            self.client.loop_stop()
            raise ConnectionError(f"the MQTT broker at {self.address} did not accept the connection")
        for node in self._status_nodes:
            self._send_status(node, "online")
        return self

    def _send_status(self, node: str, state: str) -> None:
        status = NodeStatus(node_id=node, state=state, ts=time.time())  # type: ignore[arg-type]
        self._send(_Out(None, topic(self.store_id, node, "status", self.prefix), encode(status), True))

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def acknowledged(self) -> int:
        """How many publish_raw messages the broker acknowledged, from the first up to the first gap."""
        with self._cond:
            waiting = [out.ordinal for out in self._unacked.values() if out.ordinal is not None]
            return min(waiting, default=self.published)

    @property
    def settled(self) -> int:
        """Like :attr:`acknowledged`, but without the last ``resend_acked_s`` of acknowledgements:
        the messages a broker that died just now has surely kept. A resume point that loses nothing
        (what follows it may arrive twice; the store server keeps one)."""
        with self._cond:
            recent = [*self._unacked.values(), *self._tail]
            return min((out.ordinal for out in recent if out.ordinal is not None), default=self.published)

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._unacked)

    def publish_raw(self, topic_name: str, payload: dict[str, Any] | bytes, retain: bool = False) -> None:
        """Publish at QoS 1; waits while ``max_inflight`` messages are unacknowledged (the broker is
        slow or away). Raises :class:`PublishTimeout` when the broker acknowledges nothing for
        ``outage_timeout_s``."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
        self._wait(lambda: len(self._unacked) < self._max_inflight, self.outage_timeout_s)
        ordinal = self.published
        self.published += 1
        self._send(_Out(ordinal, topic_name, data, retain))

    def flush(self, timeout_s: float | None = None) -> None:
        """Block until the broker acknowledged everything published so far, across reconnects.

        Raises :class:`PublishTimeout` when no acknowledgement arrives for ``timeout_s`` (default
        ``outage_timeout_s``) while messages wait."""
        self._wait(lambda: not self._unacked, self.outage_timeout_s if timeout_s is None else timeout_s)

    def _wait(self, done: Callable[[], bool], timeout_s: float) -> None:
        """Wait for ``done()`` (checked holding the lock); the timeout restarts with every PUBACK."""
        with self._cond:
            acks = self._acks
            deadline = time.monotonic() + timeout_s
            while not done():
                if self._acks != acks:
                    acks, deadline = self._acks, time.monotonic() + timeout_s
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 1.0))
            else:
                return
            pending = len(self._unacked)
        state = "is unreachable" if not self.connected else "acknowledged nothing"
        raise PublishTimeout(
            f"the MQTT broker at {self.address} {state} for {timeout_s:.0f} s; {pending} message(s) "
            f"are not acknowledged ({self.acknowledged} of {self.published} are)",
            self.settled,
        )

    def close(self, offline: bool = True, timeout_s: float = 30.0) -> None:
        """Publish the offline status (``offline``), wait up to ``timeout_s`` for the broker's
        acknowledgements, disconnect. Messages still unacknowledged then are logged, not raised."""
        if offline:
            for node in self._status_nodes:
                self._send_status(node, "offline")
        try:
            self.flush(timeout_s)
        except PublishTimeout as exc:
            logger.warning("closing without all acknowledgements: %s", exc)
        self._closing = True
        self.client.disconnect()
        self.client.loop_stop()
