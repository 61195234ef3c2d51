"""A pin-level model of the HX711, so the bit-banging driver is tested without hardware.

:class:`SimulatedHX711` is a :class:`sensors.gpio.GpioBackend`: the driver writes PD_SCK and reads
DOUT exactly as on a Raspberry Pi, and the model answers like the chip: conversions every
``1 / rate_hz`` s (after a settling time from power-up), DOUT low while one is waiting, 24 data bits
shifted out MSB first on rising edges, 25/26/27 pulses choosing the next conversion's input and gain,
PD_SCK high for more than 60 us powering it down, and a reset to channel A gain 128 on power-up.
Time comes from an injected clock, so tests are exact and fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sensors.hx711 import MAX_COUNTS, MIN_COUNTS

GAIN_OF_PULSES = {25: ("A", 128), 26: ("B", 32), 27: ("A", 64)}
POWER_DOWN_AFTER_S = 60e-6


class FakeClock:
    """A clock that moves only when slept on: ``sleep`` advances it."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


class SimulatedHX711:
    """The chip behind one DOUT/SCK pin pair. ``channel_a(t)`` / ``channel_b(t)`` give the input in
    counts at gain 128 (channel B's input is scaled by 32/128 like the chip's amplifier)."""

    def __init__(
        self,
        dout_pin: int = 5,
        sck_pin: int = 6,
        rate_hz: float = 80.0,
        channel_a: Callable[[float], float] = lambda t: 0.0,
        channel_b: Callable[[float], float] = lambda t: 0.0,
        clock: Callable[[], float] = time.monotonic,
        alive: bool = True,
    ) -> None:
        self.dout_pin, self.sck_pin = dout_pin, sck_pin
        self.rate_hz = rate_hz
        self.channel_a, self.channel_b = channel_a, channel_b
        self.clock = clock
        self.alive = alive  # False: a dead chip, DOUT stays high
        self.outputs: set[int] = set()
        self.inputs: set[int] = set()
        self.channel, self.gain = "A", 128
        self._powered = True
        self.protocol_errors: list[str] = []
        self.readings = 0  # complete data words shifted out
        self.early_clocks = 0
        self._sck = 0
        self._sck_high_at = 0.0
        self._pulses = 0  # rising edges of the current read (0: not shifting)
        self._word = 0
        self._dout = 1
        self._power_up(clock())

    # -- the chip's state -------------------------------------------------------------------------
    @property
    def powered(self) -> bool:
        self._check_power_down(self.clock())
        return self._powered

    def settle_s(self) -> float:
        return 0.4 if self.rate_hz <= 10 else 0.05

    def _power_up(self, now: float) -> None:
        self._powered = True
        self.channel, self.gain = "A", 128
        self._first_at = now + self.settle_s()
        self._taken = -1  # index of the last conversion read
        self._pulses = 0

    def _latest(self, now: float) -> int:
        """Index of the newest finished conversion (-1: none yet)."""
        if now < self._first_at:
            return -1
        return int((now - self._first_at) * self.rate_hz + 1e-9)

    def _conversion(self, index: int) -> int:
        t = self._first_at + index / self.rate_hz
        x = self.channel_a(t) * self.gain / 128 if self.channel == "A" else self.channel_b(t) * 32 / 128
        return max(MIN_COUNTS, min(MAX_COUNTS, round(x)))

    def _check_power_down(self, now: float) -> None:
        if self._sck and self._powered and now - self._sck_high_at > POWER_DOWN_AFTER_S:
            self._powered = False
            self._pulses = 0  # a read cut short by power-down is abandoned, as on the chip

    def _finish_read(self) -> None:
        if self._pulses < 25:
            self.protocol_errors.append(f"read ended after {self._pulses} pulses (needs 25-27)")
        elif self._pulses > 27:
            self.protocol_errors.append(f"{self._pulses} pulses in one read (at most 27)")
        else:
            self.channel, self.gain = GAIN_OF_PULSES[self._pulses]
            self.readings += 1
        self._pulses = 0

    # -- GpioBackend ------------------------------------------------------------------------------
    def setup_output(self, pin: int, level: int = 0) -> None:
        self.outputs.add(pin)
        if pin == self.sck_pin:
            self.write(pin, level)

    def setup_input(self, pin: int) -> None:
        self.inputs.add(pin)

    def write(self, pin: int, level: int) -> None:
        if pin not in self.outputs:
            raise RuntimeError(f"GPIO {pin} written before setup_output")
        if pin != self.sck_pin:
            return  # e.g. the RATE pin
        now = self.clock()
        self._check_power_down(now)
        if level and not self._sck:  # rising edge
            self._sck_high_at = now
            if self._powered and self.alive:
                self._rising(now)
        elif not level and self._sck and not self._powered:  # falling edge after power-down: wake up
            self._sck = 0
            self._power_up(now)
            return
        self._sck = 1 if level else 0

    def _rising(self, now: float) -> None:
        if self._pulses == 0:
            latest = self._latest(now)
            if latest <= self._taken:
                self.early_clocks += 1  # nothing to shift out (e.g. the start of a power-down)
                return
            self._taken = latest
            self._word = self._conversion(latest) & 0xFFFFFF
        self._pulses += 1
        if self._pulses <= 24:
            self._dout = (self._word >> (24 - self._pulses)) & 1
        else:
            self._dout = 1

    def read(self, pin: int) -> int:
        if pin not in self.inputs:
            raise RuntimeError(f"GPIO {pin} read before setup_input")
        if pin != self.dout_pin:
            return 0
        now = self.clock()
        self._check_power_down(now)
        if not self._powered or not self.alive:
            return 1
        if self._pulses and not self._sck and self._pulses >= 24:
            self._finish_read()
        if self._pulses:
            return self._dout
        return 0 if self._latest(now) > self._taken else 1

    def close(self) -> None:
        self.outputs.clear()
        self.inputs.clear()
