"""The plan of a prediction: which passes (scale, mirror), which windows, at which grid.

A *pass* is one scaled image and the windows cut from it; its windows' outputs are summed into
one map (semseg: softmax probabilities, mirrored windows included; mmseg: logits, a mirrored
image being a pass of its own; CSAIL: the logits of the whole image at the network's output
resolution). Every window is described in the pass's own coordinates (the scaled image, after
semseg's padding); a mirrored window is one whose content the network sees mirrored.

The map of a pass lives on a grid the size of its scaled image, unless that would hold more
than ``accumulator_bytes`` (per head): then (only at sizes none of the sources' protocols
reach, such as a 12-megapixel photo at its native size with 150 classes) the grid is coarser
by a factor, each window's values are sampled at the grid points inside it, and the result is
a bilinear approximation of the full-size map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from core.inference.protocol import TestProtocol
from core.inference.sampling import Axis

ACCUMULATOR_BYTES = 320 * 2**20  # per head and pass; exact for every source's protocol on its data set


@dataclass(frozen=True)
class Window:
    y0: int
    y1: int
    x0: int
    x1: int
    mirrored: bool = False

    @property
    def size(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0


@dataclass
class PassPlan:
    scale: float
    size: tuple[int, int]  # the scaled image (h, w)
    pad: tuple[int, int, int, int]  # top, bottom, left, right (semseg pads to the crop with the mean)
    windows: list[Window]
    value: str  # "probs" (semseg) or "logits" (mmseg, CSAIL)
    at_features: bool  # the map is the network's output itself (CSAIL's whole image), on its grid
    mirrored: bool = False  # a whole mirrored image (mmseg / CSAIL flip), for the record
    grid: tuple[int, int] = (0, 0)  # accumulator grid (set at run time when at_features)
    step: tuple[float, float] = (1.0, 1.0)  # scaled-image pixels per grid point
    working: bool = False  # the working-resolution pass (scale nearest 1, not a mirrored image)

    @property
    def padded(self) -> tuple[int, int]:
        t, b, l, r = self.pad
        return self.size[0] + t + b, self.size[1] + l + r

    @property
    def first_mirrored(self) -> int:
        """Index of the first mirrored window (len(windows) when none)."""
        return next((i for i, w in enumerate(self.windows) if w.mirrored), len(self.windows))

    def axes(self, photo: tuple[int, int], align_corners: bool) -> tuple[Axis, Axis]:
        """Photo coordinates -> this pass's grid coordinates, as the procedure resizes the pass's
        map back to the photo (semseg: OpenCV half-pixel; mmseg, CSAIL: the model's corners)."""
        H, W = photo
        t, _, l, _ = self.pad
        if self.at_features:
            gh, gw = self.grid
            return (Axis.resize(gh, H, align_corners=align_corners),
                    Axis.resize(gw, W, align_corners=align_corners))
        ac = align_corners and self.value == "logits"  # semseg's cv2.resize is half-pixel whatever the model
        return (Axis.resize(self.size[0], H, align_corners=ac, offset=t, step=self.step[0], n_grid=self.grid[0]),
                Axis.resize(self.size[1], W, align_corners=ac, offset=l, step=self.step[1], n_grid=self.grid[1]))


@dataclass
class Plan:
    protocol: TestProtocol
    photo: tuple[int, int]
    passes: list[PassPlan] = field(default_factory=list)

    @property
    def forwards(self) -> int:
        return sum(len(p.windows) for p in self.passes)

    @property
    def working(self) -> PassPlan:
        return next(p for p in self.passes if p.working)

    @property
    def working_size(self) -> tuple[int, int]:
        return self.working.size

    @property
    def preview_at(self) -> int | None:
        """Forwards after which a preview can be handed out (the working pass's unmirrored
        windows are done and more work follows), or None."""
        p = self.passes[0]
        n = p.first_mirrored
        if n >= self.forwards:
            return None
        return n


def make_plan(protocol: TestProtocol, photo: tuple[int, int], num_classes: int, *,
              accumulator_bytes: int = ACCUMULATOR_BYTES) -> Plan:
    H, W = photo
    proc = protocol.procedure
    plan = Plan(protocol, (H, W))
    ws = protocol.working_scale
    order = [ws] + [s for s in protocol.scales if s != ws]
    for s in order:
        size = protocol.scaled_size(H, W, s)
        mirrors = (False, True) if (protocol.flip and proc != "semseg") else (False,)
        for mirrored in mirrors:
            p = _pass(protocol, s, size, mirrored, num_classes, accumulator_bytes)
            p.working = s == ws and not mirrored
            plan.passes.append(p)
    return plan


def _pass(protocol: TestProtocol, scale: float, size: tuple[int, int], mirrored: bool, num_classes: int,
          budget: int) -> PassPlan:
    h, w = size
    crop, stride = protocol.crop, protocol.stride
    proc = protocol.procedure
    pad = (0, 0, 0, 0)
    if proc == "semseg" and crop is not None:
        ph, pw = max(crop - h, 0), max(crop - w, 0)
        pad = (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)
    hp, wp = h + pad[0] + pad[1], w + pad[2] + pad[3]
    if crop is None:
        boxes = [(0, hp, 0, wp)]
    else:
        boxes = [(y, min(y + crop, hp), x, min(x + crop, wp))
                 for y in _starts(hp, crop, stride) for x in _starts(wp, crop, stride)]
    if mirrored:  # the windows of the mirrored image, in this image's coordinates
        boxes = [(y0, y1, wp - x1, wp - x0) for y0, y1, x0, x1 in boxes]
    windows = [Window(*b, mirrored=mirrored) for b in boxes]
    if proc == "semseg" and protocol.flip:
        windows += [Window(*b, mirrored=True) for b in boxes]
    value = "probs" if proc == "semseg" else "logits"
    at_features = proc == "csail" and crop is None
    p = PassPlan(scale, (h, w), pad, windows, value, at_features, mirrored)
    if not at_features:
        p.grid, p.step = _grid(hp, wp, num_classes, budget)
    return p


def _grid(hp: int, wp: int, num_classes: int, budget: int) -> tuple[tuple[int, int], tuple[float, float]]:
    need = num_classes * hp * wp * 4
    if need <= budget:
        return (hp, wp), (1.0, 1.0)
    f = math.sqrt(need / budget)
    gh, gw = max(1, int(hp / f)), max(1, int(wp / f))
    return (gh, gw), (hp / gh, wp / gw)


def _starts(length: int, crop: int, stride: int) -> list[int]:
    """Window starts as semseg and mmseg place them: every ``stride``, the last one flush with the
    end; a dimension shorter than the window gets one window over all of it (mmseg, no padding)."""
    if length <= crop:
        return [0]
    n = int(math.ceil((length - crop) / stride)) + 1
    return [min(i * stride + crop, length) - crop for i in range(n)]


def internals_window(p: PassPlan) -> int:
    """The unmirrored window of ``p`` whose centre is nearest the image's centre (the inspector's)."""
    t, _, l, _ = p.pad
    cy, cx = t + p.size[0] / 2, l + p.size[1] / 2
    best, best_d = 0, math.inf
    for i, w in enumerate(p.windows):
        if w.mirrored:
            continue
        d = ((w.y0 + w.y1) / 2 - cy) ** 2 + ((w.x0 + w.x1) / 2 - cx) ** 2
        if d < best_d - 1e-9:
            best, best_d = i, d
    return best


__all__ = ["Window", "PassPlan", "Plan", "make_plan", "internals_window", "ACCUMULATOR_BYTES"]
