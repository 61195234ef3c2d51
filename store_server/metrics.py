"""Prometheus metrics of the store server (exposed at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("walkout_messages_total", "Valid messages received, by kind", ["kind"])
DUPLICATES = Counter("walkout_duplicate_messages_total", "Messages received again and ignored")
DEAD_LETTERS = Counter(
    "walkout_dead_letters_total", "Messages rejected into the dead-letter table", ["field"]
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
