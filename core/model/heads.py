"""Segmentation heads: 3x3 conv -> BN -> ReLU -> Dropout2d -> 1x1 classifier."""

from __future__ import annotations

from torch import Tensor, nn


class SegHead(nn.Module):
    """The main head (after the pyramid, 512 wide) and the auxiliary head (on layer3, 256 wide)
    share this shape; only their widths differ."""

    def __init__(self, cin: int, width: int, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.conv = nn.Conv2d(cin, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def features(self, x: Tensor) -> Tensor:
        """The head's hidden features (before dropout and the classifier)."""
        return self.relu(self.bn(self.conv(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.dropout(self.features(x)))
