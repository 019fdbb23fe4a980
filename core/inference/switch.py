"""Switching pyramid levels off: the heads re-run on the working pass, without the backbone.

The main head's first layer is a convolution of ``[layer4, branch_1, ..., branch_n]``, so it
is the sum of one convolution per input group. :meth:`LevelSwitch.prepare` gets those parts
once for every window of the working pass (the scale nearest 1; its mirrored windows or
mirrored image too): from the prediction itself when the predictor ran an inference copy with
a split head (it keeps each window's layer4 share and the branches' grids: a few MB a window),
else by taking the inspector window's features from the prediction and running the backbone
again on the others. A switch then costs a sum of cached parts, BatchNorm, ReLU
and the 1x1 classifier per window at the network's output resolution, and the photo's labels
by :func:`core.inference.compose.photo_labels`, computed exactly but only where the label is
in doubt (:class:`core.inference.maps.WindowedMap`). The probability, confidence and entropy
maps of a switched prediction are computed on first use (``prediction.materialize()``).

What is switched: the working pass only. Under a single-scale protocol (every source's
default) ``rerun(())`` reproduces the prediction; under a multi-scale one the other scales are
left out, and :attr:`LevelSwitch.reference` (all levels on, the same passes) is what a
switched prediction should be compared with.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from core.inference.compose import Placed, photo_labels, store_grid, working_maps
from core.inference.forward import Network, model_device
from core.inference.maps import Accumulator, PassMap, WindowedMap
from core.inference.prediction import Prediction
from core.model.pspnet import Internals
from core.model.ppm import PyramidLevel


COARSE_STRIDE = 4  # pixels per grid point of the fast switch (the network's output is every 8)


class LevelSwitch:
    def __init__(self, model: nn.Module, prediction: Prediction, device: Any = None, *,
                 module: nn.Module | None = None):
        inner = prediction.internals
        if inner is None or not inner.levels or prediction.switch_source is None:
            raise ValueError("switching levels needs a prediction made with internals=True by a model with a "
                             "pyramid pooling module")
        if not all(lv.enabled for lv in inner.levels):
            raise ValueError("the reference prediction must have every pyramid level on")
        self.model = model
        self.base = prediction
        self.net = Network(module if module is not None else model)
        self.device = torch.device(device) if device is not None else model_device(model)
        self.source = prediction.switch_source
        self._parts: list[list[list[Tensor]]] | None = None  # pass -> window -> groups
        self._levels: list[list[list[PyramidLevel]]] | None = None
        self._mean: dict[tuple[int, int, int], Tensor] = {}
        self._reference: Prediction | None = None
        self._reference_labels: np.ndarray | None = None

    @property
    def bins(self) -> tuple[int, ...]:
        return tuple(lv.bin for lv in self.base.internals.levels)

    @property
    def nbytes(self) -> int:
        """Bytes of the cached parts."""
        if self._parts is None:
            return 0
        return sum(t.numel() * t.element_size() for pp in self._parts for ww in pp for t in ww)

    def prepare(self, cancel: Any = None) -> None:
        """Compute the per-group convolutions of every window (the one costly step; done once)."""
        if self._parts is not None:
            return
        src = self.source
        parts: list[list[list[Tensor]]] = []
        levels: list[list[list[PyramidLevel]]] = []
        if src.parts is not None and self.net.splits_head:  # kept while predicting: no backbone to run
            with torch.inference_mode():
                for pass_parts in src.parts:
                    pparts, plevels = [], []
                    for kept in pass_parts:
                        w = kept.to(self.device)
                        pparts.append([w.part0] + self.net.branch_parts(w.levels, w.part0.shape[-2:]))
                        plevels.append(w.levels)
                    parts.append(pparts)
                    levels.append(plevels)
            self._parts, self._levels = parts, levels
            self._coarse_reference()  # what the first fast switch would otherwise compute
            return
        with torch.inference_mode():
            x = src.x.to(self.device)
            for pi, p in enumerate(src.passes):
                pparts, plevels = [], []
                for wi, win in enumerate(p.windows):
                    if cancel is not None and cancel():
                        from core.errors import Cancelled

                        raise Cancelled("level switch preparation cancelled")
                    if pi == 0 and wi == src.internals_window:
                        layer4 = self.base.internals.layer4.to(self.device)
                    else:
                        xw = x[..., win.y0:win.y1, win.x0:win.x1]
                        if win.mirrored:
                            xw = xw.flip(-1)
                        gen = self.net.stages(xw)
                        while True:
                            try:
                                next(gen)
                            except StopIteration as stop:
                                layer4 = stop.value[1]
                                break
                    lv = self.net.pyramid_levels(layer4)
                    pparts.append(self.net.head_parts([layer4] + [v.upsampled for v in lv]))
                    plevels.append([PyramidLevel(v.bin, v.pooled, v.reduced, v.upsampled[:, :0], True) for v in lv])
                    del layer4
                parts.append(pparts)
                levels.append(plevels)
        self._parts, self._levels = parts, levels
        self._coarse_reference()

    def rerun(self, disabled_levels: Sequence[int], fill: str = "zeros", *, exact: bool = False) -> Prediction:
        """The prediction with the given levels (bins) off; its probability maps on first use.

        ``exact``: the procedure's labels of the working pass with those levels off, computed
        exactly (windows' softmax at full size where the label is in doubt: up to the cost of
        the windows' whole outputs). Otherwise (fast, the default) the switch is read on a grid of
        one point per 4 pixels of the working image: every window's exact value at those points
        (its softmax; mmseg / CSAIL: logits), averaged, and resized to the photo, once with
        the levels off and once with all on; the labels are the prediction's own except where
        those two differ, where they are the switched ones. So ``rerun(())`` is the
        prediction, and the pixels that change are the ones switching the levels changes."""
        disabled = tuple(sorted({int(b) for b in disabled_levels}))
        unknown = sorted(set(disabled) - set(self.bins))
        if unknown:
            raise ValueError(f"no pyramid level with bin(s) {unknown}; this model's levels are {self.bins}")
        if fill not in ("zeros", "mean"):
            raise ValueError(f"fill must be 'zeros' or 'mean', not {fill!r}")
        self.prepare()
        src, base = self.source, self.base
        inner = self._internals(disabled, fill)
        if not disabled and not exact:  # all levels on: the prediction itself
            return Prediction(base.labels.copy(), work_probs=base.work_probs, work_aux_probs=base.work_aux_probs,
                              work_confidence=base.work_confidence, work_entropy=base.work_entropy,
                              aux_labels=base.aux_labels, num_classes=base.num_classes, protocol=base.protocol,
                              working_size=base.working_size, internals=inner, internals_box=base.internals_box,
                              notes=base.notes)
        with torch.inference_mode():
            if exact:
                maps = self._exact_maps(disabled, fill)
                placed = [Placed(m, *m.plan.axes(src.photo, self.net.align_corners)) for m in maps]
                labels = photo_labels(placed, src.photo)
            else:
                maps = self._coarse_maps(disabled, fill)
                placed = [Placed(m, *m.plan.axes(src.photo, self.net.align_corners)) for m in maps]
                switched = photo_labels(placed, src.photo)
                labels = np.where(switched != self._coarse_reference(), switched, base.labels)
        notes = list(base.notes)
        if len(base.protocol.scales) > 1:
            notes.append("levels switched on the working pass (scale "
                         f"{src.passes[0].scale:g}) only; compare with LevelSwitch.reference")
        photo, protocol = src.photo, base.protocol
        working = base.working_size

        def compute_maps(pred: Prediction) -> None:
            with torch.inference_mode():
                dense = [m.dense() if isinstance(m, WindowedMap) else m for m in maps]
                grid = store_grid(working, pred.num_classes)
                work = working_maps([Placed(m, *m.plan.axes(photo, self.net.align_corners)) for m in dense],
                                    photo, grid)
            pred._set_maps(work.probs, work.confidence, work.entropy)

        return Prediction(labels, work_probs=None, work_aux_probs=base.work_aux_probs, work_confidence=None,
                          work_entropy=None, aux_labels=base.aux_labels, num_classes=base.num_classes, protocol=protocol,
                          working_size=working, internals=inner, internals_box=base.internals_box,
                          disabled_levels=disabled, notes=notes, deferred=compute_maps,
                          switch_source=None)

    def _exact_maps(self, disabled: tuple[int, ...], fill: str) -> list[Any]:
        maps = []
        for pi, p in enumerate(self.source.passes):
            logits = [self._logits(pi, wi, disabled, fill).float().cpu() for wi in range(len(p.windows))]
            if p.at_features or p.step != (1.0, 1.0):  # CSAIL's whole image; coarse grids: dense
                maps.append(_dense(self.net, p, logits))
            else:
                maps.append(WindowedMap(self.net, p, logits))
        return maps

    def _coarse_maps(self, disabled: tuple[int, ...], fill: str) -> list[PassMap]:
        maps = []
        for pi, p in enumerate(self.source.passes):
            logits = [self._logits(pi, wi, disabled, fill).float().cpu() for wi in range(len(p.windows))]
            if p.at_features:
                maps.append(_dense(self.net, p, logits))
                continue
            q = self._coarse_plan(p)
            acc = Accumulator(q, int(logits[0].shape[1]), torch.device("cpu"))
            for win, lg in zip(p.windows, logits):
                acc.add_features(lg[0], win, self.net.align_corners, softmax=p.value == "probs")
            maps.append(acc.finish())
        return maps

    def _coarse_plan(self, p: Any) -> Any:
        """The pass on a grid of one point per ``COARSE_STRIDE`` pixels of its padded image."""
        stride = COARSE_STRIDE
        hp, wp = p.padded
        gh, gw = max(1, -(-hp // stride)), max(1, -(-wp // stride))
        return dataclasses.replace(p, grid=(gh, gw), step=(hp / gh, wp / gw))

    def _coarse_reference(self) -> np.ndarray:
        self.prepare()
        if self._reference_labels is None:
            maps = self._coarse_maps((), "zeros")
            placed = [Placed(m, *m.plan.axes(self.source.photo, self.net.align_corners)) for m in maps]
            self._reference_labels = photo_labels(placed, self.source.photo)
        return self._reference_labels

    @property
    def reference(self) -> Prediction:
        """All levels on, computed the same way as every switched prediction."""
        if self._reference is None:
            self._reference = self.rerun(())
        return self._reference

    def _logits(self, pi: int, wi: int, disabled: tuple[int, ...], fill: str) -> Tensor:
        parts = self._parts[pi][wi]
        use = [parts[0]]
        for k, (b, part) in enumerate(zip(self.bins, parts[1:]), start=1):
            if b not in disabled:
                use.append(part)
            elif fill == "mean":
                key = (pi, wi, k)
                if key not in self._mean:
                    lv = self._levels[pi][wi][k - 1]
                    self._mean[key] = self.net.mean_fill_part(lv, k, parts[0].shape[-2:])
                use.append(self._mean[key])
        return self.net.head_from_parts(use)

    def _internals(self, disabled: tuple[int, ...], fill: str) -> Internals:
        inner = self.base.internals
        levels = []
        for lv in inner.levels:
            if lv.bin not in disabled:
                levels.append(lv)
            elif fill == "mean":
                up = lv.reduced.mean((2, 3), keepdim=True).expand_as(lv.upsampled).contiguous()
                levels.append(PyramidLevel(lv.bin, lv.pooled, lv.reduced, up, False))
            else:
                levels.append(PyramidLevel(lv.bin, lv.pooled, lv.reduced, torch.zeros_like(lv.upsampled), False))
        return Internals(inner.layer3, inner.layer4, levels)


def _dense(net: Network, plan: Any, logits: list[Tensor]) -> PassMap:
    from core.inference.maps import Accumulator, window_values

    acc = Accumulator(plan, int(logits[0].shape[1]), torch.device("cpu"))
    for win, lg in zip(plan.windows, logits):
        acc.add(window_values(net, lg, plan, win), win)
    return acc.finish()


__all__ = ["LevelSwitch"]
