"""The edge node's weight logic applied to a recorded or simulated message stream.

Signal-level datasets (``walkout sim --fidelity signal``, the AutoCheckout importer) carry raw
``samples``; the store server needs ``weight`` events. :func:`detect_stream` runs every shelf's
samples through its own :class:`~edge.weight_detector.ShelfDetector`, exactly as a live edge node
would, and emits the events as that node would publish them: ``ts`` = the time of the batch at
which the event was decided, sequence numbers continuing the node's numbering. While a node only
sends samples, a heartbeat per batch keeps its watermark moving once the samples are dropped.
A change that cannot be a contract-valid event is skipped with a logged reason (:func:`unpublishable`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pydantic import ValidationError

from edge import contracts as c
from edge.contracts import RecordedMessage
from edge.refusals import Refusals
from edge.weight_detector import DetectedWeightChange, DetectorParams, ShelfDetector
from store_server.domain.layout import StoreLayout

logger = logging.getLogger(__name__)

HEARTBEAT_S = 0.2


@dataclass(frozen=True)
class StreamMessage:
    t: float
    topic: str
    payload: dict[str, Any]


def unpublishable(change: DetectedWeightChange) -> tuple[str, str] | None:
    """Why ``change`` cannot be published as a ``weight`` event, as (field, reason); None when it can.

    The detector's inputs are cleaned, so this should never fire; when it does (a plate calibrated a
    thousandfold wrong, a source's clock gone mad) the event is skipped, never sent half-true.
    """
    fields = {
        "delta_g": change.delta_g,
        "t_start": change.t_start,
        "t_end": change.t_end,
        "noise_g": change.noise_g,
        "confidence": change.confidence,
        "ts": change.decided_at,
    }
    grams = [("delta_g", change.delta_g), *(("plate_deltas_g", d) for d in change.plate_deltas)]
    if change.shelf_delta_g is not None:
        grams.append(("shelf_delta_g", change.shelf_delta_g))
    for name, value in [*fields.items(), *grams]:
        if not math.isfinite(value):
            return name, f"{name} is {value}, not a number"
    for name, value in grams:
        if abs(value) > c.MAX_GRAMS:
            return name, (
                f"a change of {value:.0f} g is beyond the contract's {c.MAX_GRAMS:.0f} g "
                "(is the plate calibrated?)"
            )
    return None


def publish_ts(decided_at: float) -> float:
    """The ``ts`` of a message decided at ``decided_at``: rounded up to the ms, never before it."""
    return math.ceil(round(decided_at * 1000, 6)) / 1000


def open_since(detectors: Iterable[ShelfDetector], ts: float) -> float | None:
    """When the oldest interaction of a node's shelves not yet published began (None: none open)."""
    starts = [t for d in detectors if (t := d.open_since()) is not None]
    return min(round(min(starts), 3), ts) if starts else None


def heartbeat_payload(node_id: str, ts: float, opened: float | None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "v": c.SCHEMA_VERSION,
        "kind": "heartbeat",
        "node_id": node_id,
        "seq": 0,
        "ts": ts,
    }
    if opened is not None:
        payload["open_since"] = opened
    return payload


def weight_payload(
    change: DetectedWeightChange, node_id: str, seq: int, gondola_id: str, shelf_id: str
) -> dict[str, Any]:
    """A contract-valid ``weight`` payload (v2) for one detected change; raises pydantic's
    ValidationError when it cannot be one (check :func:`unpublishable` first).

    ``delta_g`` is the interaction's weight (the shelf total), ``plate_deltas_g`` each listed
    plate's change and ``shelf_delta_g`` the whole shelf's; a change without per-plate deltas (or
    with a list that does not match its plates) goes out without them, as v1 did.
    """
    ts = publish_ts(change.decided_at)
    t_end = min(round(change.t_end, 3), ts)
    t_start = min(round(change.t_start, 3), t_end)
    per_plate = len(change.plate_deltas) == len(change.plate_ids)
    event = c.WeightEvent(
        node_id=node_id,
        seq=seq,
        ts=ts,
        gondola_id=gondola_id,
        shelf_id=shelf_id,
        plate_ids=list(change.plate_ids),
        delta_g=round(change.delta_g, 2),
        t_start=t_start,
        t_end=t_end,
        noise_g=round(change.noise_g, 3),
        confidence=round(change.confidence, 3),
        plate_deltas_g=[round(d, 2) for d in change.plate_deltas] if per_plate else None,
        shelf_delta_g=None if change.shelf_delta_g is None else round(change.shelf_delta_g, 2),
        plate_steps_t=(
            [min(max(round(t, 3), t_start), t_end) for t in change.plate_steps_t]
            if len(change.plate_steps_t) == len(change.plate_ids)
            else None
        ),
        blind_plate_ids=list(change.blind_plate_ids) or None,
    )
    return event.model_dump(mode="json")


