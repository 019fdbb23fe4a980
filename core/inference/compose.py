"""From the passes' maps to the photo: labels at full resolution, maps at the working resolution.

The photo's labels are the procedure's: the argmax of the mean over passes of each pass's map
resized (bilinearly) to the photo, with semseg's probabilities averaged as they are and
mmseg's / CSAIL's logits put through a softmax after the resize. They are computed in row
bands, and in each band only where it is needed: a photo pixel whose four grid neighbours
carry the same label in every pass gets that label (a bilinear mix of vectors that share
their argmax keeps it, and so does a mean of such mixes); the rest get the exact mean of
the resized maps, computed at those pixels only. The result equals resizing every map to the
photo and taking the argmax (up to float rounding at exact ties), without ever holding the
photo with every class.

The maps kept for display (probabilities of each head, confidence, entropy) live at the
working resolution, computed band by band in float32 and stored in float16.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
import torch
from torch import Tensor

from core.inference.sampling import Axis, Taps, pixel_centres

BAND_ROWS = 64  # photo rows per band
POINT_CHUNK = 32768  # exact points per chunk: bounds the (C, n) temporaries
STORE_BYTES = 128 * 2**20  # the most a head's float16 probabilities may hold (else a coarser working grid)


class Map(Protocol):
    kind: str
    grid: tuple[int, int]

    def labels(self) -> Tensor: ...  # (gh, gw) uint8

    def points(self, y0: Tensor, y1: Tensor, wy: Tensor, x0: Tensor, x1: Tensor, wx: Tensor) -> Tensor: ...  # (n, C)


@dataclass
class Placed:
    """A map with the axes that take photo coordinates to its grid."""

    map: Map
    ay: Axis
    ax: Axis


def photo_labels(maps: Sequence[Placed], size: tuple[int, int], *, shortcut: bool = True,
                 rows: int = BAND_ROWS, cancel=None) -> np.ndarray:
    """(H, W) uint8 labels of the photo from the passes' maps (see the module's docstring).
    ``shortcut=False`` computes every pixel exactly (the reference the tests compare with)."""
    H, W = size
    out = np.empty((H, W), np.uint8)
    xs = np.arange(W, dtype=np.float64)
    tx = [m.ax.taps(xs) for m in maps]
    grids = [m.map.labels() for m in maps]
    for y in range(0, H, rows):
        if cancel is not None:
            cancel()
        ys = np.arange(y, min(H, y + rows), dtype=np.float64)
        ty = [m.ay.taps(ys) for m in maps]
        out[y:y + len(ys)] = _band(maps, grids, ty, tx, shortcut).numpy().astype(np.uint8)
    return out


_OPEN = -1  # "not decided by the neighbours" in a band's (int32) label map


def _band(maps: Sequence[Placed], grids: Sequence[Tensor], ty: Sequence[Taps], tx: Sequence[Taps],
          shortcut: bool) -> Tensor:
    nb, nw = len(ty[0]), len(tx[0])
    if shortcut:
        labels = None
        for m, g, a, b in zip(maps, grids, ty, tx):
            cells, uniform = _cells(m.map, g)
            gh, gw = g.shape
            cy, cx = a.i0.clamp(max=max(gh - 2, 0)), b.i0.clamp(max=max(gw - 2, 0))
            lab = cells.index_select(0, cy).index_select(1, cx)
            ok = uniform.index_select(0, cy).index_select(1, cx)
            if labels is None:
                labels = lab.masked_fill_(~ok, _OPEN)
            else:
                labels.masked_fill_(~ok | (lab != labels), _OPEN)
    else:
        labels = torch.full((nb, nw), _OPEN, dtype=torch.int32)
    todo = torch.nonzero(labels.view(-1) == _OPEN).view(-1)
    if shortcut and todo.numel() and _candidates_apply(maps):
        todo = _by_candidates(maps, ty, tx, labels, todo, nw)
    for k in range(0, int(todo.shape[0]), POINT_CHUNK):
        flat = todo[k:k + POINT_CHUNK]
        r, c = flat // nw, flat % nw
        acc = None
        for m, a, b in zip(maps, ty, tx):
            v = m.map.points(a.i0[r], a.i1[r], a.w[r], b.i0[c], b.i1[c], b.w[c])  # (n, C)
            if m.map.kind == "logits":
                v = v.softmax(1)
            acc = v if acc is None else acc.add_(v)
        labels.view(-1)[flat] = acc.argmax(1).to(labels.dtype)
    return labels


def _cells(m: Map, grid: Tensor) -> tuple[Tensor, Tensor]:
    """Per grid cell (top-left corner (i, j), corners i..i+1 x j..j+1): the label of its corner
    (i, j) and whether all four corners carry it. Cached on the map."""
    cached = getattr(m, "_cells_cache", None)
    if cached is not None:
        return cached
    g = grid
    if g.shape[0] > 1:
        down = g[1:]
        g_ = g[:-1]
        same_v = g_ == down
    else:
        g_, down, same_v = g, g, torch.ones_like(g, dtype=torch.bool)
    if g.shape[1] > 1:
        same = same_v[:, :-1] & same_v[:, 1:] & (g_[:, :-1] == g_[:, 1:])
        label = g_[:, :-1]
    else:
        same, label = same_v, g_
    out = (label.contiguous(), same.contiguous())
    try:
        m._cells_cache = out  # type: ignore[attr-defined]
    except AttributeError:  # pragma: no cover - a map that takes no attributes
        pass
    return out


CELL_CANDIDATES = 8  # classes a grid cell may leave in doubt before its pixels take the full path


def _candidates_apply(maps: Sequence[Placed]) -> bool:
    """One dense map (probabilities, or logits: the argmax of a softmax is that of the logits)."""
    return len(maps) == 1 and hasattr(maps[0].map, "table")


def _by_candidates(maps: Sequence[Placed], ty: Sequence[Taps], tx: Sequence[Taps], labels: Tensor, todo: Tensor,
                   nw: int) -> Tensor:
    """Settle the open pixels of one map cell by cell. Inside the grid cell of four neighbours
    a class ``c`` can only be the argmax if its largest corner value reaches ``L``, the largest
    over classes of their smallest corner value (any pixel's winner is at least ``L``; ``c`` is
    at most its largest corner value). Those few classes (at most ``CELL_CANDIDATES``, ordered
    by id so that ties go to the lowest id as argmax does) are all a pixel needs. Pixels of
    cells with more candidates stay open; they are returned."""
    m = maps[0].map
    a, b = ty[0], tx[0]
    gh, gw = m.grid
    table = m.table()  # (gh * gw, C)
    C = table.shape[1]
    r, c = todo // nw, todo % nw
    y0, x0 = a.i0[r], b.i0[c]
    gy, gx = y0.float() + a.w[r], x0.float() + b.w[c]  # grid coordinates
    cy = y0.clamp(max=max(gh - 2, 0))
    cx = x0.clamp(max=max(gw - 2, 0))
    wy = (gy - cy.float()).clamp(0, 1)
    wx = (gx - cx.float()).clamp(0, 1)
    cell = cy * gw + cx
    cells, inv = torch.unique(cell, return_inverse=True)
    dy = 1 if gh > 1 else 0
    dx = 1 if gw > 1 else 0
    corners = torch.stack([table.index_select(0, cells), table.index_select(0, cells + dx),
                           table.index_select(0, cells + dy * gw), table.index_select(0, cells + dy * gw + dx)], 1)
    hi = corners.amax(1)  # (u, C)
    low = corners.amin(1).amax(1, keepdim=True)  # (u, 1)
    reach = hi >= low
    k = min(CELL_CANDIDATES, C)
    count = reach.sum(1)
    # the candidate classes of each cell in ascending id (the top of a score that prefers low
    # ids among the classes in reach), padded with the first one
    score = torch.where(reach, (C - torch.arange(C, dtype=torch.float32)).expand_as(hi), torch.zeros_like(hi))
    top, cand = score.topk(k, dim=1)
    cand = torch.where(top > 0, cand, cand[:, :1])
    vals = torch.gather(corners, 2, cand[:, None, :].expand(-1, 4, -1))  # (u, 4, k)
    ok_cell = count <= k
    ok = ok_cell[inv]
    done = todo[ok]
    if done.numel():
        v = vals[inv[ok]]  # (n, 4, k)
        wyo, wxo = wy[ok][:, None], wx[ok][:, None]
        top = torch.lerp(v[:, 0], v[:, 1], wxo)
        bottom = torch.lerp(v[:, 2], v[:, 3], wxo)
        p = torch.lerp(top, bottom, wyo)
        pick = p.argmax(1, keepdim=True)
        labels.view(-1)[done] = torch.gather(cand[inv[ok]], 1, pick)[:, 0].to(labels.dtype)
    return todo[~ok]


# --- the working-resolution maps ------------------------------------------------------------------


def store_grid(work: tuple[int, int], num_classes: int, budget: int = STORE_BYTES) -> tuple[int, int]:
    """The grid the probabilities are kept on: the working resolution, unless a head's float16
    map would hold more than ``budget`` bytes (then proportionally smaller)."""
    h, w = work
    need = num_classes * h * w * 2
    if need <= budget:
        return h, w
    f = math.sqrt(need / budget)
    return max(1, int(h / f)), max(1, int(w / f))


@dataclass
class WorkingMaps:
    probs: np.ndarray  # (C, h, w) float16
    confidence: np.ndarray  # (h, w) float32
    entropy: np.ndarray  # (h, w) float32, nats


def working_maps(maps: Sequence[Placed], photo: tuple[int, int], grid: tuple[int, int], *,
                 rows: int = 32) -> WorkingMaps:
    """The mean of the passes' maps (probabilities) on ``grid`` covering the photo, with the
    confidence and entropy of that mean."""
    H, W = photo
    gh, gw = grid
    c = _classes(maps[0].map)
    probs = np.empty((c, gh, gw), np.float16)
    conf = np.empty((gh, gw), np.float32)
    ent = np.empty((gh, gw), np.float32)
    probs_t = torch.from_numpy(probs)  # torch casts to float16 far faster than numpy
    xs = pixel_centres(gw, W)
    tx = [m.ax.taps(xs) for m in maps]
    for y in range(0, gh, rows):
        ys = pixel_centres(gh, H, y, min(gh, y + rows))
        acc = None
        for m, b in zip(maps, tx):
            v = _dense(m.map, m.ay.taps(ys), b)
            if m.map.kind == "logits":
                v = v.softmax(0)
            acc = v if acc is None else acc.add_(v)
        if len(maps) > 1:
            acc /= len(maps)
        n = len(ys)
        probs_t[:, y:y + n] = acc
        conf[y:y + n] = acc.amax(0).numpy()
        ent[y:y + n] = torch.special.entr(acc).sum(0).numpy()
    return WorkingMaps(probs, conf, ent)


def _dense(m: Map, ty: Taps, tx: Taps) -> Tensor:
    values = getattr(m, "values", None)
    if isinstance(values, Tensor):
        from core.inference.sampling import sample_grid

        return sample_grid(values, ty, tx).float()
    raise TypeError("working maps need a dense map")


def _classes(m: Map) -> int:
    values = getattr(m, "values", None)
    if isinstance(values, Tensor):
        return int(values.shape[0])
    return int(m.c)  # type: ignore[attr-defined]


__all__ = ["Placed", "photo_labels", "store_grid", "WorkingMaps", "working_maps", "BAND_ROWS", "STORE_BYTES"]
