"""Which node may speak for what: the store layout gives every gondola, gate and camera to one node.

A message is only as trustworthy as its sender's right to send it. A shelf node publishing a pass on the
entry gate, or weight for a shelf that is not its own, is refused here, at ingest, with the field and
the reason, before anything is stored. An element without a ``node_id`` belongs to the node named like
the element (the simulator and the importers publish that way).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.contracts import AnyMessage, GatePass, ItemDetections, ShopperTracks, WeightEvent, WeightSamples
from store_server.domain.layout import StoreLayout


@dataclass(frozen=True)
class Refusal:
    field: str
    reason: str


class NodeGrants:
    def __init__(self, layout: StoreLayout) -> None:
        self.store_id = layout.store_id
        self.gondolas = {g.id: g.node_id or g.id for g in layout.gondolas}
        self.gates = {g.id: g.node_id or g.id for g in layout.gates}
        self.cameras = {c.id: c.node_id or c.id for c in layout.cameras}
        self.nodes = frozenset([*self.gondolas.values(), *self.gates.values(), *self.cameras.values()])
        self.gondola_of_shelf = {s.id: g.id for g in layout.gondolas for s in g.shelves}
        self.plates_of_shelf = {s.id: frozenset(s.plates) for g in layout.gondolas for s in g.shelves}

    def refusal(self, message: AnyMessage) -> Refusal | None:
        """Why ``message``'s node may not send it, or None when it may."""
        node = message.node_id
        if node not in self.nodes:
            return Refusal("node_id", f"node {node!r} is not a node of store {self.store_id!r}'s layout")
        if isinstance(message, WeightEvent | WeightSamples):
            return self._shelf(node, message.gondola_id, message.shelf_id, message.plate_ids)
        if isinstance(message, GatePass):
            return self._owned(node, "gate", "gate_id", message.gate_id, self.gates)
        if isinstance(message, ShopperTracks | ItemDetections):
            return self._owned(node, "camera", "camera_id", message.camera_id, self.cameras)
        return None  # heartbeat, status: any node of the layout

    def _owned(
        self, node: str, what: str, field: str, element: str, owners: dict[str, str]
    ) -> Refusal | None:
        owner = owners.get(element)
        if owner is None:
            return Refusal(field, f"{what} {element!r} is not in the store layout")
        if owner != node:
            reason = f"node {node!r} may not speak for {what} {element!r} (the layout gives it to {owner!r})"
            return Refusal(field, reason)
        return None

    def _shelf(self, node: str, gondola: str, shelf: str, plates: list[str]) -> Refusal | None:
        refused = self._owned(node, "gondola", "gondola_id", gondola, self.gondolas)
        if refused:
            return refused
        if self.gondola_of_shelf.get(shelf) != gondola:
            return Refusal("shelf_id", f"shelf {shelf!r} is not a shelf of gondola {gondola!r}")
        on_shelf = self.plates_of_shelf[shelf]
        stray = next((p for p in plates if p not in on_shelf), None)
        if stray is not None:
            return Refusal("plate_ids", f"plate {stray!r} is not on shelf {shelf!r} of the store layout")
        return None
