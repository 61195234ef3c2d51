"""A shopper's exit waits for the shelves they stood at to publish what they took.

A shelf node decides an interaction once every plate it moved has settled and no neighbouring plate
is still moving (edge.weight_interactions): with shoppers side by side that can take several
seconds, and a shopper who takes an item and walks straight out would otherwise be charged before
the pick arrives, the pick then going to nobody. Shelf nodes say in their heartbeats when the
oldest interaction they have not published began (``open_since``). The exit of a visit is decided
only when no node of a gondola the visit's tracks stood at (within reach, in the last
:data:`STOOD_S`) has an interaction open since before the exit, and at most :data:`MAX_WAIT_S`
after it; until then the decision is postponed by :data:`RECHECK_S` of event time.

Deterministic: it reads the heartbeats stored in the inbox up to the decision's due time, which the
watermark has passed, so a replay at any speed postpones the same exits to the same times.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from store_server import metrics
from store_server.domain.session import ShopperSession
from store_server.service.ports import UnitOfWork

if TYPE_CHECKING:
    from store_server.service.handlers import Context

MAX_WAIT_S = 10.0  # the edge holds an interaction at most 8 s for a neighbour still moving
STOOD_S = 30.0  # gondolas the visit stood at this long before the exit are waited for
HEARD_S = 2.0  # a node not heard from this long is not waited for (offline, or sends no open_since)
RECHECK_S = 0.25


def gondola_nodes_stood_at(ctx: Context, session: ShopperSession, exit_ts: float) -> list[str]:
    """The shelf nodes of the gondolas the visit's tracks came within reach of before the exit."""
    nodes = []
    for gondola in ctx.layout.gondolas:
        if gondola.node_id is None:
            continue
        spots = [
            (p.x_m, p.y_m)
            for shelf in gondola.shelves
            for pid in shelf.plates
            if (p := ctx.layout.plates.get(pid)) is not None
        ]
        for track_id in session.track_ids():
            near = (ctx.tracks.closest_approach(track_id, s, exit_ts - STOOD_S, exit_ts) for s in spots)
            if any(d is not None and d <= ctx.reach_m for d in near):
                nodes.append(gondola.node_id)
                break
    return nodes


def still_deciding(
    ctx: Context, uow: UnitOfWork, session: ShopperSession, exit_ts: float, now: float
) -> list[str]:
    """The nodes the exit at ``exit_ts`` still waits for, as their heartbeats up to ``now`` say."""
    if now >= exit_ts + MAX_WAIT_S:
        return []
    nodes = set(gondola_nodes_stood_at(ctx, session, exit_ts))
    if not nodes:
        return []
    latest: dict[str, tuple[float, object]] = {}
    for row in uow.inbox.of_kind_since("heartbeat", now - HEARD_S):
        if row.node_id in nodes and row.ts <= now and row.ts >= latest.get(row.node_id, (-1.0, None))[0]:
            latest[row.node_id] = (row.ts, row.payload.get("open_since"))
    waiting = sorted(
        node for node, (_, opened) in latest.items() if isinstance(opened, int | float) and opened <= exit_ts
    )
    if waiting:
        metrics.DECISIONS.labels(outcome="exit_waits_for_shelf").inc()
    return waiting
