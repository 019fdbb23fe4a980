"""A pass's map: its windows' outputs summed on the pass's grid, and read back at any point.

:class:`Accumulator` sums the windows as the predictor runs them; :func:`window_values` is
the one place a window's logits become what the procedure sums (upsampled to the window with
the model's corners; semseg's softmax; mirrored back). :class:`PassMap` is the finished map of
one pass; :class:`WindowedMap` is the same map kept as its windows' logits at the network's
output resolution, read exactly at the few points that need it (the level switch).

Both answer the two questions the photo-sized composition (:mod:`core.inference.compose`)
asks: the label at every grid point, and the values at given grid points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from core.inference.forward import Network
from core.inference.plan import PassPlan, Window
from core.inference.sampling import Axis, Taps, sample_grid, sample_points, sample_rows


def window_values(net: Network, logits: Tensor, plan: PassPlan, window: Window) -> Tensor:
    """(C, h, w) of what the procedure sums for this window: ``logits`` (1, C, hf, wf) at the
    window's size (semseg: their softmax), mirrored back; CSAIL's whole image: the logits as they are."""
    if window.mirrored:  # mirroring the small logits first is the same (bilinear resizing is symmetric)
        logits = logits.flip(-1)
    if plan.at_features:
        return logits[0].float()
    v = net.upsample(logits, window.size)[0]
    v = v.float() if v.dtype != torch.float32 else (v if v.data_ptr() != logits.data_ptr() else v.clone())
    if plan.value == "probs":  # softmax in place: one window-sized buffer
        v.sub_(v.amax(0, keepdim=True)).exp_()
        v.div_(v.sum(0, keepdim=True))
    return v


class Accumulator:
    """The sum (and count) of a pass's window values on its grid, for one head."""

    def __init__(self, plan: PassPlan, num_classes: int, device: torch.device):
        self.plan = plan
        self.c = num_classes
        self.device = device
        self.sum: Tensor | None = None
        self.count: Tensor | None = None

    def add(self, values: Tensor, window: Window) -> None:
        p = self.plan
        if p.at_features:
            if self.sum is None:
                p.grid = tuple(values.shape[-2:])  # type: ignore[assignment]
                self.sum = values.clone()
                self.count = torch.ones(1, 1, 1, device=values.device)
            else:
                self.sum += values
                self.count += 1
            return
        if self.sum is None:
            gh, gw = p.grid
            self.sum = torch.zeros(self.c, gh, gw, device=self.device)
            self.count = torch.zeros(1, gh, gw, device=self.device)
        if p.step == (1.0, 1.0):
            self.sum[:, window.y0:window.y1, window.x0:window.x1] += values
            self.count[:, window.y0:window.y1, window.x0:window.x1] += 1
            return
        # a coarser grid: sample the window's values at the grid points inside it
        (ys, ty), (xs, tx) = (_inside(window.y0, window.y1, p.step[0], p.grid[0]),
                              _inside(window.x0, window.x1, p.step[1], p.grid[1]))
        if ys.stop <= ys.start or xs.stop <= xs.start:
            return
        self.sum[:, ys, xs] += sample_grid(values, ty.to(values.device), tx.to(values.device))
        self.count[:, ys, xs] += 1

    def add_features(self, values: Tensor, window: Window, align_corners: bool, softmax: bool = False) -> None:
        """Add a window's logits at the network's output resolution, (C, hf, wf), read at the grid
        points inside the window through the upsampling it would have had (then their softmax,
        with ``softmax``): the window's exact values at those points (a coarse grid: the level
        switch's fast path)."""
        p = self.plan
        if self.sum is None:
            gh, gw = p.grid
            self.sum = torch.zeros(self.c, gh, gw, device=self.device)
            self.count = torch.zeros(1, gh, gw, device=self.device)
        h, w = window.size
        hf, wf = values.shape[-2:]
        ys = _positions(window.y0, window.y1, p.step[0], p.grid[0])
        xs = _positions(window.x0, window.x1, p.step[1], p.grid[1])
        if ys[0].stop <= ys[0].start or xs[0].stop <= xs[0].start:
            return
        lx = xs[1] if not window.mirrored else (w - 1) - xs[1]
        ty = Axis.resize(hf, h, align_corners=align_corners).taps(ys[1])
        tx = Axis.resize(wf, w, align_corners=align_corners).taps(lx)
        v = sample_grid(values, ty, tx)
        self.sum[:, ys[0], xs[0]] += v.softmax(0) if softmax else v
        self.count[:, ys[0], xs[0]] += 1

    def finish(self, *, copy: bool = False) -> "PassMap":
        """The pass's map (the mean over its windows). ``copy`` keeps the accumulator usable
        (a preview of a pass not yet done)."""
        s, n = self.sum, self.count
        if copy:
            values = s / n.clamp(min=1)
        else:
            values = s.div_(n.clamp(min=1))
            self.sum = self.count = None
        return PassMap(values, self.plan)


