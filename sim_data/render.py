"""Camera frames from the simulator: ceiling videos of a run and a labelled YOLO training set.

The ceiling camera looks straight down; its calibration (``Camera.homography``, image -> floor) is
inverted to draw the floor, the gondolas and the shoppers in pixels. Shoppers are top views of people
(shoulders, arms, head, a soft shadow) in varied colours and sizes, under slowly changing light with
sensor noise. Shelf views (``render_training_set``) show products of a handful of shape/colour
families on shelves, with varied light, scale and occlusion by arms. Everything derives from the
``rng`` passed in, so a video or a training set can be re-made bit for bit.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from store_server.domain.layout import Camera, StoreLayout

logger = logging.getLogger(__name__)

PERSON = "person"
# Product families a shelf camera can tell apart by shape and colour (docs: models/MODEL_CARD.md).
PRODUCTS: tuple[str, ...] = (
    "can-red",
    "can-silver",
    "bottle-clear",
    "bottle-green",
    "carton",
    "cereal-box",
    "tub",
    "snack-bag",
)
CLASSES: tuple[str, ...] = (PERSON, *PRODUCTS)
_SHAPE = {
    "can-red": (0.066, 0.12),
    "can-silver": (0.066, 0.12),
    "bottle-clear": (0.08, 0.30),
    "bottle-green": (0.075, 0.26),
    "carton": (0.095, 0.24),
    "cereal-box": (0.20, 0.28),
    "tub": (0.095, 0.07),
    "snack-bag": (0.18, 0.25),
}  # width, height in metres
_COLOUR = {
    "can-red": (40, 30, 200),
    "can-silver": (190, 190, 185),
    "bottle-clear": (225, 205, 160),
    "bottle-green": (50, 140, 40),
    "carton": (235, 235, 240),
    "cereal-box": (30, 170, 235),
    "tub": (245, 245, 250),
    "snack-bag": (0, 200, 240),
}  # BGR base colours
Track = tuple[np.ndarray, np.ndarray]  # times (n,), floor xy (n, 2)


def floor_to_image(camera: Camera) -> np.ndarray:
    """The inverse calibration: floor metres -> image pixels (3x3)."""
    return np.linalg.inv(np.asarray(camera.homography, dtype=np.float64))


def project(h_inv: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.column_stack([pts, np.ones(len(pts))]) @ h_inv.T
    return p[:, :2] / p[:, 2:3]


def _px_per_m(camera: Camera) -> float:
    h_inv = floor_to_image(camera)
    a, b = project(h_inv, np.array([[0.0, 0.0], [1.0, 0.0]]))
    return float(np.hypot(*(b - a)))


def draw_floor(layout: StoreLayout, camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """The empty store seen from the ceiling: tiled floor, gondolas (top view), gate zones."""
    w, h = camera.image_size
    h_inv = floor_to_image(camera)
    base = rng.integers(150, 215, 3)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = base
    tile = max(6, int(0.6 * _px_per_m(camera)))
    img[::tile, :] = np.clip(base - 25, 0, 255)
    img[:, ::tile] = np.clip(base - 25, 0, 255)
    for gate in layout.gates:
        z = gate.zone
        poly = project(
            h_inv, np.array([[z.x_min, z.y_min], [z.x_max, z.y_min], [z.x_max, z.y_max], [z.x_min, z.y_max]])
        )
        colour = (60, 160, 60) if gate.direction == "entry" else (60, 60, 170)
        cv2.polylines(img, [poly.round().astype(np.int32)], True, colour, 2)
    for g in layout.gondolas:
        x0, y0, x1, y1 = g.footprint()
        poly = project(h_inv, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])).round().astype(np.int32)
        cv2.fillPoly(img, [poly], tuple(int(c) for c in rng.integers(50, 90, 3)))
        n = 12
        for i in range(n):  # products on the top shelf, seen from above
            fx = (i + 0.5) / n
            cx, cy = (
                (x0 + fx * (x1 - x0), (y0 + y1) / 2)
                if g.axis == "x"
                else ((x0 + x1) / 2, y0 + fx * (y1 - y0))
            )
            u, v = project(h_inv, np.array([[cx, cy]]))[0]
            cv2.circle(
                img, (int(u), int(v)), max(2, tile // 6), tuple(int(c) for c in rng.integers(40, 250, 3)), -1
            )
        cv2.polylines(img, [poly], True, (30, 30, 30), 1)
    return img


def random_person(rng: np.random.Generator) -> dict[str, Any]:
    """How one shopper looks from above (sizes in metres, colours BGR)."""
    hair = [(20, 20, 25), (30, 50, 80), (60, 110, 170), (170, 170, 175), (40, 40, 60)]
    return {
        "shoulder": float(rng.uniform(0.22, 0.28)),
        "depth": float(rng.uniform(0.13, 0.17)),
        "head": float(rng.uniform(0.085, 0.11)),
        "shirt": tuple(int(c) for c in rng.integers(0, 256, 3)),
        "hair": hair[int(rng.integers(len(hair)))],
        "skin": tuple(int(c) for c in rng.integers(70, 200, 3)),
    }


def draw_person(
    img: np.ndarray, centre: tuple[float, float], heading: float, scale: float, look: dict[str, Any]
) -> tuple[float, float, float, float]:
    """Draw a top-view person at pixel ``centre`` facing ``heading`` (radians); return its box."""
    cx, cy = centre
    a, b, r = look["shoulder"] * scale, look["depth"] * scale, look["head"] * scale
    deg = math.degrees(heading) + 90  # the shoulder line is across the walking direction
    ca, sa = math.cos(heading), math.sin(heading)
    off = (int(round(cx + 0.12 * scale)), int(round(cy + 0.08 * scale)))  # soft shadow
    cv2.ellipse(img, off, (int(a * 1.1), int(b * 1.3)), deg, 0, 360, (40, 40, 40), -1)
    for side in (-1, 1):  # arms, slightly forward, at the ends of the shoulders
        hx, hy = cx + side * a * 0.95 * -sa + ca * b * 0.5, cy + side * a * 0.95 * ca + sa * b * 0.5
        cv2.circle(img, (int(round(hx)), int(round(hy))), max(1, int(b * 0.45)), look["skin"], -1)
    cv2.ellipse(
        img,
        (int(round(cx)), int(round(cy))),
        (max(2, int(a)), max(1, int(b))),
        deg,
        0,
        360,
        look["shirt"],
        -1,
    )
    hx, hy = cx + ca * b * 0.15, cy + sa * b * 0.15
    cv2.circle(img, (int(round(hx)), int(round(hy))), max(2, int(r)), look["hair"], -1)
    # Box of the rotated shoulder ellipse grown by the arms (which stick out by ~0.45 b).
    ext_x = math.hypot(a * sa, b * ca) + b * 0.45
    ext_y = math.hypot(a * ca, b * sa) + b * 0.45
    return (cx - ext_x, cy - ext_y, cx + ext_x, cy + ext_y)


def finish(img: np.ndarray, gain: float, rng: np.random.Generator, noise: float = 4.0) -> np.ndarray:
    """Lighting (gain plus a gradient), sensor noise and a light blur."""
    h, w = img.shape[:2]
    grad = np.linspace(1.0 - 0.15 * rng.random(), 1.0 + 0.15 * rng.random(), w, dtype=np.float32)
    out = img.astype(np.float32) * gain * grad[None, :, None]
    out += rng.normal(0, noise, img.shape).astype(np.float32)
    return cv2.GaussianBlur(np.clip(out, 0, 255).astype(np.uint8), (3, 3), 0)


def tracks_from_messages(messages: Iterable[Any], camera_id: str) -> dict[str, Track]:
    """Per track id, the (times, floor xy) of a camera's ShopperTracks messages (SimMessage-like)."""
    raw: dict[str, list[tuple[float, float, float]]] = {}
    for m in messages:
        p = m.payload
        if p.get("kind") != "tracks" or p.get("camera_id") != camera_id:
            continue
        for pt in p["tracks"]:
            raw.setdefault(pt["track_id"], []).append((float(p["ts"]), pt["x_m"], pt["y_m"]))
    out: dict[str, Track] = {}
    for tid, rows in raw.items():
        arr = np.array(sorted(rows))
        xy = arr[:, 1:].copy()
        if len(xy) >= 5:  # the event-level tracks carry ~5 cm noise: smooth what the video shows
            k = np.ones(5) / 5
            for j in (0, 1):
                pad = np.pad(xy[:, j], 2, mode="edge")
                xy[:, j] = np.convolve(pad, k, mode="valid")
        out[tid] = (arr[:, 0], xy)
    return out


