"""Write a simulated signal-level run in the AiFi AutoCheckout file layout (the importer's inverse).

``walkout sim --format autocheckout --out DIR`` calls :func:`write_autocheckout`, so the files that
:func:`sim_data.importers.autocheckout.import_autocheckout` reads can be made from every scenario::

    DIR/weights/gondola_G_shelf_S_plate_P.csv   rows unix_ts,grams: every 60 Hz sample of one plate
    DIR/products.csv                            Name,Gondola,Shelf,Plate,Weight,Price,Image
    DIR/ground_truth.json                       {"sessions": [{"items": {Name: qty}, ...}], ...}

Plate numbering (:func:`autocheckout_keys`): G is the gondola's position in the store file, S the
shelf's rank by level within its gondola, P the plate's position on its shelf, all from 1. The demo
store's ids (``g2-s1-p3``) already follow that rule, so an import gives them back unchanged.

AutoCheckout knows products by name only: a catalogue with two products of one name cannot be written.
The ground truth keeps each shopper's session (the importer reads its ``items`` and sums them into its
one synthetic session) and, beside it, what the importer ignores but a reader of the files wants:
who it was, when they were in, and every pick and put-back with its plates in (G, S, P).
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim_data.dataset import SimMessage, install_directory
from sim_data.evaluate import session_of_event
from sim_data.importers.autocheckout import PRODUCTS_HEADER, PlateKey
from store_server.domain.layout import StoreLayout

logger = logging.getLogger(__name__)

WEIGHTS_DIR = "weights"
PRODUCTS_CSV = "products.csv"
GROUND_TRUTH_JSON = "ground_truth.json"
OFF_SHELF: PlateKey = (-1, -1, -1)  # the products CSV's "not on a shelf"
TIME_FORMAT = "%.6f"  # 1 us: interpolating between rows then moves a 60 Hz sample by well under 1 mg
GRAMS_FORMAT = "%.3f"  # 1 mg, the importer's own rounding


class AutoCheckoutWriteError(ValueError):
    """A run or a store that the AutoCheckout layout cannot hold; the message says why."""


@dataclass
class AutoCheckoutRun:
    """What was written: the three inputs of ``walkout import autocheckout`` and their counts."""

    path: Path
    weight_files: int
    rows: int
    products: int
    sessions: int
    events: int

    @property
    def weights_dir(self) -> Path:
        return self.path / WEIGHTS_DIR

    @property
    def products_csv(self) -> Path:
        return self.path / PRODUCTS_CSV

    @property
    def ground_truth(self) -> Path:
        return self.path / GROUND_TRUTH_JSON


def weight_file_name(key: PlateKey) -> str:
    return f"gondola_{key[0]}_shelf_{key[1]}_plate_{key[2]}.csv"


def autocheckout_keys(layout: StoreLayout) -> dict[str, PlateKey]:
    """Our plate id -> AutoCheckout (gondola, shelf, plate), numbered from 1 (see the module doc)."""
    keys: dict[str, PlateKey] = {}
    for g, gondola in enumerate(layout.gondolas, start=1):
        by_level = sorted(gondola.shelves, key=lambda shelf: shelf.level)  # stable: ties keep file order
        for s, shelf in enumerate(by_level, start=1):
            for p, plate in enumerate(shelf.plates, start=1):
                keys[plate] = (g, s, p)
    return keys


def plate_series(messages: Iterable[SimMessage]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every plate's samples from a run's ``samples`` messages: (unix times, grams), in time order."""
    times: dict[str, list[np.ndarray]] = {}
    grams: dict[str, list[np.ndarray]] = {}
    for m in messages:
        p = m.payload
        if p.get("kind") != "samples":
            continue
        block = np.asarray(p["grams"], dtype=float)
        if block.ndim != 2 or not block.shape[1]:
            continue
        ts = float(p["t0"]) + np.arange(block.shape[1]) / float(p["rate_hz"])
        for row, plate in zip(block, p["plate_ids"], strict=True):
            times.setdefault(plate, []).append(ts)
            grams.setdefault(plate, []).append(row)
    out = {}
    for plate, parts in times.items():
        t, g = np.concatenate(parts), np.concatenate(grams[plate])
        order = np.argsort(t, kind="stable")
        out[plate] = (t[order], g[order])
    return out


