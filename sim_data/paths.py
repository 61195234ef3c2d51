"""Where shoppers can walk, and the way they walk from one point of the floor to another.

A shopper must never appear inside a gondola (the store server would treat such a track as broken
evidence), so the simulator plans on an occupancy grid built from ``StoreLayout.walkable`` with a body
clearance, then straightens the grid path (line-of-sight shortcuts) and rounds its corners so tracks
look like people rather than chess kings.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from store_server.domain.layout import StoreLayout

Point = tuple[float, float]
Knot = tuple[float, float, float]  # (t, x, y)
_SQRT2 = math.sqrt(2.0)
_STEPS = ((1, 0, 1.0), (-1, 0, 1.0), (0, 1, 1.0), (0, -1, 1.0),
          (1, 1, _SQRT2), (1, -1, _SQRT2), (-1, 1, _SQRT2), (-1, -1, _SQRT2))


@dataclass
class WalkGrid:
    """Boolean occupancy grid: ``free[i, j]`` is the cell whose centre is ((i+.5)c, (j+.5)c)."""

    layout: StoreLayout
    cell_m: float = 0.1
    clearance_m: float = 0.3
    free: np.ndarray = field(init=False, repr=False)
    _cache: dict[tuple[Point, Point], list[Point]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        w, d = self.layout.floor.width_m, self.layout.floor.depth_m
        nx, ny = int(round(w / self.cell_m)), int(round(d / self.cell_m))
        xs = (np.arange(nx) + 0.5) * self.cell_m
        ys = (np.arange(ny) + 0.5) * self.cell_m
        free = np.ones((nx, ny), dtype=bool)
        # Walls need the same body clearance as gondolas.
        free &= (xs[:, None] > self.clearance_m) & (xs[:, None] < w - self.clearance_m)
        free &= (ys[None, :] > self.clearance_m) & (ys[None, :] < d - self.clearance_m)
        for i, x in enumerate(xs):
            for j, y in enumerate(ys):
                if free[i, j] and not self.layout.walkable(float(x), float(y), self.clearance_m):
                    free[i, j] = False
        self.free = free

    # -- cells -------------------------------------------------------------------------------------
    def cell_of(self, p: Point) -> tuple[int, int]:
        nx, ny = self.free.shape
        i = min(max(int(p[0] / self.cell_m), 0), nx - 1)
        j = min(max(int(p[1] / self.cell_m), 0), ny - 1)
        return i, j

    def centre(self, c: tuple[int, int]) -> Point:
        return ((c[0] + 0.5) * self.cell_m, (c[1] + 0.5) * self.cell_m)

    def is_free(self, p: Point) -> bool:
        nx, ny = self.free.shape
        i, j = int(p[0] / self.cell_m), int(p[1] / self.cell_m)
        return 0 <= i < nx and 0 <= j < ny and bool(self.free[i, j])

    def nearest_free(self, p: Point) -> tuple[int, int]:
        """The free cell closest to ``p`` (a target just inside the clearance band still gets a path)."""
        c = self.cell_of(p)
        if self.free[c]:
            return c
        idx = np.argwhere(self.free)
        if not len(idx):
            raise ValueError("the store floor has no walkable cell; check the gondola positions")
        centres = (idx + 0.5) * self.cell_m
        k = int(np.argmin(np.hypot(centres[:, 0] - p[0], centres[:, 1] - p[1])))
        return int(idx[k, 0]), int(idx[k, 1])

    def line_free(self, a: Point, b: Point) -> bool:
        """True when every point of segment a-b lies in a free cell (sampled at a quarter cell)."""
        n = max(1, int(math.hypot(b[0] - a[0], b[1] - a[1]) / (self.cell_m / 4)))
        for k in range(n + 1):
            s = k / n
            if not self.is_free((a[0] + (b[0] - a[0]) * s, a[1] + (b[1] - a[1]) * s)):
                return False
        return True

    # -- search ------------------------------------------------------------------------------------
    def _astar(self, start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
        nx, ny = self.free.shape
        gx, gy = goal

        def h(c: tuple[int, int]) -> float:  # octile distance: admissible on an 8-connected grid
            dx, dy = abs(c[0] - gx), abs(c[1] - gy)
            return (dx + dy) + (_SQRT2 - 2) * min(dx, dy)

        best = {start: 0.0}
        parent: dict[tuple[int, int], tuple[int, int]] = {}
        heap = [(h(start), 0.0, start)]
        while heap:
            _, g, c = heapq.heappop(heap)
            if c == goal:
                path = [c]
                while c in parent:
                    c = parent[c]
                    path.append(c)
                return path[::-1]
            if g > best.get(c, math.inf):
                continue
            for di, dj, cost in _STEPS:
                n = (c[0] + di, c[1] + dj)
                if not (0 <= n[0] < nx and 0 <= n[1] < ny) or not self.free[n]:
                    continue
                if di and dj and not (self.free[c[0] + di, c[1]] and self.free[c[0], c[1] + dj]):
                    continue  # no cutting corners of an obstacle
                ng = g + cost
                if ng < best.get(n, math.inf):
                    best[n] = ng
                    parent[n] = c
                    heapq.heappush(heap, (ng + h(n), ng, n))
        raise ValueError(f"no walkable path from cell {start} to {goal}; the aisles may be too narrow")

    def path(self, a: Point, b: Point) -> list[Point]:
        """A natural-looking walkable polyline from ``a`` to ``b`` (both endpoints included)."""
        key = (a, b)
        if key not in self._cache:
            self._cache[key] = self._plan(a, b)
        return list(self._cache[key])

    def _plan(self, a: Point, b: Point) -> list[Point]:
        if math.hypot(b[0] - a[0], b[1] - a[1]) < 1e-9:
            return [a, b]
        if self.line_free(a, b):
            return [a, b]
        cells = self._astar(self.nearest_free(a), self.nearest_free(b))
        raw = [a] + [self.centre(c) for c in cells[1:-1]] + [b]
        return _round_corners(_string_pull(raw, self), self)


class Motion:
    """Ground-truth position of one shopper: piecewise-linear knots from appearance to disappearance.

    Knots rather than samples: exact at any time (camera ticks, event windows) and cheap to check.
    """

    def __init__(self, knots: list[Knot] | None = None) -> None:
        self.knots: list[Knot] = []
        for t, x, y in knots or []:
            self.add(t, (x, y))

    def add(self, t: float, p: Point) -> None:
        """Append a knot; one at the same time as the last replaces it (np.interp needs rising times)."""
        if self.knots and t <= self.knots[-1][0] + 1e-9:
            self.knots[-1] = (self.knots[-1][0], p[0], p[1])
        else:
            self.knots.append((t, p[0], p[1]))

    @property
    def t_in(self) -> float:
        return self.knots[0][0]

    @property
    def t_out(self) -> float:
        return self.knots[-1][0]

    def at(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = np.asarray(self.knots)
        present = (ts >= k[0, 0] - 1e-9) & (ts <= k[-1, 0] + 1e-9)
        return np.interp(ts, k[:, 0], k[:, 1]), np.interp(ts, k[:, 0], k[:, 2]), present



def walk_knots(start_t: float, path: list[Point], speed: float) -> tuple[list[Knot], float]:
    """Knots (t, x, y) for walking ``path`` at ``speed`` from ``start_t``; returns them and the arrival."""
    knots, t = [(start_t, path[0][0], path[0][1])], start_t
    for a, b in zip(path, path[1:], strict=False):
        d = math.hypot(b[0] - a[0], b[1] - a[1])
        if d > 1e-9:
            t += d / speed
            knots.append((t, b[0], b[1]))
    return knots, t


def stand_point(layout: StoreLayout, plate_id: str, offset_m: float = 0.0, out_m: float = 0.45) -> Point:
    """Where a shopper stands to reach ``plate_id``: ``out_m`` into the aisle from the plate's front."""
    plate = layout.plates[plate_id]
    g = next(g for g in layout.gondolas if g.id == plate.gondola_id)
    nx, ny = {"south": (0, -1), "north": (0, 1), "east": (1, 0), "west": (-1, 0)}[g.facing]
    along = (offset_m, 0.0) if g.axis == "x" else (0.0, offset_m)
    return (plate.x_m + nx * out_m + along[0], plate.y_m + ny * out_m + along[1])


