"""Ingest: raw MQTT messages in, validated inbox rows or dead letters out.

Validation happens before anything is stored, so a malformed message never reaches the domain; it is
kept in the dead-letter table with the field and the reason, and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from edge.contracts import ContractError, GatePass, NodeStatus, WeightEvent, WeightSamples, parse
from store_server import metrics
from store_server.service.ports import DeadLetter, InboxRow

logger = logging.getLogger(__name__)

EVIDENCE_KINDS = frozenset({"tracks", "detections", "heartbeat"})  # stored, never decided on their own


@dataclass(frozen=True)
class RawMessage:
    topic: str
    payload: bytes
    received_at: float


@dataclass(frozen=True)
class DecisionDelays:
    """How long, in event time, each kind of decision waits for late evidence."""

    assign_window_s: float = 0.5
    exit_grace_s: float = 0.8


@dataclass
class Sorted:
    rows: list[InboxRow]
    statuses: list[NodeStatus]
    dead: list[DeadLetter]
    # Raw load-cell samples are for recorders: the server only takes their time as the node's watermark.
    samples: list[tuple[str, float]] = field(default_factory=list)


def due_time(message: object, ts: float, delays: DecisionDelays) -> float:
    if isinstance(message, WeightEvent):
        return max(ts, message.t_end + delays.assign_window_s)
    if isinstance(message, GatePass):
        wait = delays.assign_window_s if message.direction == "entry" else delays.exit_grace_s
        return ts + wait
    return ts


def sort_messages(raw: list[RawMessage], prefix: str, store_id: str, delays: DecisionDelays) -> Sorted:
    out = Sorted([], [], [])
    for item in raw:
        try:
            message = parse(item.topic, item.payload, prefix)
            if item.topic.split("/")[1] != store_id:
                raise ContractError(f"topic is for store {item.topic.split('/')[1]!r}", "topic")
        except ContractError as exc:
            out.dead.append(DeadLetter(item.topic, item.payload, exc.reason, exc.field, item.received_at))
            metrics.DEAD_LETTERS.labels(field=exc.field or "?").inc()
            logger.warning("dead-lettered a message on %s: %s", item.topic, exc)
            continue
        metrics.MESSAGES.labels(kind=message.kind).inc()
        if isinstance(message, NodeStatus):
            out.statuses.append(message)
            continue
        if isinstance(message, WeightSamples):
            out.samples.append((message.node_id, message.ts))
            continue
        out.rows.append(
            InboxRow(
                msg_id=message.msg_id,
                node_id=message.node_id,
                kind=message.kind,
                topic=item.topic,
                ts=message.ts,
                due=due_time(message, message.ts, delays),
                payload=message.model_dump(mode="json"),
                received_at=item.received_at,
                processed=message.kind in EVIDENCE_KINDS,
            )
        )
    return out
