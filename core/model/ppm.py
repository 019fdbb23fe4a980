"""The pyramid pooling module: pool to b x b grids, reduce, upsample, concatenate after the input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Fill = Literal["zeros", "mean"]


@dataclass
class PyramidLevel:
    """One pyramid level as the network computed it (for the inspector)."""

    bin: int
    pooled: Tensor  # (N, C_in, b, b): the pooled grid
    reduced: Tensor  # (N, C_branch, b, b): after the 1x1 conv + BN + ReLU (== pooled without reduction)
    upsampled: Tensor  # (N, C_branch, h, w): what was concatenated (after any switch-off)
    enabled: bool


class PyramidBranch(nn.Module):
    def __init__(self, bin: int, cin: int, cout: int | None, pooling: str):
        super().__init__()
        self.bin = bin
        self.pool = nn.AdaptiveAvgPool2d(bin) if pooling == "avg" else nn.AdaptiveMaxPool2d(bin)
        self.reduce = cout is not None
        if self.reduce:
            self.conv = nn.Conv2d(cin, cout, 1, bias=False)
            self.bn = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
        self.out_channels = cout if cout is not None else cin

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        pooled = self.pool(x)
        reduced = self.relu(self.bn(self.conv(pooled))) if self.reduce else pooled
        return pooled, reduced


class PyramidPooling(nn.Module):
    def __init__(self, cin: int, bins: Sequence[int], pooling: str = "avg", reduction: bool = True,
                 reduction_channels: int | None = None, align_corners: bool = True):
        super().__init__()
        if len(set(bins)) != len(bins):
            raise ValueError(f"pyramid bins must be distinct, got {tuple(bins)}")
        cout = (reduction_channels or cin // len(bins)) if reduction else None
        self.bins = tuple(bins)
        self.align_corners = align_corners
        self.branches = nn.ModuleList(PyramidBranch(b, cin, cout, pooling) for b in bins)
        self.out_channels = cin + sum(br.out_channels for br in self.branches)

    def forward(self, x: Tensor, disabled: Sequence[int] = (), fill: Fill = "zeros",
                keep: bool = False) -> tuple[Tensor, list[PyramidLevel] | None]:
        """Concatenate ``x`` with every branch; branches whose bin is in ``disabled`` are replaced
        by zeros (``fill="zeros"``) or by their per-channel mean over the grid (``fill="mean"``:
        the level's global content without its layout). With ``keep`` the levels are returned."""
        unknown = set(disabled) - set(self.bins)
        if unknown:
            raise ValueError(f"no pyramid level with bin(s) {sorted(unknown)}; levels are {self.bins}")
        size = x.shape[-2:]
        outs, levels = [x], ([] if keep else None)
        for branch in self.branches:
            off = branch.bin in disabled
            if off and fill == "zeros" and not keep:
                outs.append(x.new_zeros(x.shape[0], branch.out_channels, *size))
                continue
            pooled, reduced = branch(x)
            if off:
                if fill == "mean":
                    up = reduced.mean((2, 3), keepdim=True).expand(-1, -1, *size)
                else:
                    up = x.new_zeros(x.shape[0], branch.out_channels, *size)
            else:
                up = F.interpolate(reduced, size=size, mode="bilinear", align_corners=self.align_corners)
            outs.append(up)
            if levels is not None:
                levels.append(PyramidLevel(branch.bin, pooled, reduced, up, not off))
        return torch.cat(outs, 1), levels