def positions_at(tracks: dict[str, Track], t: float, gap_s: float = 1.0) -> dict[str, tuple[float, float]]:
    """Interpolated floor positions of the tracks present at ``t`` (present: inside its time span)."""
    out = {}
    for tid, (ts, xy) in tracks.items():
        if ts[0] - 1e-6 <= t <= ts[-1] + 1e-6:
            i = int(np.searchsorted(ts, t))
            if 0 < i < len(ts) and ts[i] - ts[i - 1] > gap_s:
                continue
            out[tid] = (float(np.interp(t, ts, xy[:, 0])), float(np.interp(t, ts, xy[:, 1])))
    return out


def _heading(tracks: dict[str, Track], tid: str, t: float) -> float | None:
    ts, xy = tracks[tid]
    i = int(np.clip(np.searchsorted(ts, t), 1, len(ts) - 1))
    d = xy[i] - xy[i - 1]
    return math.atan2(d[1], d[0]) if np.hypot(*d) > 0.02 else None


def render_ceiling_video(
    layout: StoreLayout,
    tracks: dict[str, Track],
    camera: Camera,
    t0: float,
    t1: float,
    fps: float,
    out_path: str | Path,
    rng: np.random.Generator,
    progress: Callable[[int, int], None] | None = None,
) -> list[float]:
    """Render the ceiling ``camera`` over [t0, t1] at ``fps``; write ``out_path`` (.avi MJPG or .mp4)
    plus ``<out_path>.json`` ({"camera_id", "timestamps", "truth"}); return the frame timestamps.

    ``tracks``: per track id the floor positions over time (``tracks_from_messages``). A track id that
    starts where another ended (a tracker's id switch) keeps the look of the person it continues.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter.fourcc(*("mp4v" if out_path.suffix == ".mp4" else "MJPG"))
    w, h = camera.image_size
    writer = cv2.VideoWriter(str(out_path), fourcc, fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"cannot write video {out_path}; use a .avi (MJPG) or .mp4 (mp4v) path")
    background = draw_floor(layout, camera, rng)
    h_inv, scale = floor_to_image(camera), _px_per_m(camera)
    looks = {tid: random_person(rng) for tid in sorted(tracks)}
    n = int(math.floor((t1 - t0) * fps + 1e-9)) + 1
    stamps = [round(t0 + i / fps, 3) for i in range(n)]
    truth: list[dict[str, list[float]]] = []
    headings: dict[str, float] = {}
    light_phase = float(rng.uniform(0, 2 * math.pi))
    try:
        for i, t in enumerate(stamps):
            img = background.copy()
            now = positions_at(tracks, t)
            for tid, (x, y) in sorted(now.items()):
                hd = _heading(tracks, tid, t)
                headings[tid] = hd if hd is not None else headings.get(tid, 0.0)
                u, v = project(h_inv, np.array([[x, y]]))[0]
                draw_person(img, (u, v), headings[tid], scale, looks[tid])
            truth.append({tid: [round(x, 4), round(y, 4)] for tid, (x, y) in now.items()})
            gain = 1.0 + 0.2 * math.sin(light_phase + t / 20.0) + float(rng.normal(0, 0.01))
            writer.write(finish(img, gain, rng))
            if progress and (i % 50 == 0 or i == n - 1):
                progress(i + 1, n)
    finally:
        writer.release()
    meta = {"camera_id": camera.id, "fps": fps, "timestamps": stamps, "truth": truth}
    Path(f"{out_path}.json").write_text(json.dumps(meta, separators=(",", ":")))
    return stamps


def _ceiling_sample(
    layout: StoreLayout, camera: Camera, rng: np.random.Generator, crop: bool
) -> tuple[np.ndarray, list[tuple[int, float, float, float, float]]]:
    """A ceiling frame with 1-9 random shoppers (full frame or a 320 px crop at full resolution)."""
    scale_f = float(rng.uniform(0.8, 1.25))  # camera height varies from store to store
    h = [
        [camera.homography[0][0] / scale_f, 0.0, 0.0],
        [0.0, camera.homography[1][1] / scale_f, 0.0],
        [0.0, 0.0, 1.0],
    ]
    size = (int(camera.image_size[0] * scale_f), int(camera.image_size[1] * scale_f))
    cam = camera.model_copy(update={"homography": h, "image_size": size})
    img = draw_floor(layout, cam, rng)
    h_inv, scale = floor_to_image(cam), _px_per_m(cam)
    boxes = []
    people: list[tuple[float, float]] = []
    for _ in range(int(rng.integers(1, 10))):
        for _try in range(20):
            x, y = rng.uniform(0.3, layout.floor.width_m - 0.3), rng.uniform(0.3, layout.floor.depth_m - 0.3)
            if layout.walkable(x, y, 0.1) and all(math.hypot(x - a, y - b) > 0.45 for a, b in people):
                people.append((x, y))
                break
    for x, y in people:
        u, v = project(h_inv, np.array([[x, y]]))[0]
        boxes.append(
            (0, *draw_person(img, (u, v), float(rng.uniform(-math.pi, math.pi)), scale, random_person(rng)))
        )
    img = finish(img, float(rng.uniform(0.6, 1.3)), rng, float(rng.uniform(2, 8)))
    if crop:
        cw = ch = 320
        hs = [b for b in boxes]
        cx, cy = hs[int(rng.integers(len(hs)))][1:3] if hs else (0.0, 0.0)
        ox = int(np.clip(cx - rng.uniform(40, 280), 0, img.shape[1] - cw))
        oy = int(np.clip(cy - rng.uniform(40, 280), 0, img.shape[0] - ch))
        img = img[oy : oy + ch, ox : ox + cw]
        boxes = [(c, x0 - ox, y0 - oy, x1 - ox, y1 - oy) for c, x0, y0, x1, y1 in boxes]
    return img, boxes


def _shelf_sample(
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[tuple[int, float, float, float, float]]]:
    """A shelf camera's view: 2-4 shelf levels of products, with arms and hands in front of some."""
    w, h = 320, 320
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rng.integers(90, 200, 3)
    px_m = float(rng.uniform(220, 650))  # products from ~15 to ~130 px wide
    levels = int(rng.integers(2, 5))
    ids = np.zeros((h, w), np.int32)
    items: list[tuple[int, int, int, int, int]] = []
    for lv in range(levels):
        base = int((lv + 1) * h / levels - rng.uniform(0, 10))
        cv2.rectangle(img, (0, base), (w, min(h, base + 6)), (70, 70, 80), -1)
        x = int(rng.uniform(-20, 10))
        fam = PRODUCTS[int(rng.integers(len(PRODUCTS)))]
        while x < w:
            if rng.random() < 0.3:
                fam = PRODUCTS[int(rng.integers(len(PRODUCTS)))]
            pw, ph = (int(s * px_m * rng.uniform(0.9, 1.1)) for s in _SHAPE[fam])
            top = base - ph
            if top > base - h / levels + 4 and pw >= 6 and rng.random() > 0.1:
                _draw_product(img, fam, x, top, pw, ph, rng)
                items.append((len(items) + 1, x, top, x + pw, base))
                ids[max(0, top) : base, max(0, x) : max(0, x + pw)] = len(items)
                items[-1] = (PRODUCTS.index(fam) + 1, x, top, x + pw, base)
            x += pw + int(rng.uniform(1, 8))
    for _ in range(int(rng.integers(0, 3))):  # occluding arms and hands
        p0 = (int(rng.uniform(0, w)), h + 10)
        p1 = (int(rng.uniform(0, w)), int(rng.uniform(h * 0.2, h * 0.9)))
        skin = tuple(int(c) for c in rng.integers(60, 210, 3))
        thick = int(rng.uniform(18, 40))
        cv2.line(img, p0, p1, skin, thick)
        cv2.line(ids, p0, p1, -1, thick)
    boxes = []
    for k, (cls, x0, y0, x1, y1) in enumerate(items, start=1):
        area = max(1, (min(w, x1) - max(0, x0)) * (min(h, y1) - max(0, y0)))
        if (x1 - x0) * (y1 - y0) > 0 and (ids == k).sum() / area > 0.45 and x1 > 0 and x0 < w:
            boxes.append((cls, float(max(0, x0)), float(max(0, y0)), float(min(w, x1)), float(min(h, y1))))
    return finish(img, float(rng.uniform(0.55, 1.35)), rng, float(rng.uniform(2, 8))), boxes


