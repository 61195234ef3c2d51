"""``walkout record``: everything a store's edge publishes on a broker, written as a dataset.

The recorder subscribes to ``{prefix}/#`` (QoS 1, clean session) and appends each message to a spool
file in a temporary directory beside the target as it arrives, so a long recording does not live in
memory. When it ends (duration reached, stop event, Ctrl-C) it disconnects, sorts the spool by event
time and writes the dataset with :func:`sim_data.dataset.write_dataset`, then moves it into place: the
target is either a complete dataset or untouched, never half-written.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import paho.mqtt.client as mqtt

from edge.mqtt import MQTT5_ANSWER_S, BrokerAddress, connect_options, make_client, parse_broker_url
from sim_data.dataset import MANIFEST, DatasetError, SimMessage, install_directory, write_dataset
from store_server.domain.layout import LayoutError, load_layout

logger = logging.getLogger(__name__)

REJECTED = "rejected.jsonl"
SPOOL = "spool.jsonl"
Progress = Callable[[int, float], None]  # (messages recorded, seconds since subscribed)


class RecordError(DatasetError):
    """A recording that cannot start or be written; the message says what to do."""


@dataclass(frozen=True)
class RecordResult:
    path: Path
    message_count: int
    rejected_count: int
    duration_s: float  # wall time spent recording
    interrupted: bool  # ended by Ctrl-C
    seq_gaps: int = 0  # messages missing from the node sequences (lost upstream of the recorder)


def _event_time(payload: Any, received: float) -> float:
    ts = payload.get("ts") if isinstance(payload, dict) else None
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return float(ts)
    return received


class _Spool:
    """Messages as they arrive: one JSON line each on disk, their times and offsets in memory."""

    def __init__(self, folder: Path, store_id: str) -> None:
        self.store_id = store_id
        self.path = folder / SPOOL
        self.rejected_path = folder / REJECTED
        self._fh = open(self.path, "wb")  # noqa: SIM115 - open for the whole recording
        self._rejected: TextIO | None = None
        self._lock = threading.Lock()
        self.times = array("d")
        self.offsets = array("q")
        self.rejected = 0
        self.foreign = 0  # messages whose topic names another store
        self._seqs: dict[str, list[int]] = {}  # node -> [lowest seq, highest seq, messages]
        self._closed = False

    @property
    def count(self) -> int:
        return len(self.times)

    def add(self, topic_name: str, raw: bytes, retain: bool) -> None:
        received = time.time()
        try:
            payload = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._reject(received, topic_name, raw, retain, f"payload is not JSON: {exc}")
            return
        if not isinstance(payload, dict):
            self._reject(received, topic_name, raw, retain, "payload is not a JSON object")
            return
        t = _event_time(payload, received)
        line = SimMessage(t, topic_name, payload).to_json().encode() + b"\n"
        parts = topic_name.split("/")
        with self._lock:
            if self._closed:
                return
            if len(parts) > 1 and parts[1] != self.store_id:
                self.foreign += 1
            seq, node = payload.get("seq"), payload.get("node_id")
            if isinstance(seq, int) and isinstance(node, str):
                span = self._seqs.setdefault(node, [seq, seq, 0])
                span[0], span[1], span[2] = min(span[0], seq), max(span[1], seq), span[2] + 1
            self.offsets.append(self._fh.tell())
            self.times.append(t)
            self._fh.write(line)

    def _reject(self, received: float, topic_name: str, raw: bytes, retain: bool, reason: str) -> None:
        row = {
            "t": received,
            "topic": topic_name,
            "retain": retain,
            "reason": reason,
            "payload_b64": base64.b64encode(raw).decode(),
        }
        with self._lock:
            if self._closed:
                return
            if self._rejected is None:
                self._rejected = open(self.rejected_path, "w", encoding="utf-8")  # noqa: SIM115
            self._rejected.write(json.dumps(row) + "\n")
            self.rejected += 1

    @property
    def seq_gaps(self) -> int:
        """Messages missing between each node's lowest and highest seq (lost before they got here)."""
        return sum(max(0, hi - lo + 1 - n) for lo, hi, n in self._seqs.values())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._fh.close()
            if self._rejected is not None:
                self._rejected.close()

    def sorted_messages(self) -> Iterator[SimMessage]:
        """The spooled messages by event time; arrival order breaks ties (a stable sort)."""
        order = sorted(range(len(self.times)), key=self.times.__getitem__)
        with open(self.path, "rb") as fh:
            for i in order:
                fh.seek(self.offsets[i])
                row = json.loads(fh.readline())
                yield SimMessage(row["t"], row["topic"], row["payload"])


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise RecordError(f"{out} is a file; choose a directory path for the recording (--out)")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise RecordError(
            f"{out} exists and is not a Walkout dataset; choose an empty or new directory (--out)"
        )


