"""The training loss, outside the model: CE(main) + aux_weight * CE(aux), ignoring label 255."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from core.constants import IGNORE as IGNORE_INDEX
from core.model.pspnet import PSPNetOutput


@dataclass
class LossParts:
    total: Tensor
    main: Tensor
    aux: Tensor | None


def pspnet_loss(out: PSPNetOutput, target: Tensor, aux_weight: float = 0.4,
                ignore_index: int = IGNORE_INDEX) -> LossParts:
    """``target`` is (N, H, W) integer labels at the logits' size; 255 pixels do not count.

    A batch with no labelled pixel gives a zero loss (not NaN), so fine-tuning on sparse
    corrections never poisons the weights."""
    target = target.long()
    main = _ce(out.main, target, ignore_index)
    aux = _ce(out.aux, target, ignore_index) if out.aux is not None and aux_weight else None
    total = main + aux_weight * aux if aux is not None else main
    return LossParts(total, main, aux)


def _ce(logits: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    if not (target != ignore_index).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, ignore_index=ignore_index)
