"""Training settings and the records the training generator yields and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import from_dict, to_dict
from core.generators import Progress

if TYPE_CHECKING:  # pragma: no cover
    from core.metrics import SegMetrics
    from core.model import PSPNet

AMP_MODES = ("auto", "off", "bf16", "fp16")


@dataclass
class TrainConfig:
    """How to train. The defaults are the paper's (SGD, poly LR, aux weight 0.4, 473 crops).

    Saved as JSON into every checkpoint's provenance, so every field is a plain value."""

    steps: int = 1000
    batch: int = 8  # per process (torchrun: the global batch is batch * world size)
    crop: int = 473
    lr: float = 0.01  # backbone; everything else trains at lr * head_lr_mult
    head_lr_mult: float = 10.0
    momentum: float = 0.9
    weight_decay: float = 1e-4
    power: float = 0.9
    aux_weight: float = 0.4
    # augmentation (core.data.augment.TrainAugment)
    scale: tuple[float, float] = (0.5, 2.0)
    rotate: float = 10.0
    blur: float = 0.5
    flip: bool = True
    seed: int = 0
    workers: int = 0  # DataLoader worker processes; 0 = augment in the training process
    device: str | None = None  # None -> cuda if available else cpu
    amp: str = "auto"  # "auto": bf16 on CUDA if supported else fp16; never on the CPU. "off", "bf16", "fp16"
    channels_last: str | bool = "auto"  # "auto" = on CUDA; never on the CPU
    val_every: int = 0  # validate every N steps (0: only at the end, when there is a validation set)
    val_limit: int = 0  # validate on at most this many images (0: all)
    checkpoint_every: int = 0  # write checkpoint_dir/last.pt (the resume state) every N steps
    checkpoint_dir: str | None = None
    resume: str | None = None  # a last.pt to continue from, exactly
    # fine-tune options
    freeze_backbone: bool = False
    cache_features: bool = False  # needs freeze_backbone; see core.training.finetune
    val_fraction: float = 0.2  # finetune's fixed validation split
    sync_bn: bool = False  # torchrun on CUDA only

    def __post_init__(self) -> None:
        self.scale = tuple(float(s) for s in self.scale)  # type: ignore[assignment]
        self.validate()

    def validate(self) -> None:
        problems = []
        for name in ("steps", "batch", "crop"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1, not {getattr(self, name)}")
        for name in ("workers", "val_every", "val_limit", "checkpoint_every"):
            if int(getattr(self, name)) < 0:
                problems.append(f"{name} must be >= 0, not {getattr(self, name)}")
        if self.lr <= 0 or self.head_lr_mult <= 0:
            problems.append(f"lr and head_lr_mult must be > 0, not {self.lr} and {self.head_lr_mult}")
        if self.amp not in AMP_MODES:
            problems.append(f"amp must be one of {', '.join(AMP_MODES)}, not {self.amp!r}")
        if self.channels_last not in ("auto", True, False):
            problems.append(f"channels_last must be 'auto', true or false, not {self.channels_last!r}")
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            problems.append(f"scale must be (min, max) with 0 < min <= max, not {self.scale}")
        if self.cache_features and not self.freeze_backbone:
            problems.append("cache_features needs freeze_backbone (cached features must not go stale)")
        if self.checkpoint_every and not self.checkpoint_dir:
            problems.append("checkpoint_every needs checkpoint_dir")
        if not 0.0 <= self.val_fraction < 1.0:
            problems.append(f"val_fraction must be in [0, 1), not {self.val_fraction}")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return from_dict(cls, data)


@dataclass
class TrainProgress(Progress):
    """One record per finished step (``step`` counts from 1), plus one after each validation.
    A :class:`core.generators.Progress`: ``fraction`` is ``step / steps``, ``message`` says what
    happened besides the step (an out-of-memory retry, a validation)."""

    step: int
    steps: int
    epoch: int  # 0-based pass over the training set that this step's samples came from
    loss: float  # main + aux_weight * aux (mean over processes under torchrun)
    main_loss: float
    aux_loss: float | None
    lr: float  # the backbone's learning rate at this step (the heads' is lr * head_lr_mult)
    images_per_s: float  # all processes together
    eta_s: float
    val: "SegMetrics | None" = None

    def __post_init__(self) -> None:
        if self.fraction is None and self.steps:
            self.fraction = min(1.0, self.step / self.steps)


@dataclass
class TrainResult:
    """What the generator returns (or, cancelled, hands over as ``Cancelled.partial`` with
    ``cancelled=True``). ``model`` is in eval mode on the training device and holds
    the weights of the last completed step (a cancelled step is never half applied)."""

    model: "PSPNet"
    history: list[TrainProgress]
    metrics: "SegMetrics | None"
    cancelled: bool
    steps_done: int
    checkpoint: Path | None = None  # the final model (safetensors), when checkpoint_dir was given
    resume_state: Path | None = None  # the last resume state written (last.pt), if any
    notes: list[str] = field(default_factory=list)  # messages such as "out of memory: batch 8 -> 4"
