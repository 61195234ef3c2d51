"""Ingest: raw MQTT messages in, validated inbox rows or dead letters out.

Validation happens before anything is stored, so a malformed message never reaches the domain; it is
kept in the dead-letter table with the field and the reason, and counted. A message is admitted when it
fits the contract, comes from a node of this store that may speak for what it names (``grants``) and
carries event times near the server's clock (``bounds``). Reading a message is pure, so whatever goes
wrong while reading one is that message's fault: it becomes a dead letter, never a stopped ingest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from edge.contracts import (
    MAX_TOPIC_LENGTH,
    AnyMessage,
    ContractError,
    GatePass,
    NodeStatus,
    WeightEvent,
    WeightSamples,
    check_clock,
    parse,
)
from store_server import metrics
from store_server.service.grants import NodeGrants
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


@dataclass(frozen=True)
class ClockBounds:
    """How far event times may be from the server's reference clock (None: no reference yet)."""

    reference: float | None
    ahead_s: float = 300.0
    behind_s: float = 86_400.0


@dataclass
class Sorted:
    rows: list[InboxRow]
    statuses: list[NodeStatus]
    dead: list[DeadLetter]
    # Raw load-cell samples are for recorders: the server only takes their time as the node's watermark.
    samples: list[tuple[str, float]] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # of every admitted message, for the metrics

    def count(self) -> None:
        """Count what this batch admitted and refused (after it is committed: a retry counts once)."""
        for kind in self.kinds:
            metrics.MESSAGES.labels(kind=kind).inc()
        for letter in self.dead:
            metrics.DEAD_LETTERS.labels(field=letter.field).inc()


def printable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, control characters replaced: safe for any text column."""
    return "".join(ch if ch.isprintable() else "?" for ch in text[:limit])


def dead_letter(item: RawMessage, reason: str, field_name: str) -> DeadLetter:
    return DeadLetter(
        printable(item.topic, MAX_TOPIC_LENGTH),
        item.payload,
        printable(reason, 1000),
        printable(field_name, 255),
        item.received_at,
    )


def due_time(message: object, ts: float, delays: DecisionDelays) -> float:
    if isinstance(message, WeightEvent):
        return max(ts, message.t_end + delays.assign_window_s)
    if isinstance(message, GatePass):
        wait = delays.assign_window_s if message.direction == "entry" else delays.exit_grace_s
        return ts + wait
    return ts


def admit(
    item: RawMessage,
    prefix: str,
    store_id: str,
    grants: NodeGrants | None = None,
    bounds: ClockBounds | None = None,
) -> AnyMessage:
    """The message, when this store may act on it; ContractError (field, reason) otherwise."""
    message = parse(item.topic, item.payload, prefix)
    store = item.topic.split("/")[1]
    if store != store_id:
        raise ContractError(f"topic is for store {store!r}", "topic")
    if grants is not None and (refused := grants.refusal(message)) is not None:
        raise ContractError(refused.reason, refused.field)
    if bounds is not None and bounds.reference is not None:
        check_clock(message, bounds.reference, bounds.ahead_s, bounds.behind_s)
    return message


def sort_messages(
    raw: list[RawMessage],
    prefix: str,
    store_id: str,
    delays: DecisionDelays,
    grants: NodeGrants | None = None,
    bounds: ClockBounds | None = None,
) -> Sorted:
    out = Sorted([], [], [])
    for item in raw:
        try:
            message = admit(item, prefix, store_id, grants, bounds)
        except ContractError as exc:
            out.dead.append(dead_letter(item, exc.reason, exc.field))
            # Strings only: a log record keeping the exception would keep its frames and the payload.
            logger.warning("dead-lettered a message on %.255s: %s", item.topic, str(exc))
            continue
        except Exception as exc:  # reading is pure: whatever fails is this message's fault
            reason = f"the message could not be read: {exc!r}"
            logger.error("dead-lettered a message on %.255s: %s", item.topic, reason)
            out.dead.append(dead_letter(item, reason, "payload"))
            continue
        out.kinds.append(message.kind)
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
