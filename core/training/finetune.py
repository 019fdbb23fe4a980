"""Fine-tuning on painted corrections (what the GUI's Retrain runs)."""

from __future__ import annotations

from typing import Any, Callable, Generator, Sequence

import numpy as np

from core.errors import TrainingError
from core.loss import IGNORE_INDEX
from core.training.loop import Cancel, Trainer
from core.training.schedule import fixed_val_split
from core.training.types import TrainConfig, TrainProgress, TrainResult


class Subset:
    """Some images of a data set, keeping its ``classes`` and ``name``."""

    def __init__(self, dataset: Any, indices: Sequence[int]):
        self.dataset, self.indices = dataset, list(indices)
        self.classes = getattr(dataset, "classes", None)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.dataset[self.indices[i]]

    def name(self, i: int) -> str:
        return self.dataset.name(self.indices[i])


def finetune(model: Any, dataset: Any, cfg: TrainConfig, *, cancel: Cancel = None,
             val_names: Sequence[str] | None = None,
             augment: Callable | None = None) -> Generator[TrainProgress, None, TrainResult]:
    """Fine-tune ``model`` on the labelled pixels of ``dataset`` (255 = not labelled, no loss).

    The images are split by :func:`fixed_val_split` over *all* names (labelled or not) with
    ``cfg.val_fraction``, so an image stays on its side of the split across retrains as
    images and labels are added; ``val_names`` overrides the split. Images without a single
    labelled pixel are left out of both sides.

    ``cfg.freeze_backbone``: the backbone's weights and BatchNorm statistics stay as they are
    (it runs in eval mode, without gradients) and only the pyramid and the heads learn.
    ``cfg.cache_features`` (needs the frozen backbone): each training image is shrunk to fit
    in ``crop x crop`` and padded, its layer3/layer4 computed once, and every step then runs
    only ``model.forward_heads`` on a batch of cached features, which makes a step many times
    cheaper. What caching gives up is all augmentation: no random scale, crop position,
    rotation, blur or flip; every step sees the same view of each image, so it can overfit
    sooner on very few images.
    """
    names = [dataset.name(i) for i in range(len(dataset))]
    if val_names is None:
        _, val_names = fixed_val_split(names, cfg.val_fraction) if cfg.val_fraction > 0 else (names, [])
    held_out = set(val_names)
    labelled = [i for i in range(len(dataset)) if _has_labels(dataset, i)]
    if not labelled:
        raise TrainingError(f"nothing to fine-tune on: none of the {len(dataset)} image(s) has a labelled pixel "
                            "(paint some corrections first)")
    train_idx = [i for i in labelled if names[i] not in held_out]
    val_idx = [i for i in labelled if names[i] in held_out]
    note = ""
    if not train_idx:
        train_idx, val_idx = val_idx, []
        note = "every labelled image is in the validation split: training on them, without validation"
    trainer = Trainer(model, cfg, dataset, train_idx, Subset(dataset, val_idx) if val_idx else None,
                      cancel=cancel, classes=getattr(dataset, "classes", None), augment=augment)
    if note:
        trainer._note(note)
        trainer.pending.append(note)
    return (yield from trainer.run())


def _has_labels(dataset: Any, i: int) -> bool:
    """Whether item ``i`` has a labelled pixel, reading only its mask where the data set can."""
    mask_path = getattr(dataset, "mask_path", None)
    if mask_path is not None and mask_path(i) is None:
        return False
    read_mask = getattr(dataset, "read_mask", None)
    mask = read_mask(i) if read_mask is not None else dataset[i][1]
    return bool(np.any(np.asarray(mask) != IGNORE_INDEX))
