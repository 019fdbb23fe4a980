"""ReLU and the residual sum inside the convolutions, for inference on the CPU.

oneDNN applies an activation and a sum to a convolution's output while it is still in cache
("post-ops"); PyTorch reaches them through ``torch.ops.mkldnn._convolution_pointwise``, the
kernels ``torch.compile`` emits for CPU convolutions. A folded network (no BatchNorm left, see
:mod:`core.model.fold`) then runs a bottleneck as three calls instead of eight passes. The
weights are reordered into oneDNN's blocked layout once (kept beside the module by
:mod:`core.model.derived`: about as much memory again as the convolution weights) instead of on
every call, unless ``pack_weights`` is False.

:func:`fuse_activations` swaps the class of each qualifying module (a folded ResNet block, the
ResNet stem, a head whose BatchNorm became a shift) for a subclass whose forward does this when
:func:`use_fusion` says so (a float32 CPU tensor, no autograd, no autocast, no tracing or
compiling, and the ops present and checked once against ``F.conv2d``) and otherwise runs the
original forward. The module tree and the parameters stay as they are.
"""

from __future__ import annotations

import functools
import logging
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.model.backbone import BasicBlock, Bottleneck, ResNet
from core.model.derived import derived
from core.model.fold import ChannelShift
from core.model.heads import SegHead

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=None)
def fusion_available() -> bool:
    """oneDNN's fused convolutions are there and give ``F.conv2d``'s results (checked once)."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, 8, 9, 7, generator=g)
        w = torch.randn(6, 8, 3, 3, generator=g)
        b = torch.randn(6, generator=g)
        other = torch.randn(1, 6, 5, 4, generator=g)
        geo = ((2, 2), (2, 2), (2, 2))
        with torch.no_grad():
            ref = F.conv2d(x, w, b, geo[1], geo[0], geo[2])
            packed = torch.ops.mkldnn._reorder_convolution_weight(w, [2, 2], [2, 2], [2, 2], 1, [1, 8, 16, 16])
            got = _pointwise(x, packed, b, *geo, relu=True)
            got_sum = _pointwise_add(x, other, packed, b, *geo)
        tol = 1e-4 * float(ref.abs().max())
        ok = bool((got - ref.relu()).abs().max() <= tol and (got_sum - (ref + other).relu()).abs().max() <= tol)
        if not ok:
            log.warning("oneDNN fused convolutions disagree with F.conv2d here; not using them")
        return ok
    except Exception as exc:  # noqa: BLE001 - a missing or changed private op: run without fusion
        log.debug("oneDNN fused convolutions unavailable: %s", exc)
        return False


def use_fusion(x: Tensor) -> bool:
    """Whether a fused forward may run on ``x``."""
    return (x.device.type == "cpu" and x.dtype == torch.float32
            and not (x.requires_grad and torch.is_grad_enabled())
            and not torch.is_autocast_enabled("cpu")
            and not torch.jit.is_tracing() and not torch.compiler.is_compiling()
            and not torch.compiler.is_exporting() and fusion_available())


def _pointwise(x: Tensor, weight: Tensor, bias: Tensor | None, padding: Sequence[int], stride: Sequence[int],
               dilation: Sequence[int], *, relu: bool, groups: int = 1) -> Tensor:
    return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, list(padding), list(stride), list(dilation),
                                                   groups, "relu" if relu else "none", [], "")


def _pointwise_add(x: Tensor, other: Tensor, weight: Tensor, bias: Tensor | None, padding: Sequence[int],
                   stride: Sequence[int], dilation: Sequence[int], groups: int = 1) -> Tensor:
    """relu(conv(x) + bias + other), in one oneDNN call (``other`` is not modified)."""
    return torch.ops.mkldnn._convolution_pointwise.binary(x, other, weight, bias, list(padding), list(stride),
                                                          list(dilation), groups, "add", 1.0, "relu", [], "")


def _packed(conv: nn.Conv2d, x: Tensor, in_channels: int | None) -> Tensor:
    """``conv.weight`` (its first ``in_channels`` input channels when given) reordered once into
    oneDNN's blocked layout; an unpacked weight is reordered again on every call, which costs
    about a tenth of a PSPNet-50 forward on the CPU."""
    def make(w: Tensor) -> Tensor:
        if in_channels is not None:
            w = w[:, :in_channels]
        return torch.ops.mkldnn._reorder_convolution_weight(w.contiguous(), list(conv.padding), list(conv.stride),
                                                            list(conv.dilation), conv.groups, list(x.shape))
    return derived(conv, f"mkldnn weight[:{in_channels}]", conv.weight, make)


def _weight(conv: nn.Conv2d, x: Tensor, in_channels: int | None, pack: bool) -> Tensor:
    if pack:
        return _packed(conv, x, in_channels)
    return conv.weight if in_channels is None else conv.weight[:, :in_channels]


def conv_relu(conv: nn.Conv2d, x: Tensor, *, relu: bool = True, bias: Tensor | None = None,
              in_channels: int | None = None, pack: bool = True) -> Tensor:
    """``conv(x)``, then ReLU (unless ``relu`` is False), in one oneDNN call. ``bias`` replaces
    the conv's own; ``in_channels``: ``x`` holds only the first that many of the conv's inputs."""
    b = conv.bias if bias is None else bias
    return _pointwise(x, _weight(conv, x, in_channels, pack), b, conv.padding, conv.stride, conv.dilation,
                      relu=relu, groups=conv.groups)


def conv_add_relu(conv: nn.Conv2d, x: Tensor, other: Tensor, *, bias: Tensor | None = None,
                  in_channels: int | None = None, pack: bool = True) -> Tensor:
    """``relu(conv(x) + other)`` in one oneDNN call (arguments as in :func:`conv_relu`)."""
    b = conv.bias if bias is None else bias
    return _pointwise_add(x, other, _weight(conv, x, in_channels, pack), b, conv.padding, conv.stride,
                          conv.dilation, conv.groups)


def _folded(*modules: nn.Module | None) -> bool:
    return all(m is None or isinstance(m, nn.Identity) for m in modules)


def _plain_conv(conv: nn.Module) -> bool:
    return isinstance(conv, nn.Conv2d) and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)


def _shortcut_ok(block: nn.Module) -> bool:
    ds = block.downsample
    return ds is None or (isinstance(ds, nn.Sequential) and len(ds) == 2 and _plain_conv(ds[0]) and _folded(ds[1]))


def _shortcut(block: nn.Module, x: Tensor, pack: bool) -> Tensor:
    """A residual block's shortcut: ``x``, or its folded 1x1 downsampling convolution (no ReLU)."""
    return x if block.downsample is None else conv_relu(block.downsample[0], x, relu=False, pack=pack)


