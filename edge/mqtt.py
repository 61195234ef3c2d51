"""MQTT connection settings shared by every Walkout client (edge publisher, store server, recorder)."""

from __future__ import annotations

import ssl
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

RECEIVE_MAXIMUM = 65535  # MQTT 5: how many unacknowledged messages the broker may send us
SESSION_EXPIRY_S = 7 * 24 * 3600  # MQTT 5: how long the broker keeps a persistent session while we are away
MQTT5_ANSWER_S = 3.0  # a 3.1.1-only broker (amqtt) does not answer an MQTT 5 CONNECT at all
# A broker acknowledges a QoS 1 message before it has saved it. Mosquitto (autosave_on_changes with
# autosave_interval 1) saves a queued message at the end of the loop pass that sent the PUBACK, a few
# ms later; one it passes straight on to a connected subscriber is no "change" and may never be saved
# (a kill -9 drops it if it has not reached the subscriber yet). A publisher that loses the broker
# sends again what was acknowledged in this many seconds before the last acknowledgement, so neither
# gap loses anything.
RESEND_ACKED_S = 5.0

T = TypeVar("T")


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def __str__(self) -> str:  # never print the password
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://[user[:password]@]host[:port]`` or ``mqtts://`` for TLS."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
    if not parts.hostname:
        raise ValueError(f"broker URL {url!r} has no host; write it as mqtt://host:1883")
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


def make_client(
    address: BrokerAddress,
    client_id: str,
    *,
    persistent: bool,
    manual_ack: bool = False,
    protocol: int = 4,
) -> mqtt.Client:
    """A paho 2 client (MQTT 5 or 3.1.1) with credentials, TLS and reconnect back-off set.

    Connect it with ``client.connect(host, port, **connect_options(protocol, persistent))``.
    """
    v5 = protocol == 5
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if v5 else not persistent,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.max_queued_messages_set(0)
    return client


def connect_options(protocol: int, persistent: bool) -> dict[str, Any]:
    """Keyword arguments for ``connect``/``connect_async``.

    With MQTT 5 the client raises the broker's window for it (Receive Maximum): Mosquitto otherwise
    keeps 20 messages in flight and queues at most 1000 more, and drops QoS 1 messages beyond that
    when a publisher outruns the subscriber. A persistent MQTT 5 session also needs an expiry.
    """
    if protocol != 5:
        return {}
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    if persistent:
        props.SessionExpiryInterval = SESSION_EXPIRY_S
    return {"clean_start": not persistent, "properties": props}


class AckedTail(Generic[T]):
    """The messages a broker acknowledged in the last ``window_s`` seconds before its latest PUBACK.

    An acknowledgement is not yet a save: a broker killed between the two forgets messages it already
    acknowledged. Keep this tail and publish it again after an unexpected disconnect; the receiver drops
    the repeats by their ``node_id:seq`` id. The window is measured against the latest acknowledgement,
    not the disconnect, so a broker that died silently (noticed only by keep-alive) is covered too.
    Not thread-safe: the owner holds its own lock.
    """

    def __init__(
        self,
        window_s: float = RESEND_ACKED_S,
        max_items: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self._items: deque[tuple[float, T]] = deque(maxlen=max_items)
        self._clock = clock

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return (item for _, item in self._items)

    def add(self, item: T) -> None:
        now = self._clock()
        self._items.append((now, item))
        while self._items and self._items[0][0] < now - self.window_s:
            self._items.popleft()

    def take(self) -> list[T]:
        """Everything in the tail, oldest first; the tail is empty afterwards."""
        items = [item for _, item in self._items]
        self._items.clear()
        return items
