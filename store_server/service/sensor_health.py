"""What the shelf nodes say about their load cells: the ``sensors`` map of their retained status.

A node's health monitor reports each plate ``ok``, ``degraded`` or ``failed`` (sensors/health.py). The
server keeps the latest word of each node on the plates the layout gives it, so that a camera's
sighting of a pick can be trusted where the weight could not have seen it. Statuses carry no stable
event time (they are retained and replaced), so this is a hint that raises confidence, never the
only reason for a decision that changes a cart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.contracts import NodeStatus
from store_server.domain.layout import StoreLayout


@dataclass
class SensorHealth:
    layout: StoreLayout
    _plates_of_node: dict[str, frozenset[str]] = field(init=False)
    _states: dict[str, dict[str, str]] = field(default_factory=dict)  # node -> plate -> state

    def __post_init__(self) -> None:
        plates: dict[str, set[str]] = {}
        for g in self.layout.gondolas:
            node = g.node_id or g.id
            plates.setdefault(node, set()).update(p for s in g.shelves for p in s.plates)
        self._plates_of_node = {n: frozenset(p) for n, p in plates.items()}

    def update(self, status: NodeStatus) -> None:
        """Take a node's latest status; a node speaks only for its own plates, and an offline node's
        last will says nothing about them (its events wait in its spool)."""
        own = self._plates_of_node.get(status.node_id)
        if own is None or status.state != "online":
            return
        self._states[status.node_id] = {p: s for p, s in status.sensors.items() if p in own}

    def failed_plates(self) -> frozenset[str]:
        return frozenset(p for states in self._states.values() for p, s in states.items() if s == "failed")

    def state(self, plate_id: str) -> str | None:
        return next((states[plate_id] for states in self._states.values() if plate_id in states), None)
