"""Inference copies of a PSPNet: BatchNorm folded into the convolutions, a cheaper main head.

:func:`optimize_for_inference` is what a predictor runs. It returns an
:class:`InferencePSPNet`, a copy of the model (the original is not touched) with

- **every BatchNorm folded into the convolution before it.** In evaluation a BatchNorm is a
  per-channel affine map ``y = s * x + t`` (``s = gamma / sqrt(var + eps)``,
  ``t = beta - s * mean``), so conv + BN is one convolution with weight ``s * W`` and bias
  ``s * b + t``; the ``bn`` attribute becomes :class:`nn.Identity`. The heads keep their 3x3
  convolution bias-free and their BN becomes a :class:`ChannelShift` (``x + t``): code that
  splits the main head's convolution by input group (``core.inspect.LevelSwitch``: ``F.conv2d``
  on weight slices, then ``head.bn``) stays exact.
- **the main head's 3x3 convolution split by input group** (:meth:`InferencePSPNet.forward_heads`).
  The head convolves ``cat([layer4, up_1, ..., up_n])``, where ``up_b`` is the b x b output of a
  pyramid branch upsampled bilinearly to the feature size. Convolution and upsampling are both
  linear, and the channel mixing of each kernel tap commutes with the (per-channel) upsampling,
  so the branches' share of the convolution is computed on the b x b grids and then spread to
  the feature size with the separable (row x column) interpolation-and-shift matrices: under
  1 % of the work instead of half of the head (the branches carry half its input channels).
  With the default PSPNet-50 at 473x473 that removes 68 of the model's 341 GFLOP. The
  concatenation is never built and the branches are upsampled only when the internals are
  asked for.
- **ReLU and the residual sum run inside the convolutions** on the CPU (oneDNN post-ops through
  ``torch.ops.mkldnn._convolution_pointwise``, the kernels ``torch.compile`` uses): no separate
  pass over each activation for the ReLU, the shortcut addition or the heads' shift, and each
  weight reordered into oneDNN's layout once instead of on every call (``pack_weights``; that
  copy costs as much memory again as the convolution weights). The blocks' classes become
  subclasses (:mod:`core.model.fused`) that do this when the input is a float32 CPU tensor
  outside autograd and oneDNN is there (checked once against ``F.conv2d``), and run as before
  otherwise (a GPU, autocast, gradients).
- optionally **no auxiliary head** (``aux=False``): for callers that do not show it.

Everything else is the model as it was: the same class hierarchy (an ``InferencePSPNet`` is a
``PSPNet``), the same module tree (``backbone.stem`` / ``layer1..4``, ``ppm``, ``head``,
``aux_head``), ``forward`` / ``forward_heads`` / ``normalize`` / ``upsample`` with the same
arguments, and the same internals (layer3, layer4 and every pyramid level's pooled, reduced
and upsampled maps are what the original computes, up to float rounding), so code that runs
the backbone stage by stage or re-runs the heads on cached features keeps working on it.

The copy is for inference only: with its BatchNorms gone it cannot be trained, so its
parameters do not require gradients and ``train(True)`` raises.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.model.derived import derived
from core.model.fold import ChannelShift, fold_module
from core.model.fused import conv_add_relu, conv_relu, fuse_activations, use_fusion
from core.model.heads import SegHead
from core.model.ppm import Fill, PyramidLevel
from core.model.pspnet import Internals, PSPNet, PSPNetOutput


class InferencePSPNet(PSPNet):
    """A :class:`PSPNet` made by :func:`fold_batchnorm` / :func:`optimize_for_inference`.

    Computes what the model it was made from computes in evaluation mode. ``train(True)``
    raises: a folded network has no BatchNorm statistics left to train."""

    split_head: bool = False  # forward_heads runs the main head split by input group (module docstring)
    pack_weights: bool = True  # fused convolutions keep their weights reordered for oneDNN

    def train(self, mode: bool = True) -> "InferencePSPNet":
        if mode:
            raise RuntimeError("this is an inference copy of a PSPNet (BatchNorm folded into the convolutions); "
                               "train the original model instead")
        return super().train(False)

    def forward_heads(self, layer3: Tensor, layer4: Tensor, size: Sequence[int], *, internals: bool = False,
                      disabled_levels: Sequence[int] = (), fill: Fill = "zeros") -> PSPNetOutput:
        """:meth:`PSPNet.forward_heads`, with the main head's convolution split by input group."""
        if self.ppm is None or not self.split_head:
            return super().forward_heads(layer3, layer4, size, internals=internals,
                                         disabled_levels=disabled_levels, fill=fill)
        size = tuple(int(s) for s in size)
        features, levels = self._head_features(layer4, disabled_levels, fill, internals)
        head = self.head
        main = self.upsample(head.classifier(head.dropout(features)), size)
        aux = self.upsample(self.aux_head(layer3), size) if self.aux_head is not None else None
        inner = Internals(layer3, layer4, levels) if internals else None
        return PSPNetOutput(main, aux, inner)

    def _head_features(self, x: Tensor, disabled: Sequence[int], fill: Fill,
                       keep: bool) -> tuple[Tensor, list[PyramidLevel]]:
        """The main head's hidden features (conv, shift, ReLU) of ``cat([x, up_1, ..., up_n])``,
        and the pyramid levels (when ``keep``) as :class:`PyramidPooling` computes them."""
        ppm, head = self.ppm, self.head
        unknown = set(disabled) - set(ppm.bins)
        if unknown:
            raise ValueError(f"no pyramid level with bin(s) {sorted(unknown)}; levels are {ppm.bins}")
        size = x.shape[-2:]
        conv = head.conv
        out_size = [(n + 2 * p - d * (k - 1) - 1) // s + 1
                    for n, p, d, k, s in zip(size, conv.padding, conv.dilation, conv.kernel_size, conv.stride)]
        spread: Tensor | None = None  # the pyramid branches' share of the convolution
        levels: list[PyramidLevel] = []
        for i, branch in enumerate(ppm.branches):
            off = branch.bin in disabled
            if off and fill == "zeros" and not keep:
                continue  # a branch of zeros adds nothing to the convolution
            pooled, reduced = branch(x)
            grid: Tensor | None = reduced
            if off:
                if fill == "mean":
                    grid = reduced.mean((2, 3), keepdim=True)
                    up = grid.expand(-1, -1, *size)
                else:
                    grid = None
                    up = x.new_zeros(x.shape[0], branch.out_channels, *size)
            elif keep:
                up = F.interpolate(reduced, size=size, mode="bilinear", align_corners=ppm.align_corners)
            if keep:
                levels.append(PyramidLevel(branch.bin, pooled, reduced, up, not off))
            if grid is not None:
                part = self._spread(grid, self._taps(i), tuple(size), out_size)
                spread = part if spread is None else spread.add_(part)
        c4 = x.shape[1]  # layer4's channels come first in the head's input
        shift = head.bn.bias if isinstance(head.bn, ChannelShift) else None
        if shift is not None and use_fusion(x):
            pack = self.pack_weights
            if spread is None:
                return conv_relu(conv, x, bias=shift, in_channels=c4, pack=pack), levels
            return conv_add_relu(conv, x, spread.to(x.dtype).contiguous(), bias=shift, in_channels=c4,
                                 pack=pack), levels
        pre = F.conv2d(x, conv.weight[:, :c4], None, conv.stride, conv.padding, conv.dilation)
        if spread is not None:
            pre = pre + spread.to(pre.dtype)
        return head.relu(head.bn(pre)), levels

    def _taps(self, i: int) -> Tensor:
        """Branch ``i``'s part of the main head's weight as (O * kh * kw, C), row = (o, a, b)
        (derived from ``head.conv.weight`` once, again only when that changes)."""
        conv = self.head.conv
        start = self.cfg.layer_channels[3] + sum(b.out_channels for b in self.ppm.branches[:i])
        n = self.ppm.branches[i].out_channels

        def make(w: Tensor) -> Tensor:
            o, _, kh, kw = w.shape
            return w[:, start:start + n].permute(0, 2, 3, 1).reshape(o * kh * kw, n).contiguous()
        return derived(conv, f"taps {start}:{start + n}", conv.weight, make)

    def _spread(self, grid: Tensor, taps: Tensor, size: tuple[int, int], out_size: Sequence[int]) -> Tensor:
        """conv(bilinear_upsample(grid, size), W_branch) without building the upsampled map.

        ``taps`` is the branch's weight as (O * kh * kw, C). Per kernel tap (a, b) the channel
        mixing ``W[:, :, a, b] @ grid`` runs on the grid, then rows and columns are interpolated
        and shifted by that tap (zero outside, as the convolution's zero padding)."""
        conv = self.head.conv
        n, c, gh, gw = grid.shape
        kh, kw = conv.kernel_size
        o = taps.shape[0] // (kh * kw)
        ho, wo = int(out_size[0]), int(out_size[1])
        mixed = torch.matmul(taps.to(grid.dtype), grid.reshape(n, c, gh * gw))  # (n, o*kh*kw, gh*gw)
        # (n, o, a, b, y, x) -> (n, o, a, y, b, x): contract the column taps b and grid columns x
        mixed = mixed.view(n, o, kh, kw, gh, gw).permute(0, 1, 2, 4, 3, 5).reshape(n * o * kh * gh, kw * gw)
        rows = _tap_matrices(gh, size[0], ho, kh, conv.stride[0], conv.padding[0], conv.dilation[0],
                             self.ppm.align_corners, grid)  # (kh, ho, gh)
        cols = _tap_matrices(gw, size[1], wo, kw, conv.stride[1], conv.padding[1], conv.dilation[1],
                             self.ppm.align_corners, grid)  # (kw, wo, gw)
        t = torch.mm(mixed, cols.permute(0, 2, 1).reshape(kw * gw, wo)).view(n * o, kh * gh, wo)
        out = torch.matmul(rows.permute(1, 0, 2).reshape(ho, kh * gh), t)  # (n * o, ho, wo)
        return out.view(n, o, ho, wo)


