"""Shared fixtures of the fast unit tier: a small store that fits in one screen."""

from __future__ import annotations

import pytest

from store_server.domain.layout import StoreLayout, parse_layout

SMALL_STORE = {
    "store_id": "t",
    "name": "Test",
    "currency": "EUR",
    "tax_rates": {"standard": 0.2, "reduced": 0.055},
    "floor": {"width_m": 10, "depth_m": 8},
    "gondolas": [
        {"id": "G1", "x_m": 2, "y_m": 4, "length_m": 4, "axis": "x", "facing": "south", "node_id": "shelf-g1",
         "shelves": [{"id": "G1-S1", "level": 1, "plates": ["P1", "P2", "P3", "P4"]}]},
    ],
    "catalog": [
        {"sku": "cola", "name": "Cola 330 ml", "barcode": "4000000000011", "unit_weight_g": 350,
         "weight_std_g": 3, "price_cents": 129},
        {"sku": "lemon", "name": "Lemon 330 ml", "barcode": "4000000000028", "unit_weight_g": 352,
         "weight_std_g": 3, "price_cents": 139},
        {"sku": "chips", "name": "Chips", "barcode": "4000000000035", "unit_weight_g": 180,
         "weight_std_g": 4, "price_cents": 249, "tax_class": "reduced"},
    ],
    "planogram": [
        {"sku": "cola", "plates": ["P1"]},
        {"sku": "lemon", "plates": ["P2"]},
        {"sku": "chips", "plates": ["P3", "P4"]},
    ],
    "cameras": [
        {"id": "cam", "kind": "ceiling", "node_id": "cam",
         "homography": [[0.01, 0, 0], [0, 0.01, 0], [0, 0, 1]]},
    ],
    "gates": [
        {"id": "in", "direction": "entry", "node_id": "gate-in",
         "zone": {"x_min": 0, "y_min": 0, "x_max": 1, "y_max": 1}},
        {"id": "out", "direction": "exit", "node_id": "gate-out",
         "zone": {"x_min": 9, "y_min": 0, "x_max": 10, "y_max": 1}},
    ],
}


@pytest.fixture()
def layout() -> StoreLayout:
    return parse_layout(SMALL_STORE)
