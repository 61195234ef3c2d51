"""The physical shelf renderer: what a real shelf's plates read (the ``realistic`` profile's waveforms).

Everything that moves a plate is first drawn as a *source* change on the plate it happens on (the
item's weight step, its ringing, the hand's push), then spread over the shelf by the coupling
matrix of :class:`sensors.signal_profile.ShelfMechanics`: plate i keeps ``1 - sum(c_ij)`` of its own
change and each neighbour j sees ``c_ij``, so the shelf total is what really changed. Sensor
effects that are electrical (white noise at each plate's own level, lone spikes) are added after
the coupling, to each plate alone. sensors.simulated calls :func:`render_physical` for profiles whose
``waveform`` is ``"physical"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sensors.signal_profile import ShelfMechanics, SignalProfile, draw_mechanics, log_uniform
from sensors.simulated import (
    CREEP_TAU_S,
    Change,
    PerPlate,
    Touch,
    _index,
    _per_plate,
    _smooth_noise,
    random_touches,
)

RING_SPAN_TAU = 6.0  # ringing is drawn for this many time constants (then below 0.3 % of its peak)


def render_physical(
    x: np.ndarray,
    levels: np.ndarray,
    plates: list[str],
    rate_hz: float,
    t_start: float,
    t_end: float,
    changes: Sequence[Change],
    rng: np.random.Generator,
    noise_g: PerPlate | None,
    touches: int | Sequence[Touch],
    creep: float,
    profile: SignalProfile,
    mechanics: ShelfMechanics | None,
) -> None:
    """Add changes, touches, coupling, ringing, noise and spikes to ``x`` (baseline + drift) in place."""
    p_count, n = x.shape
    mech = mechanics if mechanics is not None else draw_mechanics(profile, rng, p_count)
    if len(mech.noise_g) != p_count or len(mech.coupling) != max(0, p_count - 1):
        raise ValueError(f"mechanics are for {len(mech.noise_g)} plates, the shelf has {p_count}")
    coupling = mech.matrix()
    # A push is drawn as the peak the touched plate shows, so its source is larger by what the
    # plate passes on to its neighbours.
    gain = 1.0 / np.diag(coupling)
    source = np.zeros_like(x)
    settled = np.zeros(p_count)
    for c in changes:
        _change(source, settled, plates, c, t_start, rate_hz, rng, creep, profile, mech, gain)
    if isinstance(touches, int):
        touch_list: Sequence[Touch] = random_touches(rng, p_count, t_start, t_end, touches, profile)
    else:
        touch_list = touches
    for touch in touch_list:
        i0 = int(math.ceil((touch.t - t_start) * rate_hz))
        m = max(2, int(touch.duration_s * rate_hz))
        lo, hi = max(0, i0), min(n, i0 + m)
        if hi > lo:
            p = _index(plates, touch.plate)
            source[p, lo:hi] += gain[p] * push(rng, m, rate_hz, touch.force_g, profile)[lo - i0 : hi - i0]
    x += coupling @ source
    levels += coupling @ settled
    sigma = _per_plate(noise_g, p_count, np.asarray(mech.noise_g, dtype=float))
    x += rng.normal(0.0, 1.0, x.shape) * sigma[:, None]
    if profile.spikes_per_plate_min > 0 and n:
        count = rng.poisson(profile.spikes_per_plate_min * n / rate_hz / 60.0, p_count)
        for p in range(p_count):
            where = rng.integers(0, n, count[p])
            x[p, where] += rng.choice([-1.0, 1.0], count[p]) * rng.uniform(*profile.spike_g, count[p])


def push(
    rng: np.random.Generator, m: int, rate_hz: float, peak_g: float, profile: SignalProfile
) -> np.ndarray:
    """A hand's push over ``m`` samples: rises and falls, jittery, and peaks at exactly ``peak_g``."""
    tau = np.arange(m) / m
    envelope = np.sin(np.pi * tau) ** 0.7
    jitter = 1.0 + profile.hand_jitter * _smooth_noise(rng, m, rate_hz, profile.hand_jitter_hz)
    shape = envelope * np.clip(jitter, 0.0, None)
    top = float(shape.max())
    return peak_g * shape / top if top > 0 else shape


def ringing(k: np.ndarray, rate_hz: float, mech: ShelfMechanics) -> np.ndarray:
    """The shelf's damped sine after a step (k = samples since the step), normalised to a peak of 1."""
    t = k / rate_hz
    wave = np.exp(-t / mech.ring_tau_s) * np.sin(2.0 * np.pi * mech.ring_hz * t)
    # The first crest is the largest: its time in closed form.
    w = 2.0 * np.pi * mech.ring_hz
    t_peak = math.atan(w * mech.ring_tau_s) / w
    top = math.exp(-t_peak / mech.ring_tau_s) * math.sin(w * t_peak)
    return wave / top


def _change(
    source: np.ndarray,
    settled: np.ndarray,
    plates: list[str],
    c: Change,
    t_start: float,
    rate_hz: float,
    rng: np.random.Generator,
    creep: float,
    profile: SignalProfile,
    mech: ShelfMechanics,
    gain: np.ndarray,
) -> None:
    n = source.shape[1]
    i0 = int(math.ceil((c.t - t_start) * rate_hz))
    m = max(2, int(round(c.duration_s * rate_hz)))
    total = sum(abs(d) for d in c.deltas.values()) or 1.0
    amp = c.force_g if c.force_g is not None else float(log_uniform(rng, profile.hand_force_g))
    force = push(rng, m, rate_hz, amp, profile)
    tau = np.arange(m) / m
    lift_at = float(rng.uniform(0.3, 0.7))
    width = float(rng.uniform(0.1, 0.25)) / c.duration_s
    step = np.clip((tau - lift_at) / width + 0.5, 0.0, 1.0)
    step = step * step * (3 - 2 * step)  # the item leaves the plate in ~0.1-0.25 s
    ring_share = float(rng.uniform(*profile.ring_share))
    ring_at = i0 + int(round((lift_at + width / 2) * m))  # the step is complete: the shelf rings
    ring_lo, ring_hi = max(0, ring_at), min(n, ring_at + int(RING_SPAN_TAU * mech.ring_tau_s * rate_hz) + 1)
    ring = ringing(np.arange(ring_lo, ring_hi) - ring_at, rate_hz, mech) if ring_hi > ring_lo else None
    lo, hi = max(0, i0), min(n, i0 + m)
    after = max(0, min(n, i0 + m))
    t_after = (np.arange(after, n) - (i0 + m)) / rate_hz
    settle = 1.0 - np.exp(-t_after / CREEP_TAU_S)
    rest = 1.0 - math.exp(-max(0.0, (n - i0 - m) / rate_hz) / CREEP_TAU_S)
    for key, d in c.deltas.items():
        p = _index(plates, key)
        if hi > lo:
            source[p, lo:hi] += (d * step + gain[p] * abs(d) / total * force)[lo - i0 : hi - i0]
        source[p, after:] += d + creep * d * settle
        if ring is not None:
            source[p, ring_lo:ring_hi] += ring_share * d * ring
        settled[p] += d + creep * d * rest
