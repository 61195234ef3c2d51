"""HX711 24-bit load-cell ADC, bit-banged over two GPIO pins.

The protocol (Avia Semiconductor datasheet): DOUT goes low when a conversion is ready. The host then
clocks 24 pulses on PD_SCK and reads DOUT after each rising edge, MSB first, two's complement. 1, 2
or 3 more pulses choose the input and gain of the *next* conversion: 25 = channel A gain 128,
26 = channel B gain 32, 27 = channel A gain 64. PD_SCK held high for more than 60 us powers the chip
down; taking it low again powers it up, which resets it to channel A gain 128. The output rate
(10 or 80 samples/s) is a pin on the chip (RATE), wired or driven from a GPIO.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from sensors.gpio import GpioBackend
from sensors.loadcell import LoadCellError

logger = logging.getLogger(__name__)

PULSES_FOR_GAIN: Final = {128: 25, 64: 27, 32: 26}  # total pulses per reading, by gain
RATES_HZ: Final = (10, 80)
MIN_COUNTS: Final = -(1 << 23)  # 0x800000: the ADC's lower limit (input saturated)
MAX_COUNTS: Final = (1 << 23) - 1  # 0x7FFFFF: upper limit
POWER_DOWN_S: Final = 100e-6  # PD_SCK high this long (> 60 us) powers the chip down


class HX711Error(LoadCellError):
    """Misconfiguration or a chip that does not answer."""


class HX711Timeout(HX711Error):
    """No conversion became ready in time."""


def to_signed(raw: int) -> int:
    """24-bit two's complement to a Python int."""
    raw &= 0xFFFFFF
    return raw - (1 << 24) if raw & 0x800000 else raw


class HX711:
    """One HX711 on ``dout_pin`` / ``sck_pin`` (BCM numbers) of a :class:`GpioBackend`."""

    def __init__(
        self,
        gpio: GpioBackend,
        dout_pin: int,
        sck_pin: int,
        gain: int = 128,
        rate_hz: int = 10,
        rate_pin: int | None = None,
        name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        poll_s: float = 0.001,
    ) -> None:
        if gain not in PULSES_FOR_GAIN:
            raise HX711Error(
                f"HX711 gain {gain} is not supported; use 128 or 64 (channel A) or 32 (channel B)"
            )
        if rate_hz not in RATES_HZ:
            raise HX711Error(f"HX711 rate {rate_hz} samples/s is not supported; use 10 or 80")
        if dout_pin == sck_pin:
            raise HX711Error(f"HX711 dout_pin and sck_pin are both GPIO {dout_pin}; they must differ")
        self.gpio = gpio
        self.dout_pin = dout_pin
        self.sck_pin = sck_pin
        self.rate_hz = float(rate_hz)
        self.name = name or f"hx711-{dout_pin}-{sck_pin}"
        self._clock = clock
        self._sleep = sleep
        self._poll_s = poll_s
        self._gain = 128  # the chip's state after power-up
        gpio.setup_output(sck_pin, 0)
        gpio.setup_input(dout_pin)
        if rate_pin is not None:
            gpio.setup_output(rate_pin, 1 if rate_hz == 80 else 0)
        if gain != 128:
            self.set_gain(gain)

    @property
    def gain(self) -> int:
        return self._gain

    def is_ready(self) -> bool:
        return self.gpio.read(self.dout_pin) == 0

    def wait_ready(self, timeout_s: float = 1.0) -> None:
        deadline = self._clock() + timeout_s
        while not self.is_ready():
            if self._clock() >= deadline:
                raise HX711Timeout(
                    f"{self.name} (DOUT GPIO {self.dout_pin}, SCK GPIO {self.sck_pin}) gave no reading "
                    f"within {timeout_s:g} s: check its power and wiring, and that it is not powered down"
                )
            self._sleep(self._poll_s)

    def _shift(self, pulses: int) -> int:
        """Clock ``pulses`` pulses, reading DOUT after the first 24 rising edges (MSB first)."""
        gpio, sck, dout = self.gpio, self.sck_pin, self.dout_pin
        value = 0
        for i in range(pulses):
            gpio.write(sck, 1)
            if i < 24:
                value = (value << 1) | (gpio.read(dout) & 1)
            gpio.write(sck, 0)
        return value

    def read_raw(self, timeout_s: float = 1.0) -> int:
        """The next conversion in counts (``MIN_COUNTS``/``MAX_COUNTS`` mean the input is saturated)."""
        self.wait_ready(timeout_s)
        return to_signed(self._shift(PULSES_FOR_GAIN[self._gain]))

    def set_gain(self, gain: int, timeout_s: float = 1.0) -> None:
        """Select channel and gain; the conversion already waiting still has the old gain, so it is
        read (with the new pulse count) and discarded."""
        if gain not in PULSES_FOR_GAIN:
            raise HX711Error(f"HX711 gain {gain} is not supported; use 128, 64 or 32")
        self.wait_ready(timeout_s)
        self._shift(PULSES_FOR_GAIN[gain])
        self._gain = gain

    def power_down(self) -> None:
        self.gpio.write(self.sck_pin, 0)
        self.gpio.write(self.sck_pin, 1)
        self._sleep(POWER_DOWN_S)

    def power_up(self, gain: int | None = None) -> None:
        """Wake the chip; it comes back at channel A gain 128, so the configured gain is set again."""
        wanted = self._gain if gain is None else gain
        self.gpio.write(self.sck_pin, 0)
        self._gain = 128
        if wanted != 128:
            # The first conversion after power-up takes the settling time (400 ms at 10 samples/s).
            self.set_gain(wanted, timeout_s=1.0)

    def close(self) -> None:
        self.power_down()
