"""Import AiFi AutoCheckout (CPS-IoT Week 2020) load-cell recordings as a signal-level Walkout dataset.

Input (docs/AUTOCHECKOUT.md): a folder of ``gondola_G_shelf_S_plate_P.csv`` files (rows
``unix_ts,grams`` at 60 Hz, absolute values drifting and not zeroed), a products CSV
(``Name,Gondola,Shelf,Plate,Weight,Price,Image``, one row per product and plate, ``-1`` = not on a
shelf) and optionally the ground truth ``{"sessions": [{"items": {name: qty}}]}``.

Output: a dataset (sim_data.dataset) whose store.yaml is generated from those files, whose messages
are the shelves' ``samples`` on a common 60 Hz grid in batches of 12, and -- because the source has
no gate or shopper positions we can use -- one synthetic shopper: an entry gate pass at the start,
an exit gate pass at the end and a ceiling-camera track that stands in the entry zone, then in the
exit zone. Attribution of the weight changes in between relies on the store server's single-shopper
rule (one open session, no track within reach: the change is that shopper's).

Bad rows are data, not a crash: each is reported with file and line, skipped and counted.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import json
import logging
import math
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edge import contracts as c
from sim_data.dataset import SimMessage, write_dataset
from store_server.domain.layout import LayoutError, StoreLayout, load_layout

logger = logging.getLogger(__name__)

RATE_HZ = 60.0
BATCH = 12  # samples per message: 0.2 s at 60 Hz, as the AutoCheckout shelves sent them
MAX_GAP_S = 0.5  # a longer hole in a plate's samples is held at the last value, not interpolated
HEARTBEAT_S = 0.25  # docs/DATASETS.md: a node quiet for this long sends a heartbeat
TRACK_PERIOD_S = 0.2  # the synthetic ceiling camera publishes at 5 Hz
ENTRY_DELAY_S = 0.5  # entry gate pass this long after the recording starts
ZONE_STAY_S = 1.5  # the synthetic track stands this long in a gate zone
TAIL_S = 2.0  # messages go on this long after the exit so every watermark passes its due time
STOCK = 10
STORE_ID = "autocheckout"
SHOPPER_TOKEN = "autocheckout-shopper"
GATE_IN, GATE_OUT, CAMERA = "gate-in", "gate-out", "cam-ceiling"
TRACK_ID = "t1"
PRODUCTS_HEADER = ("Name", "Gondola", "Shelf", "Plate", "Weight", "Price", "Image")
FILE_PATTERN = "gondola_G_shelf_S_plate_P.csv"
_WEIGHT_FILE = re.compile(r"^gondola_([1-9][0-9]*)_shelf_([1-9][0-9]*)_plate_([1-9][0-9]*)\.csv$", re.I)
# Floor plan of the generated store (metres): gondolas in a row at the back, gates at the front wall.
PLATE_W, MIN_GONDOLA_L, AISLE, GONDOLA_Y, GONDOLA_D, MARGIN = 0.3, 1.2, 1.5, 3.5, 0.6, 1.5

PlateKey = tuple[int, int, int]  # (gondola, shelf, plate), numbered from 1 as in the source
Progress = Callable[[str, int, int], None]  # (stage, done, total)
# One message of a node before numbering: (ts, feature, payload fields, or a function making them).
_Entry = tuple[float, str, dict[str, Any] | Callable[[], dict[str, Any]]]
_MODELS: dict[str, Any] = {"samples": c.WeightSamples, "gate": c.GatePass, "heartbeat": c.Heartbeat,
                           "tracks": c.ShopperTracks}


class AutoCheckoutError(ValueError):
    """Input the importer cannot use; ``hint`` says what to do next."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass
class ImportSummary:
    """What the import found; ``malformed`` and ``gaps`` name file and line / plate and time."""

    weight_files: int = 0
    plates: int = 0
    rows: int = 0
    malformed_rows: int = 0
    malformed: list[str] = field(default_factory=list)
    duplicate_rows: int = 0
    out_of_order_rows: int = 0
    gaps: list[str] = field(default_factory=list)
    products: int = 0
    products_on_shelf: int = 0
    products_off_shelf: int = 0
    product_rows_skipped: int = 0
    plates_without_product: int = 0
    truth_sessions: int = 0
    duration_s: float = 0.0
    messages: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self, limit: int = 50) -> dict[str, Any]:
        data = asdict(self)
        for key in ("malformed", "gaps", "warnings"):
            data[key] = data[key][:limit]
        return data


@dataclass
class ImportResult:
    path: Path
    summary: ImportSummary
    layout: StoreLayout


@dataclass
class _Product:
    name: str
    weight_g: float
    price_cents: int
    plates: list[PlateKey]
    line: int


def plate_id(key: PlateKey) -> str:
    return f"g{key[0]}-s{key[1]}-p{key[2]}"


def _r(t: float) -> float:
    return round(t, 6)


# ---------------------------------------------------------------------------------------------- reading
def find_weight_files(weights_dir: Path) -> dict[PlateKey, Path]:
    if not weights_dir.exists():
        raise AutoCheckoutError(f"weights directory {weights_dir} does not exist",
                                f"pass the folder holding the {FILE_PATTERN} files with --weights")
    if not weights_dir.is_dir():
        raise AutoCheckoutError(f"{weights_dir} is a file, not a directory",
                                f"pass the folder holding the {FILE_PATTERN} files with --weights")
    found: dict[PlateKey, Path] = {}
    for path in sorted(weights_dir.iterdir()):
        m = _WEIGHT_FILE.match(path.name)
        if m and path.is_file():
            found[(int(m[1]), int(m[2]), int(m[3]))] = path
    if not found:
        others = sorted(p.name for p in weights_dir.iterdir())[:3]
        seen = f" (found e.g. {', '.join(others)})" if others else " (the directory is empty)"
        raise AutoCheckoutError(
            f"no weight files in {weights_dir}: expected files named {FILE_PATTERN}{seen}",
            "export one CSV per plate (rows unix_ts,grams; G, S, P numbered from 1) into that folder",
        )
    return found


