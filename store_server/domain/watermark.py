"""Event-time watermark over the edge nodes of a store.

Each node publishes in event-time order, so the newest ``ts`` seen from a node is that node's
watermark. The store's watermark is the lowest over the nodes that are alive: everything with event
time at or before it has arrived, so decisions up to it are final. A node that said it is offline, or
that fell ``stale_after_s`` behind the newest node, stops holding the others back.

A node's clock can be wrong, or a message hostile: a node more than ``max_ahead_s`` ahead of the
reference clock is out of range. It holds nobody back and moves nothing, and the watermark never goes
past the reference plus ``max_ahead_s``. The reference is the server's clock in production; in a replay
of a recorded day it is :meth:`Watermark.consensus`, the median of the nodes' own clocks, which one
node alone cannot move.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Watermark:
    expected_nodes: frozenset[str] = frozenset()
    stale_after_s: float = 10.0
    latest: dict[str, float] = field(default_factory=dict)
    offline: set[str] = field(default_factory=set)
    max_ahead_s: float = math.inf
    # The reference clock (None = the nodes' consensus) and what stands in for the consensus until
    # more than half of the nodes have spoken (None = nothing: no bound yet).
    clock: Callable[[], float] | None = None
    start: float | None = None

    def observe(self, node_id: str, ts: float) -> None:
        if ts > self.latest.get(node_id, float("-inf")):
            self.latest[node_id] = ts
        self.offline.discard(node_id)

    def went_offline(self, node_id: str) -> None:
        self.offline.add(node_id)

    def came_online(self, node_id: str) -> None:
        self.offline.discard(node_id)

    # -- the reference clock ------------------------------------------------------------------
    def consensus(self) -> float | None:
        """The lower median of the latest times of the live nodes, once more than half of them have
        been heard: a minority of nodes, running ahead or behind, cannot move it."""
        population = (self.expected_nodes | set(self.latest)) - self.offline
        heard = sorted(self.latest[n] for n in population if n in self.latest)
        if not heard or 2 * len(heard) <= len(population):
            return self.start
        return heard[(len(heard) - 1) // 2]

    def reference(self) -> float | None:
        return self.clock() if self.clock is not None else self.consensus()

    def limit(self) -> float:
        """The furthest the watermark may go: the reference clock plus the allowed skew."""
        ref = self.reference()
        return math.inf if ref is None else ref + self.max_ahead_s

    def out_of_range(self) -> dict[str, float]:
        """Nodes whose latest time is beyond :meth:`limit`, and how far beyond it."""
        limit = self.limit()
        return {n: ts - limit for n, ts in sorted(self.latest.items()) if ts > limit}

    # -- the watermark ------------------------------------------------------------------------
    def _in_range(self, limit: float) -> dict[str, float]:
        return {n: ts for n, ts in self.latest.items() if ts <= limit}

    def newest(self) -> float:
        return max(self._in_range(self.limit()).values(), default=float("-inf"))

    def holding_back(self) -> dict[str, float]:
        """The live nodes and their watermarks.

        A node expected from the layout but never heard from counts as sitting at the first event
        time seen, so it holds the store back only until it turns stale like any silent node.
        """
        return self._holding_back(self._in_range(self.limit()))

    def _holding_back(self, latest: dict[str, float]) -> dict[str, float]:
        if not latest:
            return {}
        newest, first = max(latest.values()), min(latest.values())
        out: dict[str, float] = {}
        for node in self.expected_nodes | set(self.latest):
            if node in self.latest and node not in latest:
                continue  # out of range: it must not hold the store back either
            ts = latest.get(node, first)
            if node in self.offline or ts < newest - self.stale_after_s:
                continue
            out[node] = ts
        return out

    def value(self) -> float:
        limit = self.limit()
        latest = self._in_range(limit)
        live = self._holding_back(latest)
        # Nobody left to wait for: everything that will come has come.
        value = min(live.values()) if live else max(latest.values(), default=float("-inf"))
        return min(value, limit)
