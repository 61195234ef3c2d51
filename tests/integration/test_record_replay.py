"""Record and replay through a real Mosquitto: what is recorded is what was published, byte for byte
in content, and a recording interrupted at any moment is either complete or absent. A replay survives
a broker killed with kill -9 (a Mosquitto of the test's own, configured like the shipped one)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from edge.contracts import parse
from edge.mqtt import parse_broker_url
from edge.publisher import Publisher
from sim_data.dataset import Dataset, DatasetError, write_dataset
from sim_data.pipeline import StoreUnderTest
from sim_data.recorder import RecordError, RecordResult, record
from sim_data.replay import replay_dataset, retarget
from sim_data.simulator import simulate
from store_server.domain.layout import load_layout
from store_server.settings import DEFAULT_STORE
from tests.integration.crash_helpers import (
    MosquittoProcess,
    conf_under_test,
    kept_lines,
    wait_for_store,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = simulate(load_layout(DEFAULT_STORE), "basic", seed=3, shoppers=1)
    return write_dataset(
        tmp_path_factory.mktemp("small") / "basic-3",
        result.manifest(),
        DEFAULT_STORE.read_text(),
        result.messages,
        result.ground_truth,
    )


def _prefix() -> str:
    return f"walkout-test-{uuid.uuid4().hex[:10]}"


class _Recording:
    """``record()`` in a thread: start it, wait until it holds N messages, stop it."""

    def __init__(self, broker_url: str, out: Path, prefix: str, **kwargs: Any) -> None:
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.count = 0
        self.result: RecordResult | None = None
        self.error: BaseException | None = None

        def progress(count: int, _elapsed: float) -> None:
            self.count = count

        def run() -> None:
            try:
                self.result = record(
                    broker_url,
                    out,
                    prefix=prefix,
                    store_file=DEFAULT_STORE,
                    stop_event=self.stop,
                    progress=progress,
                    ready=self.ready,
                    **kwargs,
                )
            except BaseException as exc:  # surfaced by finish()
                self.error = exc
            finally:
                self.ready.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert self.ready.wait(15), "the recorder did not subscribe"
        if self.error:
            raise self.error

    def wait_for(self, n: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.count >= n, f"recorded {self.count} of {n} messages"

    def finish(self) -> RecordResult:
        self.stop.set()
        self.thread.join(30)
        if self.error:
            raise self.error
        assert self.result is not None
        return self.result


def _publish(dataset: Path, broker_url: str, prefix: str, **kwargs: Any) -> int:
    data = Dataset.open(dataset)
    publisher = Publisher(
        parse_broker_url(broker_url), data.layout.store_id, f"test-replay-{uuid.uuid4().hex[:8]}"
    )
    publisher.connect()
    try:
        return replay_dataset(data, publisher, speed=None, prefix=prefix, **kwargs).published
    finally:
        publisher.close(offline=False)


def _content(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(topic under the default prefix, payload) of every message, in file order."""
    return [(retarget(m.topic, "walkout"), m.payload) for m in Dataset.open(path).messages()]


def test_record_of_a_replay_of_a_recording_equals_the_original(
    small_dataset: Path, mosquitto_url: str, tmp_path: Path
) -> None:
    original = _content(small_dataset)
    total = len(original)

    first_prefix = _prefix()
    rec = _Recording(mosquitto_url, tmp_path / "rec1", first_prefix)
    assert _publish(small_dataset, mosquitto_url, first_prefix) == total
    rec.wait_for(total)
    first = rec.finish()
    assert (first.message_count, first.rejected_count, first.interrupted) == (total, 0, False)

    second_prefix = _prefix()
    rec = _Recording(mosquitto_url, tmp_path / "rec2", second_prefix)
    assert _publish(first.path, mosquitto_url, second_prefix) == total
    rec.wait_for(total)
    second = rec.finish()

    assert _content(first.path) == original
    assert _content(second.path) == original
    recording = Dataset.open(second.path)
    manifest = recording.manifest
    assert manifest["source"] == "record" and manifest["fidelity"] == "event"
    assert manifest["message_count"] == total and manifest["store_id"] == "demo"
    src = Dataset.open(small_dataset).manifest
    assert manifest["t0"] == pytest.approx(src["t0"], abs=1)  # first message: the first heartbeat
    assert recording.layout_text == DEFAULT_STORE.read_text()
    assert all(m.topic.startswith(second_prefix + "/") for m in recording.messages())
    assert not (second.path / "rejected.jsonl").exists()