def read_weight_file(path: Path, summary: ImportSummary) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``unix_ts,grams`` sorted by time; bad rows are reported and skipped, duplicates keep the last."""
    ts: list[float] = []
    grams: list[float] = []
    header_allowed = True
    with open(path, encoding="utf-8-sig", errors="replace") as fh:  # universal newlines: CRLF is fine
        for lineno, raw in enumerate(fh, start=1):
            parts = raw.split(",")
            if len(parts) == 2:  # the fast path: a good row is parsed once (recordings have millions)
                try:
                    t, g = float(parts[0]), float(parts[1])
                except ValueError:
                    pass
                else:
                    if t >= 0 and math.isfinite(t) and math.isfinite(g):
                        ts.append(t)
                        grams.append(g)
                        header_allowed = False
                        continue
            line = raw.strip()
            if not line:
                continue
            if header_allowed and not _is_number(parts[0].strip()):
                header_allowed = False
                continue
            header_allowed = False
            summary.malformed_rows += 1
            reason = _bad_weight_row([p.strip() for p in line.split(",")])
            summary.malformed.append(f"{path.name}:{lineno}: {reason} (row {line[:60]!r})")
    times = np.asarray(ts, dtype=float)
    values = np.asarray(grams, dtype=float)
    if len(times) > 1:
        summary.out_of_order_rows += int(np.sum(np.diff(times) < 0))
        order = np.argsort(times, kind="stable")
        times, values = times[order], values[order]
        last_of_run = np.append(np.diff(times) > 0, True)  # equal times: keep the last row
        summary.duplicate_rows += int(len(times) - np.sum(last_of_run))
        times, values = times[last_of_run], values[last_of_run]
    summary.rows += len(ts)
    return times, values


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _bad_weight_row(parts: list[str]) -> str:
    if len(parts) != 2:
        return f"expected 2 fields unix_ts,grams, got {len(parts)}"
    try:
        t, g = float(parts[0]), float(parts[1])
    except ValueError:
        return "unix_ts and grams must be numbers"
    if not (math.isfinite(t) and math.isfinite(g)):
        return "unix_ts and grams must be finite"
    if t < 0:
        return "unix_ts must be >= 0"
    return ""


def read_products(path: Path, summary: ImportSummary) -> list[_Product]:
    if not path.is_file():
        raise AutoCheckoutError(f"products CSV {path} does not exist",
                                "pass the AutoCheckout products list with --products")
    expected = ",".join(PRODUCTS_HEADER)
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    header = next((r for r in rows if any(x.strip() for x in r)), None)
    if header is None or [h.strip().lower() for h in header] != [h.lower() for h in PRODUCTS_HEADER]:
        got = ",".join(header) if header else "nothing (empty file)"
        raise AutoCheckoutError(f"{path}: the header is {got!r}; expected {expected!r}",
                                f"make the first line of the products CSV exactly {expected}")
    by_name: dict[str, _Product] = {}
    start = rows.index(header) + 2
    for lineno, row in enumerate(rows[rows.index(header) + 1:], start=start):
        if not any(x.strip() for x in row):
            continue
        parsed = _product_row(row)
        if isinstance(parsed, str):
            summary.product_rows_skipped += 1
            summary.malformed.append(f"{path.name}:{lineno}: {parsed}")
            continue
        name, key, weight, cents = parsed
        product = by_name.get(name)
        if product is None:
            product = by_name[name] = _Product(name, weight, cents, [], lineno)
        elif (abs(product.weight_g - weight) > 1e-6 or product.price_cents != cents):
            summary.warnings.append(
                f"{path.name}:{lineno}: {name!r} has another weight/price than on line {product.line}; "
                "the first is used")
        if key is not None and key not in product.plates:
            product.plates.append(key)
    return list(by_name.values())


def _product_row(row: list[str]) -> tuple[str, PlateKey | None, float, int] | str:
    if len(row) != len(PRODUCTS_HEADER):
        return f"expected {len(PRODUCTS_HEADER)} fields, got {len(row)}"
    name = row[0].strip()
    if not name:
        return "Name is empty"
    try:
        numbers = [float(x) for x in row[1:4]]
    except ValueError:
        numbers = [0.5]
    if not all(math.isfinite(x) and x.is_integer() for x in numbers):
        return "Gondola, Shelf and Plate must be whole numbers (-1 = not on a shelf)"
    g, s, p = (int(x) for x in numbers)
    try:
        weight = float(row[4])
    except ValueError:
        return f"Weight {row[4]!r} is not a number (grams)"
    if not (math.isfinite(weight) and weight > 0):
        return f"Weight {row[4]!r} must be more than 0 grams"
    try:
        dollars = Decimal(row[5].strip().lstrip("$"))
    except InvalidOperation:
        return f"Price {row[5]!r} is not a number (dollars, e.g. 1.99)"
    if not dollars.is_finite() or dollars < 0:
        return f"Price {row[5]!r} must be 0 or more"
    cents = int((dollars * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if -1 in (g, s, p):
        return name, None, weight, cents
    if min(g, s, p) < 1:
        return "Gondola, Shelf and Plate are numbered from 1 (or -1 = not on a shelf)"
    return name, (g, s, p), weight, cents


@dataclass(frozen=True)
class TruthEvent:
    """A shelf event of the ground truth, where the file has them (``walkout sim --format
    autocheckout`` writes them; the public recordings only have each session's items)."""

    kind: str
    product: str  # Name, as in the products CSV
    quantity: int
    plates: tuple[PlateKey, ...]
    t_start: float
    t_end: float
    observable: bool = True


def read_ground_truth(
    path: Path, products: list[_Product], summary: ImportSummary
) -> tuple[dict[str, int], list[TruthEvent]]:
    """Items of all sessions, summed, keyed by product name as in the products CSV, and the sessions'
    shelf events where the file has them."""
    if not path.is_file():
        raise AutoCheckoutError(f"ground truth {path} does not exist",
                                "pass the AutoCheckout ground-truth JSON, or leave out --ground-truth")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise AutoCheckoutError(f"{path}: not valid JSON ({exc})", "fix the file's syntax") from None
    shape = 'expected {"sessions": [{"items": {"<product Name>": qty}}]}'
    sessions = data.get("sessions") if isinstance(data, dict) else None
    if not isinstance(sessions, list):
        raise AutoCheckoutError(f"{path}: no 'sessions' list; {shape}", "fix the ground-truth file")
    names = {p.name: p.name for p in products}
    folded = {p.name.strip().casefold(): p.name for p in products}
    items: dict[str, int] = {}
    for i, session in enumerate(sessions):
        got = session.get("items") if isinstance(session, dict) else None
        if not isinstance(got, dict):
            raise AutoCheckoutError(f"{path}: sessions[{i}] has no 'items' object; {shape}",
                                    "fix the ground-truth file")
        for name, qty in got.items():
            known = names.get(name) or folded.get(str(name).strip().casefold())
            if known is None:
                raise AutoCheckoutError(
                    f"{path}: sessions[{i}].items names {name!r}, which is not in the products CSV",
                    "use the product's Name exactly as in the products CSV")
            if isinstance(qty, bool) or not isinstance(qty, int | float) or qty < 0 or qty != int(qty):
                raise AutoCheckoutError(f"{path}: sessions[{i}].items[{name!r}] = {qty!r}",
                                        "quantities are whole numbers >= 0")
            items[known] = items.get(known, 0) + int(qty)
    summary.truth_sessions = len(sessions)
    events = [ev for i, session in enumerate(sessions) for ev in _events_of(path, i, session, names, folded)]
    if len(sessions) > 1:
        summary.warnings.append(
            f"the ground truth has {len(sessions)} sessions; without gate data the import makes one "
            "session holding all their items")
    return {k: v for k, v in items.items() if v}, events


def _events_of(path: Path, i: int, session: dict[str, Any], names: dict[str, str],
               folded: dict[str, str]) -> list[TruthEvent]:
    """A session's optional ``events``: the per-event truth that lets a report explain each miss."""
    out = []
    for k, ev in enumerate(session.get("events") or []):
        where = f"{path}: sessions[{i}].events[{k}]"
        try:
            name = names.get(ev["product"]) or folded[str(ev["product"]).strip().casefold()]
            out.append(TruthEvent(str(ev["kind"]), name, int(ev["quantity"]),
                                  tuple((int(g), int(s), int(p)) for g, s, p in ev["plates"]),
                                  float(ev["t_start"]), float(ev["t_end"]), bool(ev.get("observable", True))))
        except (KeyError, TypeError, ValueError) as exc:
            raise AutoCheckoutError(f"{where} is not an event ({exc!r})",
                                    "give kind, product, quantity, plates, t_start and t_end, "
                                    "or leave the events out") from None
    return out


# ------------------------------------------------------------------------------------ catalog and layout
def make_sku(name: str, taken: set[str]) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", re.sub(r"['\u2019]", "", name.lower())).strip("-")[:52] or "product"
    sku, n = f"AC-{slug}", 2
    while sku in taken:
        sku, n = f"AC-{slug}-{n}", n + 1
    taken.add(sku)
    return sku


def ean13_check_digit(first12: str) -> int:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return (10 - total % 10) % 10


def make_barcode(name: str, taken: set[str]) -> str:
    """EAN-13 shaped, in the 200-299 in-store range (never a real manufacturer's code), from the name."""
    digest = int(hashlib.sha256(name.encode()).hexdigest(), 16)
    while True:
        body = f"2{digest % 10**11:011d}"
        code = body + str(ean13_check_digit(body))
        if code not in taken:
            taken.add(code)
            return code
        digest += 1


def build_layout(products: list[_Product], weight_plates: set[PlateKey],
                 summary: ImportSummary) -> tuple[dict[str, Any], dict[str, str]]:
    """The store as a YAML-ready dict, and product name -> sku."""
    skus: set[str] = set()
    barcodes: set[str] = set()
    sku_of = {p.name: make_sku(p.name, skus) for p in products}
    owner: dict[PlateKey, str] = {}
    planogram = []
    for p in products:
        plates = []
        for key in sorted(p.plates):
            if key in owner:
                summary.warnings.append(f"plate {plate_id(key)} holds {owner[key]!r} and {p.name!r} in the "
                                        f"products CSV; it is given to {owner[key]!r}")
                continue
            owner[key] = p.name
            plates.append(key)
            if key not in weight_plates:
                summary.warnings.append(f"{p.name!r} is on plate {plate_id(key)} but there is no weight "
                                        f"file gondola_{key[0]}_shelf_{key[1]}_plate_{key[2]}.csv")
        if plates:
            planogram.append({"sku": sku_of[p.name], "plates": [plate_id(k) for k in plates], "stock": STOCK})
    summary.products = len(products)
    summary.products_on_shelf = len(planogram)
    summary.products_off_shelf = len(products) - len(planogram)
    summary.plates_without_product = len(weight_plates - set(owner))
    catalog = [{"sku": sku_of[p.name], "name": p.name, "barcode": make_barcode(p.name, barcodes),
                "unit_weight_g": round(p.weight_g, 3), "price_cents": p.price_cents, "tax_class": "standard"}
               for p in products]
    if not catalog:
        raise AutoCheckoutError("the products CSV lists no usable product",
                                "check the rows of the products CSV (see the skipped rows above)")

    all_plates = weight_plates | set(owner)
    gondolas = []
    x = MARGIN
    for g in sorted({k[0] for k in all_plates}):
        shelves = sorted({k[1] for k in all_plates if k[0] == g})
        if shelves[-1] > 20:
            raise AutoCheckoutError(f"gondola {g} has a shelf {shelves[-1]}; a gondola has shelves 1-20",
                                    "check the weight file names and the products CSV")
        width = {s: max(k[2] for k in all_plates if k[:2] == (g, s)) for s in shelves}
        length = round(max(MIN_GONDOLA_L, PLATE_W * max(width.values())), 3)
        gondolas.append({
            "id": f"g{g}", "x_m": round(x, 3), "y_m": GONDOLA_Y, "length_m": length, "depth_m": GONDOLA_D,
            "axis": "x", "facing": "south", "node_id": f"shelf-g{g}",
            # Plates 1..max are all listed, even without a file, so that each sits at its real position.
            "shelves": [{"id": f"g{g}-s{s}", "level": s, "plates": [plate_id((g, s, p))
                                                                    for p in range(1, width[s] + 1)]}
                        for s in shelves],
        })
        x += length + AISLE
    floor_w = round(max(x - AISLE + MARGIN, 6.0), 3)
    floor_d = GONDOLA_Y + GONDOLA_D + 1.0
    layout = {
        "store_id": STORE_ID, "name": "AiFi AutoCheckout store (imported)", "currency": "USD",
        "tax_rates": {"standard": 0.0},
        "floor": {"width_m": floor_w, "depth_m": floor_d},
        "gondolas": gondolas, "catalog": catalog, "planogram": planogram,
        "cameras": [{"id": CAMERA, "kind": "ceiling", "node_id": CAMERA, "image_size": [640, 480],
                     "homography": [[round(floor_w / 640, 6), 0.0, 0.0], [0.0, round(floor_d / 480, 6), 0.0],
                                    [0.0, 0.0, 1.0]]}],
        "gates": [
            {"id": GATE_IN, "direction": "entry", "node_id": GATE_IN,
             "zone": {"x_min": 0.5, "y_min": 0.0, "x_max": 1.5, "y_max": 1.0}},
            {"id": GATE_OUT, "direction": "exit", "node_id": GATE_OUT,
             "zone": {"x_min": round(floor_w - 1.5, 3), "y_min": 0.0, "x_max": round(floor_w - 0.5, 3),
                      "y_max": 1.0}},
        ],
    }
    return layout, sku_of


def layout_yaml(layout: dict[str, Any]) -> str:
    head = ("# Generated by `walkout import autocheckout` from an AiFi AutoCheckout recording.\n"
            "# Geometry is synthetic (the source gives gondola/shelf/plate numbers, not positions);\n"
            "# prices in US cents; no tax data in the source, so one class 'standard' at rate 0.0.\n")
    return head + yaml.safe_dump(layout, sort_keys=False, default_flow_style=None, width=110)


def validate_layout(text: str) -> StoreLayout:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.yaml"
        path.write_text(text)
        try:
            return load_layout(path)
        except LayoutError as exc:
            raise AutoCheckoutError(f"the generated store layout does not load: {exc}",
                                    "report this as a bug in the AutoCheckout importer") from None


# --------------------------------------------------------------------------------------------- signals
def resample(ts: np.ndarray, grams: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Linear interpolation onto ``grid``; across a hole longer than MAX_GAP_S (and before the first or
    after the last sample) the nearest earlier value is held."""
    idx = np.searchsorted(ts, grid, side="right") - 1
    left = np.clip(idx, 0, len(ts) - 1)
    right = np.clip(idx + 1, 0, len(ts) - 1)
    span = ts[right] - ts[left]
    ok = (idx >= 0) & (span > 0) & (span <= MAX_GAP_S)
    frac = np.where(ok, (grid - ts[left]) / np.where(span > 0, span, 1.0), 0.0)
    out = grams[left] + frac * (grams[right] - grams[left])
    return np.where(idx < 0, grams[0], out)


def _report_gaps(key: PlateKey, path: Path, ts: np.ndarray, start: float, end: float,
                 summary: ImportSummary) -> None:
    where = f"{plate_id(key)} ({path.name})"
    if ts[0] - start > MAX_GAP_S:
        summary.gaps.append(f"{where}: no samples for the first {ts[0] - start:.2f} s; first value held")
    for i in np.flatnonzero(np.diff(ts) > MAX_GAP_S):
        summary.gaps.append(f"{where}: no samples for {ts[i + 1] - ts[i]:.2f} s from "
                            f"t0+{ts[i] - start:.2f} s; last value held")
    if end - ts[-1] > MAX_GAP_S:
        summary.gaps.append(f"{where}: no samples for the last {end - ts[-1]:.2f} s; last value held")


def _with_heartbeats(events: list[_Entry], t0: float, t_end: float) -> list[_Entry]:
    """The simulator's rule: a heartbeat wherever the node would be quiet for more than HEARTBEAT_S."""
    out: list[_Entry] = []
    last = None
    for ev in sorted(events, key=lambda e: e[0]):
        if last is None and ev[0] > t0:
            out.append((t0, "heartbeat", {}))
            last = t0
        while last is not None and ev[0] - last > HEARTBEAT_S + 1e-6:
            last = _r(last + HEARTBEAT_S)
            out.append((last, "heartbeat", {}))
        out.append(ev)
        last = ev[0]
    if last is None:
        out.append((t0, "heartbeat", {}))
        last = t0
    while _r(last + HEARTBEAT_S) <= t_end:
        last = _r(last + HEARTBEAT_S)
        out.append((last, "heartbeat", {}))
    return out


# ------------------------------------------------------------------------------------------- the import
def import_autocheckout(weights_dir: str | Path, products_csv: str | Path, out: str | Path,
                        ground_truth: str | Path | None = None,
                        progress: Progress | None = None) -> ImportResult:
    """Convert one AutoCheckout recording into a dataset at ``out``; raises AutoCheckoutError."""
    summary = ImportSummary()
    files = find_weight_files(Path(weights_dir))
    products = read_products(Path(products_csv), summary)
    truth_items, truth_events = (
        read_ground_truth(Path(ground_truth), products, summary) if ground_truth else (None, [])
    )

    series: dict[PlateKey, tuple[np.ndarray, np.ndarray]] = {}
    for i, (key, path) in enumerate(files.items(), start=1):
        times, grams = read_weight_file(path, summary)
        if len(times):
            series[key] = (times, grams)
        else:
            summary.warnings.append(f"{path.name} holds no valid rows; plate {plate_id(key)} has no samples")
        if progress:
            progress("reading weight files", i, len(files))
    summary.weight_files = len(files)
    summary.plates = len(series)
    if not series:
        raise AutoCheckoutError(f"none of the {len(files)} weight files in {weights_dir} holds a valid row",
                                "check the files: each row is unix_ts,grams (see the skipped rows above)")
    layout_dict, sku_of = build_layout(products, set(files), summary)
    text = layout_yaml(layout_dict)
    layout = validate_layout(text)

    start = _r(min(float(t[0]) for t, _ in series.values()))
    end = _r(max(float(t[-1]) for t, _ in series.values()))
    for key, (t, _) in series.items():
        _report_gaps(key, files[key], t, start, end, summary)
    entry_t = _r(start + ENTRY_DELAY_S)
    exit_t = _r(max(end, entry_t + 1.0))
    t_end = _r(exit_t + TAIL_S)
    # start and end are rounded to 1 us: a last row that is a whole number of samples after the first
    # may come out a few millionths of a sample short of it, and must still get its grid point.
    grid = start + np.arange(int(math.floor((end - start) * RATE_HZ + 1e-3)) + 1) / RATE_HZ

    streams: dict[str, list[_Entry]] = {}
    shelves = sorted({k[:2] for k in series})
    for n, (g, s) in enumerate(shelves, start=1):
        keys = sorted(k for k in series if k[:2] == (g, s))
        values = np.round(np.vstack([resample(*series[k], grid) for k in keys]), 3)
        node = streams.setdefault(f"shelf-g{g}", [])
        fixed = {"gondola_id": f"g{g}", "shelf_id": f"g{g}-s{s}", "plate_ids": [plate_id(k) for k in keys],
                 "rate_hz": RATE_HZ}
        for j in range(0, len(grid), BATCH):
            t0 = _r(float(grid[j]))
            last = t0 + (min(BATCH, len(grid) - j) - 1) / RATE_HZ
            ts = _r(last) if _r(last) >= last else _r(last + 1e-6)
            # The payload is built when written, so a long recording is never held as JSON in memory.
            node.append((ts, "samples", partial(_samples_fields, fixed, t0, values, j)))
        if progress:
            progress("resampling shelves", n, len(shelves))
    for gondola in layout.gondolas:
        streams.setdefault(gondola.node_id or gondola.id, [])
    streams[GATE_IN] = [(entry_t, "gate", {"gate_id": GATE_IN, "direction": "entry",
                                          "account_token": SHOPPER_TOKEN, "group_size": 1})]
    streams[GATE_OUT] = [(exit_t, "gate", {"gate_id": GATE_OUT, "direction": "exit", "account_token": None})]
    for name in list(streams):
        streams[name] = _with_heartbeats(streams[name], start, t_end)
    streams[CAMERA] = _camera(layout, start, entry_t, exit_t, t_end)
    entry_id = f"{GATE_IN}:{next(i for i, e in enumerate(streams[GATE_IN]) if e[1] == 'gate')}"

    summary.messages = sum(len(stream) for stream in streams.values())
    summary.duration_s = round(t_end - start, 3)
    truth = _ground_truth(start, entry_t, exit_t, entry_id, truth_items, sku_of, truth_events)
    manifest = {"source": "autocheckout", "scenario": "autocheckout", "seed": None, "store_id": STORE_ID,
                "t0": start, "duration_s": summary.duration_s, "fidelity": "signal",
                "notes": [
                    "imported from an AiFi AutoCheckout (CPS-IoT Week 2020) recording; "
                    "see docs/AUTOCHECKOUT.md",
                    "no tax data in the source: every product is tax class 'standard' at rate 0.0",
                    "store geometry, gates and the shopper track are synthetic: one session spans the "
                    "recording and weight changes are attributed by the single-shopper rule",
                ],
                "import_summary": summary.as_dict()}
    path = write_dataset(out, manifest, text, _sequence(streams, progress), truth)
    for line in summary.malformed + summary.gaps + summary.warnings:
        logger.info("autocheckout import: %s", line)
    return ImportResult(path, summary, layout)


def _camera(layout: StoreLayout, start: float, entry_t: float, exit_t: float, t_end: float) -> list[_Entry]:
    """Track t1 stands in the entry zone around the entry and in the exit zone before the exit; in
    between its position is unknown, so the camera reports nobody (an empty list keeps its watermark)."""
    gate_in, gate_out = layout.gate(GATE_IN), layout.gate(GATE_OUT)
    assert gate_in is not None and gate_out is not None
    out: list[_Entry] = []
    for k in range(int(math.floor((t_end - start) / TRACK_PERIOD_S + 1e-6)) + 1):
        t = _r(start + k * TRACK_PERIOD_S)
        tracks = []
        if t <= entry_t + ZONE_STAY_S - ENTRY_DELAY_S:
            x, y = gate_in.zone.centre
            tracks = [{"track_id": TRACK_ID, "x_m": x, "y_m": y, "confidence": 0.9}]
        elif exit_t - ENTRY_DELAY_S <= t <= exit_t + ZONE_STAY_S - ENTRY_DELAY_S:
            x, y = gate_out.zone.centre
            tracks = [{"track_id": TRACK_ID, "x_m": x, "y_m": y, "confidence": 0.9}]
        out.append((t, "tracks", {"camera_id": CAMERA, "tracks": tracks}))
    return out


def _samples_fields(fixed: dict[str, Any], t0: float, values: np.ndarray, j: int) -> dict[str, Any]:
    return {**fixed, "t0": t0, "grams": values[:, j:j + BATCH].tolist()}


def _sequence(streams: dict[str, list[_Entry]], progress: Progress | None) -> Iterator[SimMessage]:
    """Number each node's stream from 0, build every payload with the contract, merge by time."""
    total = sum(len(s) for s in streams.values())

    def numbered(rank: int, node: str, stream: list[_Entry]) -> Iterator[tuple[float, int, int, SimMessage]]:
        for seq, (t, feature, fields) in enumerate(stream):
            data = fields() if callable(fields) else fields
            model = _MODELS[feature](node_id=node, seq=seq, ts=t, **data)
            yield (model.ts, rank, seq, SimMessage(model.ts, c.topic(STORE_ID, node, feature),
                                                   json.loads(model.model_dump_json())))

    merged = heapq.merge(*(numbered(r, n, s) for r, (n, s) in enumerate(streams.items())),
                         key=lambda k: k[:3])
    for done, item in enumerate(merged, start=1):
        if progress and (done % 2000 == 0 or done == total):
            progress("writing messages", done, total)
        yield item[3]


def _ground_truth(start: float, entry_t: float, exit_t: float, entry_id: str,
                  items: dict[str, int] | None, sku_of: dict[str, str],
                  events: list[TruthEvent] | None = None) -> dict[str, Any]:
    return {
        "store_id": STORE_ID,
        "scenario": "autocheckout",
        "t0": start,
        "accounts": [{"token": SHOPPER_TOKEN, "name": "AutoCheckout shopper",
                      "email": "autocheckout-shopper@example.com", "balance_cents": 100_000_000,
                      "credit_limit_cents": 0}],
        "sessions": [{"account_token": SHOPPER_TOKEN, "track_id": TRACK_ID, "entry_msg_id": entry_id,
                      "entered_at": entry_t, "exited_at": exit_t,
                      "items": dict(sorted((sku_of[n], q) for n, q in (items or {}).items()))}],
        # A public recording has no per-event truth and, without --ground-truth, no cart either; a
        # file written by `walkout sim --format autocheckout` has both. Every event is the one session's.
        "items_known": items is not None,
        "events": [
            {"kind": ev.kind, "sku": sku_of[ev.product], "quantity": ev.quantity,
             "plate_ids": [plate_id(k) for k in ev.plates], "track_id": TRACK_ID,
             "t_start": ev.t_start, "t_end": ev.t_end, "observable": ev.observable}
            for ev in sorted(events or [], key=lambda e: (e.t_start, e.t_end))
            if ev.product in sku_of
        ],
        "events_known": bool(events),
    }
