"""The load-cell signal model: what the plates of a shelf read while shoppers take and put back.

Everything that simulates a load cell uses :func:`synthesize_shelf`: signal-level datasets
(sim_data.signal), the simulated edge-node source (sensors.simulated_source), the detector tests
and the benchmark. The model, per plate, in grams:

* a baseline (the products standing on it) plus slow linear drift and load creep;
* Gaussian sensor noise;
* a pick or put-back (:class:`Change`) is an active segment of 0.5-1.5 s: the hand presses with a
  band-limited, jittery force, the item leaves (or arrives) somewhere in the middle with a short
  ramp, and the plate settles at a new level. An item standing on several plates changes all of
  them with one shared hand motion, each plate taking its share of the weight and of the force;
* touches (:class:`Touch`): short pushes that return to the level, no weight change;
* sensor faults: dead plates (a constant value), dropouts (a missed conversion repeats the previous
  value) and single-sample spikes.

That is the gentle model of the ``ideal`` profile (sensors.signal_profile), kept bit for bit. With a
``physical`` profile (``realistic``) the shelf also couples: every change on a plate, weight or
hand force, shows partly on its neighbours with the shelf total conserved, each weight step rings,
plates draw their own noise level, lone spikes appear, and the hand's push is jittery with a drawn
peak (sensors.simulated_physical renders it). ``plate_ids`` are in shelf order: consecutive plates
are neighbours.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from sensors.signal_profile import IDEAL, ShelfMechanics, SignalProfile

HAND_FORCE_G = IDEAL.hand_force_g  # the ideal profile's range of the hand's push during a pick
TOUCH_FORCE_G = IDEAL.touch_force_g
CREEP_TAU_S = 20.0


@dataclass(frozen=True)
class Change:
    """A pick (negative) or put-back (positive): the hand reaches the shelf at ``t`` for ``duration_s``.

    ``deltas`` maps plate id (or index) to grams; an item on two plates has two entries.
    """

    t: float
    deltas: Mapping[str | int, float]
    duration_s: float = 1.0
    force_g: float | None = None  # hand force amplitude; None: drawn from the profile's hand_force_g


@dataclass(frozen=True)
class Touch:
    """A push on a plate that returns to its level (a shopper's hand resting on the shelf edge)."""

    t: float
    plate: str | int
    duration_s: float = 0.25
    force_g: float = 60.0


@dataclass
class Faults:
    dead: Mapping[str | int, float] = field(default_factory=dict)  # plate -> the constant it reads
    dropout: float = 0.0  # share of samples that repeat the previous value
    spikes_per_min: float = 0.0  # single-sample spikes per plate and minute


PerPlate = float | Sequence[float] | np.ndarray
ChangeLike = Change | tuple[float, Mapping[str | int, float], float]


def _index(plate_ids: Sequence[str], key: str | int) -> int:
    if isinstance(key, int):
        return key
    try:
        return plate_ids.index(key)
    except ValueError:
        raise ValueError(f"plate {key!r} is not one of {list(plate_ids)}") from None


def _per_plate(value: float | Sequence[float] | np.ndarray | None, n: int, default: np.ndarray) -> np.ndarray:
    if value is None:
        return default
    arr = np.asarray(value, dtype=float)
    return np.full(n, float(arr)) if arr.ndim == 0 else arr.astype(float).copy()


def _smooth_noise(rng: np.random.Generator, m: int, rate_hz: float, cutoff_hz: float = 6.0) -> np.ndarray:
    """Unit-variance noise low-passed by a moving average (the hand's tremor and pushes)."""
    k = max(1, int(rate_hz / cutoff_hz))
    raw = rng.normal(0.0, 1.0, m + k)
    out = np.convolve(raw, np.ones(k) / k, mode="valid")[:m]
    sd = float(out.std())
    return out / sd if sd > 1e-9 else out


def synthesize_shelf(
    plate_ids: Sequence[str],
    rate_hz: float,
    t_start: float,
    t_end: float,
    changes: Sequence[ChangeLike],
    rng: np.random.Generator,
    noise_g: PerPlate | None = None,
    drift_g_per_min: PerPlate = 0.5,
    touches: int | Sequence[Touch] = 0,
    baseline_g: PerPlate | None = None,
    creep: float = 0.0005,
    faults: Faults | None = None,
    profile: SignalProfile = IDEAL,
    mechanics: ShelfMechanics | None = None,
) -> tuple[float, np.ndarray]:
    """Samples of every plate at ``t_start + j / rate_hz`` for ``t_start <= t < t_end``.

    A scalar ``drift_g_per_min`` is a bound: each plate drifts at its own rate drawn in [-d, d].
    ``touches`` is a list of touches or a number of random ones (shaped by the profile).
    ``noise_g`` (per plate or one for all) defaults to the profile's: 0.5 g for ``ideal``, one level
    per plate from ``mechanics`` for a physical profile. ``mechanics`` (coupling, ringing, noise of
    this shelf) is drawn from ``rng`` when not given; pass it to keep a shelf the same across calls.
    Returns ``(t0, grams[plates, n])``.
    """
    t0, x, _ = synthesize_with_levels(
        plate_ids,
        rate_hz,
        t_start,
        t_end,
        changes,
        rng,
        noise_g,
        drift_g_per_min,
        touches,
        baseline_g,
        creep,
        faults,
        profile,
        mechanics,
    )
    return t0, x


def synthesize_with_levels(
    plate_ids: Sequence[str],
    rate_hz: float,
    t_start: float,
    t_end: float,
    changes: Sequence[ChangeLike],
    rng: np.random.Generator,
    noise_g: PerPlate | None = None,
    drift_g_per_min: PerPlate = 0.5,
    touches: int | Sequence[Touch] = 0,
    baseline_g: PerPlate | None = None,
    creep: float = 0.0005,
    faults: Faults | None = None,
    profile: SignalProfile = IDEAL,
    mechanics: ShelfMechanics | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """:func:`synthesize_shelf` plus each plate's noise-free level just after the end (to continue)."""
    plates = list(plate_ids)
    p_count = len(plates)
    n = max(0, int(math.floor((t_end - t_start) * rate_hz + 1e-9)))
    t = np.arange(n) / rate_hz  # relative to t_start
    base = _per_plate(baseline_g, p_count, rng.uniform(300.0, 3000.0, p_count))
    if np.ndim(drift_g_per_min) == 0:
        bound = float(drift_g_per_min)  # type: ignore[arg-type]
        drift = rng.uniform(-bound, bound, p_count) if bound else np.zeros(p_count)
    else:
        drift = np.asarray(drift_g_per_min, dtype=float)
    x = base[:, None] + drift[:, None] / 60.0 * t[None, :]
    levels = base + drift / 60.0 * (n / rate_hz)
    change_list = [raw if isinstance(raw, Change) else Change(raw[0], raw[1], raw[2]) for raw in changes]
    if profile.waveform == "physical":
        from sensors.simulated_physical import render_physical

        render_physical(
            x, levels, plates, rate_hz, t_start, t_end, change_list, rng, noise_g, touches, creep, profile,
            mechanics,
        )
        if faults is not None:
            _apply_faults(x, plates, faults, rate_hz, rng)
        return t_start, x, levels
    for c in change_list:
        _apply_change(x, plates, c, t_start, rate_hz, rng, creep, levels)
    touch_list = (
        random_touches(rng, p_count, t_start, t_end, touches, profile)
        if isinstance(touches, int)
        else touches
    )
    for touch in touch_list:
        i0 = int(math.ceil((touch.t - t_start) * rate_hz))
        m = int(touch.duration_s * rate_hz)
        lo, hi = max(0, i0), min(n, i0 + m)
        if hi > lo:
            tau = (np.arange(lo, hi) - i0) / max(1, m)
            x[_index(plates, touch.plate), lo:hi] += touch.force_g * np.sin(np.pi * tau) ** 2
    sigma = _per_plate(noise_g, p_count, np.full(p_count, profile.noise_g))
    x += rng.normal(0.0, 1.0, x.shape) * sigma[:, None]
    if faults is not None:
        _apply_faults(x, plates, faults, rate_hz, rng)
    return t_start, x, levels


def _apply_change(
    x: np.ndarray,
    plates: list[str],
    c: Change,
    t_start: float,
    rate_hz: float,
    rng: np.random.Generator,
    creep: float,
    levels: np.ndarray,
) -> None:
    n = x.shape[1]
    i0 = int(math.ceil((c.t - t_start) * rate_hz))
    m = max(2, int(round(c.duration_s * rate_hz)))
    total = sum(abs(d) for d in c.deltas.values()) or 1.0
    tau = np.arange(m) / m
    envelope = np.sin(np.pi * tau) ** 0.7
    amp = c.force_g if c.force_g is not None else float(rng.uniform(*IDEAL.hand_force_g))
    force = amp * envelope * np.clip(1.0 + 0.6 * _smooth_noise(rng, m, rate_hz), -0.2, None)
    lift_at = float(rng.uniform(0.3, 0.7))
    width = float(rng.uniform(0.1, 0.25)) / c.duration_s
    step = np.clip((tau - lift_at) / width + 0.5, 0.0, 1.0)
    step = step * step * (3 - 2 * step)  # smoothstep: the item leaves the plate in ~0.1-0.25 s
    lo, hi = max(0, i0), min(n, i0 + m)
    after = max(0, min(n, i0 + m))
    t_after = (np.arange(after, n) - (i0 + m)) / rate_hz
    settle = 1.0 - np.exp(-t_after / CREEP_TAU_S)
    for key, d in c.deltas.items():
        p = _index(plates, key)
        if hi > lo:
            x[p, lo:hi] += (d * step + abs(d) / total * force)[lo - i0 : hi - i0]
        x[p, after:] += d + creep * d * settle
        levels[p] += d + creep * d * (1.0 - math.exp(-max(0.0, (n - i0 - m) / rate_hz) / CREEP_TAU_S))


def random_touches(
    rng: np.random.Generator,
    p_count: int,
    t_start: float,
    t_end: float,
    count: int,
    profile: SignalProfile = IDEAL,
) -> list[Touch]:
    """``count`` touches anywhere on the shelf: duration and force from the profile's touch ranges."""
    physical = profile.waveform == "physical"
    latest = t_end - (profile.touch_duration_s[1] + 0.1)  # ideal: t_end - 0.6 exactly
    out = []
    for _ in range(count):
        t = float(rng.uniform(t_start, max(t_start, latest)))
        plate = int(rng.integers(p_count))
        duration = float(rng.uniform(*profile.touch_duration_s))
        if physical:
            force = float(np.exp(rng.uniform(*np.log(profile.touch_force_g))))  # mostly light touches
        else:
            force = float(rng.uniform(*profile.touch_force_g))
        out.append(Touch(t, plate, duration, force))
    return out


def _apply_faults(
    x: np.ndarray, plates: list[str], faults: Faults, rate_hz: float, rng: np.random.Generator
) -> None:
    p_count, n = x.shape
    if faults.spikes_per_min > 0 and n:
        count = rng.poisson(faults.spikes_per_min * n / rate_hz / 60.0, p_count)
        for p in range(p_count):
            where = rng.integers(0, n, count[p])
            x[p, where] += rng.choice([-1.0, 1.0], count[p]) * rng.uniform(5.0, 50.0, count[p])
    if faults.dropout > 0 and n > 1:
        held = rng.random(x.shape) < faults.dropout
        held[:, 0] = False
        idx = np.where(held, 0, np.arange(n)[None, :])
        np.maximum.accumulate(idx, axis=1, out=idx)
        x[:] = np.take_along_axis(x, idx, axis=1)
    for key, value in faults.dead.items():
        x[_index(plates, key), :] = value
