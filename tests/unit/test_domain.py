"""Pure domain logic: sessions and carts, fusion, pricing, the watermark (explanations: test_explain)."""

from __future__ import annotations

from store_server.domain.fusion import TrackHistory, nearest_shopper
from store_server.domain.layout import Product
from store_server.domain.pricing import price_cart
from store_server.domain.session import CartLine, LineChange, SessionState, ShopperSession
from store_server.domain.watermark import Watermark


def test_plates_sit_on_the_facing_side_of_their_gondola(layout):
    p1, p4 = layout.plates["P1"], layout.plates["P4"]
    assert (p1.x_m, p1.y_m) == (2.5, 4.0)  # south face of a gondola starting at y=4
    assert p4.x_m == 5.5


def test_the_shopper_standing_nearest_in_the_event_window_is_chosen_and_a_close_second_lowers_confidence():
    tracks = TrackHistory()
    for t in range(10):
        tracks.add("a", float(t), 3.0, 3.5)
        tracks.add("b", float(t), 3.0, 2.0)
        tracks.add("c", float(t), 8.0, 2.0)
    match = nearest_shopper(tracks, ["a", "b", "c"], (3.0, 4.0), 2.0, 4.0, reach_m=1.5)
    assert match.track_id == "a" and match.confidence == 1.0
    # A passer-by who came closer for a moment is not the one who stood at the shelf.
    tracks.add("b", 3.0, 3.1, 3.9)
    assert nearest_shopper(tracks, ["a", "b"], (3.0, 4.0), 2.0, 4.0, 1.5) == nearest_shopper(
        tracks, ["a"], (3.0, 4.0), 2.0, 4.0, 1.5
    )
    for t in range(10):  # one standing almost as close all along: unsure whose it was
        tracks.add("d", float(t) + 0.5, 3.2, 3.4)
    assert nearest_shopper(tracks, ["a", "d"], (3.0, 4.0), 2.0, 4.0, 1.5).confidence < 0.5
    assert nearest_shopper(tracks, ["c"], (3.0, 4.0), 2.0, 4.0, 1.5) is None
    assert nearest_shopper(tracks, ["a"], (3.0, 4.0), 20.0, 30.0, 1.5) is None  # not there at that time


def test_cart_follows_picks_and_put_backs_and_ignores_a_repeated_event():
    s = ShopperSession("s-1", "t", "acct", 0.0, "a")
    assert s.take("e1", "cola", 2, 1.0, 0.9)
    assert not s.take("e1", "cola", 2, 1.0, 0.9)  # the same event delivered twice
    assert s.put_back("e2", "cola", 1, 2.0, 1.0)
    assert not s.put_back("e3", "chips", 1, 3.0, 1.0)  # cannot put back what was never taken
    assert [(ln.sku, ln.quantity) for ln in s.cart()] == [("cola", 1)]
    s.leave(5.0, charged=True)
    assert s.state is SessionState.PAID
    assert not s.take("e4", "cola", 1, 6.0, 1.0)  # a closed visit does not change


def test_the_lines_of_one_event_go_in_together_once_with_their_evidence():
    s = ShopperSession("s-1", "t", "acct", 0.0, "a")
    lines = [LineChange("cola", 1, evidence="planogram"), LineChange("chips", 2, evidence="weight")]
    assert s.apply("e1", 1.0, 0.8, lines)
    assert s.has_applied("e1") and not s.apply("e1", 1.0, 0.8, lines)  # delivered twice: applied once
    assert [(c.sku, c.quantity, c.evidence) for c in s.changes] == [
        ("cola", 1, "planogram"),
        ("chips", 2, "weight"),
    ]
    # A put-back of two products of which the cart holds one: that one comes out, never below zero.
    assert s.apply("e2", 2.0, 0.9, [LineChange("cola", -1, "misplaced"), LineChange("lemon", -1)])
    assert [(ln.sku, ln.quantity) for ln in s.cart()] == [("chips", 2)]
    assert s.changes[-1].note == "misplaced" and not s.has_applied("e3")
    assert not s.apply("e3", 3.0, 1.0, [LineChange("lemon", -1)])  # nothing to take out: no change
    assert not s.has_applied("e3")
    assert s.apply("e4", 4.0, 1.0, [LineChange("chips", -1), LineChange("chips", -1)])  # one line per product
    assert [(c.sku, c.quantity) for c in s.changes if c.event_id == "e4"] == [("chips", -2)]


def test_pricing_is_integer_cents_with_tax_per_class_rounded_half_up():
    products = {
        "a": Product(sku="a", name="A", barcode="40000000", unit_weight_g=1, price_cents=129),
        "b": Product(sku="b", name="B", barcode="40000001", unit_weight_g=1, price_cents=249,
                     tax_class="reduced"),
    }
    bill = price_cart([CartLine("b", 1), CartLine("a", 3)], products, {"standard": 0.2, "reduced": 0.055},
                      "EUR")
    assert [ln.sku for ln in bill.lines] == ["a", "b"]
    assert bill.subtotal_cents == 387 + 249
    assert dict(bill.tax_by_class) == {"standard": 77, "reduced": 14}  # 77.4 -> 77, 13.695 -> 14
    assert bill.total_cents == 636 + 91


def test_watermark_waits_for_the_slowest_live_node_and_not_for_dead_ones():
    wm = Watermark(frozenset({"shelf", "cam", "gate"}), stale_after_s=10)
    wm.observe("shelf", 100.0)
    wm.observe("cam", 101.0)
    assert wm.value() == 100.0  # the gate has not spoken: held at the first time seen
    wm.observe("gate", 100.5)
    wm.observe("shelf", 102.0)
    assert wm.value() == 100.5
    wm.went_offline("gate")
    assert wm.value() == 101.0
    wm.observe("cam", 130.0)  # shelf is now 28 s behind: stale, no longer waited for
    assert wm.value() == 130.0
