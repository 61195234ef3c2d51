"""``walkout run``: a dataset through a real broker into a real store server, then its accuracy.

The store server runs in this process on its own database (a temporary SQLite file unless a URL is
given) and under a topic prefix of its own, so a run never mixes with other traffic on a shared broker.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from edge.mqtt import parse_broker_url
from edge.publisher import Publisher
from sim_data.dataset import Dataset
from sim_data.evaluate import evaluate
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


def run_dataset(
    path: Path,
    broker_url: str | None = None,
    database_url: str | None = None,
    speed: float | None = None,
    timeout_s: float = 120.0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    dataset = Dataset.open(path)
    truth = dataset.ground_truth
    truth_sessions: list[dict[str, Any]] = truth.get("sessions", [])
    run_id = uuid.uuid4().hex[:8]
    prefix = f"walkout-run-{run_id}"
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="walkout-run-")))
        if broker_url is None:
            broker = EmbeddedBroker(port=free_port()).start()
            stack.callback(broker.stop)
            broker_url = broker.url
        settings = Settings(
            database_url=database_url or f"sqlite:///{tmp / 'run.db'}",
            store_config=dataset.layout_path,
            receipts_dir=tmp / "receipts",
            topic_prefix=prefix,
            mqtt_client_id=f"walkout-run-{run_id}",
        )
        server = bootstrap(settings, layout=dataset.layout)
        stack.callback(server.stop)
        provision_accounts(server, truth)
        server.start_consumer(broker_url).wait_connected()
        publisher = Publisher(
            parse_broker_url(broker_url), dataset.layout.store_id, f"walkout-replay-{run_id}"
        )
        publisher.connect()
        total = int(dataset.manifest.get("message_count", 0))
        consumer = server.consumer
        assert consumer is not None

        def tick(n: int) -> None:
            # Flat out means as fast as the store server stores messages: never run more than
            # IN_FLIGHT ahead of it, so no broker queue limit (Mosquitto's default is 1000) drops any.
            while n - consumer.handled > IN_FLIGHT:
                time.sleep(0.001)
            if progress and (n % 200 == 0 or n == total):
                progress("replay", n, total)

        replay(dataset.messages(), publisher, speed=speed, prefix=prefix, on_message=tick)
        publisher.close(offline=False)
        wanted = [session_id_for(s["entry_msg_id"]) for s in truth_sessions]
        deadline = time.monotonic() + timeout_s
        while (done := closed_sessions(server, wanted)) < len(wanted) and time.monotonic() < deadline:
            if progress:
                progress("receipts", done, len(wanted))
            time.sleep(0.05)
        if progress:
            progress("receipts", done, len(wanted))
        if done < len(wanted):
            logger.warning("%d of %d shoppers never left the store in time", len(wanted) - done, len(wanted))
        predicted = charged_items(server, truth_sessions)
        latencies = [server.processor.latencies_s[s] for s in wanted if s in server.processor.latencies_s]
        return evaluate(path.name, truth_sessions, predicted, latencies)
