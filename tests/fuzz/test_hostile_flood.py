"""The fuzz tier: tens of thousands of hostile messages through real Mosquitto into a store server.

Afterwards — and with poison mixed into its traffic — a normal dataset must still give exact receipts,
every hostile message must be exactly one dead letter, duplicates must change nothing, and memory and
/metrics must stay bounded. The seed is random per run and printed; set WALKOUT_FUZZ_SEED to replay one.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from sim_data.dataset import Dataset
from sim_data.pipeline import StoreUnderTest, edge_messages
from store_server.api.store_api import health
from tests.fuzz.hostile import Hostile, Target, hostile_messages

pytestmark = pytest.mark.fuzz

SEED = int(os.environ.get("WALKOUT_FUZZ_SEED") or random.randrange(2**31))
POISON_EVERY = 5  # one hostile message after every fifth message of the dataset


@dataclass(frozen=True)
class Recorded:
    """A hostile message in the shape the replayer publishes (time, topic, payload bytes)."""

    t: float
    topic: str
    payload: bytes


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def interleave(messages: Iterable[Any], poison: list[Hostile]) -> Iterator[Any]:
    pending = iter(poison)
    for n, message in enumerate(messages, 1):
        yield message
        if n % POISON_EVERY == 0 and (bad := next(pending, None)) is not None:
            yield Recorded(message.t, bad.topic, bad.payload)


def wait_until_stored(store: StoreUnderTest, timeout_s: float = 600.0) -> None:
    """Every published message that reached the store's subscription has been stored and acknowledged."""
    deadline = time.monotonic() + timeout_s
    while store.consumer.handled < store.published or not store.consumer.idle():
        assert time.monotonic() < deadline, (
            f"ingest stalled: {store.consumer.handled} of {store.published} messages stored (seed {SEED})"
        )
        time.sleep(0.05)


def dead_letters(store: StoreUnderTest) -> int:
    with store.server.uow_factory() as uow:
        return uow.dead_letters.count()


def receipts(store: StoreUnderTest) -> dict[str, tuple[int, str]]:
    with store.server.uow_factory() as uow:
        return {r.session_id: (r.bill.total_cents, r.payment_status) for r in uow.receipts.list(limit=1000)}


def dead_letter_label_values() -> int:
    text = generate_latest().decode()
    return sum(1 for line in text.splitlines() if line.startswith("walkout_dead_letters_total{"))


@pytest.mark.timeout(1800)  # ~40 s on a quiet machine; the limit only catches a hang
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_hostile_flood_never_stops_the_store(basic_dataset, mosquitto_url, database, request, tmp_path):
    print(f"fuzz seed {SEED} (WALKOUT_FUZZ_SEED={SEED} replays it)")
    sqlite = f"sqlite:///{tmp_path / 'run.db'}"
    url = sqlite if database == "sqlite" else request.getfixturevalue("postgres_url")
    dataset = Dataset.open(basic_dataset)
    first_t = next(iter(dataset.messages())).t
    with StoreUnderTest(dataset, mosquitto_url, url) as store:
        target = Target(store.prefix, dataset.layout, first_t)
        flood = hostile_messages(target, SEED)
        poison = hostile_messages(target, SEED + 1, scale=0.05)
        assert len(flood) >= 20_000
        rss_before = rss_mb()

        # 1. The flood, before the store has seen anything else.
        store.publish(Recorded(first_t, m.topic, m.payload) for m in flood)
        store.publisher.flush()
        wait_until_stored(store)
        rss_after_flood = rss_mb()

        # 2. A normal day, with poison mixed into it.
        store.publish(interleave(edge_messages(dataset), poison))
        store.publisher.flush()
        assert store.wait_for_exits(180) == len(store.session_ids), f"shoppers never left (seed {SEED})"
        wait_until_stored(store)
        outcome = store.metrics()
        assert outcome["exact_receipts"] == 1.0, (SEED, outcome["mismatches"])
        assert outcome["items"]["fp"] == outcome["items"]["fn"] == 0

        # 3. The same day delivered again: every message a duplicate, nothing may change.
        charged = receipts(store)
        letters = dead_letters(store)
        store.publish(edge_messages(dataset))
        store.publisher.flush()
        wait_until_stored(store)
        store.server.processor.process_due()
        assert receipts(store) == charged
        assert dead_letters(store) == letters

        hostile = len(flood) + min(len(poison), outcome_messages(dataset) // POISON_EVERY)
        if letters != hostile:
            with store.server.uow_factory() as uow:
                reasons = Counter(d.reason[:60] for d in uow.dead_letters.list(limit=100_000))
            pytest.fail(f"{letters} dead letters for {hostile} hostile messages (seed {SEED}): {reasons}")

        deadline = time.monotonic() + 60
        while (state := health(store.server)).status != "ok" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert state.status == "ok", state

    print(
        f"{database}: {len(flood)} hostile + {hostile - len(flood)} mixed in -> {letters} dead letters; "
        f"{len(charged)} receipts exact; resident memory +{rss_after_flood - rss_before:.0f} MB; "
        f"{dead_letter_label_values()} dead-letter label values"
    )
    assert dead_letter_label_values() <= 60, "a metric label grew with the input"
    assert rss_after_flood - rss_before < 200, f"resident memory grew {rss_after_flood - rss_before:.0f} MB"


def outcome_messages(dataset: Dataset) -> int:
    return sum(1 for _ in edge_messages(dataset))
