"""``walkout bench``: store-server ingest against a bare paho subscriber on the same MQTT stream.

Both receivers get the same simulated store traffic through the same broker, published by the same
paced publisher (never more than ``IN_FLIGHT`` messages ahead of the receiver, so no broker queue
drops anything). The bare subscriber only counts messages; the store server validates, stores,
deduplicates, decides and issues receipts. The gap between the two is the cost of being correct.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.mqtt import connect_options, make_client, parse_broker_url
from edge.publisher import Publisher
from sim_data.dataset import Dataset, write_dataset
from sim_data.evaluate import percentile
from sim_data.pipeline import IN_FLIGHT, StoreUnderTest
from sim_data.replay import replay
from sim_data.simulator import simulate
from store_server.domain.layout import load_layout
from store_server.settings import DEFAULT_STORE

Progress = Callable[[str, int, int], None]

RECEIVERS = (
    "The bare subscriber counts; the store server validates, stores (inbox, dedup), acknowledges "
    "after commit, decides by event time, charges and issues receipts."
)
CONTEXT = (
    "A real store produces far less: the demo store with 8 shoppers is ~35 messages/s (tracks at "
    "5 Hz, heartbeats every 0.25 s when idle). Receipt latency here is wall time from the exit "
    "message reaching the server to its receipt during a flat-out replay; at 1x it also includes "
    "the 0.8 s exit grace (waiting, in event time, for the last shelf events)."
)


@dataclass
class Result:
    name: str
    messages: int
    seconds: float
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    exact_receipts: float | None = None

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def bench_dataset(directory: Path, shoppers: int = 40, seed: int = 7) -> Path:
    layout = load_layout(DEFAULT_STORE)
    result = simulate(layout, "basic", seed=seed, shoppers=shoppers)
    return write_dataset(
        directory / f"bench-basic-{shoppers}",
        result.manifest(),
        DEFAULT_STORE.read_text(),
        result.messages,
        result.ground_truth,
    )


def bare_subscriber(dataset: Dataset, broker_url: str, progress: Progress | None = None) -> Result:
    """A paho QoS 1 subscriber (MQTT 5, the same window as the store server) that counts messages.

    The floor under any MQTT consumer.
    """
    address = parse_broker_url(broker_url)
    run = uuid.uuid4().hex[:8]
    prefix = f"walkout-bench-{run}"
    received = 0
    done = threading.Event()
    messages = list(dataset.messages())
    sub = make_client(address, f"bench-sub-{run}", persistent=False, protocol=5)
    connected = threading.Event()

    def on_message(*_: Any) -> None:
        nonlocal received
        received += 1
        if received == len(messages):
            done.set()

    sub.on_message = on_message

    def on_connect(client: Any, *_: Any) -> None:
        client.subscribe(f"{prefix}/#", qos=1)
        connected.set()

    sub.on_connect = on_connect
    sub.connect(address.host, address.port, **connect_options(5, persistent=False))
    sub.loop_start()
    connected.wait(10)
    time.sleep(0.2)
    publisher = Publisher(address, dataset.layout.store_id, f"bench-pub-{run}").connect()

    def tick(n: int) -> None:
        while n - received > IN_FLIGHT:
            time.sleep(0.0005)
        if progress and n % 500 == 0:
            progress("bare paho", n, len(messages))

    start = time.perf_counter()
    replay(messages, publisher, prefix=prefix, on_message=tick)
    done.wait(120)
    seconds = time.perf_counter() - start
    publisher.close(offline=False)
    sub.loop_stop()
    sub.disconnect()
    return Result("bare paho subscriber (counts only)", received, seconds)


def store_server(
    dataset: Dataset, broker_url: str, database_url: str | None, name: str, progress: Progress | None = None
) -> Result:
    messages = list(dataset.messages())
    with StoreUnderTest(dataset, broker_url, database_url) as store:
        start = time.perf_counter()
        store.publish(
            messages,
            progress=(lambda _p, n, t: progress(name, n, t)) if progress else None,
            total=len(messages),
        )
        while store.consumer.handled < len(messages):
            time.sleep(0.001)
        seconds = time.perf_counter() - start
        store.wait_for_exits(60)
        metrics = store.metrics()
        latencies = list(store.server.processor.latencies_s.values())
    return Result(
        name,
        len(messages),
        seconds,
        round(percentile(latencies, 0.5) * 1000, 1),
        round(percentile(latencies, 0.99) * 1000, 1),
        metrics["exact_receipts"],
    )


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{mem_kb / 1024 / 1024:.0f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "mosquitto": _version(["mosquitto", "-h"]),
        "postgresql": _version(["psql", "--version"]),
    }


def detector_section(figures: dict[str, Any]) -> list[str]:
    vec, ref = figures["vectorized"], figures["per_sample_python"]
    return [
        "## Shelf weight-event detection: vectorized vs per-sample Python",
        "",
        f"The same synthesized {figures['rate_hz']:.0f} Hz load-cell signal "
        f"({figures['signal_seconds']:.0f} s: picks, put-backs, touches, drift, 0.5 g noise), "
        "fed in the edge node's batches of "
        f"{figures['batch_samples']} samples, in one run. Plates served in real time by one core = "
        "plates x signal seconds / CPU seconds.",
        "",
        "| detector | plates | CPU s | events | plates in real time per core |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| vectorized (numpy, edge/weight_detector.py) | {vec['plates']} | {vec['cpu_s']} | {vec['events']} "
        f"| {vec['plates_realtime_per_core']:,} |",
        f"| per-sample Python (same statistics) | {ref['plates']} | {ref['cpu_s']} | {ref['events']} "
        f"| {ref['plates_realtime_per_core']:,} |",
        "",
        f"Speed-up {figures['speedup']}x; the goal is 5,000 plates per core (a large store).",
        "",
    ]


def write_benchmarks(
    results: list[Result], dataset: Dataset, broker_url: str, out: Path, extra: list[str] | None = None
) -> None:
    info = machine()
    baseline = results[0].rate or 1.0
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `make bench` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        f"- broker: {parse_broker_url(broker_url)}",
        "",
        "## Ingest: store server vs a bare paho subscriber on the same stream",
        "",
        f"Stream: `{dataset.path.name}` — {dataset.manifest.get('message_count')} MQTT messages (QoS 1) "
        f"of {len(dataset.ground_truth['sessions'])} simulated shoppers, published flat out by one "
        f"paced publisher (at most {IN_FLIGHT} messages ahead of the receiver). {RECEIVERS}",
        "",
        "| receiver | messages | seconds | messages/s | vs bare paho | receipt latency p50 / p99 "
        "| exact receipts |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        latency = (
            f"{r.latency_p50_ms:.0f} / {r.latency_p99_ms:.0f} ms" if r.latency_p50_ms is not None else "—"
        )
        exact = f"{r.exact_receipts:.0%}" if r.exact_receipts is not None else "—"
        lines.append(
            f"| {r.name} | {r.messages} | {r.seconds:.2f} | {r.rate:,.0f} | {r.rate / baseline:.0%} "
            f"| {latency} | {exact} |"
        )
    lines += [
        "",
        CONTEXT,
        "",
        *(extra or []),
    ]
    out.write_text("\n".join(lines))


def run_bench(
    broker_url: str, postgres_url: str | None, work: Path, out: Path, progress: Progress | None = None
) -> list[Result]:
    dataset = Dataset.open(bench_dataset(work))
    results = [bare_subscriber(dataset, broker_url, progress)]
    results.append(store_server(dataset, broker_url, None, "store server, SQLite", progress))
    if postgres_url:
        results.append(store_server(dataset, broker_url, postgres_url, "store server, PostgreSQL", progress))
    from sim_data.bench_detector import bench_detector

    if progress:
        progress("detector", 0, 1)
    extra = detector_section(bench_detector(seconds=60.0))
    from sim_data.bench_vision import bench_vision, format_table

    if progress:
        progress("vision", 0, 1)
    extra += [
        "## Vision: frames per second per camera, PyTorch vs ONNX Runtime, 320 vs 640 px",
        "",
        "The committed detector (models/walkout-yolo11n.*) with ByteTrack and floor mapping, on the same "
        "rendered ceiling frames in one run, on this CPU.",
        "",
        format_table(bench_vision()),
        "",
    ]
    from sim_data.bench_accuracy import accuracy_section
    from sim_data.bench_accuracy import measure as measure_accuracy

    seeds = (7,)
    rows = measure_accuracy(broker_url, seeds=seeds, profiles=("realistic", "ideal"), progress=progress)
    extra += accuracy_section(rows, seeds)
    write_benchmarks(results, dataset, broker_url, out, extra)
    return results
