"""Every MQTT topic and payload between edge nodes and the store server.

This module is the one contract between edge and server. It imports pydantic and the stdlib-only
edge.bounded_json (no numpy, cv2 or torch) so that both sides, tests and third-party nodes can
depend on it cheaply.

Topics follow ``{prefix}/{store_id}/{node_id}/{feature}``. Every payload is a JSON object carrying the
schema version ``v``, the publishing ``node_id``, a per-node sequence number ``seq`` and ``ts``, the
event time in UTC epoch seconds. ``node_id:seq`` is the message's stable id: the store server ingests
each id once, however often the broker delivers it. A node publishes in ``ts`` order, so ``ts`` is also
the node's watermark: it promises not to send anything older afterwards.

``status`` is the exception: retained, used as the MQTT last will, and without ``seq``.

Every size is bounded (payload bytes, nesting, strings, lists, numbers) and every number is finite, so
one message can cost the server only a bounded amount of work; :func:`parse` refuses the rest with the
field and the reason, cheaply, before the JSON is decoded into Python objects where it can.
"""

from __future__ import annotations

from collections.abc import Iterable
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

from edge.bounded_json import JsonRefused, loads_bounded

SCHEMA_VERSION: Final = 3  # what this side publishes
SUPPORTED_VERSIONS: Final = (1, 2, 3)  # v2: weight events carry per-plate deltas and the shelf total;
# v3: per-plate step times and blind plates on weight events, open interactions on heartbeats
DEFAULT_PREFIX = "walkout"

Feature = Literal["weight", "samples", "tracks", "detections", "gate", "heartbeat", "status"]
FEATURES: tuple[str, ...] = ("weight", "samples", "tracks", "detections", "gate", "heartbeat", "status")

# Bounds. Generous for real traffic (a samples batch of 64 plates x 600 floats is ~1 MB), tight enough
# that one message costs the server a bounded amount of work and memory.
MAX_PAYLOAD_BYTES: Final = 256 * 1024
MAX_SAMPLES_PAYLOAD_BYTES: Final = 2 * 1024 * 1024
MAX_TOPIC_LENGTH: Final = 255  # the inbox and dead-letter topic columns
MAX_NESTING: Final = 8  # the deepest valid payload (samples: object > grams > row) is 3
MAX_CONTAINERS: Final = 1024  # arrays and objects in one payload (200 track points are 202)
MAX_TRACKS: Final = 200  # track points per tracks message: more people than any camera sees at once
MAX_DETECTIONS: Final = 200
MAX_PLATES: Final = 64
MAX_SENSORS: Final = 256
MAX_EPOCH_S: Final = 1e10  # year 2286: anything later is not a time (the server bounds it far tighter)
MAX_GRAMS: Final = 1e6  # a tonne: more than any shelf holds
MAX_RAW_GRAMS: Final = 1e9  # raw load-cell readings may carry an offset
MAX_METRES: Final = 1e6
MAX_SEQ: Final = 2**63 - 1

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
NodeId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
EpochSeconds = Annotated[float, Field(ge=0, le=MAX_EPOCH_S)]
Confidence = Annotated[float, Field(ge=0.0, le=1.0)]
Metres = Annotated[float, Field(ge=-MAX_METRES, le=MAX_METRES)]
Grams = Annotated[float, Field(ge=-MAX_GRAMS, le=MAX_GRAMS)]
RawGrams = Annotated[float, Field(ge=-MAX_RAW_GRAMS, le=MAX_RAW_GRAMS)]
# Free text is bounded and has no control characters (PostgreSQL text cannot even hold NUL).
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
Label = Annotated[str, Field(min_length=1, max_length=128, pattern=_PRINTABLE)]
Token = Annotated[str, Field(min_length=1, max_length=256, pattern=_PRINTABLE)]
Role = Annotated[str, Field(max_length=32, pattern=_PRINTABLE)]


def _field_error(field: str, reason: str) -> PydanticCustomError:
    """A cross-field error that still names its field: parse() reads ctx['field'] when loc is empty."""
    return PydanticCustomError("cross_field", "{reason}", {"field": field, "reason": reason})


class _Strict(BaseModel):
    # allow_inf_nan=False: json.loads reads NaN, Infinity and 1e999 as floats; the contract does not.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Message(_Strict):
    """Fields every sequenced message carries."""

    v: Literal[1, 2, 3] = SCHEMA_VERSION
    node_id: NodeId
    seq: Annotated[int, Field(ge=0, le=MAX_SEQ)]
    ts: EpochSeconds

    @property
    def msg_id(self) -> str:
        return f"{self.node_id}:{self.seq}"