def _string_pull(pts: list[Point], grid: WalkGrid) -> list[Point]:
    """Greedy line-of-sight shortcutting: keep a vertex only when the next ones are out of sight."""
    out = [pts[0]]
    i = 0
    while i < len(pts) - 1:
        j = len(pts) - 1
        while j > i + 1 and not grid.line_free(pts[i], pts[j]):
            j -= 1
        out.append(pts[j])
        i = j
    return out


def _round_corners(pts: list[Point], grid: WalkGrid, passes: int = 2) -> list[Point]:
    """Chaikin corner cutting, keeping the endpoints, and only where the cut stays walkable."""
    for _ in range(passes):
        if len(pts) < 3:
            return pts
        new = [pts[0]]
        for k in range(1, len(pts) - 1):
            p, c, n = pts[k - 1], pts[k], pts[k + 1]
            q = (0.75 * c[0] + 0.25 * p[0], 0.75 * c[1] + 0.25 * p[1])
            r = (0.75 * c[0] + 0.25 * n[0], 0.75 * c[1] + 0.25 * n[1])
            if grid.line_free(q, r) and grid.line_free(new[-1], q):
                new += [q, r]
            else:
                new.append(c)
        new.append(pts[-1])
        pts = new
    return pts


def path_length(pts: list[Point]) -> float:
    return sum(math.hypot(b[0] - a[0], b[1] - a[1]) for a, b in zip(pts, pts[1:], strict=False))
