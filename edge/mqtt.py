"""MQTT connection settings shared by every Walkout client (edge publisher, store server, recorder)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

RECEIVE_MAXIMUM = 65535  # MQTT 5: how many unacknowledged messages the broker may send us
SESSION_EXPIRY_S = 7 * 24 * 3600  # MQTT 5: how long the broker keeps a persistent session while we are away
MQTT5_ANSWER_S = 3.0  # a 3.1.1-only broker (amqtt) does not answer an MQTT 5 CONNECT at all


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
