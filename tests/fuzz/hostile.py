"""Hostile MQTT messages for the fuzz tier: what an attacker, a broken node or an unlucky store sends.

Every message :func:`hostile_messages` yields must end as exactly one dead letter at the store server
(duplicates, which must be dropped silently, are made by the test itself). Each kind is a generator
over a seeded ``random.Random``, so a failing seed can be replayed with ``WALKOUT_FUZZ_SEED``.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from store_server.domain.layout import StoreLayout

DAY_S = 86_400.0


@dataclass(frozen=True)
class Hostile:
    kind: str
    topic: str
    payload: bytes


@dataclass
class Target:
    """Where hostile messages go: one store under a topic prefix, at event time ``t``."""

    prefix: str
    layout: StoreLayout
    t: float  # event time the store is at (the dataset's start)
    seq: int = 10_000_000  # far above any real node's sequence numbers, so no id collides

    def topic(self, node: str, feature: str) -> str:
        return f"{self.prefix}/{self.layout.store_id}/{node}/{feature}"

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    @property
    def shelf_nodes(self) -> list[str]:
        return [g.node_id for g in self.layout.gondolas if g.node_id]


def _dumps(data: object) -> bytes:
    return json.dumps(data, allow_nan=True, separators=(",", ":")).encode()


def _heartbeat(t: Target, node: str, **overrides: object) -> dict[str, object]:
    return {"v": 1, "kind": "heartbeat", "node_id": node, "seq": t.next_seq(), "ts": t.t, **overrides}


def _weight(t: Target, rnd: random.Random, **overrides: object) -> tuple[str, dict[str, object]]:
    gondola = rnd.choice([g for g in t.layout.gondolas if g.node_id])
    shelf = gondola.shelves[0]
    plate = shelf.plates[0]
    body: dict[str, object] = {
        "v": 1, "kind": "weight", "node_id": gondola.node_id, "seq": t.next_seq(), "ts": t.t + 1.0,
        "gondola_id": gondola.id, "shelf_id": shelf.id, "plate_ids": [plate], "delta_g": -250.0,
        "t_start": t.t, "t_end": t.t + 0.5, "noise_g": 1.0, "confidence": 1.0,
    }
    body.update(overrides)
    return str(gondola.node_id), body


def random_bytes(t: Target, rnd: random.Random) -> Iterator[Hostile]:
    node = rnd.choice(t.shelf_nodes)
    feature = rnd.choice(["weight", "tracks", "gate", "heartbeat", "detections", "samples"])
    yield Hostile("random_bytes", t.topic(node, feature), rnd.randbytes(rnd.randint(0, 2000)))


def not_an_object(t: Target, rnd: random.Random) -> Iterator[Hostile]:
    body = rnd.choice([b"[1,2,3]", b"42", b'"text"', b"null", b"true", b"{", b"", b"\xff\xfe{}"])
    yield Hostile("not_an_object", t.topic(rnd.choice(t.shelf_nodes), "heartbeat"), body)


def deep_nesting(t: Target, rnd: random.Random) -> Iterator[Hostile]:
    depth = rnd.randint(20_000, 50_000)
    if rnd.random() < 0.5:
        body = b"[" * depth + b"]" * depth
    else:
        body = b'{"v":1,"x":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"
    yield Hostile("deep_nesting", t.topic(rnd.choice(t.shelf_nodes), rnd.choice(["weight", "tracks"])), body)


def non_finite(t: Target, rnd: random.Random) -> Iterator[Hostile]:
    bad = rnd.choice([math.nan, math.inf, -math.inf])
    if rnd.random() < 0.5:
        node, body = _weight(t, rnd, **{rnd.choice(["delta_g", "noise_g", "confidence"]): bad})
        yield Hostile("non_finite", t.topic(node, "weight"), _dumps(body))
    else:
        camera = t.layout.cameras[0]
        body = {
            "v": 1, "kind": "tracks", "node_id": camera.node_id, "seq": t.next_seq(), "ts": t.t,
            "camera_id": camera.id, "tracks": [{"track_id": "x1", "x_m": bad, "y_m": 1.0}],
        }
        yield Hostile("non_finite", t.topic(str(camera.node_id), "tracks"), _dumps(body))


def absurd_numbers(t: Target, rnd: random.Random) -> Iterator[Hostile]:
    node = rnd.choice(t.shelf_nodes)
    overrides = rnd.choice([
        {"ts": 1e30}, {"ts": 1e308}, {"ts": -5.0}, {"seq": -1}, {"seq": 10**30}, {"seq": 2**63},
        {"ts": "soon"}, {"seq": 1.5}, {"v": 99}, {"v": None},
    ])
    yield Hostile("absurd_numbers", t.topic(node, "heartbeat"), _dumps(_heartbeat(t, node, **overrides)))


def absurd_weight(t: Target, rnd: random.Random) -> Iterator[Hostile]:
    overrides = rnd.choice([
        {"delta_g": 1e300}, {"delta_g": -1e300}, {"t_start": -1.0}, {"t_end": 1e30, "ts": 1e30},
        {"plate_ids": []}, {"confidence": 7.0}, {"noise_g": -3.0},
    ])
    node, body = _weight(t, rnd, **overrides)
    yield Hostile("absurd_weight", t.topic(node, "weight"), _dumps(body))


def huge_payload(t: Target, rnd: random.Random) -> Iterator[Hostile]:
    node = rnd.choice(t.shelf_nodes)
    body = _heartbeat(t, node, note="x" * rnd.randint(300_000, 1_500_000))
    yield Hostile("huge_payload", t.topic(node, "heartbeat"), _dumps(body))


def many_points(t: Target, rnd: random.Random) -> Iterator[Hostile]:
    camera = t.layout.cameras[0]
    points = [
        {"track_id": f"p{i}", "x_m": rnd.uniform(0, 10), "y_m": rnd.uniform(0, 10)}
        for i in range(rnd.randint(5_000, 14_000))
    ]
    body = {"v": 1, "kind": "tracks", "node_id": camera.node_id, "seq": t.next_seq(), "ts": t.t,
            "camera_id": camera.id, "tracks": points}
    yield Hostile("many_points", t.topic(str(camera.node_id), "tracks"), _dumps(body))


def long_strings(t: Target, rnd: random.Random) -> Iterator[Hostile]:
    node, body = _weight(t, rnd, plate_ids=["p" * rnd.randint(200, 5000)])
    yield Hostile("long_strings", t.topic(node, "weight"), _dumps(body))


def future_time(t: Target, rnd: random.Random) -> Iterator[Hostile]:
    node = rnd.choice(t.shelf_nodes + [g.node_id for g in t.layout.gates if g.node_id])
    ts = rnd.choice([t.t + 365 * DAY_S, 4_102_444_800.0, t.t + rnd.uniform(3_600, 10 * 365 * DAY_S)])
    yield Hostile("future_time", t.topic(str(node), "heartbeat"), _dumps(_heartbeat(t, str(node), ts=ts)))


def past_time(t: Target, rnd: random.Random) -> Iterator[Hostile]:
    node = rnd.choice(t.shelf_nodes)
    ts = t.t - rnd.uniform(3 * DAY_S, 3_000 * DAY_S)
    yield Hostile("past_time", t.topic(node, "heartbeat"), _dumps(_heartbeat(t, node, ts=ts)))


def foreign_node(t: Target, rnd: random.Random) -> Iterator[Hostile]:
    """A node id the layout does not have, or a real node speaking for what is not its own."""
    choice = rnd.randrange(3)
    if choice == 0:
        node = f"intruder-{rnd.randrange(10**6)}"
        yield Hostile("foreign_node", t.topic(node, "heartbeat"), _dumps(_heartbeat(t, node)))
    elif choice == 1:  # a shelf node opening the entry gate for a group of 20
        node = rnd.choice(t.shelf_nodes)
        gate = next(g for g in t.layout.gates if g.direction == "entry")
        body = {"v": 1, "kind": "gate", "node_id": node, "seq": t.next_seq(), "ts": t.t, "gate_id": gate.id,
                "direction": "entry", "account_token": "acct-intruder", "group_size": 20}
        yield Hostile("foreign_node", t.topic(node, "gate"), _dumps(body))
    else:  # weight for another node's shelf
        gondolas = [g for g in t.layout.gondolas if g.node_id]
        mine, theirs = rnd.sample(gondolas, 2)
        _, body = _weight(t, rnd, node_id=mine.node_id, gondola_id=theirs.id, shelf_id=theirs.shelves[0].id,
                          plate_ids=[theirs.shelves[0].plates[0]])
        yield Hostile("foreign_node", t.topic(str(mine.node_id), "weight"), _dumps(body))


def unknown_plate(t: Target, rnd: random.Random) -> Iterator[Hostile]:
    node, body = _weight(t, rnd, plate_ids=[f"no-such-plate-{rnd.randrange(1000)}"])
    yield Hostile("unknown_plate", t.topic(node, "weight"), _dumps(body))


def extra_key(t: Target, rnd: random.Random) -> Iterator[Hostile]:
    node = rnd.choice(t.shelf_nodes)
    key = "k" + "".join(rnd.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=rnd.randint(40, 120)))
    yield Hostile("extra_key", t.topic(node, "heartbeat"), _dumps(_heartbeat(t, node, **{key: 1})))


def bad_topic(t: Target, rnd: random.Random) -> Iterator[Hostile]:
    node = rnd.choice(t.shelf_nodes)
    topic = rnd.choice([
        t.topic(node, "no-such-feature"),
        f"{t.prefix}/{t.layout.store_id}/{node}/heartbeat/extra",
    ])
    yield Hostile("bad_topic", topic, _dumps(_heartbeat(t, node)))


Kind = Callable[[Target, random.Random], Iterator[Hostile]]
# How many of each kind one flood sends: tens of thousands in all, the heavy kinds fewer.
MIX: dict[Kind, int] = {
    random_bytes: 4000,
    not_an_object: 1500,
    deep_nesting: 40,
    non_finite: 2500,
    absurd_numbers: 2500,
    absurd_weight: 2000,
    huge_payload: 20,
    many_points: 20,
    long_strings: 1000,
    future_time: 2500,
    past_time: 1500,
    foreign_node: 2500,
    unknown_plate: 500,
    extra_key: 5000,
    bad_topic: 1000,
}


def hostile_messages(target: Target, seed: int, scale: float = 1.0) -> list[Hostile]:
    """The whole flood, shuffled so poison lands in every batch position."""
    rnd = random.Random(seed)
    out = [m for kind, n in MIX.items() for _ in range(max(1, int(n * scale))) for m in kind(target, rnd)]
    rnd.shuffle(out)
    return out
