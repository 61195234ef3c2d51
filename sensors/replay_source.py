"""Replayed load cells: a CSV recording, or the ``samples`` messages of a Walkout dataset.

CSV layout: a header ``t,<plate id>,<plate id>,...`` then one row per sample: the time in seconds
(epoch or relative) and each plate's reading (grams, or counts with a calibration in the config);
an empty cell is a missing reading. Replays are re-timed to start now (``keep_time`` keeps the
recorded times) and paced at ``speed`` x real time.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from sensors.loadcell import LoadCellError, SampleBatch


class _Paced:
    """Hands out ``n`` columns at a time from a [plates, samples] array at the recorded pace."""

    def __init__(
        self,
        plate_ids: list[str],
        rate_hz: float,
        t_first: float,
        values: np.ndarray,
        speed: float,
        loop: bool,
        keep_time: bool,
        realtime: bool,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.plate_ids, self.rate_hz = plate_ids, rate_hz
        self._values, self._t_first = values, t_first
        self._speed, self._loop, self._keep, self._realtime = speed, loop, keep_time, realtime
        self._clock, self._sleep = clock, sleep
        self._pos = 0
        self._taken = 0
        self._origin: float | None = None
        self._mono0 = 0.0

    def read_batch(self, n: int) -> SampleBatch | None:
        if self._origin is None:
            self._origin, self._mono0 = (self._t_first if self._keep else time.time()), time.monotonic()
        total = self._values.shape[1]
        if self._pos >= total:
            if not self._loop or total == 0:
                return None
            self._pos = 0
        x = self._values[:, self._pos : self._pos + n]
        self._pos += x.shape[1]
        t0 = self._origin + self._taken / self.rate_hz
        self._taken += x.shape[1]
        if self._realtime:
            wait = self._mono0 + self._taken / self.rate_hz / self._speed - time.monotonic()
            if wait > 0:
                self._sleep(wait)
        return SampleBatch(t0, self.rate_hz, x)

    def close(self) -> None:
        self._pos = self._values.shape[1]
        self._loop = False


def read_csv(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(plate ids, times, values[plates, samples]) of a CSV recording."""
    path = Path(path)
    try:
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise LoadCellError(f"cannot read the recording {path} ({exc}); check source.path") from None
    if not rows or not rows[0] or rows[0][0].strip() != "t" or len(rows[0]) < 2:
        raise LoadCellError(f"{path}: the first line must be a header t,<plate id>,<plate id>,...")
    header = [h.strip() for h in rows[0][1:]]
    try:
        data = np.array(
            [[float(v) if v.strip() else math.nan for v in r] for r in rows[1:] if r], dtype=np.float64
        ).reshape(-1, len(header) + 1)
    except ValueError as exc:
        raise LoadCellError(
            f"{path}: every row needs a time and one number (or nothing) per plate ({exc})"
        ) from None
    return header, data[:, 0], data[:, 1:].T


def write_csv(
    path: str | Path, plate_ids: Sequence[str], t0: float, rate_hz: float, values: np.ndarray
) -> Path:
    path = Path(path)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["t", *plate_ids])
        for j in range(values.shape[1]):
            w.writerow(
                [f"{t0 + j / rate_hz:.4f}", *("" if math.isnan(v) else f"{v:.3f}" for v in values[:, j])]
            )
    return path


def _select(source: str, available: list[str], wanted: Sequence[str]) -> list[int]:
    missing = [p for p in wanted if p not in available]
    if missing:
        raise LoadCellError(
            f"{source} has no readings for plate(s) {', '.join(missing)}; it holds "
            f"{', '.join(available)}: fix the plate ids in the node config"
        )
    return [available.index(p) for p in wanted]


class CsvSource(_Paced):
    def __init__(
        self,
        path: str | Path,
        plate_ids: Sequence[str],
        speed: float = 1.0,
        loop: bool = False,
        keep_time: bool = False,
        realtime: bool = True,
        rate_hz: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        header, times, values = read_csv(path)
        rows = _select(str(path), header, plate_ids)
        if rate_hz is None:
            steps = np.diff(times)
            if steps.size == 0 or float(np.median(steps)) <= 0:
                raise LoadCellError(
                    f"{path}: cannot tell the sample rate from the t column (needs rising times)"
                )
            rate_hz = round(1.0 / float(np.median(steps)), 3)
        super().__init__(
            list(plate_ids),
            rate_hz,
            float(times[0]) if times.size else 0.0,
            values[rows],
            speed,
            loop,
            keep_time,
            realtime,
            time.time,
            sleep,
        )


class DatasetSource(_Paced):
    """The ``samples`` of the plates in ``plate_ids`` from a dataset, shelf batches stacked by time."""

    def __init__(
        self,
        path: str | Path,
        plate_ids: Sequence[str],
        speed: float = 1.0,
        keep_time: bool = False,
        realtime: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from sim_data.dataset import Dataset, DatasetError

        try:
            dataset = Dataset.open(path)
        except DatasetError as exc:
            raise LoadCellError(str(exc)) from None
        columns: dict[str, list[np.ndarray]] = {p: [] for p in plate_ids}
        rate_hz, t_first = 0.0, math.nan
        for msg in dataset.messages():
            p = msg.payload
            if p.get("kind") != "samples" or not set(p["plate_ids"]) & set(columns):
                continue
            rate_hz = float(p["rate_hz"])
            t_first = float(p["t0"]) if math.isnan(t_first) else t_first
            for plate, row in zip(p["plate_ids"], p["grams"], strict=True):
                if plate in columns:
                    columns[plate].append(np.asarray(row, dtype=np.float64))
        have = [p for p, rows in columns.items() if rows]
        _select(f"dataset {path}", have, plate_ids)
        length = min(sum(len(r) for r in columns[p]) for p in plate_ids)
        values = np.stack([np.concatenate(columns[p])[:length] for p in plate_ids])
        super().__init__(
            list(plate_ids), rate_hz, t_first, values, speed, False, keep_time, realtime, time.time, sleep
        )
