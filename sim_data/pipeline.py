"""``walkout run``: a dataset through a real broker into a real store server, then its accuracy.

The store server runs in this process on its own database (a temporary SQLite file unless a URL is
given) and under a topic prefix of its own, so a run never mixes with other traffic on a shared broker.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from edge.mqtt import parse_broker_url
from edge.publisher import Publisher
from sim_data.dataset import Dataset, DatasetError
from sim_data.decisions import RunDecisions, collect, explain_misses, review_figures, vanished_events
from sim_data.entry_signing import EntrySigner
from sim_data.evaluate import evaluate, scenario_of
from sim_data.replay import replay
from store_server.adapters.embedded_broker import EmbeddedBroker, free_port
from store_server.bootstrap import StoreServer, bootstrap
from store_server.domain.session import SessionState, session_id_for
from store_server.settings import Settings

logger = logging.getLogger(__name__)

IN_FLIGHT = 400
Progress = Callable[[str, int, int], None]  # (phase, done, total)


def provision_accounts(server: StoreServer, truth: dict[str, Any]) -> None:
    for acct in truth.get("accounts", []):
        server.accounts.open_account(
            acct["token"],
            acct.get("name", acct["token"]),
            acct.get("email", ""),
            balance_cents=acct.get("balance_cents", 0),
            credit_limit_cents=acct.get("credit_limit_cents", 0),
        )


def closed_sessions(server: StoreServer, session_ids: list[str]) -> int:
    with server.uow_factory() as uow:
        return sum(
            1
            for sid in session_ids
            if (s := uow.sessions.get(sid)) is not None and s.state != SessionState.OPEN
        )


def charged_items(server: StoreServer, truth_sessions: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """What each ground-truth shopper was charged for, keyed by the entry message id."""
    out: dict[str, dict[str, int]] = {}
    with server.uow_factory() as uow:
        for session in truth_sessions:
            receipt = uow.receipts.for_session(session_id_for(session["entry_msg_id"]))
            if receipt is not None:
                out[session["entry_msg_id"]] = {ln.sku: ln.quantity for ln in receipt.bill.lines}
    return out


def edge_messages(dataset: Dataset, vision: bool = False) -> Iterable[Any]:
    """What the store's edge nodes would publish: a signal-level dataset's raw load-cell samples go
    through the edge weight-event detector first, exactly as an edge node would run it; with
    ``vision``, the ceiling camera's tracks come from YOLO + ByteTrack on the dataset's video."""
    messages: Iterable[Any] = dataset.messages()
    if vision:
        messages = vision_messages(dataset, messages)
    if dataset.manifest.get("fidelity") == "signal":
        from edge.signal_pipeline import detect_stream

        return detect_stream(messages, dataset.layout)
    return messages


def vision_messages(dataset: Dataset, messages: Iterable[Any]) -> list[Any]:
    video = dataset.path / "video" / "ceiling.avi"
    if not video.exists():
        raise DatasetError(f"{dataset.path} has no video/ceiling.avi; make one with `walkout sim --video`")
    import json

    from edge.vision.offline import splice_vision_tracks, vision_tracks_for_dataset

    stamps = json.loads(video.with_name(video.name + ".json").read_text())
    stamps = stamps["timestamps"] if isinstance(stamps, dict) else stamps
    camera = next(c for c in dataset.layout.cameras if c.kind == "ceiling")
    node = camera.node_id or camera.id
    tracks = vision_tracks_for_dataset(video, stamps, dataset.layout, camera.id, node)
    return splice_vision_tracks(messages, tracks, node)


class StoreUnderTest:
    """A store server on its own database and topic prefix, its accounts opened, a publisher ready.

    ``walkout run`` and the end-to-end tests share it: publish messages, wait for the shoppers to
    leave, read the outcome.
    """

    def __init__(
        self, dataset: Dataset, broker_url: str | None = None, database_url: str | None = None
    ) -> None:
        self.dataset = dataset
        self.broker_url = broker_url
        self.database_url = database_url
        self.run_id = uuid.uuid4().hex[:8]
        self.prefix = f"walkout-run-{self.run_id}"
        self._stack = ExitStack()
        self.published = 0
        truth = dataset.ground_truth
        self.truth_sessions: list[dict[str, Any]] = truth.get("sessions", [])
        self.session_ids = [session_id_for(s["entry_msg_id"]) for s in self.truth_sessions]

    def __enter__(self) -> StoreUnderTest:
        stack = self._stack
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="walkout-run-")))
        protocol = 5
        if self.broker_url is None:
            broker = EmbeddedBroker(port=free_port()).start()
            stack.callback(broker.stop)
            self.broker_url, protocol = broker.url, 4
        self.database_url = self.database_url or f"sqlite:///{tmp / 'run.db'}"
        settings = Settings(
            database_url=self.database_url,
            store_config=self.dataset.layout_path,
            receipts_dir=tmp / "receipts",
            topic_prefix=self.prefix,
            mqtt_client_id=f"walkout-run-{self.run_id}",
            # A recorded day: event times are checked against the replay's own clock, from its start.
            event_clock="replay",
            replay_start_ts=next((m.t for m in self.dataset.messages()), None),
        )
        self.server = bootstrap(settings, layout=self.dataset.layout)
        stack.callback(self.server.stop)
        assert self.server.web is not None
        # Shoppers enter on codes this server issues (bare tokens stay off, as in production).
        self.signer = EntrySigner(self.server.web.people)
        provision_accounts(self.server, self.dataset.ground_truth)
        self.consumer = self.server.start_consumer(self.broker_url, protocol=protocol)
        self.consumer.wait_connected()
        address = parse_broker_url(self.broker_url)
        self.publisher = Publisher(address, self.dataset.layout.store_id, f"walkout-replay-{self.run_id}")
        self.publisher.connect()
        stack.callback(self.publisher.close, offline=False)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def publish(
        self,
        messages: Iterable[Any],
        speed: float | None = None,
        progress: Progress | None = None,
        total: int = 0,
    ) -> int:
        consumer, before = self.consumer, self.published

        def tick(n: int) -> None:
            self.published = before + n
            # Flat out means as fast as the store server stores messages: never run more than
            # IN_FLIGHT ahead of it, so no broker queue limit (Mosquitto's default is 1000) drops any.
            while self.published - consumer.handled > IN_FLIGHT:
                time.sleep(0.001)
            if progress and (n % 200 == 0 or n == total):
                progress("replay", n, total)

        signed = self.signer.messages(messages)
        return replay(signed, self.publisher, speed=speed, prefix=self.prefix, on_message=tick)

    def wait_for_exits(self, timeout_s: float, progress: Progress | None = None) -> int:
        """Wait until every ground-truth shopper has left (receipt issued or left empty)."""
        deadline = time.monotonic() + timeout_s
        wanted = self.session_ids
        while (done := closed_sessions(self.server, wanted)) < len(wanted) and time.monotonic() < deadline:
            if progress:
                progress("receipts", done, len(wanted))
            time.sleep(0.05)
        if progress:
            progress("receipts", done, len(wanted))
        if done < len(wanted):
            logger.warning("%d of %d shoppers never left the store in time", len(wanted) - done, len(wanted))
        return done

    def metrics(self) -> dict[str, Any]:
        return self.metrics_and_decisions()[0]

    def metrics_and_decisions(self) -> tuple[dict[str, Any], RunDecisions]:
        """Accuracy, review load and, for every wrong line, why; plus every weight decision of the run."""
        predicted = charged_items(self.server, self.truth_sessions)
        latencies = self.server.processor.latencies_s
        truth = self.dataset.ground_truth
        metrics = evaluate(
            self.dataset.path.name,
            self.truth_sessions,
            predicted,
            [latencies[s] for s in self.session_ids if s in latencies],
            events=truth.get("events", []),
            scenario=scenario_of(self.dataset.manifest, truth),
        )
        decisions = collect(self.server)
        layout = self.dataset.layout
        metrics.update(review_figures(decisions, len(self.truth_sessions)))
        metrics["vanished_events"] = vanished_events(decisions, truth.get("events", []), layout)
        metrics["explanations"] = explain_misses(decisions, metrics, truth, layout)
        return metrics, decisions


def run_dataset(
    path: Path,
    broker_url: str | None = None,
    database_url: str | None = None,
    speed: float | None = None,
    timeout_s: float = 120.0,
    progress: Progress | None = None,
    vision: bool = False,
) -> dict[str, Any]:
    return run_dataset_with_decisions(path, broker_url, database_url, speed, timeout_s, progress, vision)[0]


def run_dataset_with_decisions(
    path: Path,
    broker_url: str | None = None,
    database_url: str | None = None,
    speed: float | None = None,
    timeout_s: float = 120.0,
    progress: Progress | None = None,
    vision: bool = False,
) -> tuple[dict[str, Any], RunDecisions]:
    """:func:`run_dataset`, also returning every weight decision (for the report's plots)."""
    dataset = Dataset.open(path)
    with StoreUnderTest(dataset, broker_url, database_url) as store:
        total = int(dataset.manifest.get("message_count", 0))
        store.publish(edge_messages(dataset, vision), speed, progress, total)
        store.publisher.flush()
        store.wait_for_exits(timeout_s, progress)
        return store.metrics_and_decisions()