class FusedBottleneck(Bottleneck):
    pack_weights = True

    def forward(self, x: Tensor) -> Tensor:
        if not use_fusion(x):
            return super().forward(x)
        p = self.pack_weights
        identity = _shortcut(self, x, p)
        out = conv_relu(self.conv1, x, pack=p)
        out = conv_relu(self.conv2, out, pack=p)
        return conv_add_relu(self.conv3, out, identity, pack=p)


class FusedBasicBlock(BasicBlock):
    pack_weights = True

    def forward(self, x: Tensor) -> Tensor:
        if not use_fusion(x):
            return super().forward(x)
        p = self.pack_weights
        identity = _shortcut(self, x, p)
        return conv_add_relu(self.conv2, conv_relu(self.conv1, x, pack=p), identity, pack=p)


class FusedResNet(ResNet):
    pack_weights = True

    def stem(self, x: Tensor) -> Tensor:
        if not use_fusion(x):
            return super().stem(x)
        p = self.pack_weights
        x = conv_relu(self.conv1, x, pack=p)
        if self.cfg.stem == "deep":
            x = conv_relu(self.conv3, conv_relu(self.conv2, x, pack=p), pack=p)
        return self.maxpool(x)


class FusedSegHead(SegHead):
    """A head whose BatchNorm became a :class:`ChannelShift`: the shift is the fused conv's bias."""

    pack_weights = True

    def features(self, x: Tensor) -> Tensor:
        if not use_fusion(x):
            return super().features(x)
        return conv_relu(self.conv, x, bias=self.bn.bias, pack=self.pack_weights)


def fuse_activations(module: nn.Module, *, pack_weights: bool = True) -> int:
    """Swap the class of every folded block, stem and head in ``module`` (in place) for its fused
    subclass; returns how many were swapped. Modules still holding a BatchNorm are left alone.
    ``pack_weights``: keep each weight reordered for oneDNN (faster, as much memory again)."""
    count = 0
    for m in module.modules():
        new = None
        if type(m) is Bottleneck and _folded(m.bn1, m.bn2, m.bn3) and _shortcut_ok(m) and \
                all(_plain_conv(c) for c in (m.conv1, m.conv2, m.conv3)):
            new = FusedBottleneck
        elif type(m) is BasicBlock and _folded(m.bn1, m.bn2) and _shortcut_ok(m) and \
                all(_plain_conv(c) for c in (m.conv1, m.conv2)):
            new = FusedBasicBlock
        elif type(m) is ResNet and _folded(m.bn1, getattr(m, "bn2", None), getattr(m, "bn3", None)):
            new = FusedResNet
        elif type(m) is SegHead and isinstance(m.bn, ChannelShift) and _plain_conv(m.conv) and m.conv.bias is None:
            new = FusedSegHead
        if new is not None:
            m.__class__ = new
            if not pack_weights:
                m.pack_weights = False
            count += 1
    return count


__all__ = ["fuse_activations", "fusion_available", "use_fusion", "conv_relu", "conv_add_relu", "FusedBottleneck",
           "FusedBasicBlock", "FusedResNet", "FusedSegHead"]