def _positions(a: int, b: int, step: float, n: int) -> tuple[slice, np.ndarray]:
    """Grid points whose position ``(i + 0.5) * step - 0.5`` lies in [a, b - 1], and those
    positions relative to ``a``."""
    lo = int(np.ceil((a + 0.5) / step - 0.5 - 1e-9))
    hi = int(np.floor((b - 1 + 0.5) / step - 0.5 + 1e-9))
    lo, hi = max(lo, 0), min(hi, n - 1)
    i = np.arange(lo, hi + 1, dtype=np.float64)
    return slice(lo, hi + 1), (i + 0.5) * step - 0.5 - a


def _inside(a: int, b: int, step: float, n: int) -> tuple[slice, "_TapsOnCpu"]:
    """Grid points whose position ``(i + 0.5) * step - 0.5`` lies in [a, b - 1], and their taps
    in the window's own coordinates."""
    lo = int(np.ceil((a + 0.5) / step - 0.5 - 1e-9))
    hi = int(np.floor((b - 1 + 0.5) / step - 0.5 + 1e-9))
    lo, hi = max(lo, 0), min(hi, n - 1)
    i = np.arange(lo, hi + 1, dtype=np.float64)
    pos = (i + 0.5) * step - 0.5 - a
    return slice(lo, hi + 1), _TapsOnCpu(Axis(1.0, 0.0, 0.0, float(b - a - 1), b - a).taps(pos))


@dataclass(frozen=True)
class _TapsOnCpu:
    taps: Taps

    def to(self, device: torch.device) -> Taps:
        t = self.taps
        return Taps(t.i0.to(device), t.i1.to(device), t.w.to(device))


@dataclass
class PassMap:
    """A pass's finished map on its grid: probabilities (semseg) or logits (mmseg, CSAIL)."""

    values: Tensor  # (C, gh, gw) float32
    plan: PassPlan
    _labels: Tensor | None = field(default=None, repr=False)
    _table: Tensor | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return self.plan.value

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.values.shape[1]), int(self.values.shape[2])

    @property
    def nbytes(self) -> int:
        return self.values.numel() * self.values.element_size()

    def labels(self) -> Tensor:
        """(gh, gw) int32 argmax at every grid point."""
        if self._labels is None:
            self._labels = self.values.argmax(0).to(torch.int32)
        return self._labels

    def values_at(self, iy: Tensor, ix: Tensor) -> Tensor:
        """(C, n) values at grid points ``(iy, ix)``."""
        return self.values[:, iy, ix]

    def table(self) -> Tensor:
        """The map point-major, (gh * gw, C), for sampling scattered points (made once)."""
        if self._table is None:
            self._table = self.values.reshape(self.values.shape[0], -1).t().contiguous()
        return self._table

    def points(self, y0: Tensor, y1: Tensor, wy: Tensor, x0: Tensor, x1: Tensor, wx: Tensor) -> Tensor:
        """(n, C) bilinear values at n points given by their taps."""
        return sample_rows(self.table(), self.grid[1], y0, y1, wy, x0, x1, wx)

    def sample(self, ty: Taps, tx: Taps) -> Tensor:
        return sample_grid(self.values, ty, tx)

    def cpu(self) -> "PassMap":
        return PassMap(self.values.cpu(), self.plan)


