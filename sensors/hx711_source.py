"""Many HX711s as one :class:`~sensors.loadcell.PlateSource` on the node's sample clock.

A reader thread polls every chip and keeps its newest conversion (an HX711 delivers 10 or 80
conversions per second on its own clock). ``read_batch`` samples those newest values on the node's
clock (60 Hz by default): sample-and-hold, as a real multi-ADC shelf controller does. A chip with no
conversion for ``stale_s`` reads NaN, which the health monitor reports as dead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from sensors.loadcell import LoadCell, LoadCellError, SampleBatch

logger = logging.getLogger(__name__)


class HX711ArraySource:
    def __init__(
        self,
        plate_ids: Sequence[str],
        cells: Sequence[LoadCell],
        rate_hz: float = 60.0,
        read_timeout_s: float = 0.5,
        stale_s: float | None = None,
        poll_s: float = 0.0005,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if len(plate_ids) != len(cells):
            raise LoadCellError("one load cell per plate is needed")
        self.plate_ids = list(plate_ids)
        self.rate_hz = rate_hz
        self.cells = list(cells)
        self.adc_rate_hz = np.array([c.rate_hz for c in cells], dtype=float)
        self._timeout = read_timeout_s
        self._stale = stale_s if stale_s is not None else max(0.25, 3.0 / float(self.adc_rate_hz.min()))
        self._poll = poll_s
        self._clock, self._mono, self._sleep = clock, monotonic, sleep
        count = len(cells)
        self._latest = np.full(count, np.nan)
        self._at = np.full(count, -np.inf)
        self._fresh = np.zeros(count, dtype=np.int64)
        self._errors = np.zeros(count, dtype=np.int64)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hx711-reader", daemon=True)
        self._origin: float | None = None
        self._mono0 = 0.0
        self._taken = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            got = False
            for i, cell in enumerate(self.cells):
                try:
                    if not cell.is_ready():
                        continue
                    value = cell.read_raw(self._timeout)
                except LoadCellError as exc:
                    self._errors[i] += 1
                    if self._errors[i] in (1, 10, 100) or self._errors[i] % 1000 == 0:
                        logger.warning("%s: %s (%d errors so far)", cell.name, exc, self._errors[i])
                    continue
                got = True
                with self._lock:
                    self._latest[i] = value
                    self._at[i] = self._mono()
                    self._fresh[i] += 1
            if not got:
                self._sleep(self._poll)

    def read_batch(self, n: int) -> SampleBatch | None:
        if self._origin is None:
            self._origin, self._mono0 = self._clock(), self._mono()
            self._thread.start()
        if self._stop.is_set():
            return None
        out = np.empty((len(self.cells), n))
        for j in range(n):
            due = self._mono0 + (self._taken + j) / self.rate_hz
            wait = due - self._mono()
            if wait > 0:
                self._sleep(wait)
            with self._lock:
                stale = self._mono() - self._at > self._stale
                out[:, j] = np.where(stale, np.nan, self._latest)
        with self._lock:
            fresh, self._fresh = self._fresh, np.zeros_like(self._fresh)
        t0 = self._origin + self._taken / self.rate_hz
        self._taken += n
        return SampleBatch(t0, self.rate_hz, out, fresh)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        for cell in self.cells:
            try:
                cell.close()
            except Exception:  # a chip that is gone cannot be powered down
                logger.debug("could not close %s", cell.name)
