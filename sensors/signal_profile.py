"""Signal profiles: every parameter of the simulated load-cell shelf, in one place.

A profile says how harsh the simulated shelves are. ``IDEAL`` is the gentle model the simulator
always had (its numbers unchanged, so old datasets re-make bit for bit); ``REALISTIC`` reproduces
what real shelves do, as measured on real recordings:

* per-plate noise of median 0.6 g, p90 2.4 g, at most 6 g; lone single-sample spikes of about
  +/-15 g; drift of a few grams per minute; 0.3-3 kg of base load, never re-zeroed;
* a hand presses 20-300 g on the plates it touches for 0.8-2.5 s, jittery; touches without any pick
  are common, most of them near where shoppers take things;
* mechanical coupling: 5-25 % of any change on one plate (weight or hand force) shows on each
  neighbouring plate of the same shelf, the shelf total conserved, and every weight step rings
  (3-8 Hz, 3-12 % of the step, decaying with a time constant of 0.2-0.8 s);
* physical items vary about +/-2 % around the catalogue weight, and an item may stand across two
  plates.

The shelf model (sensors.simulated) renders a shelf from a profile; the run builder
(sim_data.signal) turns ground-truth events into changes and touches with it. Ranges are
``(low, high)`` and drawn uniformly unless a field says otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Range = tuple[float, float]
Z90 = 1.2815515655446004  # the standard normal's 90th percentile


@dataclass(frozen=True)
class SignalProfile:
    """How simulated shelves behave. Units: grams, seconds, hertz; shares are fractions (0.1 = 10 %)."""

    name: str
    #: "gentle": the ideal model's waveforms, kept bit for bit (sin-shaped touches, no coupling,
    #: ringing or spikes). "physical": the realistic renderer (coupling, ringing, spikes, jittery
    #: hand pressure normalised to its drawn peak).
    waveform: Literal["gentle", "physical"]

    # --- sensor ---
    #: median over plates of each plate's white-noise standard deviation (g)
    noise_g: float
    #: log-space sd of the per-plate noise (lognormal across plates); 0: every plate reads noise_g
    noise_log_sd: float = 0.0
    #: clip of a plate's noise sd (g)
    noise_clip_g: Range = (0.0, math.inf)
    #: bound of each plate's linear drift in a simulated run (g/min): each plate draws in [-d, d]
    drift_g_per_min: float = 1.0
    #: load creep: after a change d, the plate keeps moving by creep * d (time constant 20 s)
    creep: float = 0.0005
    #: lone single-sample spikes, per plate and minute (Poisson)
    spikes_per_plate_min: float = 0.0
    #: a spike's size (g), either sign
    spike_g: Range = (10.0, 20.0)
    #: dead load on each plate besides its products (tray, fixture; never tared away) (g)
    tray_g: Range = (200.0, 600.0)

    # --- hands ---
    #: the hand's push during a pick or put-back: the peak the touched plate shows (g); the
    #: physical waveform draws it log-uniformly, the gentle one uniformly
    hand_force_g: Range = (30.0, 150.0)
    #: the hand's active segment (s); None: the event's own duration (t_end - t_start, at least 0.2 s)
    hand_duration_s: Range | None = None
    #: relative jitter of the push (sd of the band-limited noise multiplying it)
    hand_jitter: float = 0.6
    #: upper frequency of the jitter (Hz)
    hand_jitter_hz: float = 6.0
    #: touches without a pick: peak push (g) and duration (s)
    touch_force_g: Range = (10.0, 200.0)
    touch_duration_s: Range = (0.1, 0.5)
    #: background touches anywhere, per plate and minute (Poisson)
    touches_per_plate_min: float = 0.3
    #: browsing: touches per pick or put-back (Poisson), on the same shelf, before or after it
    browse_touches_per_event: float = 0.0
    #: browsing touch's distance in time from the pick's hand segment (s)
    browse_gap_s: Range = (0.3, 5.0)
    #: share of browsing touches on the pick's own plate; the rest land on a plate next to it
    browse_same_plate: float = 0.5

    # --- mechanics (drawn per shelf, fixed for a run) ---
    #: share of a change on plate i that shows on a neighbouring plate j, per neighbouring pair
    coupling: Range = (0.0, 0.0)
    #: ringing after each weight step: frequency (Hz, per shelf), time constant (s, per shelf),
    #: amplitude as a share of the step (per step)
    ring_hz: Range = (3.0, 8.0)
    ring_tau_s: Range = (0.2, 0.8)
    ring_share: Range = (0.0, 0.0)

    # --- items ---
    #: unit-weight sd of a physical item, relative to the catalogue weight, at least (the product's
    #: own weight_std_g counts when larger); 0: the event-level weight is used as it is
    item_rel_sd: float = 0.0
    #: an item's weight is clipped at this many sd from the catalogue weight
    item_clip_sd: float = 2.5
    #: share of items of a one-plate product standing across its plate and a neighbour
    straddle_share: float = 0.0
    #: share of such an item's weight on the neighbouring plate
    straddle_fraction: Range = (0.1, 0.5)
    #: share of items of a product on several plates standing across two of its plates (the rest
    #: stand on the plate the event names); the split between the two is uneven, drawn in
    #: straddle_fraction's complement too
    multi_straddle_share: float = 0.0

    @property
    def realistic_items(self) -> bool:
        return self.item_rel_sd > 0.0


@dataclass(frozen=True)
class ShelfMechanics:
    """The drawn constants of one shelf under a profile: fixed for a run, however long."""

    noise_g: tuple[float, ...]  # per plate
    coupling: tuple[float, ...]  # per neighbouring pair (i, i + 1)
    ring_hz: float
    ring_tau_s: float

    def matrix(self) -> np.ndarray:
        """C with observed = C @ source: column i spreads plate i's change, and each column sums to 1."""
        n = len(self.noise_g)
        c = np.eye(n)
        for i, share in enumerate(self.coupling):
            c[i + 1, i] += share
            c[i, i + 1] += share
            c[i, i] -= share
            c[i + 1, i + 1] -= share
        return c