def _draw_product(
    img: np.ndarray, fam: str, x: int, top: int, pw: int, ph: int, rng: np.random.Generator
) -> None:
    colour = np.clip(np.array(_COLOUR[fam]) + rng.integers(-25, 26, 3), 0, 255)
    c = tuple(int(v) for v in colour)
    dark = tuple(int(v * 0.6) for v in colour)
    x1, y1 = x + pw, top + ph
    if fam.startswith("bottle"):
        neck = max(2, pw // 3)
        cv2.rectangle(img, (x + (pw - neck) // 2, top), (x + (pw + neck) // 2, top + ph // 4), c, -1)
        cv2.rectangle(img, (x, top + ph // 4), (x1, y1), c, -1)
        cv2.rectangle(
            img,
            (x + (pw - neck) // 2, top),
            (x + (pw + neck) // 2, top + max(2, ph // 20)),
            (30, 30, 200) if fam == "bottle-clear" else (240, 240, 240),
            -1,
        )
    elif fam == "snack-bag":
        pts = np.array([[x, top + ph // 10], [x1, top], [x1 - pw // 12, y1], [x + pw // 12, y1]], np.int32)
        cv2.fillPoly(img, [pts], c)
    else:
        cv2.rectangle(img, (x, top), (x1, y1), c, -1)
        if fam in ("can-red", "can-silver", "tub"):  # rims
            cv2.rectangle(img, (x, top), (x1, top + max(1, ph // 10)), dark, -1)
    label = tuple(int(v) for v in rng.integers(0, 256, 3))  # the brand label: a band of another colour
    ly = top + int(ph * rng.uniform(0.35, 0.55))
    cv2.rectangle(img, (x + pw // 8, ly), (x1 - pw // 8, ly + max(2, ph // 5)), label, -1)
    cv2.line(img, (x + max(1, pw // 6), top + ph // 4), (x + max(1, pw // 6), y1 - 2), (255, 255, 255), 1)


def render_training_set(
    out_dir: str | Path,
    n_images: int,
    seed: int,
    layout: StoreLayout | None = None,
    shelf_share: float = 0.35,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``n_images`` YOLO-format samples (``images/*.jpg`` + ``labels/*.txt``) to ``out_dir``.

    A share ``shelf_share`` are shelf views of products; the rest are ceiling views of shoppers, half
    full frames (small people), half 320 px crops at full resolution (people twice as large).
    ``layout`` (default: the demo store) gives the floor, gondolas and ceiling camera.
    """
    if layout is None:
        from store_server.domain.layout import load_layout

        layout = load_layout(Path(__file__).resolve().parent / "stores" / "demo.yaml")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    camera = (
        layout.cameras[0]
        if layout.cameras
        else Camera(id="cam", homography=[[0.025, 0, 0], [0, 0.025, 0], [0, 0, 1]])
    )
    for i in range(n_images):
        if rng.random() < shelf_share:
            img, boxes = _shelf_sample(rng)
        else:
            img, boxes = _ceiling_sample(layout, camera, rng, crop=bool(rng.random() < 0.5))
        ih, iw = img.shape[:2]
        lines = []
        for cls, x0, y0, x1, y1 in boxes:
            x0, x1 = max(0.0, x0), min(float(iw), x1)
            y0, y1 = max(0.0, y0), min(float(ih), y1)
            if x1 - x0 >= 3 and y1 - y0 >= 3:
                lines.append(
                    f"{cls} {(x0 + x1) / 2 / iw:.6f} {(y0 + y1) / 2 / ih:.6f} "
                    f"{(x1 - x0) / iw:.6f} {(y1 - y0) / ih:.6f}"
                )
        cv2.imwrite(str(out / "images" / f"{i:05d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        (out / "labels" / f"{i:05d}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
        if progress and (i % 50 == 0 or i == n_images - 1):
            progress(i + 1, n_images)
    return out


def render_run_video(
    layout: StoreLayout,
    messages: Iterable[Any],
    out_path: str | Path,
    fps: float = 10.0,
    seed: int = 0,
    t0: float | None = None,
    t1: float | None = None,
    camera_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[float]:
    """The ceiling video of a simulated or recorded run (its ShopperTracks messages), over [t0, t1]
    (default: the whole run)."""
    msgs = list(messages)
    camera = next((c for c in layout.cameras if camera_id in (None, c.id) and c.kind == "ceiling"), None)
    if camera is None:
        raise ValueError("the store layout has no ceiling camera to render")
    tracks = tracks_from_messages(msgs, camera.id)
    start = t0 if t0 is not None else min(m.t for m in msgs)
    end = t1 if t1 is not None else max(m.t for m in msgs)
    return render_ceiling_video(
        layout, tracks, camera, start, end, fps, out_path, np.random.default_rng(seed), progress
    )