def test_non_json_payloads_and_retained_status_are_kept(mosquitto_url: str, tmp_path: Path) -> None:
    prefix = _prefix()
    publisher = Publisher(
        parse_broker_url(mosquitto_url),
        "demo",
        f"test-{uuid.uuid4().hex[:8]}",
        status_nodes=["shelf-g1"],
        prefix=prefix,
    ).connect()  # retained "online"
    publisher.flush()
    try:
        rec = _Recording(mosquitto_url, tmp_path / "rec", prefix)
        rec.wait_for(1)  # the retained status, delivered on subscribe
        publisher.publish_raw(f"{prefix}/demo/shelf-g1/weight", b"\xff not json")
        publisher.publish_raw(
            f"{prefix}/demo/shelf-g1/heartbeat", {"v": 1, "node_id": "shelf-g1", "seq": 0, "ts": 5.0}
        )
        publisher.flush()
        rec.wait_for(2)
        time.sleep(0.3)
        result = rec.finish()
    finally:
        publisher.client.publish(f"{prefix}/demo/shelf-g1/status", b"", qos=1, retain=True)  # clear it
        publisher.close(offline=False)
    messages = list(Dataset.open(result.path).messages())
    # ordered by t: the heartbeat's ts 5.0 comes before the status sent just now
    assert [m.topic.rsplit("/", 1)[1] for m in messages] == ["heartbeat", "status"]
    status = messages[1]
    assert status.payload["state"] == "online" and status.t == status.payload["ts"]
    rejected = [json.loads(line) for line in (result.path / "rejected.jsonl").read_text().splitlines()]
    assert result.rejected_count == 1 and len(rejected) == 1
    assert rejected[0]["topic"].endswith("/weight") and "not JSON" in rejected[0]["reason"]
    import base64

    assert base64.b64decode(rejected[0]["payload_b64"]) == b"\xff not json"


