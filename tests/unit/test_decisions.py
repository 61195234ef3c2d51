"""Why a receipt line went wrong, and review load, from a run's weight decisions (no server needed)."""

from __future__ import annotations

from typing import Any

from sim_data.decisions import (
    Change,
    DetectedEvent,
    RunDecisions,
    explain_misses,
    review_figures,
    vanished_events,
)
from sim_data.evaluate import evaluate
from store_server.domain.layout import StoreLayout
from store_server.domain.session import session_id_for

T0 = 1000.0
ALICE, BOB = session_id_for("gate-in:1"), session_id_for("gate-in:2")


def _truth() -> dict[str, Any]:
    return {
        "t0": T0,
        "sessions": [
            {"entry_msg_id": "gate-in:1", "track_id": "t1", "items": {"cola": 1, "chips": 1, "lemon": 1}},
            {"entry_msg_id": "gate-in:2", "track_id": "t2", "items": {}},
        ],
        "events": [
            {"kind": "pick", "sku": "cola", "quantity": 1, "plate_ids": ["P1"], "track_id": "t1",
             "t_start": T0 + 10, "t_end": T0 + 11, "msg_id": "shelf-g1:1"},
            {"kind": "pick", "sku": "chips", "quantity": 1, "plate_ids": ["P3"], "track_id": "t1",
             "t_start": T0 + 20, "t_end": T0 + 21},
            {"kind": "pick", "sku": "lemon", "quantity": 1, "plate_ids": ["P2"], "track_id": "t1",
             "t_start": T0 + 30, "t_end": T0 + 31},
        ],
    }


def _event(msg_id: str, plates: dict[str, float], t: float, **kw: Any) -> DetectedEvent:
    return DetectedEvent(msg_id, "G1-S1", "G1", list(plates), list(plates.values()), sum(plates.values()),
                         T0 + t, T0 + t + 1, 1.0, **kw)


def _decisions() -> RunDecisions:
    # cola: taken by Alice but given to Bob; chips: never detected; lemon: explained as cola (confused).
    to_bob = _event("shelf-g1:1", {"P1": -300.0, "P2": -50.0}, 10,
                    changes=[Change(BOB, "cola", 1, 0.7, "weight", "")])
    confused = _event("shelf-g1:2", {"P2": -352.0}, 30, changes=[Change(ALICE, "cola", 1, 0.5, "weight", "")])
    reviewed = _event("shelf-g1:3", {"P4": -40.0}, 50,
                      reviews=[{"id": "rv-1", "kind": "unexplained", "event_id": "shelf-g1:3"}])
    reviews = [{"id": "rv-1", "kind": "unexplained", "event_id": "shelf-g1:3", "session_id": ALICE,
                "summary": ""},
               {"id": "rv-2", "kind": "low_confidence", "event_id": "shelf-g1:2", "session_id": ALICE,
                "summary": ""}]
    candidates = {"shelf-g1:2": [{"sku": "cola", "score": 0.5}]}
    return RunDecisions([to_bob, confused, reviewed], reviews, candidates)


def test_every_wrong_line_says_why(layout: StoreLayout) -> None:
    truth = _truth()
    charged = {"gate-in:1": {"cola": 1}, "gate-in:2": {"cola": 1}}
    metrics = evaluate("d", truth["sessions"], charged, [], events=truth["events"])
    why = {(x["session"], x["sku"]): x for x in explain_misses(_decisions(), metrics, truth, layout)}
    assert set(why) == {("gate-in:1", "chips"), ("gate-in:1", "lemon"), ("gate-in:2", "cola")}
    assert "published no weight event" in why[("gate-in:1", "chips")]["why"]
    assert "explained as +1 x cola" in why[("gate-in:1", "lemon")]["why"]
    lemon = why[("gate-in:1", "lemon")]
    assert lemon["detected_events"][0]["plates"] == {"P2": -352.0}
    assert lemon["detected_events"][0]["candidates"] == [{"sku": "cola", "score": 0.5}]
    assert lemon["true_events"][0]["t_start"] == 30  # shown from the start of the run
    assert "was really pick of 1 x cola by t1" in why[("gate-in:2", "cola")]["why"]


def test_review_load_and_vanished_events(layout: StoreLayout) -> None:
    figures = review_figures(_decisions(), visits=2)
    assert figures["review_items"] == 2
    assert figures["unexplained_events"] == 1
    assert figures["review_items_per_visit"] == 1.0
    # The chips pick (20-21 s) has no detected event around it: it left no trace at all.
    assert vanished_events(_decisions(), _truth()["events"], layout) == 1
    # Taken and put straight back (no decision on either): the shelf is as it was, nothing vanished;
    # put back a minute later, the pick was lost all the same.
    chips_back = {"kind": "putback", "sku": "chips", "quantity": 1, "plate_ids": ["P3"], "track_id": "t1"}
    soon = [*_truth()["events"], {**chips_back, "t_start": T0 + 24, "t_end": T0 + 25}]
    assert vanished_events(_decisions(), soon, layout) == 0
    late = [*_truth()["events"], {**chips_back, "t_start": T0 + 90, "t_end": T0 + 91}]
    assert vanished_events(_decisions(), late, layout) == 2
