"""State dicts in each zoo source's own file layout, written from the sources' module structure
(not from our importers' renaming rules), so loading them tests the importers independently.

Names and shapes follow the sources' code: torchvision / semseg / CSAIL ResNets (plain or deep
stem; bottleneck or basic blocks; a downsample in the first block of a layer whenever its
stride or width changes), mmseg's ResNetV1c (``backbone.stem.{0,1,3,4,6,7}``) with PSPHead and
FCNHead, semseg's PSPNet (``layer0``, ``ppm.features``, ``cls``, ``aux``), CSAIL's
``ppm_deepsup`` decoder. ``k`` divides every width (1: the real sizes).
"""

from __future__ import annotations

import math

import torch

BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
Shapes = dict[str, tuple[int, ...]]


def bn(name: str, c: int) -> Shapes:
    return {f"{name}.weight": (c,), f"{name}.bias": (c,), f"{name}.running_mean": (c,), f"{name}.running_var": (c,),
            f"{name}.num_batches_tracked": ()}


def resnet(depth: int, *, stem: str, k: int = 1, stem_width: int = 128, stem_names=None, prefix: str = "",
           fc: bool = False) -> tuple[Shapes, int, int]:
    """A ResNet's keys; returns (shapes, layer3 channels, layer4 channels)."""
    base = 64 // k
    out: Shapes = {}
    if stem == "plain":
        out[f"{prefix}conv1.weight"] = (base, 3, 7, 7)
        out.update(bn(f"{prefix}bn1", base))
        inplanes = base
    else:
        w = stem_width // k
        names = stem_names or ["conv1", "bn1", "conv2", "bn2", "conv3", "bn3"]
        for (conv, norm), (cout, cin) in zip(zip(names[::2], names[1::2]), [(w // 2, 3), (w // 2, w // 2), (w, w // 2)]):
            out[f"{prefix}{conv}.weight"] = (cout, cin, 3, 3)
            out.update(bn(f"{prefix}{norm}", cout))
        inplanes = w
    bottleneck = depth >= 50
    exp = 4 if bottleneck else 1
    widths = []
    for li, n in enumerate(BLOCKS[depth]):
        planes = base * 2 ** li
        for b in range(n):
            p = f"{prefix}layer{li + 1}.{b}."
            if bottleneck:
                out[p + "conv1.weight"] = (planes, inplanes, 1, 1)
                out[p + "conv2.weight"] = (planes, planes, 3, 3)
                out[p + "conv3.weight"] = (planes * 4, planes, 1, 1)
                for j, c in ((1, planes), (2, planes), (3, planes * 4)):
                    out.update(bn(p + f"bn{j}", c))
            else:
                out[p + "conv1.weight"] = (planes, inplanes, 3, 3)
                out[p + "conv2.weight"] = (planes, planes, 3, 3)
                out.update(bn(p + "bn1", planes))
                out.update(bn(p + "bn2", planes))
            if b == 0 and (li > 0 or inplanes != planes * exp):
                out[p + "downsample.0.weight"] = (planes * exp, inplanes, 1, 1)
                out.update(bn(p + "downsample.1", planes * exp))
            inplanes = planes * exp
        widths.append(inplanes)
    if fc:
        out[f"{prefix}fc.weight"] = (1000, inplanes)
        out[f"{prefix}fc.bias"] = (1000,)
    return out, widths[2], widths[3]


def classifier(name: str, n: int, c: int) -> Shapes:
    return {f"{name}.weight": (n, c, 1, 1), f"{name}.bias": (n,)}


def semseg_pspnet(depth: int, n: int, k: int = 1) -> Shapes:
    stem = ["layer0.0", "layer0.1", "layer0.3", "layer0.4", "layer0.6", "layer0.7"]
    out, c3, c4 = resnet(depth, stem="deep", k=k, stem_width=128, stem_names=stem)
    red = c4 // 4
    for i in range(4):
        out[f"ppm.features.{i}.1.weight"] = (red, c4, 1, 1)
        out.update(bn(f"ppm.features.{i}.2", red))
    out["cls.0.weight"] = (512 // k, 2 * c4, 3, 3)
    out.update(bn("cls.1", 512 // k))
    out.update(classifier("cls.4", n, 512 // k))
    out["aux.0.weight"] = (256 // k, c3, 3, 3)
    out.update(bn("aux.1", 256 // k))
    out.update(classifier("aux.4", n, 256 // k))
    return out


def csail_pair(depth: int, n: int, k: int = 1) -> tuple[Shapes, Shapes]:
    encoder, c3, fc_dim = resnet(depth, stem="deep", k=k, stem_width=128)
    decoder: Shapes = {}
    branch = 512 // k
    for i in range(4):
        decoder[f"ppm.{i}.1.weight"] = (branch, fc_dim, 1, 1)
        decoder.update(bn(f"ppm.{i}.2", branch))
    decoder["cbr_deepsup.0.weight"] = (fc_dim // 4, fc_dim // 2, 3, 3)
    decoder.update(bn("cbr_deepsup.1", fc_dim // 4))
    decoder["conv_last.0.weight"] = (512 // k, fc_dim + 4 * branch, 3, 3)
    decoder.update(bn("conv_last.1", 512 // k))
    decoder.update(classifier("conv_last.4", n, 512 // k))
    decoder.update(classifier("conv_last_deepsup", n, fc_dim // 4))
    return encoder, decoder


def mmseg_pspnet(depth: int, n: int, k: int = 1) -> Shapes:
    stem = [f"stem.{i}" for i in (0, 1, 3, 4, 6, 7)]
    out, c3, c4 = resnet(depth, stem="deep", k=k, stem_width=64, stem_names=stem, prefix="backbone.")
    ch = 512 // k
    for i in range(4):
        out[f"decode_head.psp_modules.{i}.1.conv.weight"] = (ch, c4, 1, 1)
        out.update(bn(f"decode_head.psp_modules.{i}.1.bn", ch))
    out["decode_head.bottleneck.conv.weight"] = (ch, c4 + 4 * ch, 3, 3)
    out.update(bn("decode_head.bottleneck.bn", ch))
    out.update(classifier("decode_head.conv_seg", n, ch))
    out["auxiliary_head.convs.0.conv.weight"] = (256 // k, c3, 3, 3)
    out.update(bn("auxiliary_head.convs.0.bn", 256 // k))
    out.update(classifier("auxiliary_head.conv_seg", n, 256 // k))
    return out


def fill(shapes: Shapes, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values of the right kind: unit-ish BatchNorm statistics, He-scaled convolutions."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            out[name] = torch.zeros(shape, dtype=torch.int64)
        elif name.endswith("running_var"):
            out[name] = torch.rand(shape, generator=g) * 0.5 + 0.75
        elif name.endswith("running_mean") or name.endswith("bias"):
            out[name] = torch.randn(shape, generator=g) * 0.1
        elif len(shape) == 4:
            out[name] = torch.randn(shape, generator=g) * math.sqrt(2 / math.prod(shape[1:]))
        elif len(shape) == 2:
            out[name] = torch.randn(shape, generator=g) * 0.01
        else:
            out[name] = 1 + 0.1 * torch.randn(shape, generator=g)
    return out
