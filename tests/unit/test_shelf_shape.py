"""The per-plate shape of a weight event (store_server.domain.shelf_shape): coupling per pair of plates,
items standing across two plates, a product's own plates, fitted within their priors."""

from __future__ import annotations

import numpy as np
import pytest

from store_server.domain.shelf_shape import Source, fit


def _couple(source: list[float], shares: list[float]) -> list[float]:
    """What the shelf shows: each pair of neighbours passes ``share`` of the difference (total kept)."""
    o = list(source)
    for k, c in enumerate(shares):
        flow = c * (source[k] - source[k + 1])
        o[k] -= flow
        o[k + 1] += flow
    return o


def test_a_coupled_pick_fits_the_plate_it_left_and_not_its_neighbour() -> None:
    observed = _couple([0.0, -350.0, 0.0, 0.0], [0.22, 0.08, 0.15])  # strong coupling to the left
    own = fit(observed, [Source(-350.0, (1,), 1, 350.0)], 0.5)
    beside = fit(observed, [Source(-350.0, (0,), 1, 350.0)], 0.5)
    assert own.cost < 3.0 < 20.0 < beside.cost
    assert all(0.0 <= c <= 0.35 for c in own.coupling)  # (coupling and a leaning item look alike)
    assert sum(own.expected) == pytest.approx(sum(observed), abs=1.0)  # the total is conserved


def test_two_items_leaning_towards_each_other_are_still_two_items() -> None:
    # One item of 106 g on P1, one of 104 g on P2 standing 40 % on P1: the shelf shows -138 / -62.
    source = [-106.0 - 0.4 * 104.0, -0.6 * 104.0, 0.0, 0.0]
    observed = _couple(source, [0.12, 0.15, 0.15])
    pair = fit(observed, [Source(-106.0, (0,), 1, 106.0), Source(-104.0, (1,), 1, 104.0)], 1.0)
    assert pair.cost < 6.0
    # Without the straddle the pair would not fit: the placement is what explains it.
    assert pair.expected[0] == pytest.approx(observed[0], abs=8.0)


def test_items_of_a_product_on_two_plates_may_come_from_either() -> None:
    observed = _couple([0.0, 0.0, -180.0, -360.0], [0.1, 0.12, 0.1])  # one bag from P3, two from P4
    chips = fit(observed, [Source(-540.0, (2, 3), 3, 180.0)], 0.5)
    assert chips.cost < 4.0
    assert np.allclose(chips.expected, observed, atol=10.0)


def test_a_put_back_beside_a_take_is_fitted_with_both_signs() -> None:
    observed = _couple([-1086.0, 0.0, 424.0, 0.0], [0.2, 0.15, 0.1])
    both = fit(observed, [Source(-1086.0, (0,), 2, 543.0), Source(424.0, (2,), 2, 212.0)], 1.0)
    one = fit(observed, [Source(-662.0, (0,), 1, 543.0)], 1.0)
    assert both.cost < 5.0 < 100.0 < one.cost


def test_a_source_needs_a_plate() -> None:
    with pytest.raises(ValueError, match="a source needs a plate"):
        fit([-10.0, 0.0], [Source(-10.0, (), 1, 10.0)], 0.5)
