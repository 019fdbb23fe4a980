"""Synthetic scenes in which context decides the class (the paper's Fig. 2 cases), deterministic per seed.

Sky above a horizon; below it one ground region, or two split by a slanted line. On them stand
objects whose *appearance does not tell their class* (identical texture and shape distribution),
and the context that decides comes at three scales:

* a **vehicle** is a *boat* in a harbour (water with quays) and a *car* in a street (road with
  puddles) -- the "mismatched relationship" case. Ground scenes (a high horizon) carry one large
  vehicle per harbour or street, wider than the network's effective receptive field, and right
  around it lies water or road by a coin flip (moored at a quay, driving through a puddle, or
  not), so the nearest ground does not decide. In three ground scenes of four the harbour or
  street is the whole scene (the *global* context decides: global pooling suffices); in the
  fourth a harbour lies beside a street and only the *region* around each vehicle decides;
* a **facade** (a window grid) standing on the horizon of a skyline scene is a *skyscraper* in a
  city district (mostly road, with lawns) and a *building* in a country district (mostly grass,
  with paved patches) -- the "confusion categories" case. What lies at a facade's own foot is a
  coin flip (its plot is paved or a lawn) and its top is far from the ground. Half the skylines
  are one district (global context), half a city beside a countryside (regional context);
* a small **marker** (a yellow disc) is a *buoy* on water and a *cone* on a road -- small things
  found only through their own (*local*) surroundings, which may be a quay, a puddle or a pond.

Background classes (sky, water, road, grass) have locally distinct textures. How far the
deciding context lies from an object's pixels scales with the scene size: at 128x128 a dilated
ResNet-18 sees all of it, at 256x256 it needs the pyramid (see tests/benchmarks/context_ablation.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Generator

import cv2
import numpy as np

from core.atomic import atomic_write_bytes, atomic_write_text
from core.classes import ClassTable
from core.errors import DatasetError

SKY, WATER, ROAD, GRASS, BOAT, CAR, BUILDING, SKYSCRAPER, BUOY, CONE = range(10)

SYNTHETIC_CLASSES = ClassTable(
    names=("sky", "water", "road", "grass", "boat", "car", "building", "skyscraper", "buoy", "cone"),
    colors=((135, 190, 235), (30, 70, 170), (90, 90, 90), (70, 160, 60), (230, 120, 30),
            (220, 30, 60), (150, 110, 80), (120, 60, 160), (250, 230, 40), (250, 140, 200)),
    name="synthetic-context",
)
CONTEXT_CLASSES: tuple[int, ...] = (BOAT, CAR, BUILDING, SKYSCRAPER, BUOY, CONE)
# the ground that makes each look-alike what it is: for vehicles and facades the main ground of
# their district, for markers the ground right around them
_VEHICLE = {WATER: BOAT, ROAD: CAR}
_FACADE = {ROAD: SKYSCRAPER, GRASS: BUILDING}
_MARKER = {WATER: BUOY, ROAD: CONE}

DEMO_MARKER = "synthetic.json"  # written into every demo project; lets write_demo_project overwrite its own
_STEM = "scene_{:04d}"


# --------------------------------------------------------------------------------------------
# textures: functions of the pixel coordinates, so two objects of the same kind look alike
# --------------------------------------------------------------------------------------------


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0:h, 0:w].astype(np.float32)


def _sky(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, _ = _grid(h, w)
    t = (y / max(h - 1, 1))[..., None]
    top, bottom = np.array([70, 130, 220], np.float32), np.array([190, 215, 240], np.float32)
    return top * (1 - t) + bottom * t


def _water(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, x = _grid(h, w)
    period = rng.uniform(4.5, 6.5)
    wave = np.sin(2 * np.pi * y / period + 1.2 * np.sin(2 * np.pi * x / (5 * period)) + rng.uniform(0, 2 * np.pi))
    return np.array([35, 85, 170], np.float32) + wave[..., None] * np.array([18, 25, 35], np.float32)


def _road(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    grain = rng.normal(0, 14, (h, w)).astype(np.float32)
    return np.array([88, 88, 92], np.float32) + grain[..., None]


def _grass(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    blades = cv2.blur(rng.normal(0, 40, (h, w)).astype(np.float32), (1, 7))  # vertical streaks
    return np.array([70, 150, 55], np.float32) + blades[..., None] * np.array([0.5, 1.0, 0.4], np.float32)


def _vehicle(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Diagonal red/white stripes: the same for boats and cars."""
    y, x = _grid(h, w)
    stripes = (np.floor((x + y + rng.uniform(0, 8)) / 4) % 2)[..., None]
    return np.array([200, 40, 35], np.float32) * (1 - stripes) + np.array([235, 225, 215], np.float32) * stripes


