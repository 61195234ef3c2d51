"""Generate ``demo.yaml``, the demo store, from the tables below.

The store is written by a script rather than by hand so that barcodes carry valid EAN-13 check
digits, plate ids stay consistent with the planogram, and a change of geometry is one edit.
Run ``python -m sim_data.stores.make_demo`` after editing; the YAML is committed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).with_name("demo.yaml")
FOOD, STANDARD = "reduced", "standard"

# (name, unit weight g, weight std as a fraction, price cents, tax class, plates, stock)
Item = tuple[str, float, float, int, str, int, int]

# gondola id -> (x, y, length, depth, axis, facing, title, shelves: list of items, bottom first).
# Every shelf of a gondola has the same number of plates (the items' plate counts add up to it).
GONDOLAS: dict[str, tuple[float, float, float, float, str, str, str, list[list[Item]]]] = {
    "g1": (1.0, 11.4, 4.8, 0.6, "x", "south", "Drinks", [
        [("Still Mineral Water 1.5 L", 1560, 0.01, 69, FOOD, 2, 30),
         ("Sparkling Mineral Water 1.5 L", 1575, 0.01, 85, FOOD, 2, 30)],
        [("Orange Juice 1 L", 1080, 0.012, 249, FOOD, 1, 16),
         ("Apple Juice 1 L", 1075, 0.012, 219, FOOD, 1, 16),
         ("Multivitamin Juice 1 L", 1092, 0.012, 259, FOOD, 1, 14),
         ("Peach Iced Tea 1.5 L", 1590, 0.01, 189, FOOD, 1, 14)],
        # The hard case: two 330 ml cans 2 g apart on neighbouring plates.
        [("Cola Can 330 ml", 345, 0.01, 89, FOOD, 1, 30),
         ("Cola Zero Can 330 ml", 343, 0.01, 89, FOOD, 1, 30),
         ("Lemon Soda Can 330 ml", 351, 0.01, 79, FOOD, 1, 24),
         ("Energy Drink Can 250 ml", 272, 0.01, 145, FOOD, 1, 24)],
        [("Lager Beer Bottle 33 cl", 520, 0.015, 115, STANDARD, 1, 24),
         ("Pale Ale Bottle 33 cl", 525, 0.015, 229, STANDARD, 1, 18),
         ("Dry Cider 75 cl", 1290, 0.012, 389, STANDARD, 1, 12),
         ("Red Wine Cotes du Rhone 75 cl", 1250, 0.012, 749, STANDARD, 1, 12)],
    ]),
    "g2": (7.6, 11.4, 4.8, 0.6, "x", "south", "Dairy and bakery", [
        [("Semi-Skimmed Milk 1 L", 1045, 0.01, 109, FOOD, 2, 30),
         ("Unsalted Butter 250 g", 262, 0.015, 289, FOOD, 1, 20),
         ("Free-Range Eggs x6", 390, 0.03, 299, FOOD, 1, 18)],
        # Two yoghurt four-packs 3 g apart.
        [("Plain Yoghurt 4 x 125 g", 540, 0.012, 159, FOOD, 1, 20),
         ("Strawberry Yoghurt 4 x 125 g", 543, 0.012, 179, FOOD, 1, 20),
         ("Grated Emmental 200 g", 212, 0.015, 239, FOOD, 1, 16),
         ("Camembert 250 g", 285, 0.02, 229, FOOD, 1, 14)],
        [("Baguette", 255, 0.03, 115, FOOD, 1, 20),
         ("Sliced Sandwich Bread 500 g", 520, 0.02, 189, FOOD, 2, 16),
         ("Butter Croissants x4", 250, 0.03, 269, FOOD, 1, 12)],
    ]),
    "g3": (2.0, 6.6, 4.8, 0.6, "x", "north", "Snacks and sweets", [
        # Two crisps bags 1 g apart.
        [("Salted Crisps 150 g", 165, 0.02, 179, FOOD, 1, 20),
         ("Paprika Crisps 150 g", 166, 0.02, 189, FOOD, 1, 20),
         ("Tortilla Chips 200 g", 214, 0.02, 199, FOOD, 1, 16),
         ("Salted Peanuts 200 g", 222, 0.015, 209, FOOD, 1, 16)],
        [("Milk Chocolate Bar 100 g", 106, 0.015, 149, FOOD, 1, 24),
         ("Dark Chocolate 70% 100 g", 104, 0.015, 169, FOOD, 1, 24),
         ("Hazelnut Cocoa Spread 400 g", 470, 0.015, 389, FOOD, 2, 18)],
        [("Butter Biscuits 200 g", 215, 0.02, 169, FOOD, 1, 18),
         ("Chocolate Chip Cookies 200 g", 222, 0.02, 229, FOOD, 1, 18),
         ("Gummy Bears 200 g", 208, 0.015, 159, FOOD, 1, 20),
         ("Muesli Bars x6", 160, 0.02, 249, FOOD, 1, 16)],
    ]),
    "g4": (8.4, 6.6, 3.6, 0.6, "x", "south", "Pantry", [
        [("Basmati Rice 1 kg", 1020, 0.01, 299, FOOD, 2, 20),
         ("Wheat Flour 1 kg", 1012, 0.01, 109, FOOD, 1, 14)],
        [("Spaghetti 500 g", 515, 0.01, 129, FOOD, 1, 24),
         ("Penne Rigate 500 g", 518, 0.01, 129, FOOD, 1, 24),
         ("Tomato Passata 700 g", 1030, 0.012, 169, FOOD, 1, 16)],
        # Two 400 g cans 2 g apart.
        [("Tuna in Olive Oil 160 g", 190, 0.015, 279, FOOD, 1, 20),
         ("Chickpeas 400 g", 460, 0.012, 99, FOOD, 1, 18),
         ("Red Kidney Beans 400 g", 462, 0.012, 99, FOOD, 1, 18)],
        [("Extra Virgin Olive Oil 75 cl", 1180, 0.01, 899, FOOD, 1, 12),
         ("Ground Coffee 250 g", 262, 0.015, 429, FOOD, 1, 16),
         ("Black Tea 25 Bags", 60, 0.03, 219, FOOD, 1, 16)],
    ]),
    "g5": (15.4, 3.6, 3.6, 0.6, "y", "west", "Household and care", [
        [("Toilet Paper 6 Rolls", 620, 0.02, 379, STANDARD, 2, 14),
         ("Dish Soap 500 ml", 545, 0.012, 189, STANDARD, 1, 14)],
        # Shampoo and shower gel 5 g apart.
        [("Shampoo 250 ml", 290, 0.015, 329, STANDARD, 1, 14),
         ("Shower Gel 250 ml", 285, 0.015, 249, STANDARD, 1, 14),
         ("Toothpaste 75 ml", 110, 0.015, 219, STANDARD, 1, 16)],
        [("Kitchen Paper Towels x2", 310, 0.03, 259, STANDARD, 1, 12),
         ("Scrub Sponges x3", 45, 0.03, 169, STANDARD, 1, 16),
         ("Liquid Hand Soap 300 ml", 340, 0.012, 199, STANDARD, 1, 14)],
    ]),
}


def ean13(first12: str) -> str:
    """A 12-digit body plus its GS1 check digit (weights 1, 3, 1, 3 ... from the left)."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return first12 + str((10 - total % 10) % 10)


