"""Is the store ingesting? The reasons /health gives for "degraded", in words staff can act on.

Ingest is *stuck* when one batch has failed to store for a while (the database is down) or the consumer
has no broker; *lagging* when messages wait longer, or in larger numbers, than the store can afford;
and a node is *out of range* when its clock runs ahead of the reference clock by more than the allowed
skew (its messages are refused and it holds nobody back, but its clock needs fixing).
"""

from __future__ import annotations

from dataclasses import dataclass

from store_server.domain.watermark import Watermark


@dataclass(frozen=True)
class IngestState:
    """What the MQTT consumer reports about itself."""

    connected: bool
    queued: int  # messages received, not yet stored and acknowledged
    oldest_age_s: float  # wall-clock age of the oldest of them (0 when none)
    failing_for_s: float  # how long the current batch has failed to store (0 when it has not)
    last_error: str | None = None


@dataclass(frozen=True)
class Thresholds:
    stuck_after_s: float = 30.0
    max_lag_s: float = 60.0
    max_queued: int = 20_000


def degraded_reasons(
    ingest: IngestState | None, watermark: Watermark, limits: Thresholds
) -> list[str]:
    reasons: list[str] = []
    if ingest is not None:
        if not ingest.connected:
            reasons.append("ingest stuck: not connected to the MQTT broker")
        if ingest.failing_for_s > limits.stuck_after_s:
            reasons.append(
                f"ingest stuck: a batch has failed to store for {ingest.failing_for_s:.0f} s"
                + (f" ({ingest.last_error})" if ingest.last_error else "")
            )
        if ingest.oldest_age_s > limits.max_lag_s:
            reasons.append(
                f"ingest lagging: the oldest message waiting to be stored is {ingest.oldest_age_s:.0f} s old"
            )
        if ingest.queued > limits.max_queued:
            reasons.append(f"ingest lagging: {ingest.queued} messages wait to be stored")
    for node, beyond in watermark.out_of_range().items():
        reasons.append(
            f"node {node}: watermark out of range, {beyond + watermark.max_ahead_s:.0f} s ahead of the "
            f"reference clock (at most {watermark.max_ahead_s:.0f} s allowed); its messages are refused"
        )
    return reasons
