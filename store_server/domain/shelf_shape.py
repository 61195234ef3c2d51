"""How well a hypothesis (which items left or came back, from which plates) explains how each plate
of a shelf changed: the per-plate shape of a weight event.

A shelf's plates are mechanically coupled: a change of ``s`` on one plate shows as ``c * s`` on each
neighbour and ``s * (1 - c * neighbours)`` on itself, with ``c`` (5-25 %) a constant of each pair of
neighbouring plates; the shelf total is conserved. Items do not always stand where the planogram
puts them: an item of a one-plate product may stand across its plate and a neighbour (part of its
weight on the neighbour), and the items of a product on several plates stand on any of them.

Given each source (a product's signed mass and the plates it stands on), :func:`fit` finds the
couplings, the straddles and the split over a product's own plates that explain the observed changes
best (a small regularized least-squares problem, solved in turns: placement given coupling, coupling
given placement), and returns the misfit as a chi-square-like cost, with the priors' own costs: an
unusual coupling or a heavy straddle costs something. The total of a consistent hypothesis is
matched first (its scale is the weight term's business, not the shape's), so the cost measures where
the weight left, not how much.

Pure and deterministic; numpy for the few small linear solves.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

COUPLING_MEAN, COUPLING_SD = 0.15, 0.07  # per pair of neighbouring plates
COUPLING_RANGE = (0.0, 0.35)
STRADDLE_SD = 0.2  # items: how much of an item typically stands on a plate beside its own
STRADDLE_MAX = 0.5  # share of each item that may stand on the neighbour
PLATE_FLOOR_G = 3.0  # the detector's per-plate error beyond noise: levels, shares of weak segments
PLATE_REL = 0.05  # ... and relative to the plate's change (ringing, split neighbours)
HUBER_Z = 3.0
ROUNDS = 3
BLIND_SIGMA_G = 1e6


@dataclass(frozen=True)
class Source:
    """``mass_g`` signed like the change it makes (a pick is negative) standing on ``plates``
    (positions on the shelf, adjacent; empty: anywhere, a product foreign to the shelf), ``items`` of
    ``unit_g`` each."""

    mass_g: float
    plates: tuple[int, ...]
    items: int
    unit_g: float


@dataclass(frozen=True)
class ShapeFit:
    cost: float
    coupling: tuple[float, ...]
    expected: tuple[float, ...]  # per plate, the best explanation's changes


def _placements(n: int, src: Source) -> list[tuple[np.ndarray, float]]:
    """Directions the source's mass may move along (a unit vector over plates each, scaled by its
    mass) with the prior sd of each coefficient (in shares of the mass); the base placement first."""
    moves: list[tuple[np.ndarray, float]] = []
    own = [p for p in src.plates if 0 <= p < n]
    lo, hi = min(own), max(own)
    for p in own[1:]:  # the product's other plates: any split
        v = np.zeros(n)
        v[own[0]], v[p] = -1.0, 1.0
        moves.append((v, 10.0))
    share = STRADDLE_SD * src.unit_g * math.sqrt(src.items) / max(abs(src.mass_g), 1e-9)
    for edge, beside in ((lo, lo - 1), (hi, hi + 1)):
        if 0 <= beside < n:
            v = np.zeros(n)
            v[edge], v[beside] = -1.0, 1.0
            moves.append((v, share))
    return moves


def _couple(s: np.ndarray, c: np.ndarray) -> np.ndarray:
    o = s.copy()
    for k, ck in enumerate(c):
        flow = ck * (s[k] - s[k + 1])
        o[k] -= flow
        o[k + 1] += flow
    return o


def _bounded_ridge(
    a: np.ndarray, r: np.ndarray, sds: np.ndarray, bounds: Sequence[tuple[float, float]]
) -> np.ndarray:
    """argmin |a x - r|^2 + |x / sds|^2 within ``bounds``: a coefficient that leaves its bounds is
    held there and the others are solved again (two opposite moves, such as two items leaning
    towards each other, must not cancel out before one of them is clipped)."""
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    x = np.zeros(len(bounds))
    free = np.ones(len(bounds), dtype=bool)
    for _ in range(len(bounds) + 1):
        fixed = ~free
        rest = r - a[:, fixed] @ x[fixed] if fixed.any() else r
        af = a[:, free]
        x[free] = np.linalg.solve(af.T @ af + np.diag(1.0 / np.square(sds[free])), af.T @ rest)
        out = free & ((x < lo) | (x > hi))
        if not out.any():
            break
        x = np.clip(x, lo, hi)
        free &= ~out
        if not free.any():
            break
    return np.clip(x, lo, hi)


def fit(
    observed: Sequence[float], sources: Sequence[Source], noise_g: float, blind: Collection[int] = ()
) -> ShapeFit:
    """The cost of explaining ``observed`` (per plate of the shelf, in order) by ``sources``;
    ``blind`` plates could not be read (a dead cell): what they would have shown is left out."""
    obs = np.asarray(observed, dtype=float)
    n = obs.size
    seen = np.ones(n, dtype=bool)
    seen[[b for b in blind if 0 <= b < n]] = False
    base = np.zeros(n)
    dirs: list[np.ndarray] = []
    sds: list[float] = []
    bounds: list[tuple[float, float]] = []
    for src in sources:
        own = [p for p in src.plates if 0 <= p < n]
        if not own:
            raise ValueError("a source needs a plate on this shelf (place a foreign product on one)")
        base[own[0]] += src.mass_g
        for v, sd in _placements(n, src):
            straddle = sd < 10.0
            dirs.append(v * src.mass_g)
            sds.append(sd)
            bounds.append((0.0, STRADDLE_MAX if straddle else 1.0))
    total_o, total_s = (
        float(obs.sum()),
        float(_couple(base, np.full(max(0, n - 1), COUPLING_MEAN))[seen].sum()),
    )
    if total_s != 0.0 and total_o * total_s > 0 and all(src.mass_g * total_s > 0 for src in sources):
        scale = total_o / total_s
        base, dirs = base * scale, [d * scale for d in dirs]
    sigma = np.sqrt(PLATE_FLOOR_G**2 + 2.0 * noise_g**2 + (PLATE_REL * np.abs(obs)) ** 2)
    sigma[~seen] = BLIND_SIGMA_G  # whatever a blind plate would have read fits
    c = np.full(max(0, n - 1), COUPLING_MEAN)
    theta = np.zeros(len(dirs))
    for _ in range(ROUNDS):
        # Placement given the couplings: obs ~ couple(base) + sum theta_j couple(dir_j).
        if dirs:
            a = np.stack([_couple(d, c) for d in dirs], axis=1) / sigma[:, None]
            r = (obs - _couple(base, c)) / sigma
            theta = _bounded_ridge(a, r, np.asarray(sds), bounds)
        s = base + (np.stack(dirs, axis=1) @ theta if dirs else 0.0)
        if n > 1:
            # Couplings given the placement: obs - s ~ sum c_k (s_k - s_k+1) (e_k+1 - e_k).
            b = np.zeros((n, n - 1))
            for k in range(n - 1):
                b[k, k], b[k + 1, k] = -(s[k] - s[k + 1]), s[k] - s[k + 1]
            bw, rw = b / sigma[:, None], (obs - s) / sigma
            reg = np.eye(n - 1) / COUPLING_SD**2
            c = np.linalg.solve(bw.T @ bw + reg, bw.T @ rw + reg @ np.full(n - 1, COUPLING_MEAN))
            c = np.clip(c, *COUPLING_RANGE)
    s = base + (np.stack(dirs, axis=1) @ theta if dirs else 0.0)
    expected = _couple(s, c)
    z = np.abs(obs - expected) / sigma
    misfit = float(np.where(z <= HUBER_Z, z * z, HUBER_Z * (2 * z - HUBER_Z)).sum())
    prior = float(np.sum(np.square(theta / np.asarray(sds)))) if dirs else 0.0
    prior += float(np.sum(np.square((c - COUPLING_MEAN) / COUPLING_SD)))
    return ShapeFit(misfit + prior, tuple(float(x) for x in c), tuple(float(x) for x in expected))