def test_a_stopped_recording_is_complete_or_absent(
    small_dataset: Path, mosquitto_url: str, tmp_path: Path
) -> None:
    for delay in (0.0, 0.05, 0.2):
        prefix = _prefix()
        out = tmp_path / f"stopped-{delay}"
        rec = _Recording(mosquitto_url, out, prefix)
        publishing = threading.Thread(target=_publish, args=(small_dataset, mosquitto_url, prefix))
        publishing.start()
        time.sleep(delay)
        result = rec.finish()  # the stop event: what Ctrl-C does
        publishing.join(30)
        data = Dataset.open(out)
        assert data.manifest["message_count"] == result.message_count == len(list(data.messages()))
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_interrupted_while_writing_leaves_nothing_half_written(
    small_dataset: Path, mosquitto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sim_data.recorder as recorder

    real: Callable[..., Any] = recorder._Spool.sorted_messages

    def ctrl_c_midway(self: Any) -> Any:
        for i, message in enumerate(real(self)):
            if i == 50:
                raise KeyboardInterrupt  # a second Ctrl-C while the dataset is being written
            yield message

    monkeypatch.setattr(recorder._Spool, "sorted_messages", ctrl_c_midway)
    out = tmp_path / "rec"
    prefix = _prefix()
    rec = _Recording(mosquitto_url, out, prefix)
    _publish(small_dataset, mosquitto_url, prefix)
    rec.wait_for(100)
    with pytest.raises(KeyboardInterrupt):
        rec.finish()
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary directory

    # An older dataset at the target survives an interrupted recording untouched.
    write_dataset(out, {"source": "sim"}, DEFAULT_STORE.read_text(), [], {"sessions": []})
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    rec = _Recording(mosquitto_url, out, prefix)
    _publish(small_dataset, mosquitto_url, prefix)
    rec.wait_for(100)
    with pytest.raises(KeyboardInterrupt):
        rec.finish()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["rec"]


def test_record_needs_a_store_file_and_refuses_a_foreign_directory(
    mosquitto_url: str, tmp_path: Path
) -> None:
    with pytest.raises(RecordError, match="--store is required"):
        record(mosquitto_url, tmp_path / "x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="not a Walkout dataset"):
        record(mosquitto_url, tmp_path / "mine", store_file=DEFAULT_STORE, duration_s=0.1)
    with pytest.raises(RecordError, match="cannot reach the MQTT broker"):
        record("mqtt://127.0.0.1:1", tmp_path / "y", store_file=DEFAULT_STORE, duration_s=0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_record_for_a_duration(mosquitto_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    result = record(
        mosquitto_url, tmp_path / "quiet", duration_s=0.5, prefix=_prefix(), store_file=DEFAULT_STORE
    )
    # It stops on its own (no stop event, no Ctrl-C), and not before the duration asked for.
    assert time.monotonic() - started >= 0.5 and not result.interrupted
    assert result.message_count == 0 and Dataset.open(result.path).manifest["message_count"] == 0


def test_looping_keeps_ids_unique_and_times_increasing(
    small_dataset: Path, mosquitto_url: str, tmp_path: Path
) -> None:
    total = Dataset.open(small_dataset).manifest["message_count"]
    prefix = _prefix()
    rec = _Recording(mosquitto_url, tmp_path / "looped", prefix)
    assert _publish(small_dataset, mosquitto_url, prefix, loops=3) == 3 * total
    rec.wait_for(3 * total)
    messages = list(Dataset.open(rec.finish().path).messages())
    assert len(messages) == 3 * total
    ids = [f"{m.payload['node_id']}:{m.payload['seq']}" for m in messages]
    assert len(set(ids)) == len(ids)
    last: dict[str, tuple[int, float]] = {}
    for m in messages:
        parse(m.topic, json.dumps(m.payload), prefix=prefix)  # still valid contract messages
        node, seq, ts = m.payload["node_id"], m.payload["seq"], m.payload["ts"]
        if node in last:
            assert seq > last[node][0] and ts >= last[node][1]
        last[node] = (seq, ts)
    assert all(a.t <= b.t for a, b in zip(messages, messages[1:], strict=False))
    duration = Dataset.open(small_dataset).manifest["duration_s"]
    assert messages[total].t - messages[0].t == pytest.approx(duration + 1.0, abs=1e-3)


def test_resume_from_message_publishes_the_rest(
    small_dataset: Path, mosquitto_url: str, tmp_path: Path
) -> None:
    original = _content(small_dataset)
    prefix = _prefix()
    rec = _Recording(mosquitto_url, tmp_path / "resumed", prefix)
    stop = threading.Event()

    def stop_after(n: int) -> None:
        if n == 300:
            stop.set()

    data = Dataset.open(small_dataset)
    publisher = Publisher(parse_broker_url(mosquitto_url), "demo", f"test-{uuid.uuid4().hex[:8]}").connect()
    try:
        first = replay_dataset(data, publisher, prefix=prefix, stop=stop, on_message=stop_after)
        assert first.stopped and first.next_message == 300
        rest = replay_dataset(data, publisher, prefix=prefix, from_message=first.next_message)
        assert not rest.stopped and rest.next_message == len(original)
    finally:
        publisher.close(offline=False)
    rec.wait_for(len(original))
    assert _content(rec.finish().path) == original


def _replay_process(dataset: Path, broker_url: str, *args: str) -> subprocess.Popen[str]:
    """``walkout replay DATASET --broker URL ARGS`` in a process of its own (stderr: its report)."""
    script = (
        "import typer; from sim_data.tools_cli import replay_command; "
        "app = typer.Typer(); app.command('replay')(replay_command); app.command('other')(lambda: None); "
        "app()"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script, "replay", str(dataset), "--broker", broker_url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "COLUMNS": "200"},
    )


def test_replay_command_ctrl_c_says_how_to_resume(
    small_dataset: Path, mosquitto_url: str, tmp_path: Path
) -> None:
    prefix = _prefix()
    rec = _Recording(mosquitto_url, tmp_path / "seen", prefix)
    proc = _replay_process(small_dataset, mosquitto_url, "--speed", "1", "--prefix", prefix)
    rec.wait_for(20, timeout_s=60)  # the replay is under way (at 1x it has most of the dataset to go)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    rec.finish()
    assert proc.returncode == 130, err
    assert "stopped after " in err and "; resume with --from-message " in err
    n = int(err.split("resume with --from-message ")[1].split()[0])
    assert 0 < n < Dataset.open(small_dataset).manifest["message_count"]
    assert f"stopped after {n} messages" in err


def _ids(dataset: Path) -> set[str]:
    """``node_id:seq`` of every message of a dataset (status messages have no seq)."""
    return {
        f"{m.payload['node_id']}:{m.payload['seq']}"
        for m in Dataset.open(dataset).messages()
        if "seq" in m.payload
    }


class _Seen:
    """Counts the messages under a prefix on a broker, as they pass (to act mid-replay)."""

    def __init__(self, url: str, prefix: str) -> None:
        address = parse_broker_url(url)
        self.count = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"seen-{uuid.uuid4().hex[:8]}")
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = lambda *_: setattr(self, "count", self.count + 1)
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        self.client.subscribe(f"{prefix}/#", qos=0)
        assert subscribed.wait(15)

    def wait_for(self, n: int, proc: subprocess.Popen[str], timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count < n:
            assert proc.poll() is None, f"the replay ended first: {proc.communicate()[1]}"
            assert time.monotonic() < deadline, f"saw {self.count} of {n} messages"
            time.sleep(0.01)
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    broker = MosquittoProcess(tmp_path, kept_lines(conf_under_test())).start()
    yield broker
    broker.stop()


def test_a_replay_goes_on_through_a_broker_kill_9_and_restart(
    small_dataset: Path, own_broker: MosquittoProcess
) -> None:
    wanted = _ids(small_dataset)
    with StoreUnderTest(Dataset.open(small_dataset), broker_url=own_broker.url) as store:
        seen = _Seen(own_broker.url, store.prefix)
        proc = _replay_process(small_dataset, own_broker.url, "--max-speed", "--prefix", store.prefix)
        seen.wait_for(len(wanted) // 4, proc)
        own_broker.kill9()
        own_broker.start()
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        total = Dataset.open(small_dataset).manifest["message_count"]
        assert f"published {total} messages" in err, err
        missing = wanted - wait_for_store(store.server, wanted)
    assert not missing, f"{len(missing)} of {len(wanted)} messages never reached the store server"


def test_a_replay_that_loses_the_broker_for_good_names_the_message_to_resume_from(
    small_dataset: Path, own_broker: MosquittoProcess
) -> None:
    wanted = _ids(small_dataset)
    total = Dataset.open(small_dataset).manifest["message_count"]
    with StoreUnderTest(Dataset.open(small_dataset), broker_url=own_broker.url) as store:
        # Paced (4x, ~12 s), so the first messages are acknowledged longer ago than the publisher's
        # re-send window when the broker dies: those are safe, the resume point comes after them.
        args = ("--speed", "4", "--prefix", store.prefix, "--outage-timeout", "3")
        seen = _Seen(own_broker.url, store.prefix)
        proc = _replay_process(small_dataset, own_broker.url, *args)
        seen.wait_for(len(wanted) * 3 // 4, proc)
        own_broker.kill9()  # and it stays away
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, err
        assert "is unreachable for 3 s" in err and "resume with --from-message " in err, err
        n = int(err.split("resume with --from-message ")[1].split()[0])
        assert 0 < n < total, err

        own_broker.start()
        again = _replay_process(
            small_dataset, own_broker.url, "--max-speed", *args[2:4], "--from-message", str(n)
        )
        _, err = again.communicate(timeout=180)
        assert again.returncode == 0, err
        assert f"published {total - n} messages" in err, err
        # Everything before N was acknowledged (and saved) before the broker died; the rest came now.
        missing = wanted - wait_for_store(store.server, wanted)
    assert not missing, f"{len(missing)} of {len(wanted)} messages never reached the store server"
