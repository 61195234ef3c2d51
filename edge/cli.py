"""``walkout edge`` (run an edge node) and ``walkout sensors calibrate`` (tare and scale a plate).

The functions are typer commands; store_server.cli registers them under those names.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from edge.node import EdgeNode, open_source
from edge.node_config import NodeConfigError, load_node_config, write_calibration
from edge.spool import SpoolError
from sensors.calibration import CalibrationError, PlateCalibration, scale_from_known, stable_mean
from sensors.gpio import GpioError
from sensors.loadcell import LoadCellError, PlateSource

logger = logging.getLogger(__name__)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="the edge node YAML (docs/EDGE.md)", show_default=False)
]


def _logging(level: str) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    else:
        logging.getLogger().setLevel(level.upper())


def edge_command(
    config: ConfigOption,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    """Run an edge node: read its load cells, detect weight events, publish them over MQTT.

    Events are spooled to disk first, so nothing is lost while the broker is away; Ctrl-C stops the
    node cleanly (offline status published, spool kept for the next start).
    """
    _logging(log_level)
    try:
        node = EdgeNode(load_node_config(config))
    except (NodeConfigError, SpoolError, LoadCellError, GpioError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        node.run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    typer.echo(f"edge node {node.cfg.node_id} stopped; {len(node.events)} weight event(s) this run")


def read_plate(source: PlateSource, index: int, samples: int, batch: int = 12) -> np.ndarray:
    """``samples`` raw readings of one plate (NaN removed)."""
    got: list[np.ndarray] = []
    count, tries = 0, 0
    while count < samples and tries < 10 * samples:
        tries += batch
        b = source.read_batch(batch)
        if b is None:
            break
        row = b.values[index]
        row = row[~np.isnan(row)]
        got.append(row)
        count += row.size
    if count < samples // 2:
        raise CalibrationError(f"only {count} readings arrived from the plate; check the cell and its wiring")
    return np.concatenate(got)


def calibrate_command(
    config: ConfigOption,
    plate: Annotated[
        str, typer.Option("--plate", "-p", help="the plate id to calibrate", show_default=False)
    ],
    known_g: Annotated[
        float | None, typer.Option(help="grams of a reference weight; without it only the tare is taken")
    ] = None,
    tare: Annotated[bool, typer.Option(help="take the zero now (empty plate)")] = True,
    samples: Annotated[int, typer.Option(min=10, help="readings averaged per step")] = 120,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not wait for Enter between the steps")] = False,
    dry_run: Annotated[bool, typer.Option(help="print the result, do not write the config")] = False,
) -> None:
    """Calibrate one plate: tare it empty, then scale it with a known weight; stored in the config."""
    try:
        cfg = load_node_config(config)
        if plate not in cfg.plate_ids:
            raise NodeConfigError(f"{config}: no plate {plate!r}; plates: {', '.join(cfg.plate_ids)}")
        index = cfg.plate_ids.index(plate)
        current = cfg.plates[index].calibration.calibration()
        source, _, _ = open_source(cfg)
    except (NodeConfigError, LoadCellError, GpioError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        offset = current.offset_counts
        if tare:
            if not yes:
                typer.prompt(f"Empty plate {plate} and press Enter", default="", show_default=False)
            empty = read_plate(source, index, samples)
            offset, std = stable_mean(empty)
            typer.echo(f"tare: {offset:.1f} counts (noise {std:.1f} counts, {empty.size} readings)")
        scale = current.grams_per_count
        if known_g is not None:
            if not yes:
                typer.prompt(
                    f"Put {known_g:g} g on plate {plate} and press Enter", default="", show_default=False
                )
            loaded = read_plate(source, index, samples)
            scale = scale_from_known(loaded, offset, known_g)
            typer.echo(f"scale: {scale:.9g} g/count ({1 / scale:.2f} counts per gram)")
    except (CalibrationError, LoadCellError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        source.close()
    result = PlateCalibration(offset, scale)
    if dry_run:
        typer.echo(
            f"{plate}: offset_counts={result.offset_counts:.3f} grams_per_count={result.grams_per_count:.9g}"
        )
        return
    write_calibration(config, plate, result)
    typer.echo(f"wrote the calibration of {plate} to {config}")