def detect_stream(
    messages: Iterable[RecordedMessage],
    layout: StoreLayout,
    params: DetectorParams | None = None,
    keep_samples: bool = False,
    prefix: str = c.DEFAULT_PREFIX,
) -> Iterator[StreamMessage]:
    """Yield the stream with every node's ``samples`` turned into its detected ``weight`` events.

    Nodes that send samples get their messages renumbered (their original ``weight`` events, once
    samples are seen, are replaced by the detector's); every other message passes unchanged.
    """
    detectors: dict[tuple[str, str], ShelfDetector] = {}
    seqs: dict[str, int] = {}
    last_ts: dict[str, float] = {}
    passed: dict[str, int] = {}  # highest seq a node used before its first samples
    said: dict[str, float | None] = {}  # the open_since a node's last heartbeat said
    refused = Refusals("weight detection")

    def emit(node: str, kind: str, ts: float, payload: dict[str, Any]) -> StreamMessage:
        payload["seq"] = seqs[node]
        seqs[node] += 1
        last_ts[node] = max(ts, float(payload.get("ts", ts)))  # a weight event's ts is rounded up
        return StreamMessage(ts, c.topic(layout.store_id, node, kind, prefix), payload)

    for msg in messages:
        p = msg.payload
        node, kind = p.get("node_id"), p.get("kind")
        if not isinstance(node, str) or node not in seqs and kind != "samples":
            if isinstance(node, str) and isinstance(p.get("seq"), int):
                passed[node] = max(passed.get(node, -1), p["seq"])
            yield StreamMessage(msg.t, msg.topic, p)
            continue
        seqs.setdefault(node, passed.get(node, -1) + 1)
        if kind == "weight":
            continue  # the detector's events replace the recorded ones
        if kind != "samples":
            yield emit(node, str(kind), msg.t, dict(p))
            continue
        key = (node, p["shelf_id"])
        det = detectors.get(key)
        if det is None:
            det = detectors[key] = _detector(p, layout, params)
        grams = np.asarray(p["grams"], dtype=np.float64)
        if list(p["plate_ids"]) != det.plate_ids:
            raise ValueError(f"samples of {node}/{p['shelf_id']} changed their plate_ids mid-stream")
        changes = det.push(float(p["t0"]), grams)
        ts = float(p["ts"])
        if keep_samples:
            yield emit(node, "samples", ts, dict(p))
        for change in changes:
            change = _at(change, ts)
            why = unpublishable(change)
            if why is not None:
                refused.add(f"weight event of {node}/{p['shelf_id']}", *why)
                continue
            try:
                payload = weight_payload(change, node, 0, p["gondola_id"], p["shelf_id"])
            except ValidationError as exc:
                refused.refuse(f"weight event of {node}/{p['shelf_id']}", exc)
                continue
            yield emit(node, "weight", ts, payload)
        if keep_samples:
            continue
        opened = open_since([d for (n, _), d in detectors.items() if n == node], ts)
        # A heartbeat every HEARTBEAT_S, and at once when the node's open interactions change: the
        # store server holds a shopper's exit while a shelf they stood at is still deciding.
        if ts - last_ts.get(node, -1e18) >= HEARTBEAT_S - 1e-6 or opened != said.get(node):
            said[node] = opened
            at = max(ts, last_ts.get(node, ts))  # never before the event just published (rounded up)
            yield emit(node, "heartbeat", at, heartbeat_payload(node, at, opened))


def _at(change: DetectedWeightChange, ts: float) -> DetectedWeightChange:
    """Decided with this message: its ``ts`` is when the node would publish it."""
    return replace(change, decided_at=max(ts, change.t_end))


def _detector(payload: dict[str, Any], layout: StoreLayout, params: DetectorParams | None) -> ShelfDetector:
    plates = list(payload["plate_ids"])
    known = layout.shelves.get(payload["shelf_id"])
    if known is not None and set(plates) - set(known[1].plates):
        logger.warning(
            "samples of shelf %s name plates the layout does not have: %s",
            payload["shelf_id"],
            sorted(set(plates) - set(known[1].plates)),
        )
    return ShelfDetector(plates, float(payload["rate_hz"]), params)
