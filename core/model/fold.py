"""BatchNorm folded into the convolution before it, for inference.

In evaluation a BatchNorm is a per-channel affine map ``y = s * x + t`` with
``s = gamma / sqrt(var + eps)`` and ``t = beta - s * mean``, so conv + BN is one convolution
with weight ``s * W`` and bias ``s * b + t``. The folding is computed in float64 on the CPU and
stored in the convolution's own dtype and device.
"""

from __future__ import annotations

from torch import Tensor, nn

import torch

# the (conv, BatchNorm) attribute pairs of our modules: ResNet stem and blocks, pyramid branches, heads
PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"), ("conv", "bn"))


class ChannelShift(nn.Module):
    """``x + bias`` per channel: what a folded BatchNorm leaves after a conv that stays bias-free."""

    def __init__(self, bias: Tensor):
        super().__init__()
        self.register_buffer("bias", bias.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bias.view(1, -1, 1, 1).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.bias.numel()}"


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, *, keep_bias_free: bool = False) -> nn.Module:
    """Fold ``bn`` (its running statistics) into ``conv`` in place; return the module that takes
    ``bn``'s place: :class:`nn.Identity`, or with ``keep_bias_free`` a :class:`ChannelShift`
    holding the shift (the conv then gets only the scale and no bias)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics (track_running_stats=False)")
    if conv.out_channels != bn.num_features:
        raise ValueError(f"cannot fold a BatchNorm of {bn.num_features} channels into a conv of {conv.out_channels}")
    dev, dtype = conv.weight.device, conv.weight.dtype

    def f64(t: Tensor) -> Tensor:
        return t.detach().cpu().double()

    var, mean = f64(bn.running_var), f64(bn.running_mean)
    gamma = f64(bn.weight) if bn.weight is not None else torch.ones_like(var)
    beta = f64(bn.bias) if bn.bias is not None else torch.zeros_like(var)
    scale = gamma / torch.sqrt(var + bn.eps)
    bias = f64(conv.bias) if conv.bias is not None else torch.zeros_like(var)
    shift = beta + scale * (bias - mean)
    weight = f64(conv.weight) * scale.view(-1, *([1] * (conv.weight.dim() - 1)))
    conv.weight = nn.Parameter(weight.to(dev, dtype), requires_grad=False)
    if keep_bias_free:
        conv.bias = None
        return ChannelShift(shift.to(dev, dtype))
    conv.bias = nn.Parameter(shift.to(dev, dtype), requires_grad=False)
    return nn.Identity()


def fold_module(module: nn.Module, keep_bias_free: tuple[type, ...] = ()) -> int:
    """Fold every (conv, bn) pair in ``module``'s subtree in place: the attribute pairs of
    :data:`PAIRS` and ``Sequential(conv, bn)``. Modules of a type in ``keep_bias_free`` keep
    their conv bias-free (see :func:`fold_conv_bn`). Returns how many BatchNorms were folded."""
    count = 0
    for parent in list(module.modules()):
        if isinstance(parent, nn.Sequential):
            children = list(parent.named_children())
            for (_, a), (bn_name, b) in zip(children, children[1:]):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                    setattr(parent, bn_name, fold_conv_bn(a, b))
                    count += 1
            continue
        for conv_name, bn_name in PAIRS:
            conv, bn = getattr(parent, conv_name, None), getattr(parent, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(parent, bn_name, fold_conv_bn(conv, bn, keep_bias_free=isinstance(parent, keep_bias_free)))
                count += 1
    return count


__all__ = ["ChannelShift", "fold_conv_bn", "fold_module", "PAIRS"]
