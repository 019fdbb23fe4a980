"""The one way a PSPNet is run for inference: backbone stages, pyramid, heads.

The predictor's windows, the head-only re-run and the level switch all go through
:class:`Network`, so they cannot drift apart. It reads the module's parts by name
(``backbone.stem`` / ``layer1..4``, ``ppm``, ``head.conv/bn/relu/dropout/classifier``,
``aux_head``, ``normalize``, ``upsample``, ``cfg``), so any module with that layout runs the
same way, e.g. an inference copy with batch-norm folded into the convolutions (whose ``bn``
is an identity and whose convolutions have a bias).

Every method expects to be called inside ``torch.inference_mode()``; logits come back at the
network's output resolution (the caller upsamples them as its procedure says).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.model.ppm import Fill, PyramidLevel
from core.model.pspnet import Internals


@dataclass
class WindowParts:
    """What the level switch keeps of one window: the head convolution's share of layer4 and the
    pyramid branches' grids (pooled and reduced), on the CPU."""

    part0: Tensor  # (1, O, h, w) float32
    levels: list[PyramidLevel]  # pooled / reduced grids; ``upsampled`` empty

    @property
    def nbytes(self) -> int:
        ts = [self.part0] + [t for lv in self.levels for t in (lv.pooled, lv.reduced)]
        return sum(t.numel() * t.element_size() for t in ts)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "WindowParts":
        def mv(t: Tensor) -> Tensor:
            return t.detach().to(device=device, dtype=dtype if dtype is not None else t.dtype)

        return WindowParts(mv(self.part0), [PyramidLevel(lv.bin, mv(lv.pooled), mv(lv.reduced), mv(lv.upsampled),
                                                         lv.enabled) for lv in self.levels])


@dataclass
class HeadOutput:
    main: Tensor  # (N, C, h, w) logits at the output resolution
    aux: Tensor | None
    internals: Internals | None = None


