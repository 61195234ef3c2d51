"""Publishing contract messages over MQTT: QoS 1, a retained status topic with a last will."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from edge.contracts import DEFAULT_PREFIX, NodeStatus, encode, topic
from edge.mqtt import BrokerAddress, make_client

logger = logging.getLogger(__name__)


class Publisher:
    """One MQTT connection that publishes at QoS 1 and waits for the broker's acknowledgements.

    ``status_nodes`` get a retained ``online`` status now and an ``offline`` last will, so the store
    server knows when a node disappears.
    """

    def __init__(
        self,
        address: BrokerAddress,
        store_id: str,
        client_id: str,
        status_nodes: list[str] | None = None,
        prefix: str = DEFAULT_PREFIX,
        max_inflight: int = 200,
    ) -> None:
        self.address = address
        self.store_id = store_id
        self.prefix = prefix
        self.client = make_client(address, client_id, persistent=False)
        self.client.max_inflight_messages_set(max_inflight)
        self._connected = threading.Event()
        self._status_nodes = status_nodes or []
        if len(self._status_nodes) == 1:  # MQTT allows one will per connection
            node = self._status_nodes[0]
            will = NodeStatus(node_id=node, state="offline")
            self.client.will_set(topic(store_id, node, "status", prefix), encode(will), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self._pending: list[mqtt.MQTTMessageInfo] = []

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            logger.error("broker %s refused the connection: %s", self.address, reason)
            return
        self._connected.set()

    def _on_disconnect(self, *_args: Any) -> None:
        self._connected.clear()

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
            status = NodeStatus(node_id=node, state="online", ts=time.time())
            self.client.publish(topic(self.store_id, node, "status", self.prefix), encode(status), 1, True)
        return self

    def publish_raw(self, topic_name: str, payload: dict[str, Any] | bytes, retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
        info = self.client.publish(topic_name, data, qos=1, retain=retain)
        self._pending.append(info)
        if len(self._pending) >= 1000:
            self.flush()

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until the broker acknowledged everything published so far."""
        deadline = time.monotonic() + timeout_s
        for info in self._pending:
            info.wait_for_publish(max(0.01, deadline - time.monotonic()))
        self._pending.clear()

    def close(self, offline: bool = True) -> None:
        if offline:
            for node in self._status_nodes:
                status = NodeStatus(node_id=node, state="offline", ts=time.time())
                self.publish_raw(topic(self.store_id, node, "status", self.prefix), encode(status), True)
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()
