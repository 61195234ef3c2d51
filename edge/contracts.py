"""Every MQTT topic and payload between edge nodes and the store server.

This module is the one contract between edge and server. It imports pydantic only (no numpy, cv2 or
torch) so that both sides, tests and third-party nodes can depend on it cheaply.

Topics follow ``{prefix}/{store_id}/{node_id}/{feature}``. Every payload is a JSON object carrying the
schema version ``v``, the publishing ``node_id``, a per-node sequence number ``seq`` and ``ts``, the
event time in UTC epoch seconds. ``node_id:seq`` is the message's stable id: the store server ingests
each id once, however often the broker delivers it. A node publishes in ``ts`` order, so ``ts`` is also
the node's watermark: it promises not to send anything older afterwards.

``status`` is the exception: retained, used as the MQTT last will, and without ``seq``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

SCHEMA_VERSION: Final = 1
DEFAULT_PREFIX = "walkout"

Feature = Literal["weight", "samples", "tracks", "detections", "gate", "heartbeat", "status"]
FEATURES: tuple[str, ...] = ("weight", "samples", "tracks", "detections", "gate", "heartbeat", "status")

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
EpochSeconds = Annotated[float, Field(ge=0)]
Confidence = Annotated[float, Field(ge=0.0, le=1.0)]


def _field_error(field: str, reason: str) -> PydanticCustomError:
    """A cross-field error that still names its field: parse() reads ctx['field'] when loc is empty."""
    return PydanticCustomError("cross_field", "{reason}", {"field": field, "reason": reason})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(_Strict):
    """Fields every sequenced message carries."""

    v: Literal[1] = SCHEMA_VERSION
    node_id: Identifier
    seq: Annotated[int, Field(ge=0)]
    ts: EpochSeconds

    @property
    def msg_id(self) -> str:
        return f"{self.node_id}:{self.seq}"


class WeightEvent(Message):
    """A settled change of weight on one shelf (negative: taken, positive: put on)."""

    kind: Literal["weight"] = "weight"
    gondola_id: Identifier
    shelf_id: Identifier
    plate_ids: Annotated[list[Identifier], Field(min_length=1)]
    delta_g: float
    t_start: EpochSeconds
    t_end: EpochSeconds
    noise_g: Annotated[float, Field(ge=0)] = 0.0
    confidence: Confidence = 1.0

    @model_validator(mode="after")
    def _times_ordered(self) -> WeightEvent:
        if self.t_end < self.t_start:
            raise _field_error("t_end", "t_end must not be before t_start")
        if self.ts < self.t_end:
            raise _field_error("ts", "ts (publish time) must not be before t_end")
        return self


class TrackPoint(_Strict):
    track_id: Identifier
    x_m: float
    y_m: float
    confidence: Confidence = 1.0


class ShopperTracks(Message):
    """Floor positions (metres, store frame) of every shopper a camera tracks at time ``ts``."""

    kind: Literal["tracks"] = "tracks"
    camera_id: Identifier
    tracks: list[TrackPoint]


class ItemDetection(_Strict):
    label: Annotated[str, Field(min_length=1, max_length=128)]
    confidence: Confidence
    x_m: float
    y_m: float
    track_id: Identifier | None = None


class ItemDetections(Message):
    """Products a camera sees at time ``ts``, on shelves or in a tracked shopper's hands."""

    kind: Literal["detections"] = "detections"
    camera_id: Identifier
    detections: list[ItemDetection]


class GatePass(Message):
    """Someone passed a gate. An entry carries the account token scanned from the shopper's code."""

    kind: Literal["gate"] = "gate"
    gate_id: Identifier
    direction: Literal["entry", "exit"]
    account_token: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    group_size: Annotated[int, Field(ge=1, le=20)] = 1

    @model_validator(mode="after")
    def _entry_has_token(self) -> GatePass:
        if self.direction == "entry" and not self.account_token:
            raise _field_error("account_token", "an entry gate pass needs account_token")
        return self


class WeightSamples(Message):
    """Raw load-cell readings of one shelf, for recording and replay (the AutoCheckout layout: 60 Hz in
    batches of 12). ``grams[i][j]`` is plate ``plate_ids[i]`` at time ``t0 + j / rate_hz``; absolute
    values may drift and need not be zeroed, only changes matter. ``ts`` is the last sample's time."""

    kind: Literal["samples"] = "samples"
    gondola_id: Identifier
    shelf_id: Identifier
    plate_ids: Annotated[list[Identifier], Field(min_length=1, max_length=64)]
    rate_hz: Annotated[float, Field(gt=0, le=1000)]
    t0: EpochSeconds
    grams: Annotated[list[Annotated[list[float], Field(min_length=1, max_length=600)]], Field(min_length=1)]

    @model_validator(mode="after")
    def _shape(self) -> WeightSamples:
        if len(self.grams) != len(self.plate_ids):
            raise _field_error("grams", "grams needs one list of samples per plate in plate_ids")
        n = len(self.grams[0])
        if any(len(row) != n for row in self.grams):
            raise _field_error("grams", "every plate needs the same number of samples")
        if self.ts + 1e-6 < self.t0 + (n - 1) / self.rate_hz:
            raise _field_error("ts", "ts must not be before the last sample (t0 + (n - 1) / rate_hz)")
        return self


