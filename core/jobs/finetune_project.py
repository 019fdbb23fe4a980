"""Fine-tuning a project on its painted masks: the one implementation behind the app's Retrain
and the ``finetune`` command, with one set of defaults and one history record.

The defaults (:data:`FINETUNE_DEFAULTS`) suit a project rather than a data set: a few hundred
corrected pixels on images of any size. The backbone stays frozen and its features are
computed once per image (``cache_features``), the crop covers the labelled images (their
longest side, at most 473: :func:`auto_crop`), 150 steps at learning rate 0.02 with mild
augmentation, validation five times per run on the fixed split. (The paper's training recipe,
473 crops of a large data set, takes a 128-pixel project's model from 73.7 to 33.4 mIoU in 30
steps; these defaults improve it.)

:func:`finetune_project` trains a *copy* of the model it is given (the given model is never
changed), so a cancel, a failure or a crash leaves the model in use untouched. On success the
new checkpoint goes into the project's model history (the starting model too, the first time,
so it can be restored) with :func:`history_metrics` (the same keys from the app and the CLI).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator, Literal, Mapping

import cv2
import numpy as np
import torch

from core.constants import MASK
from core.data.datasets import open_dataset
from core.data.io import image_size
from core.errors import Cancelled, StudioError
from core.generators import Cancel, Progress
from core.inference.protocol import TestProtocol
from core.jobs.models import as_loaded, copy_model, model_protocol
from core.model import PSPNet
from core.project import CheckpointEntry, Project
from core.training import TrainConfig, TrainResult, finetune
from core.weights import LoadedModel

VAL_POINTS = 5  # validations per run (the mIoU curve's points)
VAL_LIMIT = 16  # images per validation, at most
MAX_CROP = 473  # the paper's crop: the automatic crop is never larger
MIN_CROP = 64
CACHE_BUDGET = 2 << 30  # bytes of cached backbone features allowed (else the frozen backbone runs every step)

#: What a project fine-tune uses unless told otherwise (the Retrain panel and ``finetune`` start
#: here). ``crop`` 0 = :func:`auto_crop`; ``val_every`` None = ``steps // VAL_POINTS``.
FINETUNE_DEFAULTS: dict[str, Any] = {
    "steps": 150, "lr": 0.02, "batch": 8, "crop": 0, "freeze_backbone": True, "cache_features": True,
    "aux_weight": 0.4, "scale": (0.75, 1.5), "rotate": 5.0, "val_every": None, "val_limit": VAL_LIMIT,
}

Origin = Literal["app", "command line"]
_ORIGIN_TEXT = {"app": "in the app", "command line": "from the command line"}


def warm_up_training(*, cancel: Cancel = None) -> Generator[Progress, None, None]:
    """Import what the first training step imports (torch's optimizer step pulls in torch._dynamo:
    about 2 s and 100,000 Python objects), so that a GUI can do it once, early, in the background,
    and then freeze those objects out of the garbage collector's passes (each pass over them holds
    the GIL for 100 ms and more)."""
    yield Progress(fraction=0.0, message="preparing the training code")
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    p.sum().backward()
    opt.step()


class AtProtocolScale:
    """A data set whose images (and masks) are resized as the model's test protocol resizes a
    photo at scale 1 (semseg's ADE20K protocol: the long side to 512), so that fine-tuning
    sees objects at the size the model is tested at: a 12-megapixel photo's objects are eight
    times larger than that. Everything else is the data set's own (names, mask files, classes)."""

    def __init__(self, dataset: Any, protocol: TestProtocol):
        self.dataset, self.protocol = dataset, protocol
        self.classes = getattr(dataset, "classes", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        image, mask = self.dataset[i]
        return scale_pair(image, mask, self.protocol)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dataset, name)


def scale_pair(image: np.ndarray, mask: np.ndarray, protocol: TestProtocol) -> tuple[np.ndarray, np.ndarray]:
    """An image and its mask at the size ``protocol`` runs the image at (scale 1): the image
    bilinearly, the mask by nearest neighbour; unchanged when the protocol keeps native size."""
    h, w = mask.shape[:2]
    if protocol.base_size is None:
        return image, mask
    th, tw = protocol.scaled_size(h, w, 1.0)
    if (th, tw) == (h, w):
        return image, mask
    shrink = th * tw < h * w
    image = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return image, cv2.resize(mask, (tw, th), interpolation=cv2.INTER_NEAREST)


def auto_crop(project: Project, limit: int = MAX_CROP, protocol: TestProtocol | None = None) -> int:
    """A training crop that covers the labelled images (their longest side, a multiple of 8, as
    ``protocol`` resizes them when given), at most ``limit`` and at least 64; ``limit`` when no
    labelled image can be measured."""
    longest = 0
    for e in project.images():
        if e.state != MASK:
            continue
        try:
            h, w = image_size(e.image_path)
        except StudioError:
            continue
        if protocol is not None and protocol.base_size is not None:
            h, w = protocol.scaled_size(h, w, 1.0)
        longest = max(longest, h, w)
        if longest >= limit:
            break
    longest = longest or limit
    return int(min(limit, max(MIN_CROP, -(-longest // 8) * 8)))


def feature_cache_bytes(model: PSPNet, crop: int, images: int) -> int:
    """What ``cache_features`` keeps in memory: layer3 + layer4 of every training image at ``crop``."""
    param = next(model.parameters())
    with torch.no_grad():
        stages = model.backbone(torch.zeros(1, 3, 64, 64, device=param.device, dtype=param.dtype))
    c = stages.layer3.shape[1] + stages.layer4.shape[1]
    side = -(-crop * stages.layer4.shape[-1] // 64)
    per = 2 if param.device.type == "cuda" else 4  # fp16 on CUDA, fp32 on the CPU (core.training.data)
    return int(images * c * side * side * per)


def finetune_config(project: Project, model: PSPNet, settings: Mapping[str, Any] | None = None, *,
                    device: str | None = None) -> tuple[TrainConfig, list[str]]:
    """The TrainConfig of a fine-tune of ``project``: :data:`FINETUNE_DEFAULTS`, then ``settings``
    (any TrainConfig field; None = the default), ``device`` unless the settings name one.

    Returns the config and notes on what was changed (cached features need the frozen backbone
    and must fit in :data:`CACHE_BUDGET`). Reads the labelled images' headers and runs the
    backbone once on a 64x64 input: not for the GUI thread."""
    data = dict(FINETUNE_DEFAULTS)
    data.update({k: v for k, v in (settings or {}).items() if v is not None})
    if data.get("device") is None and device is not None:
        data["device"] = device
    data["steps"] = int(data["steps"])
    if not data.get("crop"):
        data["crop"] = auto_crop(project, protocol=model_protocol(model))
    if data.get("val_every") is None:
        data["val_every"] = max(1, data["steps"] // VAL_POINTS)
    notes: list[str] = []
    if data["cache_features"] and not data["freeze_backbone"]:
        data["cache_features"] = False
        if settings and settings.get("cache_features"):
            notes.append("not caching features: that needs the frozen backbone")
    if data["cache_features"]:
        labelled = sum(e.state == MASK for e in project.images())
        need = feature_cache_bytes(model, int(data["crop"]), labelled)
        if need > CACHE_BUDGET:
            data["cache_features"] = False
            notes.append(f"not caching features: {labelled} images at {data['crop']} px would need "
                         f"{need / 2**30:.1f} GB; running the frozen backbone every step instead")
    return TrainConfig.from_dict(data), notes


def history_metrics(result: TrainResult, cfg: TrainConfig, seconds: float, origin: Origin) -> dict[str, Any]:
    """The metrics a fine-tune writes into the project's history (the app's table reads them)."""
    metrics: dict[str, Any] = {"steps": result.steps_done, "seconds": round(seconds, 1), "crop": cfg.crop,
                               "batch": cfg.batch, "lr": cfg.lr, "freeze_backbone": cfg.freeze_backbone,
                               "cache_features": cfg.cache_features, "origin": origin}
    if result.cancelled:
        metrics["cancelled"] = True
    m = result.metrics
    for key in ("miou", "pixel_acc", "mean_acc"):
        v = math.nan if m is None else float(getattr(m, key))
        metrics[f"val_{key}"] = None if math.isnan(v) else round(v, 4)
    return metrics


def history_entry_of(project: Project, loaded: LoadedModel) -> CheckpointEntry | None:
    """The history entry the loaded model came from, or None."""
    sources = [Path(s).resolve() for s in (loaded.sources or [])]
    if len(sources) != 1:
        return None
    return next((e for e in project.checkpoints() if e.path.resolve() == sources[0]), None)


def record_finetune(project: Project, start: LoadedModel, model: PSPNet, metrics: Mapping[str, Any],
                    note: str) -> tuple[CheckpointEntry, CheckpointEntry | None]:
    """Add a fine-tuned model to the history (it becomes current); the starting model first, when
    it is not in the history yet. Returns (the new entry, the starting model's new entry or None)."""
    base = None
    if history_entry_of(project, start) is None:  # keep the starting model, so it can be restored
        name = " + ".join(Path(s).name for s in (start.sources or [])) or "model in use"
        base = project.add_checkpoint((start.model, project.classes), note=f"starting model: {name}")
    entry = project.add_checkpoint((model, project.classes), metrics=dict(metrics), note=note)
    return entry, base


def _check_classes(loaded: LoadedModel, project: Project) -> None:
    """A model is fine-tuned on a project's masks only when it predicts the project's classes:
    else its class ids would be trained on (and saved as) another table's."""
    n, names = int(loaded.model.cfg.num_classes), tuple(project.classes.names)
    if n != len(names) or tuple(loaded.classes.names) != names:
        raise StudioError(f"the model predicts {n} classes ({', '.join(loaded.classes.names[:4])}, ...) and the "
                          f"project {project.name} has its own {len(names)} ({', '.join(names[:4])}, ...): give the "
                          "model the project's classes first (core.load_model(path, classes=project.classes) or "
                          "core.adapt_model_job rebuild its classifiers)")


@dataclass
class ProjectFinetune:
    """What :func:`finetune_project` returns (or, cancelled, hands over as ``Cancelled.partial``)."""

    loaded: LoadedModel  # the fine-tuned model, eval mode, on the training device
    train: TrainResult
    config: TrainConfig
    metrics: dict[str, Any]  # the history record's metrics
    seconds: float
    entry: CheckpointEntry | None = None  # its place in the project's history (None: not recorded)
    base_entry: CheckpointEntry | None = None  # the starting model, added to the history this time
    notes: list[str] = field(default_factory=list)

    @property
    def steps_done(self) -> int:
        return self.train.steps_done


def finetune_project(loaded: LoadedModel, project: Project, settings: TrainConfig | Mapping[str, Any] | None = None,
                     *, device: str | None = None, record: bool = True, note: str = "", origin: Origin = "app",
                     cancel: Cancel = None) -> Generator[Progress, None, ProjectFinetune]:
    """Fine-tune a copy of ``loaded.model`` on the labelled pixels of ``project``'s masks.

    ``settings``: a TrainConfig to use as it is, or fields over :data:`FINETUNE_DEFAULTS` (see
    :func:`finetune_config`). Yields stage messages (``Progress``) and one ``core.TrainProgress``
    per step and validation. ``record``: add the result to the project's history (not when
    cancelled). Cancelled, raises ``Cancelled`` whose ``partial`` is a ProjectFinetune of the
    last completed step (not recorded)."""
    t0 = time.perf_counter()
    _check_classes(loaded, project)
    yield Progress(message="reading the project")
    dataset = open_dataset(project.root, "all", layout="ours")
    if isinstance(settings, TrainConfig):
        cfg, notes = settings, []
    else:
        cfg, notes = finetune_config(project, loaded.model, settings, device=device)
    protocol = model_protocol(loaded.model)
    if protocol.base_size is not None:  # train at the scale the model is tested at
        dataset = AtProtocolScale(dataset, protocol)
        notes = notes + [f"images resized as the model's test protocol runs them ({protocol.side} side "
                         f"{protocol.base_size})"]
    for text in notes:
        yield Progress(message=text)
    model = copy_model(loaded.model)  # the given model is never changed
    yield Progress(message="preparing" + (" (computing backbone features once per image)" if cfg.cache_features
                                          else ""))
    classes = project.classes

    def outcome(result: TrainResult) -> ProjectFinetune:
        seconds = time.perf_counter() - t0
        metrics = history_metrics(result, cfg, seconds, origin)
        provenance = {"source": f"fine-tuned in PSPNet Studio on project {project.name} {_ORIGIN_TEXT[origin]}",
                      "train_config": cfg.to_dict(), **{k: v for k, v in metrics.items() if k.startswith("val_")}}
        new = as_loaded(result.model.eval(), classes, provenance,
                        note=f"fine-tuned on the corrections of project {project.name}")
        return ProjectFinetune(new, result, cfg, metrics, seconds, notes=notes + list(result.notes))

    try:
        result = yield from finetune(model, dataset, cfg, cancel=cancel)
    except Cancelled as exc:
        partial = exc.partial
        raise Cancelled(f"fine-tuning cancelled: {exc}; the model in use is unchanged",
                        partial=outcome(partial) if isinstance(partial, TrainResult) else None) from None
    out = outcome(result)
    if record:
        yield Progress(message="saving the checkpoint")
        text = note or f"fine-tuned {result.steps_done} steps {_ORIGIN_TEXT[origin]}"
        out.entry, out.base_entry = record_finetune(project, loaded, out.loaded.model, out.metrics, text)
        out.loaded.sources = [out.entry.path]
        out.loaded.provenance["source"] += f", model {out.entry.id}"
    return out