def product_rows(layout: StoreLayout, keys: dict[str, PlateKey]) -> list[list[str]]:
    """The products CSV: header, then one row per product and plate (``-1`` for a product on no plate)."""
    seen: dict[str, str] = {}
    for product in layout.catalog:
        folded = product.name.strip().casefold()
        if folded in seen:
            raise AutoCheckoutWriteError(
                f"products {seen[folded]!r} and {product.sku!r} are both called {product.name!r}: "
                "AutoCheckout knows products by name only; give one of them another name in the store file")
        seen[folded] = product.sku
    rows = [list(PRODUCTS_HEADER)]
    for product in layout.catalog:
        dollars = f"{product.price_cents // 100}.{product.price_cents % 100:02d}"
        plates = layout.plates_of_sku.get(product.sku) or []
        for key in sorted(keys[p] for p in plates) or [OFF_SHELF]:
            rows.append([product.name, *(str(k) for k in key), repr(product.unit_weight_g), dollars, ""])
    return rows


def autocheckout_truth(ground_truth: dict[str, Any], layout: StoreLayout, keys: dict[str, PlateKey],
                       manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's ground truth in the shape the importer reads, each session's events beside its items;
    ``source`` says where it came from (the run's manifest: scenario, seed, signal profile)."""
    name = {p.sku: p.name for p in layout.catalog}
    sessions = ground_truth.get("sessions", [])
    events: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(sessions))}
    for ev in ground_truth.get("events", []):
        session = session_of_event(ev, sessions)
        if session is None:
            raise AutoCheckoutWriteError(f"shelf event {ev.get('msg_id')!r} belongs to no session")
        events[next(i for i, s in enumerate(sessions) if s is session)].append({
            "t_start": ev["t_start"], "t_end": ev["t_end"], "kind": ev["kind"], "product": name[ev["sku"]],
            "quantity": ev["quantity"], "plates": [list(keys[p]) for p in ev["plate_ids"]],
            "observable": ev.get("observable", True),
        })
    out = []
    for i, s in enumerate(sessions):
        out.append({
            "items": {name[sku]: qty for sku, qty in s["items"].items() if qty},
            "shopper": s["account_token"], "track_ids": s.get("track_ids") or [s["track_id"]],
            "entered_at": s["entered_at"], "exited_at": s["exited_at"], "events": events[i],
        })
    return {
        "sessions": out,
        "source": {"format": "walkout-sim", "store_id": ground_truth.get("store_id"),
                   "scenario": ground_truth.get("scenario"), "t0": ground_truth.get("t0"),
                   **{k: v for k, v in (manifest or {}).items()
                      if k in ("seed", "fidelity", "signal_profile", "created_utc")}},
        # Our ids, so a reader can map the AutoCheckout numbers back to the store file.
        "plates": {plate: list(key) for plate, key in keys.items()},
    }


def write_autocheckout(out: str | Path, layout: StoreLayout, messages: Iterable[SimMessage],
                       ground_truth: dict[str, Any],
                       manifest: dict[str, Any] | None = None) -> AutoCheckoutRun:
    """Write a signal-level run (``samples`` messages) as AutoCheckout files at ``out``, atomically.

    An earlier export at ``out`` (it holds ``products.csv``) is replaced; any other non-empty
    directory is refused.
    """
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise AutoCheckoutWriteError(f"{target} is a file; choose a directory for the AutoCheckout files")
    if target.is_dir() and any(target.iterdir()) and not (target / PRODUCTS_CSV).is_file():
        raise AutoCheckoutWriteError(
            f"{target} exists and holds no earlier AutoCheckout export; choose an empty or new directory")
    keys = autocheckout_keys(layout)
    series = plate_series(messages)
    if not series:
        raise AutoCheckoutWriteError(
            "the run has no load-cell samples: AutoCheckout files hold raw signals (use --fidelity signal)")
    unknown = sorted(set(series) - set(keys))
    if unknown:
        raise AutoCheckoutWriteError(f"samples for plates not in the store layout: {', '.join(unknown[:5])}")
    products = product_rows(layout, keys)
    truth = autocheckout_truth(ground_truth, layout, keys, manifest)

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tmp.chmod(0o755)
        (tmp / WEIGHTS_DIR).mkdir()
        rows = 0
        for plate, (t, g) in sorted(series.items(), key=lambda kv: keys[kv[0]]):
            with open(tmp / WEIGHTS_DIR / weight_file_name(keys[plate]), "w", newline="\n") as fh:
                np.savetxt(fh, np.column_stack([t, g]), fmt=[TIME_FORMAT, GRAMS_FORMAT], delimiter=",")
            rows += len(t)
        with open(tmp / PRODUCTS_CSV, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, lineterminator="\n").writerows(products)
        (tmp / GROUND_TRUTH_JSON).write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n")
        install_directory(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote AutoCheckout files %s (%d plates, %d rows)", target, len(series), rows)
    return AutoCheckoutRun(target, len(series), rows, len(layout.catalog), len(truth["sessions"]),
                           sum(len(s["events"]) for s in truth["sessions"]))
