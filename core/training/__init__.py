"""Training and fine-tuning as generators of progress records.

The engine is split into small modules: ``types`` (settings and records), ``schedule`` (poly
LR, the fixed validation split), ``dist`` (torchrun / DDP), ``data`` (per-step batches, cached
features), ``state`` (resume checkpoints), ``loop`` (the step, the guards, the generator) and
``finetune``. (The package is ``core.training`` so that ``core.train`` is always the function.)

    gen = train(model, train_set, val_set, TrainConfig(steps=2000, batch=8))
    for progress in gen: ...                # one TrainProgress per step, plus one per validation
    result = ...                            # the generator's return value: a TrainResult
    # cancelled: raises core.Cancelled, its .partial the TrainResult of the last completed step

Defaults are the paper's: SGD (momentum 0.9, weight decay 1e-4), poly LR (power 0.9), heads
at 10x the backbone's LR, aux weight 0.4. AMP (bf16, else fp16) and channels_last on CUDA
only. ``torchrun --nproc_per_node=N`` is detected from the environment (gloo on the CPU,
NCCL on CUDA); only rank 0 yields records and writes files, the other ranks run to the end
on their first ``next()``.

Faults: a NaN/inf loss or gradient raises :class:`core.errors.TrainingError` naming the step
and leaves the weights (and BatchNorm statistics) of the last good step; a CUDA out-of-memory
error halves the micro-batch and accumulates gradients, so the effective batch, the loss
scale and the LR schedule stay (BatchNorm then sees the smaller micro-batches), and says so
in the next record's ``message``; at a micro-batch of 1 (or under torchrun) it raises.

Cancel (a callable returning True or a ``threading.Event``) is checked before every step; a
cancelled run raises :class:`core.errors.Cancelled` (core/generators.py's rule) whose ``partial``
is the TrainResult of the last completed step (``cancelled=True``, and with a
``checkpoint_dir`` a resume state). ``checkpoint_every=N`` writes ``checkpoint_dir/last.pt``
(model, optimizer, scaler, step, RNG states); ``resume=that file`` continues bit for bit:
the batches and the dropout draws depend only on (seed, step, rank). With a
``checkpoint_dir`` the finished model is saved as ``checkpoint_dir/final.safetensors``.
"""

from __future__ import annotations

from typing import Any, Callable, Generator

from core.training.dist import DistInfo, init_distributed, shutdown_distributed
from core.training.finetune import finetune
from core.training.loop import Cancel, Trainer
from core.training.schedule import fixed_val_split, poly_lr
from core.training.types import TrainConfig, TrainProgress, TrainResult


def train(model: Any, train_set: Any, val_set: Any = None, cfg: TrainConfig | None = None, *,
          cancel: Cancel = None, classes: Any = None,
          augment: Callable | None = None) -> Generator[TrainProgress, None, TrainResult]:
    """Train ``model`` on ``train_set`` (items ``(image HxWx3 uint8, mask HxW uint8)``).

    ``augment(image, mask, rng) -> (float32 crop, uint8 mask)`` replaces the default
    :class:`core.data.augment.TrainAugment` built from ``cfg``; every crop must have the same
    size. ``classes`` (a ClassTable) goes into the final checkpoint; by default the training
    set's ``classes``."""
    cfg = cfg or TrainConfig()
    trainer = Trainer(model, cfg, train_set, range(len(train_set)), val_set, cancel=cancel, classes=classes,
                      augment=augment)
    return (yield from trainer.run())


__all__ = ["TrainConfig", "TrainProgress", "TrainResult", "train", "finetune", "fixed_val_split", "poly_lr",
           "DistInfo", "init_distributed", "shutdown_distributed"]
