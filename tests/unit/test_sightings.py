"""Sightings: camera item detections over event time, and the scores fusion weighs them by."""

from __future__ import annotations

import random

import pytest

from store_server.domain.layout import StoreLayout
from store_server.domain.sightings import MAX_SCORE, Sighting, Sightings, combine

PRODUCTS = ("cola", "lemon", "chips")


def detections(*dets: dict[str, object], camera: str = "cam") -> dict[str, object]:
    return {"camera_id": camera, "detections": list(dets)}


def det(label: str, conf: float, x: float, y: float, track: str | None = None) -> dict[str, object]:
    out: dict[str, object] = {"label": label, "confidence": conf, "x_m": x, "y_m": y}
    if track is not None:
        out["track_id"] = track
    return out


def test_only_products_of_the_catalogue_are_kept() -> None:
    seen = Sightings()
    n = seen.add_message(
        "cam:1", 10.0, detections(det("person", 0.9, 2.5, 3.7), det("cola", 0.8, 2.5, 3.7)), PRODUCTS
    )
    assert n == 1
    assert [s.sku for s in seen.window(0, 20)] == ["cola"]


def test_a_message_delivered_twice_is_kept_once() -> None:
    seen = Sightings()
    payload = detections(det("cola", 0.8, 2.5, 3.7, "a"))
    assert seen.add_message("cam:1", 10.0, payload, PRODUCTS) == 1
    assert seen.add_message("cam:1", 10.0, payload, PRODUCTS) == 0
    assert len(seen) == 1


def test_boxes_of_one_product_in_one_hand_count_items() -> None:
    seen = Sightings()
    seen.add_message(
        "cam:1", 10.0, detections(det("cola", 0.7, 2.5, 3.7, "a"), det("cola", 0.9, 2.6, 3.7, "a")), PRODUCTS
    )
    [s] = seen.window(0, 20)
    assert (s.count, s.confidence, s.x_m) == (2, 0.9, 2.6)


def test_the_horizon_forgets_old_sightings_by_event_time() -> None:
    seen = Sightings(horizon_s=10.0)
    for t in (1.0, 5.0, 12.0):
        seen.add(Sighting(t, "cola", 0.8, 2.5, 3.7, "a"))
    seen.forget_before(14.0)  # keeps ts >= 4
    assert [s.ts for s in seen.window(0, 100)] == [5.0, 12.0]
    seen.add(Sighting(1.0, "cola", 0.8, 2.5, 3.7, "a"))  # forgotten, so new again
    assert len(seen) == 3


def test_memory_is_bounded_and_refusals_are_counted() -> None:
    seen = Sightings(max_kept=2)
    for t in (1.0, 2.0, 3.0):
        seen.add(Sighting(t, "cola", 0.8, 2.5, 3.7))
    assert (len(seen), seen.refused) == (2, 1)


def test_window_and_hands_select_by_time_and_track() -> None:
    seen = Sightings()
    seen.add(Sighting(9.0, "cola", 0.8, 2.5, 3.7, "a"))
    seen.add(Sighting(10.0, "lemon", 0.8, 3.5, 3.7, "b"))
    seen.add(Sighting(11.0, "chips", 0.8, 4.5, 3.7, None))
    assert [s.sku for s in seen.window(9.5, 11.0)] == ["lemon", "chips"]
    assert [s.sku for s in seen.in_hands(["a", "b"], 0, 10.0)] == ["cola", "lemon"]


def test_scores_count_this_shoppers_hand_and_the_shelf_not_another_hand(layout: StoreLayout) -> None:
    seen = Sightings()
    seen.add(Sighting(10.0, "cola", 0.8, 2.5, 3.7, "a"))  # in a's hand at P1
    seen.add(Sighting(10.1, "lemon", 0.9, 2.6, 3.7, "b"))  # in b's hand, also at P1
    seen.add(Sighting(10.2, "chips", 0.5, 2.4, 3.8, None))  # on the shelf, nobody's
    seen.add(Sighting(10.3, "cola", 0.9, 5.5, 3.7, "a"))  # a's hand, but at P4
    seen.add(Sighting(30.0, "cola", 0.9, 2.5, 3.7, "a"))  # later
    assert seen.scores(layout, ["P1"], 9.0, 11.0, ["a"]) == {"chips": 0.5, "cola": 0.8}
    assert seen.scores(layout, ["P1"], 9.0, 11.0, ["b"]) == {"chips": 0.5, "lemon": 0.9}
    assert seen.scores(layout, ["P1", "P4"], 9.0, 11.0, ["a"])["cola"] == combine([0.8, 0.9])


def test_scores_combine_as_independent_evidence_and_stay_capped(layout: StoreLayout) -> None:
    seen = Sightings()
    for i in range(10):
        seen.add(Sighting(10.0 + i / 10, "cola", 0.9, 2.5, 3.7, "a"))
    assert seen.scores(layout, ["P1"], 9.0, 12.0, ["a"]) == {"cola": MAX_SCORE}
    assert combine([0.5, 0.5]) == 0.75
    assert combine([]) == 0.0


def test_scores_are_empty_for_plates_the_layout_does_not_know(layout: StoreLayout) -> None:
    seen = Sightings()
    seen.add(Sighting(10.0, "cola", 0.8, 2.5, 3.7, "a"))
    assert seen.scores(layout, ["nope"], 9.0, 11.0, ["a"]) == {}


@pytest.mark.parametrize("order_seed", [1, 2, 3])
def test_scores_do_not_depend_on_arrival_order(layout: StoreLayout, order_seed: int) -> None:
    items = [Sighting(10.0 + i * 0.01, "cola", 0.3 + i * 0.07, 2.5, 3.7, "a") for i in range(8)]
    items += [Sighting(10.0, "lemon", 0.61, 2.5, 3.8, None), Sighting(10.0, "lemon", 0.33, 2.6, 3.8, None)]
    ordered = Sightings()
    for s in items:
        ordered.add(s)
    shuffled = Sightings()
    random.Random(order_seed).shuffle(items)
    for s in items:
        shuffled.add(s)
    want = ordered.scores(layout, ["P1"], 9.0, 11.0, ["a"])
    assert shuffled.scores(layout, ["P1"], 9.0, 11.0, ["a"]) == want
    assert [s.ts for s in shuffled.window(0, 20)] == sorted(s.ts for s in items)
