"""The contract against hostile payloads: every one is a ContractError naming the field, never a crash,
and it is refused cheaply (bounded sizes, nesting, finite numbers, times near the server's clock)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge.contracts import (
    FEATURES,
    MAX_SAMPLES_PAYLOAD_BYTES,
    MAX_TRACKS,
    ContractError,
    Heartbeat,
    WeightEvent,
    WeightSamples,
    check_clock,
    encode,
    parse,
    topic_for,
)

T = 1_780_000_000.0


def heartbeat(**fields: Any) -> dict[str, Any]:
    return {"v": 1, "node_id": "n1", "seq": 1, "ts": T, **fields}


def weight(**fields: Any) -> dict[str, Any]:
    body = {
        "v": 1, "node_id": "n1", "seq": 2, "ts": T + 1.0, "gondola_id": "g1", "shelf_id": "g1-s1",
        "plate_ids": ["p1"], "delta_g": -350.0, "t_start": T, "t_end": T + 0.5,
    }
    return {**body, **fields}


def refused(feature: str, payload: bytes | str) -> ContractError:
    with pytest.raises(ContractError) as caught:
        parse(f"walkout/s1/n1/{feature}", payload)
    return caught.value


@pytest.mark.parametrize("feature", FEATURES)
def test_a_deeply_nested_payload_on_any_topic_is_a_contract_error_not_a_recursion_error(feature):
    error = refused(feature, b"[" * 100_000)
    assert error.field == "payload" and "100000 arrays and objects" in error.reason


def test_a_payload_nested_nine_levels_is_refused_before_decoding_and_eight_are_decoded():
    def nested(depth: int) -> str:  # the object itself is level 1
        inner = "[" * (depth - 1) + "1" + "]" * (depth - 1)
        return json.dumps(heartbeat()).replace("}", f', "x": {inner}}}')

    assert "nested deeper than 8" in refused("heartbeat", nested(9)).reason
    assert refused("heartbeat", nested(8)).field == "x"  # decoded, then refused as an unknown key


def test_nesting_inside_a_valid_looking_object_is_refused_and_strings_do_not_count():
    deep = json.dumps(heartbeat(x=[[[[[[[[[[1]]]]]]]]]]))
    assert refused("heartbeat", deep).field == "payload"
    brackets_in_text = json.dumps(heartbeat(x="[[[[[[[[[[[[[[\\\"[[[[[[[[[["))
    assert refused("heartbeat", brackets_in_text).field == "x"  # an extra key, not "too deep"


def test_a_full_samples_batch_of_64_plates_by_600_long_floats_still_passes():
    grams = [[-123456.78901234567 + j for j in range(600)] for _ in range(64)]
    msg = WeightSamples(
        node_id="n1", seq=3, ts=T + 10.0, gondola_id="g1", shelf_id="g1-s1",
        plate_ids=[f"plate-{i:02d}-with-a-long-identifier-name" for i in range(64)],
        rate_hz=60.0, t0=T, grams=grams,
    )
    payload = encode(msg)
    assert 700_000 < len(payload) < MAX_SAMPLES_PAYLOAD_BYTES
    assert parse(topic_for(msg, "s1"), payload) == msg


def test_an_oversized_payload_is_refused_by_its_size():
    error = refused("heartbeat", json.dumps(heartbeat(note="x" * 300_000)))
    assert error.field == "payload" and "bytes" in error.reason


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize(
    ("feature", "field", "body"),
    [
        ("weight", "delta_g", weight),
        ("weight", "noise_g", weight),
        ("heartbeat", "ts", heartbeat),
        ("tracks", "tracks.0.x_m", None),
    ],
)
def test_non_finite_numbers_are_refused_with_the_field_named(literal, feature, field, body):
    if body is None:
        data = heartbeat(camera_id="c1", tracks=[{"track_id": "t1", "x_m": 0.0, "y_m": 1.0}])
        text = json.dumps(data).replace('"x_m": 0.0', f'"x_m": {literal}')
    else:
        text = json.dumps(body(**{field: 12345.0})).replace("12345.0", literal)
    assert refused(feature, text).field == field


@pytest.mark.parametrize(
    ("feature", "fields", "field"),
    [
        ("heartbeat", {"ts": 1e30}, "ts"),
        ("heartbeat", {"ts": -5.0}, "ts"),
        ("heartbeat", {"seq": 2**63}, "seq"),
        ("heartbeat", {"v": True}, "v"),
        ("weight", {"delta_g": 1e300}, "delta_g"),
        ("weight", {"plate_ids": ["p" * 200]}, "plate_ids.0"),
        ("weight", {"plate_ids": [f"p{i}" for i in range(65)]}, "plate_ids"),
        ("gate", {"gate_id": "in", "direction": "entry", "account_token": "tok\x00en"}, "account_token"),
        ("status", {"state": "online", "role": "x" * 33}, "role"),
        ("status", {"state": "online", "sensors": {f"s{i}": "ok" for i in range(300)}}, "sensors"),
    ],
)
def test_absurd_sizes_and_numbers_are_refused_with_the_field(feature, fields, field):
    body = weight(**fields) if feature == "weight" else heartbeat(**fields)
    if feature == "status":
        body.pop("seq")
    assert refused(feature, json.dumps(body)).field == field


def test_a_4300_digit_integer_is_a_contract_error_not_a_value_error():
    error = refused("heartbeat", '{"v": 1, "node_id": "n1", "seq": ' + "1" * 5000 + ', "ts": 1.0}')
    assert error.field == "payload"


def test_a_tracks_message_holds_at_most_MAX_TRACKS_points():
    points = [{"track_id": f"p{i}", "x_m": 1.0, "y_m": 1.0} for i in range(MAX_TRACKS + 1)]
    error = refused("tracks", json.dumps(heartbeat(camera_id="c1", tracks=points)))
    assert error.field == "tracks" and str(MAX_TRACKS) in error.reason
    ok = parse("walkout/s1/n1/tracks", json.dumps(heartbeat(camera_id="c1", tracks=points[:MAX_TRACKS])))
    assert len(ok.tracks) == MAX_TRACKS  # type: ignore[union-attr]


def test_a_topic_longer_than_the_database_column_is_refused():
    with pytest.raises(ContractError) as caught:
        parse("walkout/s1/" + "n" * 300 + "/heartbeat", json.dumps(heartbeat()))
    assert caught.value.field == "topic"


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (Heartbeat(node_id="n1", seq=1, ts=T + 301.0), "ts"),
        (Heartbeat(node_id="n1", seq=1, ts=T - 86_401.0), "ts"),
        (Heartbeat(node_id="n1", seq=1, ts=4_102_444_800.0), "ts"),  # the year 2100
        (
            WeightEvent(
                node_id="n1", seq=2, ts=T + 10.0, gondola_id="g1", shelf_id="s1", plate_ids=["p1"],
                delta_g=-1.0, t_start=T - 90_000.0, t_end=T,
            ),
            "t_start",
        ),
    ],
)
def test_event_times_far_from_the_reference_clock_are_refused_with_the_field(message, field):
    with pytest.raises(ContractError) as caught:
        check_clock(message, T, ahead_s=300.0, behind_s=86_400.0)
    assert caught.value.field == field and "clock" in caught.value.reason


def test_event_times_within_the_skew_and_a_day_of_spool_pass():
    check_clock(Heartbeat(node_id="n1", seq=1, ts=T + 299.0), T, 300.0, 86_400.0)
    check_clock(Heartbeat(node_id="n1", seq=1, ts=T - 86_000.0), T, 300.0, 86_400.0)