class Network:
    """A PSPNet (or a module with its layout) seen as stages and heads; nothing here changes it."""

    STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")

    def __init__(self, module: nn.Module):
        self.module = module
        self.cfg = module.cfg

    @property
    def has_aux(self) -> bool:
        return getattr(self.module, "aux_head", None) is not None

    @property
    def bins(self) -> tuple[int, ...]:
        ppm = getattr(self.module, "ppm", None)
        return tuple(ppm.bins) if ppm is not None else ()

    @property
    def align_corners(self) -> bool:
        return bool(self.cfg.align_corners)

    def normalize(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) RGB on the 0..255 scale -> the network's input."""
        return self.module.normalize(images)

    def upsample(self, logits: Tensor, size: Sequence[int]) -> Tensor:
        return self.module.upsample(logits, size)

    def stages(self, x: Tensor) -> Generator[int, None, tuple[Tensor, Tensor]]:
        """Run the backbone stage by stage, yielding the number of stages done; return (layer3, layer4).
        No tensor work is left open across a yield."""
        backbone = self.module.backbone
        t = x
        layer3 = None
        for i, name in enumerate(self.STAGES):
            t = getattr(backbone, name)(t)
            if name == "layer3":
                layer3 = t
            yield i + 1
        return layer3, t

    def heads(self, layer3: Tensor, layer4: Tensor, *, aux: bool = True, internals: bool = False,
              disabled: Sequence[int] = (), fill: Fill = "zeros") -> HeadOutput:
        m = self.module
        levels = None
        if m.ppm is not None:
            fused, levels = m.ppm(layer4, disabled, fill, keep=internals)
        else:
            if disabled:
                raise ValueError("this model has no pyramid pooling module; there is no level to switch off")
            fused = layer4
        main = self.head_tail(m.head.conv(fused))
        aux_out = m.aux_head(layer3) if (aux and self.has_aux) else None
        inner = Internals(layer3, layer4, levels or []) if internals else None
        return HeadOutput(main, aux_out, inner)

    # --- the heads in parts, kept for the level switch (an inference copy with a split head) ----

    @property
    def splits_head(self) -> bool:
        """Whether the main head can be run from its parts cheaply: an inference copy
        (:func:`core.optimize_for_inference`) whose branches' share of the head's convolution is
        computed on the pyramid's grids."""
        m = self.module
        return getattr(m, "ppm", None) is not None and bool(getattr(m, "split_head", False)) and hasattr(m, "_spread")

    def heads_in_parts(self, layer3: Tensor, layer4: Tensor, *, aux: bool = True,
                       internals: bool = False) -> tuple[HeadOutput, "WindowParts"]:
        """:meth:`heads` with every level on, computed as the level switch computes it: the
        head's convolution of layer4 (``part0``) plus each branch's share spread from its grid.
        Returns the outputs and what a switch needs of this window (``part0`` and the branches'
        grids: a few MB, not the features). Needs :attr:`splits_head`."""
        m = self.module
        conv = m.head.conv
        c4 = layer4.shape[1]
        part0 = F.conv2d(layer4, conv.weight[:, :c4], None, conv.stride, conv.padding, conv.dilation)
        levels = []
        for branch in m.ppm.branches:
            pooled, reduced = branch(layer4)
            up = (F.interpolate(reduced, size=layer4.shape[-2:], mode="bilinear", align_corners=m.ppm.align_corners)
                  if internals else reduced[..., :0, :0])
            levels.append(PyramidLevel(branch.bin, pooled, reduced, up, True))
        parts = [part0] + self.branch_parts(levels, layer4.shape[-2:])
        main = self.head_from_parts(parts)
        aux_out = m.aux_head(layer3) if (aux and self.has_aux) else None
        inner = Internals(layer3, layer4, levels) if internals else None
        kept = WindowParts(part0, [PyramidLevel(lv.bin, lv.pooled, lv.reduced, lv.reduced[..., :0, :0], True)
                                   for lv in levels])
        return HeadOutput(main, aux_out, inner), kept

    def branch_parts(self, levels: Sequence[PyramidLevel], size: Sequence[int]) -> list[Tensor]:
        """Each branch's share of the head's convolution, spread from its reduced grid to the
        features' ``size`` (:meth:`InferencePSPNet._spread`; needs :attr:`splits_head`)."""
        m = self.module
        conv = m.head.conv
        size = (int(size[0]), int(size[1]))
        out_size = [(n + 2 * p - d * (k - 1) - 1) // st + 1
                    for n, p, d, k, st in zip(size, conv.padding, conv.dilation, conv.kernel_size, conv.stride)]
        return [m._spread(lv.reduced, m._taps(i), size, out_size) for i, lv in enumerate(levels)]

    def head_tail(self, conv_out: Tensor) -> Tensor:
        """The main head after its first convolution: BN, ReLU, dropout (off), classifier."""
        h = self.module.head
        return h.classifier(h.dropout(h.relu(h.bn(conv_out))))

    # --- the head's first convolution, split by input group (the level switch) ----------------

    def pyramid_levels(self, layer4: Tensor) -> list[PyramidLevel]:
        m = self.module
        if m.ppm is None:
            return []
        _, levels = m.ppm(layer4, (), "zeros", keep=True)
        return levels

    def head_parts(self, groups: Sequence[Tensor]) -> list[Tensor]:
        """The head's first convolution of ``[layer4, branch_1, ..., branch_n]`` as one convolution
        per group (bias-free; :meth:`head_from_parts` adds the bias once)."""
        conv = self.module.head.conv
        parts, start = [], 0
        for g in groups:
            n = g.shape[1]
            w = conv.weight[:, start:start + n]
            parts.append(F.conv2d(g.to(w.dtype), w, None, conv.stride, conv.padding, conv.dilation))
            start += n
        if start != conv.weight.shape[1]:
            raise ValueError(f"the head takes {conv.weight.shape[1]} channels but the features have {start}")
        return parts

    def head_from_parts(self, parts: Sequence[Tensor]) -> Tensor:
        conv = self.module.head.conv
        acc = parts[0].clone()
        for p in parts[1:]:
            acc += p
        if conv.bias is not None:
            acc += conv.bias.view(1, -1, 1, 1)
        return self.head_tail(acc)

    def mean_fill_part(self, level: PyramidLevel, index: int, size: Sequence[int]) -> Tensor:
        """The head convolution's part for level ``index`` (1-based group) filled with its
        per-channel mean over the grid (``fill="mean"``)."""
        up = level.reduced.mean((2, 3), keepdim=True).expand(-1, -1, *size)
        conv = self.module.head.conv
        start = sum(self._group_widths()[:index])
        w = conv.weight[:, start:start + up.shape[1]]
        return F.conv2d(up.contiguous().to(w.dtype), w, None, conv.stride, conv.padding, conv.dilation)

    def _group_widths(self) -> list[int]:
        m = self.module
        c4 = self.cfg.layer_channels[3]
        if m.ppm is None:
            return [c4]
        return [c4] + [br.out_channels for br in m.ppm.branches]


def internals_to_cpu(inner: Internals | None) -> Internals | None:
    """The inspector's copy on the CPU: layer4 in float32 (the level switch computes with it),
    layer3 and the pyramid levels in float16 (they are only looked at)."""
    if inner is None:
        return None

    def cpu(t: Tensor, dtype: torch.dtype = torch.float16) -> Tensor:
        return t.detach().to(dtype).cpu()

    levels = [PyramidLevel(lv.bin, cpu(lv.pooled), cpu(lv.reduced), cpu(lv.upsampled), lv.enabled)
              for lv in inner.levels]
    return Internals(cpu(inner.layer3), cpu(inner.layer4, torch.float32), levels)


def model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


__all__ = ["Network", "HeadOutput", "WindowParts", "internals_to_cpu", "model_device"]