class WeightEvent(Message):
    """A settled change of weight on one shelf (negative: taken, positive: put on): one interaction.

    v2: one hand on the shelf is one event, whatever number of plates it moved. ``plate_ids`` are the
    plates whose level changed, ``plate_deltas_g`` their changes in the same order (coupling included:
    a pick from one plate shows on its neighbours too), ``shelf_delta_g`` the change of the whole shelf
    (every plate, also those below the detector's per-plate threshold), which mechanical coupling
    conserves; ``delta_g`` is the node's best estimate of the interaction's weight (the shelf total
    when it has one). v1 events have neither list nor total. ``plate_steps_t`` (v3, optional): when
    each plate's level changed, same order, within ``t_start`` .. ``t_end``; an interaction that
    chained several hands on a shelf starts with the first of them, and the step times say whose hand
    was there when the weight moved. ``blind_plate_ids`` (v3, optional): plates of the shelf next to
    the interaction the node could not read (a dead or stuck cell): what coupling moved onto them is
    missing from the total.
    """

    kind: Literal["weight"] = "weight"
    gondola_id: Identifier
    shelf_id: Identifier
    plate_ids: Annotated[list[Identifier], Field(min_length=1, max_length=MAX_PLATES)]
    delta_g: Grams
    t_start: EpochSeconds
    t_end: EpochSeconds
    noise_g: Annotated[float, Field(ge=0, le=MAX_GRAMS)] = 0.0
    confidence: Confidence = 1.0
    plate_deltas_g: Annotated[list[Grams], Field(max_length=MAX_PLATES)] | None = None
    shelf_delta_g: Grams | None = None
    plate_steps_t: Annotated[list[EpochSeconds], Field(max_length=MAX_PLATES)] | None = None
    blind_plate_ids: Annotated[list[Identifier], Field(max_length=MAX_PLATES)] | None = None

    @model_validator(mode="after")
    def _times_ordered(self) -> WeightEvent:
        if self.plate_deltas_g is not None and len(self.plate_deltas_g) != len(self.plate_ids):
            raise _field_error("plate_deltas_g", "plate_deltas_g needs one change per plate in plate_ids")
        if self.plate_steps_t is not None:
            if len(self.plate_steps_t) != len(self.plate_ids):
                raise _field_error("plate_steps_t", "plate_steps_t needs one time per plate in plate_ids")
            if any(not self.t_start <= t <= self.t_end for t in self.plate_steps_t):
                raise _field_error("plate_steps_t", "plate_steps_t must lie within t_start .. t_end")
        if len(set(self.plate_ids)) != len(self.plate_ids):
            raise _field_error("plate_ids", "plate_ids must not repeat a plate")
        return self._check_times()

    def _check_times(self) -> WeightEvent:
        if self.t_end < self.t_start:
            raise _field_error("t_end", "t_end must not be before t_start")
        if self.ts < self.t_end:
            raise _field_error("ts", "ts (publish time) must not be before t_end")
        return self

    @property
    def plate_changes(self) -> dict[str, float]:
        """Each plate's change; a v1 event (no per-plate list) spreads ``delta_g`` evenly."""
        if self.plate_deltas_g is not None:
            return dict(zip(self.plate_ids, self.plate_deltas_g, strict=True))
        return {p: self.delta_g / len(self.plate_ids) for p in self.plate_ids}

    def step_times(self, plates: Iterable[str] | None = None) -> list[float]:
        """When the level of ``plates`` (default: all) changed; [] when the node did not say."""
        if self.plate_steps_t is None:
            return []
        wanted = set(self.plate_ids if plates is None else plates)
        return [t for p, t in zip(self.plate_ids, self.plate_steps_t, strict=True) if p in wanted]


class TrackPoint(_Strict):
    track_id: Identifier
    x_m: Metres
    y_m: Metres
    confidence: Confidence = 1.0


class ShopperTracks(Message):
    """Floor positions (metres, store frame) of every shopper a camera tracks at time ``ts``."""

    kind: Literal["tracks"] = "tracks"
    camera_id: Identifier
    tracks: Annotated[list[TrackPoint], Field(max_length=MAX_TRACKS)]


class ItemDetection(_Strict):
    label: Label
    confidence: Confidence
    x_m: Metres
    y_m: Metres
    track_id: Identifier | None = None


class ItemDetections(Message):
    """Products a camera sees at time ``ts``, on shelves or in a tracked shopper's hands."""

    kind: Literal["detections"] = "detections"
    camera_id: Identifier
    detections: Annotated[list[ItemDetection], Field(max_length=MAX_DETECTIONS)]


class GatePass(Message):
    """Someone passed a gate. An entry carries the account token scanned from the shopper's code."""

    kind: Literal["gate"] = "gate"
    gate_id: Identifier
    direction: Literal["entry", "exit"]
    account_token: Token | None = None
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
    plate_ids: Annotated[list[Identifier], Field(min_length=1, max_length=MAX_PLATES)]
    rate_hz: Annotated[float, Field(gt=0, le=1000)]
    t0: EpochSeconds
    grams: Annotated[
        list[Annotated[list[RawGrams], Field(min_length=1, max_length=600)]],
        Field(min_length=1, max_length=MAX_PLATES),
    ]

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
    """Sent every fraction of a second by every node: advances the node's watermark when it is quiet.

    ``open_since`` (v3, shelf nodes, optional): when the oldest interaction the node has not published yet
    began (None: nothing open). A shopper's exit waits for the shelves they stood at to publish what
    they took (the store server, a few seconds at most)."""

    kind: Literal["heartbeat"] = "heartbeat"
    open_since: EpochSeconds | None = None

    @model_validator(mode="after")
    def _open_before(self) -> Heartbeat:
        if self.open_since is not None and self.open_since > self.ts:
            raise _field_error("open_since", "open_since must not be after ts")
        return self


