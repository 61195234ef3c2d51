"""Prometheus metrics of the store server (exposed at /metrics).

Every label value comes from a closed set. A label fed from input (the field a dead letter names can be
any key a payload invents) would add a time series per distinct value, for good: such values are mapped
to the known names, and everything else becomes ``other``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from edge.contracts import FEATURES, PAYLOAD_BY_FEATURE

OTHER = "other"
# The top-level fields of every contract model, and the parts of a message that are not fields.
KNOWN_FIELDS: frozenset[str] = frozenset(
    {name for model in PAYLOAD_BY_FEATURE.values() for name in model.model_fields}
    | {"payload", "topic", "gate_id", "gondola_id", "camera_id", "node_id", "plate_ids", "shelf_id"}
)


def field_label(field: str) -> str:
    """The label of a dead letter's field: its top-level name when the contract knows it, else other."""
    head = field.split(".", 1)[0] if field else "payload"
    return head if head in KNOWN_FIELDS else OTHER


def kind_label(kind: str) -> str:
    return kind if kind in FEATURES else OTHER


class _ClosedLabels:
    """A labelled counter whose single label is mapped through ``closed`` before it is used."""

    def __init__(self, metric: Counter, label: str, closed: Any) -> None:
        self._metric, self._label, self._closed = metric, label, closed

    def labels(self, **values: str) -> Any:
        return self._metric.labels(**{self._label: self._closed(values[self._label])})


MESSAGES = _ClosedLabels(
    Counter("walkout_messages_total", "Valid messages received, by kind", ["kind"]), "kind", kind_label
)
DUPLICATES = Counter("walkout_duplicate_messages_total", "Messages received again and ignored")
DEAD_LETTERS = _ClosedLabels(
    Counter(
        "walkout_dead_letters_total",
        "Messages rejected into the dead-letter table, by the top-level field at fault (other: unknown)",
        ["field"],
    ),
    "field",
    field_label,
)
LATE = Counter("walkout_late_messages_total", "Messages older than the watermark when they arrived")
DECISIONS = Counter("walkout_decisions_total", "Decisions taken, by outcome", ["outcome"])
RECEIPTS = Counter("walkout_receipts_total", "Receipts issued, by payment status", ["status"])
RECEIPT_LATENCY = Histogram(
    "walkout_receipt_latency_seconds",
    "Wall time from the exit gate message's arrival to its receipt",
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
)
WATERMARK = Gauge("walkout_watermark_seconds", "Event-time watermark of the store")
OPEN_SESSIONS = Gauge("walkout_open_sessions", "Shoppers in the store")
INGEST_RETRIES = Counter(
    "walkout_ingest_retries_total", "Batches the consumer had to retry (the database was unreachable)"
)