def _tap_matrices(g: int, n: int, n_out: int, k: int, stride: int, padding: int, dilation: int,
                  align_corners: bool, like: Tensor) -> Tensor:
    """(k, n_out, g): for each kernel tap, output position i of the convolution reads input
    position ``i * stride - padding + tap * dilation`` of the g -> n bilinear upsampling (zero
    outside). The interpolation weights come from F.interpolate itself."""
    eye = torch.eye(g, device=like.device, dtype=like.dtype).view(g, 1, g, 1)
    up = F.interpolate(eye, size=(n, 1), mode="bilinear", align_corners=align_corners).view(g, n).T  # (n, g)
    padded = F.pad(up, (0, 0, padding, padding))  # zero rows for the padding
    idx = (torch.arange(n_out, device=like.device) * stride)[None, :] + \
        (torch.arange(k, device=like.device) * dilation)[:, None]  # (k, n_out) rows of `padded`
    return padded[idx]


def fold_batchnorm(model: PSPNet) -> InferencePSPNet:
    """An evaluation-mode copy of ``model`` with every BatchNorm folded into its convolution
    (nothing else changed: the heads run as in PSPNet).

    The copy lives on ``model``'s device, in its dtype, and shares no tensor with it; ``model``
    itself is not modified (its training mode included)."""
    if not isinstance(model, PSPNet):
        raise TypeError(f"expected a core PSPNet, got {type(model).__name__}")
    net = copy.deepcopy(model)
    net.__class__ = InferencePSPNet
    net.split_head = False
    net.eval()
    with torch.no_grad():
        fold_module(net, keep_bias_free=(SegHead,))
    left = [name for name, m in net.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if left:
        raise ValueError(f"BatchNorm layer(s) not preceded by a convolution, cannot fold: {', '.join(left)}")
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _can_split_head(net: InferencePSPNet) -> bool:
    """The main head's convolution can be split by input group (a plain zero-padded conv of
    ``cat([layer4, branches...])``, bias-free after folding)."""
    conv = net.head.conv
    if net.ppm is None or conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return False
    return conv.bias is None and conv.in_channels == net.cfg.layer_channels[3] + sum(
        b.out_channels for b in net.ppm.branches)


def optimize_for_inference(model: PSPNet, *, aux: bool = True, split_head: bool = True, fuse: bool = True,
                           pack_weights: bool = True) -> InferencePSPNet:
    """The module a predictor runs: ``model`` with BatchNorm folded, the main head split by input
    group (``split_head``), ReLU / residual sums fused into the CPU convolutions (``fuse``) whose
    weights are kept reordered for oneDNN (``pack_weights``); see the module docstring. Without
    the auxiliary head when ``aux`` is False (then ``aux_head`` is None, ``cfg.aux`` is False and
    every output has ``aux=None``).

    A copy on ``model``'s device and in its dtype; ``model`` is not modified and shares no
    tensor with it, so weights that change later (fine-tuning) need a new call. The outputs
    equal ``model.eval()``'s up to float rounding (about 1e-6 of the largest logit in float32)."""
    net = fold_batchnorm(model)
    if not aux and net.aux_head is not None:
        net.aux_head = None
        net.cfg = dataclasses.replace(net.cfg, aux=False)
    net.split_head = split_head and _can_split_head(net)
    net.pack_weights = pack_weights
    if fuse:
        fuse_activations(net, pack_weights=pack_weights)
    return net


__all__ = ["optimize_for_inference", "fold_batchnorm", "InferencePSPNet", "ChannelShift"]