def build() -> dict[str, Any]:
    gondolas: list[dict[str, Any]] = []
    catalog: list[dict[str, Any]] = []
    planogram: list[dict[str, Any]] = []
    n = 0
    for gid, (x, y, length, depth, axis, facing, _title, shelves) in GONDOLAS.items():
        shelf_docs = []
        for level, items in enumerate(shelves, start=1):
            sid = f"{gid}-s{level}"
            plates = [f"{sid}-p{i}" for i in range(1, sum(it[5] for it in items) + 1)]
            shelf_docs.append({"id": sid, "level": level, "plates": plates})
            cursor = 0
            for name, weight, std, price, tax, span, stock in items:
                n += 1
                sku = f"SKU-{n:03d}"
                catalog.append({
                    "sku": sku, "name": name, "barcode": ean13(f"3760123{n:05d}"),
                    "unit_weight_g": float(weight), "weight_std_g": round(weight * std, 1),
                    "price_cents": price, "tax_class": tax,
                })
                planogram.append({"sku": sku, "plates": plates[cursor:cursor + span], "stock": stock})
                cursor += span
        gondolas.append({
            "id": gid, "x_m": x, "y_m": y, "length_m": length, "depth_m": depth, "axis": axis,
            "facing": facing, "node_id": f"shelf-{gid}", "shelves": shelf_docs,
        })
    return {
        "store_id": "demo",
        "name": "Walkout Demo Market",
        "currency": "EUR",
        "tax_rates": {"standard": 0.20, "reduced": 0.055},
        "floor": {"width_m": 16.0, "depth_m": 12.0},
        "gondolas": gondolas,
        "catalog": catalog,
        "planogram": planogram,
        "cameras": [{
            "id": "cam-ceiling", "kind": "ceiling", "node_id": "cam-ceiling", "image_size": [640, 480],
            # 640 x 480 pixels onto the 16 x 12 m floor: 2.5 cm per pixel, no perspective.
            "homography": [[0.025, 0.0, 0.0], [0.0, 0.025, 0.0], [0.0, 0.0, 1.0]],
        }],
        "gates": [
            {"id": "gate-in", "direction": "entry", "node_id": "gate-in",
             "zone": {"x_min": 1.0, "y_min": 0.2, "x_max": 2.2, "y_max": 1.4}},
            {"id": "gate-out", "direction": "exit", "node_id": "gate-out",
             "zone": {"x_min": 12.8, "y_min": 0.2, "x_max": 14.0, "y_max": 1.4}},
        ],
    }


HEADER = """\
# Walkout demo store: a small grocery, 16 x 12 m, front wall (gates) at y = 0.
# Generated by sim_data/stores/make_demo.py -- edit that script, then run
#   python -m sim_data.stores.make_demo
# Gondolas: g1 drinks and g2 dairy/bakery on the north wall (facing south), g3 snacks (island,
# facing north), g4 pantry (island, facing south), g5 household on the east wall (facing west).
# Hard cases on purpose: near-identical unit weights on neighbouring plates of one shelf
# (cola / cola zero cans, two yoghurts, two crisps, chickpeas / kidney beans, shampoo / shower gel).
"""


class _Dumper(yaml.SafeDumper):
    """Writes short lists of plain values (plate ids, homography rows) on one line."""


def _flow_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(v, (dict, list)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _flow_list)


def main() -> None:
    text = HEADER + yaml.dump(build(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)
    OUT.write_text(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
