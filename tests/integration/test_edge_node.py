"""An edge node on a simulated shelf against the real Mosquitto: events, status, heartbeats, no loss.

A TCP proxy between the node and Mosquitto plays the unplugged broker: stopping it cuts the node off
(it must spool), starting it again lets the node reconnect (it must flush in order).

The shared broker may be busy (CI runs many things at once): the tests wait on conditions with generous
timeouts and check what the node publishes, never how fast.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from edge.mqtt import parse_broker_url
from edge.node import EdgeNode
from edge.node_config import parse_node_config

pytestmark = pytest.mark.integration

PLATES = ["g1-s1-p1", "g1-s1-p2", "g1-s1-p3", "g1-s1-p4"]


class Proxy:
    """Forwards 127.0.0.1:<port> to the broker; stop() drops every connection and the listener."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._socks: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> None:
        lst = socket.socket()
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind(("127.0.0.1", self.port))
        lst.listen()
        self._listener = lst
        threading.Thread(target=self._accept, args=(lst,), daemon=True).start()

    def _accept(self, lst: socket.socket) -> None:
        while True:
            try:
                client, _ = lst.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):  # shutdown wakes the accept() (close alone does not)
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        for s in self._socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self._socks.clear()


class Listener:
    def __init__(self, url: str, prefix: str) -> None:
        address = parse_broker_url(url)
        self.messages: list[tuple[str, dict[str, Any], bool]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        self.client.on_message = lambda _c, _u, m: self.messages.append(
            (m.topic.rsplit("/", 1)[1], json.loads(m.payload), m.retain)
        )
        ready = threading.Event()
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        self.client.subscribe(f"{prefix}/#", qos=1)
        assert ready.wait(5)

    def of(self, feature: str) -> list[dict[str, Any]]:
        return [p for f, p, _ in self.messages if f == feature]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def config(tmp_path: Path, port: int, prefix: str, script: list[dict[str, Any]], duration_s: float) -> Any:
    return parse_node_config(
        {
            "node_id": "shelf-g1",
            "store_id": "demo",
            "heartbeat_s": 0.25,
            "broker": {
                "url": f"mqtt://127.0.0.1:{port}",
                "topic_prefix": prefix,
                "reconnect_min_s": 1,
                "reconnect_max_s": 1,
            },
            "spool": {"path": str(tmp_path / "spool.sqlite")},
            "source": {
                "type": "simulated",
                "seed": 4,
                "speed": 4.0,
                "duration_s": duration_s,
                "picks_per_minute": 0,
                "touches_per_minute": 2,
                "script": script,
            },
            "shelves": [{"gondola_id": "g1", "shelf_id": "g1-s1", "plates": [{"id": p} for p in PLATES]}],
        }
    )


def run_node(node: EdgeNode) -> threading.Thread:
    thread = threading.Thread(target=node.run, daemon=True)
    thread.start()
    return thread


WAIT_S = 60.0  # for anything the node does on its own; a busy machine is slow, not wrong


def wait_for(pred: Any, timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return bool(pred())


def unique(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first copy of each ``node_id:seq``, as the store server keeps them: after a lost connection
    a node sends again what the broker acknowledged just before (it may not have saved it)."""
    seen: set[tuple[str, int]] = set()
    out = []
    for m in messages:
        if (m["node_id"], m["seq"]) not in seen:
            seen.add((m["node_id"], m["seq"]))
            out.append(m)
    return out


def check_events(got: list[dict[str, Any]], script: list[dict[str, Any]]) -> None:
    got = unique(got)
    assert len(got) == len(script), got
    for ev, want in zip(got, script, strict=True):
        assert ev["plate_ids"] == sorted(want["plates"])
        assert ev["delta_g"] == pytest.approx(sum(want["plates"].values()), abs=1.5)
        assert ev["ts"] >= ev["t_end"] >= ev["t_start"]
    seqs = [e["seq"] for e in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


SCRIPT = [
    {"t": 2.0, "plates": {"g1-s1-p1": -355.0}, "duration_s": 1.0},
    {"t": 8.0, "plates": {"g1-s1-p2": -120.0, "g1-s1-p3": -130.0}, "duration_s": 1.2},
    {"t": 14.0, "plates": {"g1-s1-p4": 60.0}, "duration_s": 0.8},
    {"t": 20.0, "plates": {"g1-s1-p1": -710.0}, "duration_s": 1.4},
]


def test_a_node_on_a_simulated_shelf_publishes_events_status_and_heartbeats(
    mosquitto_url: str, tmp_path: Path
) -> None:
    prefix = f"edge-test-{uuid.uuid4().hex[:8]}"
    port = parse_broker_url(mosquitto_url).port
    sub = Listener(mosquitto_url, prefix)
    duration = 30.0  # the last event ends at 21.4 s: a quiet stretch follows
    node = EdgeNode(config(tmp_path, port, prefix, SCRIPT, duration))
    thread = run_node(node)
    thread.join(WAIT_S)
    assert not thread.is_alive(), "the node did not stop at the end of its source"
    assert wait_for(lambda: any(p["state"] == "offline" for p in sub.of("status")))
    sub.close()
    check_events(sub.of("weight"), SCRIPT)
    status = sub.of("status")
    assert status[0]["state"] == "online" and set(status[0]["sensors"]) == set(PLATES)
    assert status[-1]["state"] == "offline"
    # Heartbeats carry the node's watermark through the quiet stretches: at least one between any two
    # events and after the last, never closer than 3/4 of heartbeat_s apart (in the source's time;
    # how many fit in depends on how fast the broker acknowledges the events, so that is not asserted).
    beats = [p["ts"] for p in sub.of("heartbeat")]
    events = [p["ts"] for p in sub.of("weight")]
    for start, end in zip(events, [*events[1:], float("inf")], strict=True):
        assert any(start < b < end for b in beats), f"no heartbeat between {start} and {end}"
    assert min(b - a for a, b in zip(beats, beats[1:], strict=False)) >= 0.75 * 0.25 - 1e-6
    assert len(beats) <= duration / (0.75 * 0.25) + 1
    everything = sorted((p for f, p, _ in sub.messages if f != "status"), key=lambda p: p["seq"])
    assert [p["ts"] for p in everything] == sorted(p["ts"] for p in everything)  # published in ts order


def test_an_unplugged_broker_loses_nothing_also_across_a_restart(mosquitto_url: str, tmp_path: Path) -> None:
    prefix = f"edge-test-{uuid.uuid4().hex[:8]}"
    target = parse_broker_url(mosquitto_url)
    proxy = Proxy((target.host, target.port))
    proxy.start()
    sub = Listener(mosquitto_url, prefix)
    node = EdgeNode(config(tmp_path, proxy.port, prefix, SCRIPT, 24.0))
    thread = run_node(node)
    assert wait_for(lambda: len(sub.of("weight")) >= 1), "the first event never arrived"
    proxy.stop()  # the later events (2 s, 3.5 s and 5 s of wall time at 4x) happen while it is away
    assert wait_for(lambda: len(node.spool) >= 2), "events are not spooled while the broker is away"
    proxy.start()
    thread.join(WAIT_S)
    assert wait_for(lambda: len(unique(sub.of("weight"))) >= 4)
    check_events(sub.of("weight"), SCRIPT)
    assert len(node.spool) == 0
    before = unique(sub.of("weight"))

    # A node that stops while cut off keeps its spool; the next start publishes it first.
    proxy.stop()
    script = SCRIPT[:2]
    first = EdgeNode(config(tmp_path, proxy.port, prefix, script, 12.0))
    run_node(first).join(WAIT_S)
    assert len(first.events) == 2
    proxy.start()
    second = EdgeNode(config(tmp_path, proxy.port, prefix, [], 4.0))
    assert len(second.spool) == 2
    run_node(second).join(WAIT_S)
    assert wait_for(lambda: len(unique(sub.of("weight"))) >= 6)
    sub.close()
    proxy.stop()
    after = unique(sub.of("weight"))[len(before) :]
    check_events(after, script)
    assert min(p["seq"] for p in after) > max(p["seq"] for p in before)


def test_bad_node_configs_name_the_file_the_key_and_the_fix(tmp_path: Path, monkeypatch: Any) -> None:
    from edge.node_config import NodeConfigError, load_node_config

    good = {
        "node_id": "n1",
        "store_id": "s",
        "source": {"type": "simulated"},
        "shelves": [{"gondola_id": "g", "shelf_id": "s1", "plates": [{"id": "a"}]}],
    }
    cases = [
        ({**good, "colour": 1}, "colour: Extra inputs are not permitted -> fix: remove it"),
        ({**good, "source": {"type": "usb"}}, "source: Input tag 'usb'"),
        ({**good, "source": {"type": "hx711"}}, "needs hx711 pins on every plate; missing on a"),
        ({**good, "detector": {"min_delta": 3}}, "unknown detector parameter(s) min_delta"),
        ({**good, "rate_hz": -1}, "rate_hz: Input should be greater than 0 -> fix: use a larger value"),
    ]
    for data, expected in cases:
        path = tmp_path / "node.yaml"
        path.write_text(json.dumps(data))
        with pytest.raises(NodeConfigError) as err:
            load_node_config(path)
        assert str(path) in str(err.value) and expected in str(err.value), str(err.value)
    with pytest.raises(NodeConfigError, match="no such file"):
        load_node_config(tmp_path / "missing.yaml")
    monkeypatch.delenv("NODE_PW", raising=False)
    path.write_text(json.dumps({**good, "broker": {"password_env": "NODE_PW"}}))
    with pytest.raises(NodeConfigError, match="NODE_PW is not set"):
        load_node_config(path).broker.address()


def test_a_signal_level_run_gives_back_the_event_level_events() -> None:
    from edge.contracts import parse
    from edge.signal_pipeline import detect_stream
    from sim_data.signal import event_deltas, score_events, to_signal_level
    from sim_data.simulator import simulate
    from store_server.domain.layout import load_layout
    from store_server.settings import DEFAULT_STORE

    layout = load_layout(DEFAULT_STORE)
    result = simulate(layout, "sensor-faults", seed=3)
    signal = to_signal_level(result.messages, result.ground_truth, layout, seed=3, faults=True)
    assert not [m for m in signal if m.payload["kind"] == "weight"]
    out = list(detect_stream(signal, layout))
    for m in out[:: max(1, len(out) // 500)]:
        parse(m.topic, json.dumps(m.payload))  # every message still fits the contract
    by_node: dict[str, list[dict[str, Any]]] = {}
    for m in out:
        by_node.setdefault(m.payload["node_id"], []).append(m.payload)
    for msgs in by_node.values():
        assert [p["seq"] for p in msgs] == sorted({p["seq"] for p in msgs})
        assert [p["ts"] for p in msgs] == sorted(p["ts"] for p in msgs)
    weights = [m.payload for m in out if m.payload["kind"] == "weight"]
    score = score_events(
        weights, result.ground_truth, event_deltas(result.messages, result.ground_truth, layout)
    )
    assert score["precision"] >= 0.99 and score["recall"] >= 0.99, score
    assert score["weight_error_g"]["max"] <= 2.0, score  # sensor-faults noise is 1 g
