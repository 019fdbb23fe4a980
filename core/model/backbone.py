"""Dilated ResNet (output stride 8 or 16) with torchvision's parameter names.

Parameter names follow torchvision (``conv1``, ``bn1``, ``layer1.0.conv1`` ...) so that
torchvision's ImageNet files load as they are; the deep stem adds ``conv2/bn2/conv3/bn3``
exactly as the authors' ``resnet50_v2.pth`` and CSAIL's encoders name them.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from core.config import ModelConfig

LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, dilations: tuple[int, int], downsample: nn.Module | None):
        super().__init__()
        self.conv1 = conv3x3(cin, planes, stride, dilations[0])
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, 1, dilations[1])
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: the stride sits on the 3x3 conv (torchvision, semseg, CSAIL, mmseg)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, dilations: tuple[int, int], downsample: nn.Module | None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilations[0])
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


@dataclass
class Stages:
    """The backbone's stage outputs (what CSAIL calls ``return_feature_maps``)."""

    layer1: Tensor
    layer2: Tensor
    layer3: Tensor
    layer4: Tensor


def block_dilations(cfg: ModelConfig, layer: int, index: int) -> tuple[int, int]:
    """(dilation of the block's first 3x3 conv, of its second) for block ``index`` of ``layer`` (1..4)."""
    full = {8: {3: 2, 4: 4}, 16: {3: 1, 4: 2}}[cfg.output_stride].get(layer, 1)
    first = full // 2 if (cfg.dilation == "halved_first" and index == 0 and full > 1) else full
    if cfg.block == "bottleneck":
        return first, first
    second = full if cfg.basic_dilate_conv2 else 1
    return first, second


class ResNet(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        block = BasicBlock if cfg.block == "basic" else Bottleneck
        w = cfg.base_width
        self.relu = nn.ReLU(inplace=True)
        if cfg.stem == "plain":
            self.conv1 = nn.Conv2d(3, w, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(w)
            cin = w
        else:
            sw = cfg.deep_stem_width
            self.conv1 = conv3x3(3, sw // 2, stride=2)
            self.bn1 = nn.BatchNorm2d(sw // 2)
            self.conv2 = conv3x3(sw // 2, sw // 2)
            self.bn2 = nn.BatchNorm2d(sw // 2)
            self.conv3 = conv3x3(sw // 2, sw)
            self.bn3 = nn.BatchNorm2d(sw)
            cin = sw
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        dilated = {8: (3, 4), 16: (4,)}[cfg.output_stride]
        for i, n_blocks in enumerate(LAYERS[cfg.depth], start=1):
            planes = w * 2 ** (i - 1)
            stride = 1 if i == 1 or i in dilated else 2
            layer, cin = self._make_layer(block, cin, planes, n_blocks, stride, i)
            setattr(self, f"layer{i}", layer)

    def _make_layer(self, block, cin: int, planes: int, n_blocks: int, stride: int, index: int):
        cout = planes * block.expansion
        downsample = None
        if stride != 1 or cin != cout:
            downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        blocks = []
        for b in range(n_blocks):
            blocks.append(
                block(cin if b == 0 else cout, planes, stride if b == 0 else 1,
                      block_dilations(self.cfg, index, b), downsample if b == 0 else None)
            )
        return nn.Sequential(*blocks), cout

    def stem(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.cfg.stem == "deep":
            x = self.relu(self.bn2(self.conv2(x)))
            x = self.relu(self.bn3(self.conv3(x)))
        return self.maxpool(x)

    def forward(self, x: Tensor) -> Stages:
        x1 = self.layer1(self.stem(x))
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        x4 = self.layer4(x3)
        return Stages(x1, x2, x3, x4)


def init_weights(module: nn.Module) -> None:
    """He-normal convs, unit BatchNorm (the authors' initialisation of fresh layers)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


__all__ = ["ResNet", "Stages", "BasicBlock", "Bottleneck", "block_dilations", "init_weights", "LAYERS"]