def _facade(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A beige wall with a grid of dark windows: the same for buildings and skyscrapers."""
    y, x = _grid(h, w)
    oy, ox = rng.uniform(0, 6, 2)
    window = (((y + oy) % 6) >= 3) & (((x + ox) % 6) >= 3)
    wall, glass = np.array([200, 180, 145], np.float32), np.array([45, 60, 85], np.float32)
    return np.where(window[..., None], glass, wall)


def _marker(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    return np.broadcast_to(np.array([250, 215, 30], np.float32), (h, w, 3))


_TEXTURE = {SKY: _sky, WATER: _water, ROAD: _road, GRASS: _grass}


# --------------------------------------------------------------------------------------------
# the scene
# --------------------------------------------------------------------------------------------


@dataclass
class _Region:
    kind: int  # the ground: WATER, ROAD or GRASS (skylines: the district's main ground, ROAD = city)
    side: str  # "all", "left" or "right"


class _Layout:
    """Sky above ``horizon``; below it one region, or two split by a slanted line."""

    def __init__(self, rng: np.random.Generator, h: int, w: int, skyline: bool):
        self.h, self.w = h, w
        self.horizon = int(round(rng.uniform(0.55, 0.65) * h if skyline else rng.uniform(0.18, 0.3) * h))
        # skylines: a city (ROAD) district beside a country (GRASS) one, mostly; ground scenes: water beside road
        pairs = [(ROAD, GRASS)] if skyline else [(WATER, ROAD)] * 4 + [(WATER, GRASS), (ROAD, GRASS)]
        singles = (ROAD, GRASS) if skyline else (WATER, ROAD)
        if rng.random() < (0.5 if skyline else 0.75):
            self.regions = [_Region(int(rng.choice(singles)), "all")]
        else:
            pair = list(pairs[int(rng.integers(len(pairs)))])
            if rng.random() < 0.5:
                pair.reverse()
            self.regions = [_Region(pair[0], "left"), _Region(pair[1], "right")]
        self.xb = rng.uniform(0.4, 0.6) * w
        self.slant = rng.uniform(-0.08, 0.08) * w
        rows, cols = np.mgrid[0:h, 0:w]
        self.side = np.full((h, w), "all" if len(self.regions) == 1 else "right", object)
        if len(self.regions) == 2:
            self.side[cols < self.boundary(rows)] = "left"
        self.ground = np.zeros((h, w), np.uint8)
        for r in self.regions:
            self.ground[self.side == r.side] = r.kind

    def boundary(self, y: np.ndarray | float) -> np.ndarray | float:
        return self.xb + self.slant * (y - self.horizon) / max(self.h - self.horizon, 1)

    def columns(self, side: str, y0: float, y1: float) -> tuple[int, int]:
        """The columns [x0, x1) inside the region on every row from y0 to y1."""
        if side == "all":
            return 0, self.w
        b0, b1 = self.boundary(y0), self.boundary(y1)
        return (0, int(min(b0, b1)) - 1) if side == "left" else (int(np.ceil(max(b0, b1))) + 1, self.w)

    def in_region(self, region: _Region) -> np.ndarray:
        return (self.side == region.side) & (np.arange(self.h)[:, None] >= self.horizon)


def generate_scene(seed: int, size: tuple[int, int] = (128, 128)) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (HxWx3 uint8 RGB image, HxW uint8 mask of SYNTHETIC_CLASSES ids). Same seed and
    size -> identical arrays.

    Half the scenes are *ground scenes*: a high horizon, a harbour (water with quays) or a street
    (road with puddles) or one beside the other, a large vehicle in each -- a boat or a car
    whatever lies right around it -- and small markers that take the class of the ground right
    around them. Half are *skylines*: a low horizon, tall facades, and below them a city district
    (mostly road, with lawns) or a country district (mostly grass, with paved patches) or both; a
    facade is a skyscraper in the city and a building in the country, whatever its own plot is."""
    h, w = (int(v) for v in size)
    if h < 32 or w < 32:
        raise ValueError(f"synthetic scenes need at least 32x32 pixels, not {h}x{w}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5C3E]))
    skyline = bool(rng.random() < 0.5)
    lay = _Layout(rng, h, w, skyline)
    horizon = lay.horizon
    margin = max(2, int(round(0.03 * min(h, w))))
    occupied = np.zeros((h, w), bool)
    layers: list[tuple[np.ndarray, int, str]] = []  # (object mask, class, texture kind)

    for region in lay.regions:
        inside = lay.in_region(region)
        if skyline:
            _sprinkle(rng, lay, inside, GRASS if region.kind == ROAD else ROAD, coverage=0.2)
            for _ in range(int(rng.integers(1, 4))):
                m = _facade_mask(rng, lay, region, (0.3, 0.5), margin, occupied)
                if m is None:
                    continue
                layers.append((m, _FACADE[region.kind], "facade"))
                occupied |= cv2.dilate(m.astype(np.uint8), np.ones((1, 5), np.uint8)).astype(bool)
                cols = np.flatnonzero(m.any(0))
                plot = np.zeros((h, w), bool)
                pad, depth = max(1, int(0.05 * w)), max(2, int(rng.uniform(0.08, 0.12) * h))
                plot[horizon:horizon + depth, max(cols[0] - pad, 0):cols[-1] + pad + 1] = True
                lay.ground[plot & inside] = ROAD if rng.random() < 0.5 else GRASS
            _pond(rng, lay, inside)
        elif region.kind in _VEHICLE:
            # a harbour (water with quays) or a street (road with puddles)
            _sprinkle(rng, lay, inside, ROAD if region.kind == WATER else WATER, coverage=0.2)
            band = max(1, int(rng.uniform(0.05, 0.08) * min(h, w)))
            m = _vehicle_mask(rng, lay, region, margin + band) if rng.random() < 0.9 else None
            if m is not None:
                layers.append((m, _VEHICLE[region.kind], "vehicle"))
                kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
                berth = cv2.dilate(m.astype(np.uint8), kernel).astype(bool) & inside & ~m
                lay.ground[berth] = WATER if rng.random() < 0.5 else ROAD  # at a quay or in a puddle, or not
                occupied |= cv2.dilate((berth | m).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    for _ in range(int(rng.integers(3, 7))):  # small markers: their own surroundings decide
        m = _marker_mask(rng, lay, margin, occupied)
        if m is None:
            break
        occupied |= m
        layers.append((m, _MARKER[int(lay.ground[m][0])], "marker"))

    sky = np.zeros((h, w), bool)
    sky[:horizon] = True
    mask = np.where(sky, np.uint8(SKY), lay.ground).astype(np.uint8)
    for m, cls, _ in layers:
        mask[m] = cls

    # paint: backgrounds, then objects (each with its own texture phase), then sensor noise
    image = np.zeros((h, w, 3), np.float32)
    for cls, texture in _TEXTURE.items():
        sel = sky if cls == SKY else (lay.ground == cls) & ~sky
        if sel.any():
            image[sel] = texture(h, w, rng)[sel]
    object_texture = {"vehicle": _vehicle, "facade": _facade, "marker": _marker}
    for m, _, kind in layers:
        image[m] = object_texture[kind](h, w, rng)[m]
    image += rng.normal(0, 4, image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), mask


def _sprinkle(rng: np.random.Generator, lay: _Layout, inside: np.ndarray, kind: int, coverage: float) -> None:
    """Cover about ``coverage`` of a district with ellipses of the other ground (parks, parking lots)."""
    area = inside.sum()
    h, w = lay.h, lay.w
    for _ in range(12):
        if ((lay.ground == kind) & inside).sum() >= coverage * area:
            break
        ys, xs = np.nonzero(inside)
        i = int(rng.integers(len(ys)))
        axes = (max(2, int(rng.uniform(0.06, 0.12) * w)), max(2, int(rng.uniform(0.04, 0.08) * h)))
        blob = np.zeros((h, w), np.uint8)
        cv2.ellipse(blob, (int(xs[i]), int(ys[i])), axes, 0, 0, 360, 1, thickness=-1)
        lay.ground[blob.astype(bool) & inside] = kind


def _pond(rng: np.random.Generator, lay: _Layout, inside: np.ndarray) -> None:
    """A pond in a skyline district, below the facades' plots: somewhere for buoys to float."""
    h, w = lay.h, lay.w
    top = lay.horizon + int(0.13 * h)
    ys, xs = np.nonzero(inside[top:])
    if rng.random() < 0.3 or len(ys) == 0:
        return
    axes = (max(3, int(rng.uniform(0.12, 0.16) * w)), max(3, int(rng.uniform(0.09, 0.11) * h)))
    i = int(rng.integers(len(ys)))
    blob = np.zeros((h, w), np.uint8)
    cv2.ellipse(blob, (int(xs[i]), top + int(ys[i])), axes, 0, 0, 360, 1, thickness=-1)
    lay.ground[blob.astype(bool) & inside] = WATER


def _facade_mask(rng: np.random.Generator, lay: _Layout, region: _Region, tall: tuple[float, float], margin: int,
                 occupied: np.ndarray) -> np.ndarray | None:
    """A facade standing on the horizon above ``region`` (its foot fully on that region)."""
    h, w, horizon = lay.h, lay.w, lay.horizon
    fw = max(4, int(rng.uniform(0.1, 0.16) * w))
    fh = int(min(rng.uniform(*tall) * h, horizon - max(margin, 0.05 * h)))
    x0, x1 = lay.columns(region.side, horizon - 1, horizon + 1)
    x0, x1 = max(x0, margin), min(x1, w - margin)
    if x1 - x0 < fw or fh < 3:
        return None
    fx = int(rng.integers(x0, x1 - fw + 1))
    if occupied[horizon - fh:horizon, fx:fx + fw].any():
        return None
    m = np.zeros((h, w), bool)
    m[horizon - fh:horizon, fx:fx + fw] = True
    return m


def _vehicle_mask(rng: np.random.Generator, lay: _Layout, region: _Region, margin: int) -> np.ndarray | None:
    """A large rounded vehicle well inside ``region``: most of its pixels are far from its surroundings."""
    h, w, horizon = lay.h, lay.w, lay.horizon
    gh = h - horizon - 2 * margin
    vh = int(rng.uniform(0.6, 0.8) * gh)
    vy = horizon + margin + int(rng.integers(0, gh - vh + 1))
    x0, x1 = lay.columns(region.side, vy, vy + vh)
    x0, x1 = max(x0 + margin, margin), min(x1 - margin, w - margin)
    vw = int(rng.uniform(0.75, 0.95) * (x1 - x0))
    if vw < 8 or vh < 6:
        return None
    vx = x0 + int(rng.integers(0, x1 - x0 - vw + 1))
    return _rounded_rect(h, w, vx, vy, vw, vh, radius=int(rng.uniform(0.25, 0.5) * vh))


def _marker_mask(rng: np.random.Generator, lay: _Layout, margin: int, occupied: np.ndarray) -> np.ndarray | None:
    """A small disc on water or road (either, evenly), with only that ground and no object around it."""
    h, w, horizon = lay.h, lay.w, lay.horizon
    r = max(2, int(round(rng.uniform(0.05, 0.07) * min(h, w))))
    inside = np.zeros((h, w), np.uint8)
    inside[horizon + margin:h - margin, margin:w - margin] = 1
    box = np.ones((2 * r + 7, 2 * r + 7), np.uint8)  # the disc and 3 pixels around it
    centres = {k: cv2.erode(inside & (lay.ground == k) & ~occupied, box, borderValue=0).astype(bool)
               for k in _MARKER}
    kinds = [k for k, c in centres.items() if c.any()]
    if not kinds:
        return None
    ys, xs = np.nonzero(centres[kinds[int(rng.integers(len(kinds)))]])
    i = int(rng.integers(len(ys)))
    m = np.zeros((h, w), np.uint8)
    cv2.circle(m, (int(xs[i]), int(ys[i])), r, 1, thickness=-1)
    return m.astype(bool)


def _rounded_rect(h: int, w: int, x: int, y: int, rw: int, rh: int, radius: int) -> np.ndarray:
    r = max(0, min(radius, rw // 2, rh // 2))
    m = np.zeros((h, w), np.uint8)
    cv2.rectangle(m, (x + r, y), (x + rw - 1 - r, y + rh - 1), 1, thickness=-1)
    cv2.rectangle(m, (x, y + r), (x + rw - 1, y + rh - 1 - r), 1, thickness=-1)
    for cx, cy in ((x + r, y + r), (x + rw - 1 - r, y + r), (x + r, y + rh - 1 - r), (x + rw - 1 - r, y + rh - 1 - r)):
        cv2.circle(m, (cx, cy), r, 1, thickness=-1)
    return m.astype(bool)


# --------------------------------------------------------------------------------------------
# a demo project on disk
# --------------------------------------------------------------------------------------------


def scene_seed(seed: int, index: int) -> int:
    """The scene seed of image ``index`` of a demo project made with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def write_demo_project(root: str | Path, *, n_train: int = 48, n_val: int = 16,
                       size: tuple[int, int] = (128, 128), seed: int = 0) -> Path:
    """Write a data set of synthetic scenes: ``images/<stem>.png``, ``masks/<stem>.png`` (palette
    PNG), ``classes.json``, ``train.txt`` and ``val.txt`` (one stem a line), and a marker file.

    Refuses a non-empty folder unless it is a demo project already (then it is regenerated and
    stale scenes of the earlier demo are removed)."""
    steps = demo_project_steps(root, n_train=n_train, n_val=n_val, size=size, seed=seed)
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def demo_project_steps(root: str | Path, *, n_train: int = 48, n_val: int = 16, size: tuple[int, int] = (128, 128),
                       seed: int = 0) -> Generator[int, None, Path]:
    """:func:`write_demo_project` one scene at a time: yields the number of scenes written so far.

    The marker file is written first (a demo stopped half-way is a demo project, written again
    next time) and again last: a mask newer than it was saved by someone else (:func:`demo_labels`)."""
    from core.data.io import write_mask

    root = Path(root)
    if n_train < 1 or n_val < 0:
        raise ValueError(f"a demo project needs n_train >= 1 and n_val >= 0, not {n_train} and {n_val}")
    if root.exists() and not root.is_dir():
        raise DatasetError(f"{root}: exists and is not a folder; the demo project was not written")
    if root.is_dir() and any(root.iterdir()) and not (root / DEMO_MARKER).is_file():
        raise DatasetError(f"{root}: the folder is not empty and is not a synthetic demo project; "
                           "nothing was written (choose an empty or new folder)")
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(exist_ok=True)
    info = {"generator": "core.data.synthetic", "seed": seed, "size": list(size), "n_train": n_train, "n_val": n_val}
    atomic_write_text(root / DEMO_MARKER, json.dumps(info, indent=1) + "\n")
    stems = [_STEM.format(i) for i in range(n_train + n_val)]
    for i, stem in enumerate(stems):
        image, mask = generate_scene(scene_seed(seed, i), size)
        ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not ok:  # pragma: no cover - OpenCV always encodes a uint8 RGB array
            raise DatasetError(f"{images / stem}.png: OpenCV could not encode the image")
        atomic_write_bytes(images / f"{stem}.png", png.tobytes())
        write_mask(masks / f"{stem}.png", mask, SYNTHETIC_CLASSES)
        yield i + 1
    keep = set(stems)
    for folder in (images, masks):  # scenes of an earlier, larger demo in this folder
        for p in folder.glob("scene_*.png"):
            if p.stem not in keep:
                p.unlink()
    SYNTHETIC_CLASSES.save(root / "classes.json")
    atomic_write_text(root / "train.txt", "".join(f"{s}\n" for s in stems[:n_train]))
    atomic_write_text(root / "val.txt", "".join(f"{s}\n" for s in stems[n_train:]))
    atomic_write_text(root / DEMO_MARKER, json.dumps(info, indent=1) + "\n")  # again: newer than every mask
    return root


def demo_labels(root: str | Path) -> set[str]:
    """The masks of a demo project that still hold the demo's own labels (stems): written by
    :func:`write_demo_project` and not saved since (not newer than its marker file, written after
    them). Empty for a folder that is not a demo project."""
    root = Path(root)
    try:
        written = (root / DEMO_MARKER).stat().st_mtime_ns
    except OSError:
        return set()
    out = set()
    for p in (root / "masks").glob("*.png"):
        try:
            if p.stat().st_mtime_ns <= written:
                out.add(p.stem)
        except OSError:
            continue
    return out


__all__ = ["SYNTHETIC_CLASSES", "CONTEXT_CLASSES", "generate_scene", "write_demo_project", "demo_project_steps",
           "demo_labels", "scene_seed"]
