"""Event-time watermark over the edge nodes of a store.

Each node publishes in event-time order, so the newest ``ts`` seen from a node is that node's
watermark. The store's watermark is the lowest over the nodes that are alive: everything with event
time at or before it has arrived, so decisions up to it are final. A node that said it is offline, or
that fell ``stale_after_s`` behind the newest node, stops holding the others back.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Watermark:
    expected_nodes: frozenset[str] = frozenset()
    stale_after_s: float = 10.0
    latest: dict[str, float] = field(default_factory=dict)
    offline: set[str] = field(default_factory=set)

    def observe(self, node_id: str, ts: float) -> None:
        if ts > self.latest.get(node_id, float("-inf")):
            self.latest[node_id] = ts
        self.offline.discard(node_id)

    def went_offline(self, node_id: str) -> None:
        self.offline.add(node_id)

    def came_online(self, node_id: str) -> None:
        self.offline.discard(node_id)

    def newest(self) -> float:
        return max(self.latest.values(), default=float("-inf"))

    def holding_back(self) -> dict[str, float]:
        """The live nodes and their watermarks.

        A node expected from the layout but never heard from counts as sitting at the first event
        time seen, so it holds the store back only until it turns stale like any silent node.
        """
        if not self.latest:
            return {}
        newest, first = self.newest(), min(self.latest.values())
        out: dict[str, float] = {}
        for node in self.expected_nodes | set(self.latest):
            ts = self.latest.get(node, first)
            if node in self.offline or ts < newest - self.stale_after_s:
                continue
            out[node] = ts
        return out

    def value(self) -> float:
        live = self.holding_back()
        # Nobody left to wait for: everything that will come has come.
        return min(live.values()) if live else self.newest()