class NodeStatus(_Strict):
    """Retained availability of a node; the offline form is the node's MQTT last will."""

    v: Literal[1, 2, 3] = SCHEMA_VERSION
    kind: Literal["status"] = "status"
    node_id: NodeId
    state: Literal["online", "offline"]
    ts: EpochSeconds | None = None
    role: Role = "edge"
    sensors: Annotated[
        dict[Identifier, Literal["ok", "degraded", "failed"]], Field(max_length=MAX_SENSORS)
    ] = Field(default_factory=dict)


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


def _payload_limit(feature: str) -> int:
    return MAX_SAMPLES_PAYLOAD_BYTES if feature == "samples" else MAX_PAYLOAD_BYTES


def _decode(payload: bytes | str, feature: str, topic_name: str) -> Any:
    try:
        return loads_bounded(payload, _payload_limit(feature), MAX_NESTING, MAX_CONTAINERS)
    except JsonRefused as exc:
        raise ContractError(str(exc), "payload", topic_name) from None


def parse(topic_name: str, payload: bytes | str, prefix: str = DEFAULT_PREFIX) -> AnyMessage:
    """Validate one MQTT message against its topic; raise ContractError with a named field."""
    if len(topic_name) > MAX_TOPIC_LENGTH:
        raise ContractError(
            f"topic is {len(topic_name)} characters; at most {MAX_TOPIC_LENGTH}",
            "topic",
            topic_name[:MAX_TOPIC_LENGTH],
        )
    parts = topic_name.split("/")
    if len(parts) != 4 or parts[0] != prefix:
        raise ContractError(
            f"topic must look like {prefix}/<store_id>/<node_id>/<feature>", "topic", topic_name
        )
    _, _store, node_id, feature = parts
    model = PAYLOAD_BY_FEATURE.get(feature)
    if model is None:
        raise ContractError(
            f"unknown feature {feature[:40]!r}; expected one of {', '.join(FEATURES)}", "topic", topic_name
        )
    data = _decode(payload, feature, topic_name)
    if not isinstance(data, dict):
        raise ContractError("payload must be a JSON object", "payload", topic_name)
    version = data.get("v")
    if version not in SUPPORTED_VERSIONS or type(version) is not int:
        shown = repr(version)[:40]
        spoken = ", ".join(f"v{v}" for v in SUPPORTED_VERSIONS)
        raise ContractError(
            f"schema version {shown} is not supported (this server speaks {spoken})",
            "v",
            topic_name,
        )
    data.setdefault("kind", feature)
    if data["kind"] != feature:
        raise ContractError(
            f"kind {repr(data['kind'])[:40]} does not match topic feature {feature!r}", "kind", topic_name
        )
    try:
        message = model.model_validate(data)
    except ValidationError as exc:
        field, reason = _first_error(exc)
        raise ContractError(reason, field, topic_name) from None
    if message.node_id != node_id:  # type: ignore[attr-defined]
        raise ContractError(
            f"node_id {message.node_id!r} does not match topic node {node_id[:64]!r}",  # type: ignore[attr-defined]
            "node_id",
            topic_name,
        )
    return message  # type: ignore[return-value]


TIME_FIELDS: tuple[str, ...] = ("ts", "t_start", "t_end", "t0")


def check_clock(message: AnyMessage, reference: float, ahead_s: float, behind_s: float) -> None:
    """Refuse event times further than ``ahead_s`` after, or ``behind_s`` before, ``reference`` (the
    server's clock): one such time would otherwise move the watermark, or open a visit, for good.

    ``status`` carries no event time that matters (a retained last will may be days old).
    """
    if isinstance(message, NodeStatus):
        return
    for name in TIME_FIELDS:
        value = getattr(message, name, None)
        if value is None:
            continue
        if value > reference + ahead_s:
            raise ContractError(
                f"{name} {value:.3f} is {value - reference:.0f} s ahead of the server's clock "
                f"({reference:.3f}); at most {ahead_s:.0f} s are allowed",
                name,
            )
        if value < reference - behind_s:
            raise ContractError(
                f"{name} {value:.3f} is {reference - value:.0f} s behind the server's clock "
                f"({reference:.3f}); at most {behind_s:.0f} s are allowed",
                name,
            )


def encode(message: AnyMessage) -> bytes:
    return message.model_dump_json(exclude_none=False).encode()


def decode_any(data: dict[str, Any]) -> AnyMessage:
    """Rebuild a message from its JSON dict (datasets, the inbox)."""
    return _ANY_ADAPTER.validate_python(data)  # type: ignore[no-any-return]
