"""The GPIO backend a bit-banged driver talks to: set a pin, read a pin.

The HX711 driver needs four operations, so any GPIO library fits behind :class:`GpioBackend`. The
real one uses ``lgpio`` (maintained, works through the kernel's gpiochip interface on every
Raspberry Pi including the Pi 5); the tests use :class:`sensors.hx711_sim.SimulatedHX711`, a
pin-level model of the chip, so the driver's protocol code runs for real without hardware.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Protocol, runtime_checkable

logger = logging.getLogger(__name__)


class GpioError(RuntimeError):
    """The GPIO library is missing or refused a pin; the message says what to install or check."""


@runtime_checkable
class GpioBackend(Protocol):
    def setup_output(self, pin: int, level: int = 0) -> None: ...

    def setup_input(self, pin: int) -> None: ...

    def write(self, pin: int, level: int) -> None: ...

    def read(self, pin: int) -> int: ...

    def close(self) -> None: ...


class LgpioBackend:
    """GPIO through ``lgpio`` (``pip install lgpio`` on the Raspberry Pi; BCM pin numbers)."""

    def __init__(self, chip: int = 0) -> None:
        try:
            self._lg: Any = importlib.import_module("lgpio")
        except ImportError:
            raise GpioError(
                "the hx711 source needs the lgpio library on the edge computer: pip install lgpio "
                "(Raspberry Pi OS: apt install python3-lgpio)"
            ) from None
        try:
            self._handle = self._lg.gpiochip_open(chip)
        except Exception as exc:  # lgpio raises its own error type
            raise GpioError(
                f"cannot open /dev/gpiochip{chip} ({exc}); check gpio.chip in the node config "
                "(0 on most Raspberry Pis, 4 on a Pi 5 with an older kernel) and that the user may use GPIO"
            ) from None
        self._claimed: set[int] = set()

    def setup_output(self, pin: int, level: int = 0) -> None:
        self._claim(pin, lambda: self._lg.gpio_claim_output(self._handle, pin, level))

    def setup_input(self, pin: int) -> None:
        self._claim(pin, lambda: self._lg.gpio_claim_input(self._handle, pin))

    def _claim(self, pin: int, claim: Any) -> None:
        try:
            claim()
        except Exception as exc:
            raise GpioError(f"cannot claim GPIO {pin} ({exc}); is another process using it?") from None
        self._claimed.add(pin)

    def write(self, pin: int, level: int) -> None:
        self._lg.gpio_write(self._handle, pin, level)

    def read(self, pin: int) -> int:
        return int(self._lg.gpio_read(self._handle, pin))

    def close(self) -> None:
        for pin in sorted(self._claimed):
            try:
                self._lg.gpio_free(self._handle, pin)
            except Exception:  # best effort on shutdown
                logger.debug("could not free GPIO %d", pin)
        self._claimed.clear()
        self._lg.gpiochip_close(self._handle)


def open_backend(kind: str = "lgpio", chip: int = 0) -> GpioBackend:
    if kind == "lgpio":
        return LgpioBackend(chip)
    raise GpioError(f"unknown GPIO backend {kind!r}; use 'lgpio'")