class Heartbeat(Message):
    """Sent every fraction of a second by every node: advances the node's watermark when it is quiet."""

    kind: Literal["heartbeat"] = "heartbeat"


class NodeStatus(_Strict):
    """Retained availability of a node; the offline form is the node's MQTT last will."""

    v: Literal[1] = SCHEMA_VERSION
    kind: Literal["status"] = "status"
    node_id: Identifier
    state: Literal["online", "offline"]
    ts: EpochSeconds | None = None
    role: Annotated[str, Field(max_length=32)] = "edge"
    sensors: dict[str, Literal["ok", "degraded", "failed"]] = Field(default_factory=dict)


SequencedMessage = WeightEvent | WeightSamples | ShopperTracks | ItemDetections | GatePass | Heartbeat
AnyMessage = WeightEvent | WeightSamples | ShopperTracks | ItemDetections | GatePass | Heartbeat | NodeStatus

PAYLOAD_BY_FEATURE: dict[str, type[BaseModel]] = {
    "weight": WeightEvent,
    "samples": WeightSamples,
    "tracks": ShopperTracks,
    "detections": ItemDetections,
    "gate": GatePass,
    "heartbeat": Heartbeat,
    "status": NodeStatus,
}
_ANY_ADAPTER: TypeAdapter[Any] = TypeAdapter(Annotated[AnyMessage, Field(discriminator="kind")])


class RecordedMessage(Protocol):
    """One MQTT message as datasets keep it: publish time, topic, payload (a JSON object)."""

    @property
    def t(self) -> float: ...

    @property
    def topic(self) -> str: ...

    @property
    def payload(self) -> dict[str, Any]: ...


def topic(store_id: str, node_id: str, feature: str, prefix: str = DEFAULT_PREFIX) -> str:
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}; expected one of {', '.join(FEATURES)}")
    return f"{prefix}/{store_id}/{node_id}/{feature}"


def subscription(store_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The MQTT filter that matches every topic of one store."""
    return f"{prefix}/{store_id}/#"


def feature_of(message: AnyMessage) -> str:
    return message.kind


def topic_for(message: AnyMessage, store_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    return topic(store_id, message.node_id, message.kind, prefix)


class ContractError(ValueError):
    """A message that does not fit the contract; ``field`` names what is wrong, ``reason`` why."""

    def __init__(self, reason: str, field: str = "", topic: str = "") -> None:
        self.reason = reason
        self.field = field
        self.topic = topic
        where = f" (field {field!r})" if field else ""
        super().__init__(f"{reason}{where}")


def _first_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("function-after",))
    if not loc:
        loc = str((err.get("ctx") or {}).get("field", ""))
    return loc, err.get("msg", "invalid").removeprefix("Value error, ")


def parse(topic_name: str, payload: bytes | str, prefix: str = DEFAULT_PREFIX) -> AnyMessage:
    """Validate one MQTT message against its topic; raise ContractError with a named field."""
    parts = topic_name.split("/")
    if len(parts) != 4 or parts[0] != prefix:
        raise ContractError(
            f"topic must look like {prefix}/<store_id>/<node_id>/<feature>", "topic", topic_name
        )
    _, _store, node_id, feature = parts
    model = PAYLOAD_BY_FEATURE.get(feature)
    if model is None:
        raise ContractError(
            f"unknown feature {feature!r}; expected one of {', '.join(FEATURES)}", "topic", topic_name
        )
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"payload is not JSON: {exc}", "payload", topic_name) from None
    if not isinstance(data, dict):
        raise ContractError("payload must be a JSON object", "payload", topic_name)
    version = data.get("v")
    if version != SCHEMA_VERSION:
        raise ContractError(
            f"schema version {version!r} is not supported (this server speaks v{SCHEMA_VERSION})",
            "v",
            topic_name,
        )
    data.setdefault("kind", feature)
    if data["kind"] != feature:
        raise ContractError(
            f"kind {data['kind']!r} does not match topic feature {feature!r}", "kind", topic_name
        )
    try:
        message = model.model_validate(data)
    except ValidationError as exc:
        field, reason = _first_error(exc)
        raise ContractError(reason, field, topic_name) from None
    if message.node_id != node_id:  # type: ignore[attr-defined]
        raise ContractError(
            f"node_id {message.node_id!r} does not match topic node {node_id!r}",  # type: ignore[attr-defined]
            "node_id",
            topic_name,
        )
    return message  # type: ignore[return-value]


def encode(message: AnyMessage) -> bytes:
    return message.model_dump_json(exclude_none=False).encode()


def decode_any(data: dict[str, Any]) -> AnyMessage:
    """Rebuild a message from its JSON dict (datasets, the inbox)."""
    return _ANY_ADAPTER.validate_python(data)  # type: ignore[no-any-return]
