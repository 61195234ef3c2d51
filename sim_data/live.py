"""A live simulated edge for the demo: shoppers keep walking through the store, in real time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from edge.publisher import Publisher
from sim_data.replay import replay
from sim_data.simulator import simulate
from store_server.domain.layout import StoreLayout

logger = logging.getLogger(__name__)


class _Renumber:
    """Continues every node's sequence across simulated rounds, so message ids never repeat.

    Starting from the wall clock in milliseconds keeps ids unique across demo restarts too, the way a
    real node keeps its sequence across reboots.
    """

    def __init__(self) -> None:
        self.base = int(time.time() * 1000)
        self.next: dict[str, int] = {}

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        if "seq" not in payload:
            return payload
        node = payload["node_id"]
        seq = self.next.get(node, self.base)
        self.next[node] = seq + 1
        return {**payload, "seq": seq}


class _Renumbered:
    def __init__(self, message: Any, payload: dict[str, Any]) -> None:
        self.t, self.topic, self.payload = message.t, message.topic, payload


def run_live_edge(
    layout: StoreLayout,
    publisher: Publisher,
    stop: threading.Event,
    seed: int = 1,
    before_round: Callable[[dict[str, Any]], None] | None = None,
    sign: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> None:
    """Simulate rounds of shoppers starting now and publish them at 1x until ``stop`` is set.

    ``sign`` turns the entry passes' bare tokens into entry codes (an in-process store server's
    :class:`~sim_data.entry_signing.EntrySigner`); without it the store server must accept bare tokens."""
    renumber = _Renumber()
    while not stop.is_set():
        result = simulate(layout, "basic", seed=seed, t0=time.time() + 1.0)
        if before_round:
            before_round(result.ground_truth)
        messages = [_Renumbered(m, renumber(m.payload)) for m in result.messages]
        logger.info(
            "demo round %d: %d shoppers, %d messages",
            seed,
            len(result.ground_truth["sessions"]),
            len(messages),
        )

        def until_stopped(_: int) -> None:
            if stop.is_set():
                raise _Stopped

        try:
            replay(sign(messages) if sign else messages, publisher, speed=1.0, on_message=until_stopped)
        except _Stopped:
            return
        seed += 1


class _Stopped(Exception):
    pass