def draw_noise(profile: SignalProfile, rng: np.random.Generator, count: int) -> np.ndarray:
    """Per-plate noise sd: lognormal around the median, clipped (constant when noise_log_sd is 0)."""
    if profile.noise_log_sd <= 0.0:
        return np.full(count, profile.noise_g)
    raw = profile.noise_g * np.exp(profile.noise_log_sd * rng.standard_normal(count))
    return np.clip(raw, *profile.noise_clip_g)


def draw_mechanics(profile: SignalProfile, rng: np.random.Generator, count: int) -> ShelfMechanics:
    """Draw one shelf's noise, coupling and ringing constants."""
    noise = draw_noise(profile, rng, count)
    coupling = rng.uniform(*profile.coupling, max(0, count - 1))
    return ShelfMechanics(
        tuple(float(v) for v in noise),
        tuple(float(v) for v in coupling),
        float(rng.uniform(*profile.ring_hz)),
        float(rng.uniform(*profile.ring_tau_s)),
    )


def log_uniform(rng: np.random.Generator, bounds: Range, size: int | None = None) -> np.ndarray:
    lo, hi = bounds
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size))


IDEAL = SignalProfile(
    name="ideal",
    waveform="gentle",
    noise_g=0.5,
    drift_g_per_min=1.0,
)

REALISTIC = SignalProfile(
    name="realistic",
    waveform="physical",
    noise_g=0.6,
    noise_log_sd=math.log(2.4 / 0.6) / Z90,  # p90 = 2.4 g
    noise_clip_g=(0.15, 6.0),
    drift_g_per_min=3.0,
    creep=0.0005,
    spikes_per_plate_min=0.5,
    spike_g=(10.0, 20.0),
    tray_g=(300.0, 3000.0),
    hand_force_g=(20.0, 300.0),
    hand_duration_s=(0.8, 2.5),
    hand_jitter=0.35,
    touch_force_g=(20.0, 300.0),
    touch_duration_s=(0.8, 2.5),
    touches_per_plate_min=0.5,
    browse_touches_per_event=1.5,
    coupling=(0.05, 0.25),
    ring_hz=(3.0, 8.0),
    ring_tau_s=(0.2, 0.8),
    ring_share=(0.03, 0.12),
    item_rel_sd=0.01,
    item_clip_sd=2.5,
    straddle_share=0.25,
    straddle_fraction=(0.1, 0.5),
    multi_straddle_share=0.35,
)

PROFILES: dict[str, SignalProfile] = {p.name: p for p in (REALISTIC, IDEAL)}


def get_profile(name: str) -> SignalProfile:
    """The profile called ``name``; a ValueError names the choices otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown signal profile {name!r}; expected one of {', '.join(PROFILES)}"
        ) from None
