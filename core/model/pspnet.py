"""PSPNet: dilated ResNet -> pyramid pooling -> main head, plus the auxiliary head on layer3.

``forward`` returns the same :class:`PSPNetOutput` in training and evaluation; the loss lives
in :mod:`core.loss`. Any input size is accepted and logits come back at the input's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.config import ModelConfig
from core.model.backbone import ResNet, init_weights
from core.model.heads import SegHead
from core.model.ppm import Fill, PyramidLevel, PyramidPooling


@dataclass
class Internals:
    """What the inspector looks at: the backbone features and every pyramid level."""

    layer3: Tensor
    layer4: Tensor
    levels: list[PyramidLevel] = field(default_factory=list)


@dataclass
class PSPNetOutput:
    main: Tensor  # (N, classes, H, W) logits at the input size
    aux: Tensor | None  # (N, classes, H, W) logits of the layer3 head, or None without aux head
    internals: Internals | None = None


class PSPNet(nn.Module):
    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        cfg = cfg or ModelConfig()
        self.cfg = cfg
        self.backbone = ResNet(cfg)
        c3, c4 = cfg.layer_channels[2], cfg.layer_channels[3]
        if cfg.use_ppm:
            self.ppm = PyramidPooling(c4, cfg.bins, cfg.pooling, cfg.reduction, cfg.reduction_channels,
                                      cfg.align_corners)
            head_in = self.ppm.out_channels
        else:
            self.ppm = None
            head_in = c4
        self.head = SegHead(head_in, cfg.head_channels, cfg.num_classes, cfg.dropout)
        self.aux_head = SegHead(c3, cfg.aux_channels, cfg.num_classes, cfg.dropout) if cfg.aux else None
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std).view(1, 3, 1, 1), persistent=False)
        init_weights(self)

    @property
    def bins(self) -> tuple[int, ...]:
        return self.ppm.bins if self.ppm is not None else ()

    def normalize(self, images: Tensor) -> Tensor:
        """RGB images on the 0..255 scale, (N, 3, H, W), any dtype -> the network's input."""
        return (images.to(self.mean.dtype) - self.mean) / self.std

    def forward(self, x: Tensor, *, internals: bool = False, disabled_levels: Sequence[int] = (),
                fill: Fill = "zeros") -> PSPNetOutput:
        """``x`` is already normalised (see :meth:`normalize`)."""
        stages = self.backbone(x)
        return self.forward_heads(stages.layer3, stages.layer4, x.shape[-2:], internals=internals,
                                  disabled_levels=disabled_levels, fill=fill)

    def forward_heads(self, layer3: Tensor, layer4: Tensor, size: Sequence[int], *, internals: bool = False,
                      disabled_levels: Sequence[int] = (), fill: Fill = "zeros") -> PSPNetOutput:
        """Re-run only the pyramid and the heads on cached backbone features.

        ``disabled_levels`` are bin sizes whose branch is switched off (replaced by zeros by
        default); ``size`` is the (H, W) the logits are upsampled to."""
        size = tuple(int(s) for s in size)
        levels = None
        if self.ppm is not None:
            fused, levels = self.ppm(layer4, disabled_levels, fill, keep=internals)
        else:
            if disabled_levels:
                raise ValueError("this model has no pyramid pooling module; there is no level to switch off")
            fused = layer4
        main = self.upsample(self.head(fused), size)
        aux = self.upsample(self.aux_head(layer3), size) if self.aux_head is not None else None
        inner = Internals(layer3, layer4, levels or []) if internals else None
        return PSPNetOutput(main, aux, inner)

    def upsample(self, logits: Tensor, size: Sequence[int]) -> Tensor:
        if tuple(logits.shape[-2:]) == tuple(size):
            return logits
        return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=self.cfg.align_corners)

    def head_parameters(self) -> list[nn.Parameter]:
        """Everything but the backbone (trained with the higher learning rate)."""
        return [p for n, p in self.named_parameters() if not n.startswith("backbone.")]

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())
