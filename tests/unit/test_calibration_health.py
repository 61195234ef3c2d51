"""Calibration (tare, known weight, zero tracking, drift) and load-cell health."""

from __future__ import annotations

import numpy as np
import pytest

from sensors.calibration import (
    CalibrationError,
    DriftTracker,
    PlateCalibration,
    ZeroTracker,
    apply_calibration,
    calibrate,
    scale_from_known,
    tare,
)
from sensors.health import DEGRADED, FAILED, OK, HealthMonitor, HealthParams
from sensors.hx711 import MAX_COUNTS, MIN_COUNTS

RNG = np.random.default_rng(5)


def test_tare_and_known_weight_give_offset_and_scale() -> None:
    offset, per_gram = 84_213.0, 431.7  # counts at zero, counts per gram
    empty = offset + RNG.normal(0, 30, 200)
    loaded = offset + 500.0 * per_gram + RNG.normal(0, 30, 200)
    cal = calibrate(empty, loaded, known_g=500.0)
    assert cal.offset_counts == pytest.approx(offset, abs=10)
    assert 1 / cal.grams_per_count == pytest.approx(per_gram, rel=1e-3)
    grams = apply_calibration(np.array([[offset + 1234.5 * per_gram, np.nan]]), [cal])
    assert grams[0, 0] == pytest.approx(1234.5, abs=0.2) and np.isnan(grams[0, 1])


def test_calibration_refuses_what_it_cannot_trust() -> None:
    with pytest.raises(CalibrationError, match="not at rest"):
        tare(RNG.normal(0, 500, 100), max_std=50)
    with pytest.raises(CalibrationError, match="moved by only"):
        scale_from_known(RNG.normal(0, 30, 100), 0.0, 500.0)
    with pytest.raises(CalibrationError, match="positive"):
        scale_from_known(np.ones(10), 0.0, -5.0)
    with pytest.raises(CalibrationError, match="at least 5"):
        tare([1.0, np.nan])


def test_zero_tracking_pulls_an_empty_stable_plate_to_zero_at_a_limited_rate() -> None:
    zt = ZeroTracker(3, band_g=5.0, rate_g_per_s=0.5)
    stable = np.array([True, True, False])
    for _ in range(50):  # 10 s of 0.2 s batches
        out = zt.correct(np.array([[3.0] * 12, [800.0] * 12, [3.0] * 12]), stable, 0.2)
    assert out[0].mean() == pytest.approx(0.0, abs=0.11)  # empty and stable: re-zeroed
    assert out[1].mean() == 800.0  # loaded: never zeroed
    assert out[2].mean() == 3.0  # not stable (in an event): left alone
    zt2 = ZeroTracker(1, rate_g_per_s=0.5)
    zt2.correct(np.full((1, 12), 4.0), np.array([True]), 0.2)
    assert zt2.zero[0] == pytest.approx(0.1)  # at most rate x dt per batch


def test_drift_tracker_separates_drift_from_events() -> None:
    dt = DriftTracker(1)
    dt.update(np.full((1, 12), 1000.0), np.array([True]))
    dt.on_event(0, -350.0)
    assert dt.update(np.full((1, 12), 652.0), np.array([True]))[0] == pytest.approx(2.0)
    assert dt.update(np.full((1, 12), 0.0), np.array([False]))[0] == pytest.approx(2.0)  # active: unchanged


def _monitor(**kw: float) -> HealthMonitor:
    return HealthMonitor(
        ["a", "b", "c", "d"],
        60.0,
        capacity_g=10_000.0,
        params=HealthParams(**kw),
        adc_limits=(MIN_COUNTS, MAX_COUNTS),
    )


def _feed(mon: HealthMonitor, seconds: float, make: object) -> list[str]:
    log = []
    for k in range(int(seconds * 5)):
        raw = make(k)  # type: ignore[operator]
        log += [f"{c.plate}:{c.new}" for c in mon.update(raw, raw, 60.0)]
    return log


def test_health_reports_dead_stuck_out_of_range_and_recovers() -> None:
    mon = _monitor(dead_after_s=1.0, stuck_after_s=3.0)

    def make(k: int) -> np.ndarray:
        raw = 1000.0 + RNG.normal(0, 0.5, (4, 12))
        raw[1] = np.nan  # dead: no reading
        raw[2] = 1234.0  # stuck: the same value forever
        if k < 10:
            raw[3, :] = 12_000.0 + RNG.normal(0, 0.5, 12)  # over capacity for 2 s, then fine
        return raw

    log = _feed(mon, 6.0, make)
    assert mon.states() == {"a": OK, "b": FAILED, "c": FAILED, "d": OK}
    assert "d:degraded" in log and "d:ok" in log  # reported, then recovered
    reasons = mon.reasons()
    assert reasons["b"].startswith("dead") and reasons["c"].startswith("stuck")
    assert mon.worst() == FAILED


def test_health_reports_a_saturated_adc_and_a_sample_rate_drop() -> None:
    mon = _monitor(rate_window_s=2.0)

    def make(k: int) -> np.ndarray:
        raw = RNG.normal(0, 0.5, (4, 12))
        raw[0, 3] = MAX_COUNTS
        raw[1, ::2] = raw[1, 1::2]  # every other sample a repeat: 30 new readings/s of 60
        return raw

    _feed(mon, 8.0, make)
    states, reasons = mon.states(), mon.reasons()
    assert states["a"] == FAILED and "saturated" in reasons["a"]
    assert states["b"] == DEGRADED and reasons["b"].startswith("slow")
    assert states["c"] == OK and states["d"] == OK


def test_plate_calibration_to_grams() -> None:
    assert PlateCalibration(100.0, 0.5).to_grams(300.0) == pytest.approx(100.0)
