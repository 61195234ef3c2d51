"""The HX711 driver against a pin-level model of the chip: every bit goes through GPIO reads/writes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from sensors.hx711 import HX711, MAX_COUNTS, MIN_COUNTS, HX711Error, HX711Timeout, to_signed
from sensors.hx711_sim import FakeClock, SimulatedHX711
from sensors.hx711_source import HX711ArraySource


def _pair(
    value: float = 0.0, rate: float = 80.0, channel_b: float = 0.0, alive: bool = True, **driver: object
) -> tuple[HX711, SimulatedHX711, FakeClock]:
    clock = FakeClock(100.0)
    chip = SimulatedHX711(
        5, 6, rate, channel_a=lambda t: value, channel_b=lambda t: channel_b, clock=clock, alive=alive
    )
    hx = HX711(chip, 5, 6, clock=clock, sleep=clock.sleep, rate_hz=int(rate), **driver)  # type: ignore[arg-type]
    return hx, chip, clock


def test_reads_positive_and_negative_values_in_twos_complement() -> None:
    for value in (0, 1, 12345, -1, -12345, 8_000_000, -8_000_000):
        hx, chip, _ = _pair(value)
        assert hx.read_raw() == value
        hx.is_ready()  # the chip takes the 25th pulse as the end of the read when DOUT is next looked at
        assert chip.protocol_errors == [] and chip.readings == 1


def test_saturates_at_the_24_bit_limits() -> None:
    hx, _, _ = _pair(1e9)
    assert hx.read_raw() == MAX_COUNTS
    hx, _, _ = _pair(-1e9)
    assert hx.read_raw() == MIN_COUNTS
    assert (
        to_signed(0x800000) == MIN_COUNTS and to_signed(0x7FFFFF) == MAX_COUNTS and to_signed(0xFFFFFF) == -1
    )


@pytest.mark.parametrize(("gain", "pulses", "expected"), [(128, 25, 4000), (64, 27, 2000), (32, 26, 250)])
def test_gain_selects_pulse_count_and_channel(gain: int, pulses: int, expected: int) -> None:
    hx, chip, _ = _pair(4000.0, channel_b=1000.0, gain=gain)
    writes: list[int] = []
    original = chip.write

    def spy(pin: int, level: int) -> None:
        if pin == 6:
            writes.append(level)
        original(pin, level)

    chip.write = spy  # type: ignore[method-assign]
    assert hx.read_raw() == expected  # channel A at 128 or 64, or channel B (x32/128)
    assert writes.count(1) == pulses
    assert chip.gain == gain and chip.channel == ("B" if gain == 32 else "A")
    assert chip.protocol_errors == []


def test_waits_for_data_ready_at_the_output_rate() -> None:
    hx, _, clock = _pair(7.0, rate=10)
    t0 = clock()
    assert hx.read_raw() == 7  # the first conversion comes after the 400 ms settling time
    assert clock() - t0 == pytest.approx(0.4, abs=0.01)
    hx.read_raw()
    assert clock() - t0 == pytest.approx(0.5, abs=0.01)  # then one every 100 ms at 10 samples/s


def test_times_out_with_a_clear_error_when_the_chip_never_answers() -> None:
    hx, _, _ = _pair(alive=False)
    with pytest.raises(HX711Timeout, match="DOUT GPIO 5, SCK GPIO 6.*check its power and wiring"):
        hx.read_raw(timeout_s=0.3)


def test_power_down_and_up_resets_the_gain_which_the_driver_restores() -> None:
    hx, chip, clock = _pair(4000.0, gain=64)
    assert hx.read_raw() == 2000
    hx.power_down()
    assert not chip.powered
    with pytest.raises(HX711Timeout):
        hx.read_raw(timeout_s=0.1)
    hx.power_up()
    assert chip.powered
    assert hx.read_raw() == 2000  # the reading after power-up already has gain 64 again
    assert chip.gain == 64
    assert chip.protocol_errors == []


def test_bad_settings_are_refused_with_the_fix() -> None:
    chip = SimulatedHX711(5, 6)
    with pytest.raises(HX711Error, match="use 128 or 64"):
        HX711(chip, 5, 6, gain=100)
    with pytest.raises(HX711Error, match="use 10 or 80"):
        HX711(chip, 5, 6, rate_hz=40)
    with pytest.raises(HX711Error, match="must differ"):
        HX711(chip, 5, 5)


def test_array_source_samples_chips_on_the_node_clock() -> None:
    clock = FakeClock(0.0)

    def ramp(i: int) -> Callable[[float], float]:
        return lambda t: 1000.0 * (i + 1) + t

    chips = [SimulatedHX711(5 + i, 20 + i, 80.0, channel_a=ramp(i), clock=clock) for i in range(2)]
    cells = [
        HX711(chip, 5 + i, 20 + i, rate_hz=80, clock=clock, sleep=clock.sleep) for i, chip in enumerate(chips)
    ]
    src = HX711ArraySource(
        ["a", "b"], cells, rate_hz=60.0, clock=lambda: 1e9, monotonic=clock, sleep=clock.sleep
    )
    src._thread.run = lambda: None  # type: ignore[method-assign]  # the test drives the reader itself
    batches = []
    src.read_batch(1)  # starts the clock
    for _ in range(5):
        src._stop.clear()
        for _ in range(3):  # a reader round between samples
            for i, cell in enumerate(cells):
                if cell.is_ready():
                    src._latest[i], src._at[i] = cell.read_raw(), clock()
                    src._fresh[i] += 1
            clock.sleep(1 / 240)
        batches.append(src.read_batch(1))
    values = np.concatenate([b.values for b in batches if b is not None], axis=1)
    assert not np.isnan(values[:, -1]).any()
    assert 1000 <= values[0, -1] < 1001 and 2000 <= values[1, -1] < 2001