class WindowedMap:
    """A pass's map kept as its windows' logits at the output resolution (C x hf x wf each).

    Labels and values are computed only where needed: a grid point inside a window takes the
    window's label there without any softmax when the four output pixels around it agree (the
    bilinear mix of four vectors with the same argmax has that argmax, and so has a mean of
    such mixes); elsewhere the exact value is computed at that point. Needs a full-size grid
    (step 1), which is what the working pass of every source's protocol has."""

    def __init__(self, net: Network, plan: PassPlan, logits: Sequence[Tensor]):
        if plan.at_features or plan.step != (1.0, 1.0):
            raise ValueError("a windowed map needs a full-size grid")
        self.net = net
        self.plan = plan
        self.logits = [lg[0] if lg.dim() == 4 else lg for lg in logits]  # (C, hf, wf) per window
        self.c = int(self.logits[0].shape[0])
        self._labels: Tensor | None = None
        self._count: Tensor | None = None

    @property
    def kind(self) -> str:
        return self.plan.value

    @property
    def grid(self) -> tuple[int, int]:
        return self.plan.grid

    def _window_taps(self, window: Window, hf: int, wf: int) -> tuple[Taps, Taps]:
        h, w = window.size
        ac = self.net.align_corners
        ay, ax = Axis.resize(hf, h, align_corners=ac), Axis.resize(wf, w, align_corners=ac)
        cols = np.arange(w)
        if window.mirrored:
            cols = cols[::-1].copy()
        return ay.taps(np.arange(h)), ax.taps(cols)

    def counts(self) -> Tensor:
        if self._count is None:
            cnt = torch.zeros(self.grid)
            for w in self.plan.windows:
                cnt[w.y0:w.y1, w.x0:w.x1] += 1
            self._count = cnt
        return self._count

    def labels(self) -> Tensor:
        if self._labels is not None:
            return self._labels
        gh, gw = self.grid
        agreed = torch.full((gh, gw), -2, dtype=torch.int64)
        for window, lg in zip(self.plan.windows, self.logits):
            a = lg.argmax(0)
            ty, tx = self._window_taps(window, lg.shape[1], lg.shape[2])
            c00 = a[ty.i0][:, tx.i0]
            same = (c00 == a[ty.i0][:, tx.i1]) & (c00 == a[ty.i1][:, tx.i0]) & (c00 == a[ty.i1][:, tx.i1])
            lab = torch.where(same, c00, torch.full_like(c00, -1))
            region = agreed[window.y0:window.y1, window.x0:window.x1]
            first = region == -2
            region[first] = lab[first]
            clash = ~first & (region != lab)
            region[clash] = -1
        open_ = torch.nonzero(agreed == -1)
        if open_.numel():
            iy, ix = open_[:, 0], open_[:, 1]
            agreed[iy, ix] = self.values_at(iy, ix).argmax(0)
        self._labels = agreed.clamp(min=0).to(torch.int32)
        return self._labels

    def points(self, y0: Tensor, y1: Tensor, wy: Tensor, x0: Tensor, x1: Tensor, wx: Tensor) -> Tensor:
        """(n, C) bilinear values at n points given by their taps, each distinct grid point
        computed once."""
        gw = self.grid[1]
        n = int(y0.shape[0])
        keys = torch.cat([y0 * gw + x0, y0 * gw + x1, y1 * gw + x0, y1 * gw + x1])
        uniq, inv = torch.unique(keys, return_inverse=True)
        vals = self.values_at(uniq // gw, uniq % gw).t().contiguous()  # (u, C)
        wx, wy = wx.float()[:, None], wy.float()[:, None]
        top = torch.lerp(vals.index_select(0, inv[:n]), vals.index_select(0, inv[n:2 * n]), wx)
        bottom = torch.lerp(vals.index_select(0, inv[2 * n:3 * n]), vals.index_select(0, inv[3 * n:]), wx)
        return torch.lerp(top, bottom, wy)

    def values_at(self, iy: Tensor, ix: Tensor) -> Tensor:
        """(C, n) exact values (the mean over the covering windows) at grid points (iy, ix)."""
        n = int(iy.shape[0])
        out = torch.zeros(self.c, n)
        count = torch.zeros(n)
        for window, lg in zip(self.plan.windows, self.logits):
            inside = (iy >= window.y0) & (iy < window.y1) & (ix >= window.x0) & (ix < window.x1)
            k = torch.nonzero(inside).flatten()
            if k.numel() == 0:
                continue
            ly = (iy[k] - window.y0).numpy()
            lx = (ix[k] - window.x0).numpy()
            h, w = window.size
            if window.mirrored:
                lx = (w - 1) - lx
            hf, wf = lg.shape[1], lg.shape[2]
            ac = self.net.align_corners
            ty = Axis.resize(hf, h, align_corners=ac).taps(ly)
            tx = Axis.resize(wf, w, align_corners=ac).taps(lx)
            v = sample_points(lg.float(), ty.i0, ty.i1, ty.w, tx.i0, tx.i1, tx.w)
            if self.plan.value == "probs":
                v = v.softmax(0)
            out[:, k] += v
            count[k] += 1
        return out / count.clamp(min=1)

    def dense(self) -> PassMap:
        """The same map computed everywhere (what the predictor's accumulator holds)."""
        acc = Accumulator(self.plan, self.c, torch.device("cpu"))
        for window, lg in zip(self.plan.windows, self.logits):
            acc.add(window_values(self.net, lg[None], self.plan, window), window)
        return acc.finish()


__all__ = ["window_values", "Accumulator", "PassMap", "WindowedMap"]
