"""The MQTT contract: every payload survives topic_for/encode/parse; bad input names the bad field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge.contracts import (
    FEATURES,
    PAYLOAD_BY_FEATURE,
    SCHEMA_VERSION,
    ContractError,
    GatePass,
    Heartbeat,
    ItemDetection,
    ItemDetections,
    NodeStatus,
    ShopperTracks,
    TrackPoint,
    WeightEvent,
    WeightSamples,
    decode_any,
    encode,
    parse,
    subscription,
    topic,
    topic_for,
)

STORE = "store-1"

MESSAGES: dict[str, Any] = {
    "weight": WeightEvent(
        node_id="shelf-g1",
        seq=7,
        ts=1_700_000_010.5,
        gondola_id="g1",
        shelf_id="g1-s2",
        plate_ids=["g1-s2-p1", "g1-s2-p2"],
        delta_g=-355.2,
        t_start=1_700_000_009.8,
        t_end=1_700_000_010.4,
        noise_g=1.5,
        confidence=0.92,
    ),
    "samples": WeightSamples(
        node_id="shelf-g1",
        seq=8,
        ts=1_700_000_010.69,
        gondola_id="g1",
        shelf_id="g1-s2",
        plate_ids=["g1-s2-p1", "g1-s2-p2"],
        rate_hz=60.0,
        t0=1_700_000_010.5,
        grams=[[1200.5 + j for j in range(12)], [830.0] * 12],
    ),
    "tracks": ShopperTracks(
        node_id="cam-ceiling",
        seq=120,
        ts=1_700_000_010.0,
        camera_id="cam1",
        tracks=[
            TrackPoint(track_id="t1", x_m=3.2, y_m=1.5, confidence=0.8),
            TrackPoint(track_id="t2", x_m=0, y_m=0),
        ],
    ),
    "detections": ItemDetections(
        node_id="cam-ceiling",
        seq=121,
        ts=1_700_000_010.1,
        camera_id="cam1",
        detections=[
            ItemDetection(label="cola-can", confidence=0.7, x_m=3.0, y_m=1.4, track_id="t1"),
            ItemDetection(label="chips", confidence=0.5, x_m=5.0, y_m=2.0),
        ],
    ),
    "gate_entry": GatePass(
        node_id="gate-in",
        seq=1,
        ts=1_700_000_000.0,
        gate_id="in",
        direction="entry",
        account_token="tok-abc",
        group_size=2,
    ),
    "gate_exit": GatePass(node_id="gate-out", seq=3, ts=1_700_000_100.0, gate_id="out", direction="exit"),
    "heartbeat": Heartbeat(node_id="shelf-g1", seq=8, ts=1_700_000_011.0),
    "status_online": NodeStatus(
        node_id="shelf-g1",
        state="online",
        ts=1_700_000_000.0,
        role="shelf",
        sensors={"lc0": "ok", "lc1": "degraded"},
    ),
    "status_will": NodeStatus(node_id="shelf-g1", state="offline"),
}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_round_trip_through_topic_encode_parse(name: str) -> None:
    message = MESSAGES[name]
    topic_name = topic_for(message, STORE)
    assert topic_name == f"walkout/{STORE}/{message.node_id}/{message.kind}"

    parsed = parse(topic_name, encode(message))

    assert parsed == message
    assert type(parsed) is type(message)
    # The same bytes also come back through the dataset/inbox path.
    assert decode_any(json.loads(encode(message))) == message


def test_every_feature_has_a_payload_and_a_round_trip_case() -> None:
    assert set(FEATURES) == set(PAYLOAD_BY_FEATURE)
    assert {m.kind for m in MESSAGES.values()} == set(FEATURES)


def test_round_trip_with_custom_prefix_and_str_payload() -> None:
    message = MESSAGES["heartbeat"]
    topic_name = topic_for(message, STORE, prefix="lab")
    assert topic_name.startswith("lab/")
    assert parse(topic_name, encode(message).decode(), prefix="lab") == message


def test_msg_id_is_node_and_seq() -> None:
    assert MESSAGES["weight"].msg_id == "shelf-g1:7"


def test_encode_carries_version_and_kind() -> None:
    data = json.loads(encode(MESSAGES["weight"]))
    assert data["v"] == SCHEMA_VERSION == 3
    assert data["kind"] == "weight"


def test_kind_may_be_left_out_and_comes_from_the_topic() -> None:
    data = json.loads(encode(MESSAGES["heartbeat"]))
    del data["kind"]
    parsed = parse(f"walkout/{STORE}/shelf-g1/heartbeat", json.dumps(data))
    assert isinstance(parsed, Heartbeat)


def test_topic_helpers() -> None:
    assert topic(STORE, "gate-in", "gate") == f"walkout/{STORE}/gate-in/gate"
    assert subscription(STORE) == f"walkout/{STORE}/#"
    with pytest.raises(ValueError, match="unknown feature"):
        topic(STORE, "gate-in", "teleport")


# --- malformed input -------------------------------------------------------------------------------

WEIGHT_TOPIC = f"walkout/{STORE}/shelf-g1/weight"
GATE_TOPIC = f"walkout/{STORE}/gate-in/gate"


def _weight(**changes: Any) -> dict[str, Any]:
    data = json.loads(encode(MESSAGES["weight"]))
    data.update(changes)
    return data


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


def _gate(**changes: Any) -> dict[str, Any]:
    data = json.loads(encode(MESSAGES["gate_entry"]))
    data.update(changes)
    return data


SAMPLES_TOPIC = f"walkout/{STORE}/shelf-g1/samples"


def _samples(**changes: Any) -> dict[str, Any]:
    data = json.loads(encode(MESSAGES["samples"]))
    data.update(changes)
    return data


MALFORMED = [
    pytest.param(SAMPLES_TOPIC, json.dumps(_samples(grams=[[1.0] * 12])), "grams", id="samples-plate-count"),
    pytest.param(
        SAMPLES_TOPIC, json.dumps(_samples(grams=[[1.0] * 12, [1.0] * 11])), "grams", id="samples-ragged"
    ),
    pytest.param(SAMPLES_TOPIC, json.dumps(_samples(ts=1_700_000_010.5)), "ts", id="samples-ts-before-last"),
    pytest.param(WEIGHT_TOPIC, b"{not json", "payload", id="not-json"),
    pytest.param(WEIGHT_TOPIC, b"\xff\xfe\x00", "payload", id="not-utf8"),
    pytest.param(WEIGHT_TOPIC, json.dumps([1, 2, 3]), "payload", id="non-object"),
    pytest.param(WEIGHT_TOPIC, json.dumps("weight"), "payload", id="json-string"),
    pytest.param(WEIGHT_TOPIC, json.dumps(_weight(v=4)), "v", id="wrong-version"),
    pytest.param(
        WEIGHT_TOPIC, json.dumps(_weight(plate_deltas_g=[-300.0])), "plate_deltas_g", id="plate-deltas-count"
    ),
    pytest.param(
        WEIGHT_TOPIC,
        json.dumps(_weight(plate_ids=["g1-s2-p1", "g1-s2-p1"])),
        "plate_ids",
        id="plate-repeated",
    ),
    pytest.param(WEIGHT_TOPIC, json.dumps(_without(_weight(), "v")), "v", id="missing-version"),
    pytest.param(WEIGHT_TOPIC, json.dumps(_without(_weight(), "delta_g")), "delta_g", id="missing-field"),
    pytest.param(WEIGHT_TOPIC, json.dumps(_weight(colour="red")), "colour", id="extra-field"),
    pytest.param(WEIGHT_TOPIC, json.dumps(_weight(kind="gate")), "kind", id="wrong-kind"),
    pytest.param(WEIGHT_TOPIC, json.dumps(_weight(node_id="shelf-g2")), "node_id", id="node-mismatch"),
    pytest.param(WEIGHT_TOPIC, json.dumps(_weight(seq=-1)), "seq", id="negative-seq"),
    pytest.param(WEIGHT_TOPIC, json.dumps(_weight(plate_ids=[])), "plate_ids", id="no-plates"),
    pytest.param(WEIGHT_TOPIC, json.dumps(_weight(confidence=1.5)), "confidence", id="confidence-above-1"),
    pytest.param(WEIGHT_TOPIC, json.dumps(_weight(delta_g="lots")), "delta_g", id="not-a-number"),
    pytest.param(
        f"walkout/{STORE}/cam-ceiling/tracks",
        json.dumps(
            {
                **json.loads(encode(MESSAGES["tracks"])),
                "tracks": [{"track_id": "t1", "x_m": 1, "y_m": 2, "confidence": 2}],
            }
        ),
        "tracks.0.confidence",
        id="nested-field",
    ),
    pytest.param(f"walkout/{STORE}/shelf-g1", json.dumps(_weight()), "topic", id="topic-too-short"),
    pytest.param(
        f"walkout/{STORE}/shelf-g1/weight/extra", json.dumps(_weight()), "topic", id="topic-too-long"
    ),
    pytest.param(f"other/{STORE}/shelf-g1/weight", json.dumps(_weight()), "topic", id="topic-wrong-prefix"),
    pytest.param(f"walkout/{STORE}/shelf-g1/teleport", json.dumps(_weight()), "topic", id="unknown-feature"),
    pytest.param(GATE_TOPIC, json.dumps(_gate(direction="sideways")), "direction", id="bad-direction"),
    pytest.param(
        f"walkout/{STORE}/shelf-g1/status",
        json.dumps({"v": 1, "node_id": "shelf-g1", "state": "online", "seq": 4}),
        "seq",
        id="status-with-seq",
    ),
    pytest.param(
        GATE_TOPIC,
        json.dumps(_gate(account_token=None)),
        "account_token",
        id="entry-without-token",
    ),
    pytest.param(
        WEIGHT_TOPIC,
        json.dumps(_weight(t_start=1_700_000_010.4, t_end=1_700_000_009.0)),
        "t_end",
        id="t_end-before-t_start",
    ),
]


@pytest.mark.parametrize(("topic_name", "payload", "field"), MALFORMED)
def test_malformed_input_names_the_field(topic_name: str, payload: bytes | str, field: str) -> None:
    with pytest.raises(ContractError) as info:
        parse(topic_name, payload)
    assert info.value.field == field
    assert info.value.reason
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("topic_name", "payload", "words"),
    [
        (GATE_TOPIC, json.dumps(_gate(account_token=None)), "account_token"),
        (GATE_TOPIC, json.dumps(_without(_gate(), "account_token")), "account_token"),
        (WEIGHT_TOPIC, json.dumps(_weight(t_start=1_700_000_010.4, t_end=1_700_000_009.0)), "t_end"),
        (WEIGHT_TOPIC, json.dumps(_weight(ts=1_700_000_010.0, t_end=1_700_000_010.4)), "ts"),
    ],
    ids=["entry-token-null", "entry-token-missing", "t_end-before-t_start", "ts-before-t_end"],
)
def test_cross_field_rules_are_rejected_with_a_reason(topic_name: str, payload: str, words: str) -> None:
    with pytest.raises(ContractError) as info:
        parse(topic_name, payload)
    assert words in info.value.reason


def test_exit_gate_pass_needs_no_token() -> None:
    data = json.loads(encode(MESSAGES["gate_exit"]))
    assert parse(f"walkout/{STORE}/gate-out/gate", json.dumps(data)) == MESSAGES["gate_exit"]


def test_contract_error_keeps_the_topic() -> None:
    with pytest.raises(ContractError) as info:
        parse(WEIGHT_TOPIC, b"{")
    assert info.value.topic == WEIGHT_TOPIC
    assert "payload" in str(info.value)


def test_models_are_frozen() -> None:
    with pytest.raises(ValueError):
        MESSAGES["heartbeat"].seq = 9  # type: ignore[misc]


def test_v2_weight_event_carries_each_plate_and_the_shelf_total() -> None:
    data = _weight(plate_deltas_g=[-300.0, -45.0], shelf_delta_g=-344.0, delta_g=-344.0)
    event = parse(WEIGHT_TOPIC, json.dumps(data))
    assert isinstance(event, WeightEvent)
    assert event.plate_changes == {"g1-s2-p1": -300.0, "g1-s2-p2": -45.0}
    assert event.shelf_delta_g == -344.0


def test_v1_weight_event_is_still_accepted_and_spread_evenly() -> None:
    data = _without(_without(_weight(v=1, delta_g=-300.0), "plate_deltas_g"), "shelf_delta_g")
    event = parse(WEIGHT_TOPIC, json.dumps(data))
    assert isinstance(event, WeightEvent)
    assert event.v == 1
    assert event.plate_changes == {"g1-s2-p1": -150.0, "g1-s2-p2": -150.0}


def test_plate_step_times_are_one_per_plate_within_the_event() -> None:
    ok = parse(WEIGHT_TOPIC, json.dumps(_weight(plate_steps_t=[1_700_000_010.0, 1_700_000_010.2])))
    assert isinstance(ok, WeightEvent)
    assert ok.step_times(["g1-s2-p2"]) == [1_700_000_010.2] and len(ok.step_times()) == 2
    assert parse(WEIGHT_TOPIC, json.dumps(_weight())).step_times() == []  # nodes need not say
    for bad in ([1_700_000_010.0], [1_700_000_010.0, 1_700_000_011.9]):
        with pytest.raises(ContractError) as info:
            parse(WEIGHT_TOPIC, json.dumps(_weight(plate_steps_t=bad)))
        assert info.value.field == "plate_steps_t"