def record(
    broker_url: str,
    out_dir: str | Path,
    duration_s: float | None = None,
    prefix: str = "walkout",
    store_file: str | Path | None = None,
    stop_event: threading.Event | None = None,
    progress: Progress | None = None,
    ready: threading.Event | None = None,
) -> RecordResult:
    """Record ``{prefix}/#`` until ``duration_s`` passes, ``stop_event`` is set or Ctrl-C; write a dataset.

    ``store_file`` (the layout YAML of the recorded store) is required: a dataset carries its layout.
    ``ready`` is set once the subscription is acknowledged (tests start publishing then).
    """
    if store_file is None:
        raise RecordError(
            "--store is required: the store layout YAML the recorded edge publishes for "
            "(e.g. --store sim_data/stores/demo.yaml); the dataset keeps a copy of it"
        )
    if duration_s is not None and duration_s <= 0:
        raise RecordError("--duration must be a positive number of seconds")
    try:
        layout = load_layout(store_file)
    except LayoutError as exc:
        raise RecordError(f"{exc} (fix the file given with --store)") from None
    layout_text = Path(store_file).read_text()
    out = Path(out_dir)
    _check_target(out)
    try:
        address = parse_broker_url(broker_url)
    except ValueError as exc:
        raise RecordError(str(exc)) from None
    stop = stop_event or threading.Event()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.rec-", dir=out.parent))
    try:
        spool = _Spool(work, layout.store_id)
        started, interrupted = _listen(address, prefix, spool, duration_s, stop, progress, ready)
        wall = round(time.monotonic() - started, 3)
        spool.close()
        result = _finish(
            spool, work, out, layout.store_id, layout_text, prefix, str(address), wall, interrupted
        )
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return result


