"""The store layout YAML: a valid store loads and derives plate positions; every error says file, key, fix."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from store_server.config_check import check_store_file, config_check_command, layout_warnings
from store_server.domain.layout import LayoutError, load_layout

MINIMAL: dict[str, Any] = {
    "store_id": "s1",
    "name": "Test store",
    "currency": "EUR",
    "tax_rates": {"standard": 0.2, "food": 0.07},
    "floor": {"width_m": 10, "depth_m": 8},
    "gondolas": [
        {
            "id": "g1",
            "x_m": 2.0,
            "y_m": 4.0,
            "length_m": 2.0,
            "depth_m": 0.5,
            "axis": "x",
            "facing": "south",
            "node_id": "shelf-g1",
            "shelves": [{"id": "g1-s1", "level": 1, "plates": ["p1", "p2"]}],
        },
        {
            "id": "g2",
            "x_m": 8.0,
            "y_m": 1.0,
            "length_m": 3.0,
            "axis": "y",
            "facing": "west",
            "shelves": [{"id": "g2-s1", "level": 1, "plates": ["q1", "q2", "q3"]}],
        },
    ],
    "catalog": [
        {
            "sku": "cola",
            "name": "Cola",
            "barcode": "12345678",
            "unit_weight_g": 355,
            "price_cents": 150,
            "tax_class": "food",
        },
        {"sku": "chips", "name": "Chips", "barcode": "12345679", "unit_weight_g": 150, "price_cents": 200},
        {"sku": "gum", "name": "Gum", "barcode": "12345680", "unit_weight_g": 30, "price_cents": 90},
    ],
    "planogram": [
        {"sku": "cola", "plates": ["p1"], "stock": 5},
        {"sku": "chips", "plates": ["p2"]},
        {"sku": "gum", "plates": ["q1", "q2", "q3"]},
    ],
    "cameras": [
        {"id": "cam1", "node_id": "cam-ceiling", "homography": [[0.01, 0, 0], [0, 0.01, 0], [0, 0, 1]]},
    ],
    "gates": [
        {"id": "in", "direction": "entry", "zone": {"x_min": 0, "y_min": 0, "x_max": 1, "y_max": 1}},
        {"id": "out", "direction": "exit", "zone": {"x_min": 5, "y_min": 0, "x_max": 6, "y_max": 1}},
    ],
}


def write(tmp_path: Path, data: Any, name: str = "store.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def store(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(MINIMAL)
    data.update(changes)
    return data


# --- a valid store ------------------------------------------------------------------------------------


def test_minimal_store_loads(tmp_path: Path) -> None:
    layout = load_layout(write(tmp_path, MINIMAL))
    assert layout.store_id == "s1"
    assert set(layout.products) == {"cola", "chips", "gum"}
    assert layout.sku_on_plate == {"p1": "cola", "p2": "chips", "q1": "gum", "q2": "gum", "q3": "gum"}
    assert layout.plates_of_sku["gum"] == ["q1", "q2", "q3"]
    assert layout.gate("in") is not None and layout.gate("nope") is None
    assert layout.cameras[0].to_floor(100, 200) == pytest.approx((1.0, 2.0))


def test_plate_positions_are_in_front_of_the_gondola_face(tmp_path: Path) -> None:
    layout = load_layout(write(tmp_path, MINIMAL))
    plates = layout.plates
    # g1 runs along x from x=2 to x=4, faces south: plate fronts on its south edge (y = 4), split evenly.
    assert (plates["p1"].x_m, plates["p1"].y_m) == pytest.approx((2.5, 4.0))
    assert (plates["p2"].x_m, plates["p2"].y_m) == pytest.approx((3.5, 4.0))
    assert plates["p2"].gondola_id == "g1" and plates["p2"].shelf_id == "g1-s1" and plates["p2"].index == 1
    # g2 runs along y from y=1 to y=4, faces west: fronts on its west edge (x = 8).
    assert [plates[p].x_m for p in ("q1", "q2", "q3")] == pytest.approx([8.0, 8.0, 8.0])
    assert [plates[p].y_m for p in ("q1", "q2", "q3")] == pytest.approx([1.5, 2.5, 3.5])
    # A shopper standing a little in front of the face is on walkable floor; behind it is the gondola.
    assert layout.walkable(2.5, 3.8)
    assert not layout.walkable(2.5, 4.2)
    assert layout.walkable(7.8, 2.5)
    assert not layout.walkable(8.3, 2.5)
    assert layout.plate_centroid(["p1", "p2"]) == pytest.approx((3.0, 4.0))


def test_north_and_east_facing_gondolas_put_plates_on_the_far_edge(tmp_path: Path) -> None:
    data = store()
    data["gondolas"][0].update(facing="north")  # y 4 .. 4.5: front at 4.5
    data["gondolas"][1].update(facing="east", depth_m=0.6)  # x 8 .. 8.6: front at 8.6
    layout = load_layout(write(tmp_path, data))
    assert layout.plates["p1"].y_m == pytest.approx(4.5)
    assert layout.plates["q1"].x_m == pytest.approx(8.6)


# --- errors name the file, the key and the fix -----------------------------------------------------------


def _error(tmp_path: Path, data: Any) -> str:
    path = write(tmp_path, data)
    with pytest.raises(LayoutError) as info:
        load_layout(path)
    message = str(info.value)
    assert str(path) in message
    return message


def test_misspelt_key(tmp_path: Path) -> None:
    data = store()
    data["gondolas"][0]["lenght_m"] = data["gondolas"][0].pop("length_m")
    message = _error(tmp_path, data)
    assert "gondolas.0.lenght_m" in message
    assert "gondolas.0.length_m" in message  # the real key is then missing: "add it"
    assert "fix" in message and "spelling" in message


def test_planogram_sku_not_in_catalog(tmp_path: Path) -> None:
    data = store()
    data["planogram"][0]["sku"] = "colaa"
    message = _error(tmp_path, data)
    assert "planogram[0].sku" in message and "'colaa'" in message and "catalog" in message
    assert "fix" in message


def test_plate_used_twice_on_the_planogram(tmp_path: Path) -> None:
    data = store()
    data["planogram"][1]["plates"] = ["p1"]
    message = _error(tmp_path, data)
    assert "planogram[1].plates" in message and "'p1'" in message and "already holds 'cola'" in message
    assert "fix" in message


def test_plate_on_two_shelves(tmp_path: Path) -> None:
    data = store()
    data["gondolas"][1]["shelves"][0]["plates"] = ["q1", "p1"]
    message = _error(tmp_path, data)
    assert "plates" in message and "'p1'" in message and "more than once" in message
    assert "fix" in message


def test_tax_class_missing_from_tax_rates(tmp_path: Path) -> None:
    data = store(tax_rates={"standard": 0.2})
    message = _error(tmp_path, data)
    assert "tax_class" in message and "'food'" in message and "tax_rates" in message
    assert "fix" in message


def test_missing_required_key(tmp_path: Path) -> None:
    data = store()
    del data["gates"]
    message = _error(tmp_path, data)
    assert "gates" in message and "fix: add it" in message


def test_bad_value_names_the_nested_key(tmp_path: Path) -> None:
    data = store()
    data["catalog"][1]["unit_weight_g"] = -3
    message = _error(tmp_path, data)
    assert "catalog.1.unit_weight_g" in message and "fix" in message


def test_bad_yaml_syntax(tmp_path: Path) -> None:
    message = _error(tmp_path, "store_id: s1\ngondolas: [\n  {id: g1\n")
    assert "not valid YAML" in message and "line" in message and "fix" in message


def test_not_a_mapping(tmp_path: Path) -> None:
    message = _error(tmp_path, "- just\n- a list\n")
    assert "store_id" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(LayoutError) as info:
        load_layout(path)
    message = str(info.value)
    assert str(path) in message and "no such file" in message
    assert "pass the path" in message  # the fix


# --- walkout config check ----------------------------------------------------------------------------------


def test_config_check_summarises_a_valid_store(tmp_path: Path) -> None:
    ok, report = check_store_file(write(tmp_path, MINIMAL))
    assert ok, report
    assert "'s1'" in report
    for line in (
        "gondolas:         2",
        "shelves:          2",
        "plates:           5",
        "products:         3",
        "planogram plates: 5",
        "gates:            2",
        "cameras:          1",
    ):
        assert line in report
    assert "no warnings" in report


def test_config_check_warns_about_unused_products_empty_plates_and_lookalike_neighbours(
    tmp_path: Path,
) -> None:
    data = store()
    data["catalog"].append(
        {
            "sku": "cola-zero",
            "name": "Cola Zero",
            "barcode": "12345681",
            "unit_weight_g": 352,
            "weight_std_g": 2.0,
            "price_cents": 150,
            "tax_class": "food",
        }
    )
    data["catalog"].append(
        {"sku": "water", "name": "Water", "barcode": "12345682", "unit_weight_g": 500, "price_cents": 80}
    )
    data["gondolas"][0]["shelves"][0]["plates"] = ["p1", "p2", "p3", "p4"]
    data["planogram"][1] = {"sku": "cola-zero", "plates": ["p2"]}  # 352 g next to cola's 355 g
    data["planogram"].append({"sku": "chips", "plates": ["p4"]})  # p3 between them stays empty
    ok, report = check_store_file(write(tmp_path, data))
    assert ok, report
    assert "'water' is on no plate" in report
    assert "plate 'p3'" in report and "holds no product" in report
    assert "'p1' (cola, 355 g) and 'p2' (cola-zero, 352 g)" in report and "hard to tell apart" in report
    # Neighbours only: chips (p4) is not next to anything it resembles, and the same sku side by side is fine.
    assert "'q1'" not in report and "(chips" not in report
    assert "3 warning(s)" in report


def test_layout_warnings_of_a_clean_store_are_empty(tmp_path: Path) -> None:
    assert layout_warnings(load_layout(write(tmp_path, MINIMAL))) == []


def test_config_check_reports_the_layout_error(tmp_path: Path) -> None:
    data = store()
    data["planogram"][0]["sku"] = "colaa"
    path = write(tmp_path, data)
    ok, report = check_store_file(path)
    assert not ok
    assert str(path) in report and "planogram[0].sku" in report and "fix" in report


def test_config_check_command_exit_codes(tmp_path: Path) -> None:
    import typer

    app = typer.Typer()
    app.command()(config_check_command)
    runner = CliRunner()

    good = runner.invoke(app, [str(write(tmp_path, MINIMAL))])
    assert good.exit_code == 0, good.output
    assert "OK" in good.output

    bad = runner.invoke(app, [str(write(tmp_path, "store_id: [", name="bad.yaml"))])
    assert bad.exit_code == 2
    assert "not valid YAML" in bad.output

    missing = runner.invoke(app, [str(tmp_path / "missing.yaml")])
    assert missing.exit_code == 2
    assert "no such file" in missing.output


def test_the_example_in_store_config_doc_loads_without_warnings(tmp_path: Path) -> None:
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "STORE_CONFIG.md").read_text()
    match = re.search(r"## Minimal example\n\n```yaml\n(.*?)```", doc, re.DOTALL)
    assert match, "docs/STORE_CONFIG.md lost its minimal example"
    ok, report = check_store_file(write(tmp_path, match.group(1)))
    assert ok, report
    assert "no warnings" in report


def test_a_nan_in_a_camera_homography_is_an_error_naming_the_key(tmp_path):
    """A NaN would pass the layout and only fail on the edge, far from its cause."""
    from store_server.settings import DEFAULT_STORE

    data = yaml.safe_load(DEFAULT_STORE.read_text())
    data["cameras"][0]["homography"][0][0] = float("nan")
    path = tmp_path / "store.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(LayoutError) as error:
        load_layout(path)
    assert "homography" in str(error.value)