def _connect(address: BrokerAddress, prefix: str, spool: _Spool, version: int) -> _Connection:
    """A started client subscribed (or about to be) to ``prefix/#``; MQTT 5 or 3.1.1."""
    client_id = f"walkout-record-{uuid.uuid4().hex[:8]}"
    conn = _Connection()
    # MQTT 5 raises the broker's window for us (see edge.mqtt.connect_options): with 3.1.1 a
    # flat-out publisher that outruns the recorder makes Mosquitto drop QoS 1 messages.
    client = make_client(address, client_id, persistent=False, protocol=version)
    conn.client = client

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            conn.refused = str(reason)
            conn.answered.set()
            return
        c.subscribe(f"{prefix}/#", qos=1)  # again after every reconnect: the session is clean

    def on_subscribe(_c: mqtt.Client, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        if any(code.is_failure for code in codes):
            conn.refused = f"subscribing to {prefix}/# was refused (does the broker's ACL allow it?)"
        conn.answered.set()

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        spool.add(msg.topic, bytes(msg.payload), bool(msg.retain))

    def on_disconnect(*_args: Any) -> None:
        if not conn.answered.is_set():
            conn.refused = conn.refused or "the broker closed the connection"
            conn.answered.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.on_disconnect = on_disconnect
    try:
        client.connect(address.host, address.port, keepalive=30, **connect_options(version, persistent=False))
    except OSError as exc:
        raise RecordError(
            f"cannot reach the MQTT broker at {address} ({exc}); start one or pass --broker URL"
        ) from None
    client.loop_start()
    return conn


class _Connection:
    def __init__(self) -> None:
        self.client: mqtt.Client | None = None
        self.answered = threading.Event()  # subscribed, refused, or closed by the broker
        self.refused = ""

    def wait(self, timeout_s: float) -> bool:
        """True once subscribed; False when refused or no answer in time."""
        if not self.answered.wait(timeout_s):
            self.refused = "no answer"
        return not self.refused

    def stop(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()


def _subscribe(address: BrokerAddress, prefix: str, spool: _Spool) -> _Connection:
    conn = _connect(address, prefix, spool, 5)
    if conn.wait(MQTT5_ANSWER_S):
        return conn
    conn.stop()
    logger.warning(
        "the broker at %s does not take MQTT 5 (%s): recording over MQTT 3.1.1, where a publisher "
        "faster than the recorder can make the broker drop messages",
        address,
        conn.refused,
    )
    conn = _connect(address, prefix, spool, 4)
    if conn.wait(10.0):
        return conn
    conn.stop()
    raise RecordError(f"the MQTT broker at {address} did not accept the subscription: {conn.refused}")


def _listen(
    address: BrokerAddress,
    prefix: str,
    spool: _Spool,
    duration_s: float | None,
    stop: threading.Event,
    progress: Progress | None,
    ready: threading.Event | None,
) -> tuple[float, bool]:
    """Receive into ``spool`` until done; return (monotonic start, interrupted by Ctrl-C)."""
    conn = _subscribe(address, prefix, spool)
    interrupted = False
    try:
        started = time.monotonic()
        if ready is not None:
            ready.set()
        logger.info("recording %s/# from %s", prefix, address)
        try:
            while not stop.wait(0.2):
                elapsed = time.monotonic() - started
                if progress:
                    progress(spool.count, elapsed)
                if duration_s is not None and elapsed >= duration_s:
                    break
        except KeyboardInterrupt:
            interrupted = True
    finally:
        conn.stop()
    if progress:
        progress(spool.count, time.monotonic() - started)
    return started, interrupted


def _finish(
    spool: _Spool,
    work: Path,
    out: Path,
    store_id: str,
    layout_text: str,
    prefix: str,
    broker: str,
    wall_s: float,
    interrupted: bool,
) -> RecordResult:
    if spool.seq_gaps:
        logger.warning(
            "%d messages are missing from the node sequences: lost before the recorder got them",
            spool.seq_gaps,
        )
    if spool.foreign:
        logger.warning("%d recorded messages name another store than %r (--store)", spool.foreign, store_id)
    t0 = min(spool.times) if spool.count else time.time()
    t_last = max(spool.times) if spool.count else t0
    manifest = {
        "source": "record",
        "scenario": None,
        "seed": None,
        "store_id": store_id,
        "t0": t0,
        "duration_s": round(t_last - t0, 3),
        "fidelity": "event",
        "record": {
            "broker": broker,
            "topic_filter": f"{prefix}/#",
            "wall_duration_s": wall_s,
            "rejected_count": spool.rejected,
            "seq_gaps": spool.seq_gaps,
            "interrupted": interrupted,
        },
    }
    # A recording knows what was published, not what truly happened: the truth is left empty.
    truth = {"store_id": store_id, "t0": t0, "accounts": [], "sessions": [], "events": []}
    staged = write_dataset(work / "dataset", manifest, layout_text, spool.sorted_messages(), truth)
    if spool.rejected:
        shutil.move(str(spool.rejected_path), staged / REJECTED)
    install_directory(staged, out)
    logger.info("recorded %d messages (%d rejected) -> %s", spool.count, spool.rejected, out)
    return RecordResult(out, spool.count, spool.rejected, wall_s, interrupted, spool.seq_gaps)
