"""Retrain: fine-tune the current model on the project's corrected masks, in the background.

:class:`Retrainer` saves every unsaved mask, then runs :func:`retrain_job` on the controller's
background runner. The job trains a *copy* of the model (``core.finetune``: only labelled
pixels count; the validation split is ``core.training.fixed_val_split`` over the project's
image names, so it stays put across retrains), so a cancel, a failure or a crash leaves the
model in use untouched. When it finishes, the new checkpoint goes into the project's model
history with its metrics (the model it started from too, the first time), the new model is
swapped in and the shown image is predicted again; then :func:`compare_job` measures, per
corrected image, how much the old and the new model agree with the corrections.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator

from PySide6.QtCore import QObject, Signal

import core
from app.workers import Task

VAL_POINTS = 5  # validations per run (the mIoU curve's points)
VAL_LIMIT = 16  # images per validation, at most
COMPARE_LIMIT = 200  # images in the before/after comparison, at most
MAX_CROP = 473
SINGLE_PASS_PIXELS = 2048 * 1536
CACHE_BUDGET = 2 << 30  # bytes of cached backbone features allowed (else training runs the frozen backbone)


@dataclass
class RetrainOptions:
    """What the options panel sets. ``crop`` 0 = automatic (the images' size, at most 473)."""

    steps: int = 150
    lr: float = 0.02
    batch: int = 8
    crop: int = 0
    freeze_backbone: bool = True
    cache_features: bool = True  # with the frozen backbone: compute it once per image (no augmentation)
    aux_weight: float = 0.4

    def train_config(self, device: str | None, crop: int) -> "core.TrainConfig":
        return core.TrainConfig(steps=int(self.steps), batch=int(self.batch), crop=int(crop), lr=float(self.lr),
                                aux_weight=float(self.aux_weight), freeze_backbone=bool(self.freeze_backbone),
                                cache_features=bool(self.cache_features and self.freeze_backbone), device=device,
                                val_every=max(1, int(self.steps) // VAL_POINTS), val_limit=VAL_LIMIT,
                                scale=(0.75, 1.5), rotate=5.0)


@dataclass
class RetrainResult:
    loaded: Any  # core.LoadedModel of the new model
    entry: Any  # its core.CheckpointEntry
    base_entry: Any  # the entry added for the starting model (first retrain), or None
    metrics: Any  # core.SegMetrics on the validation split, or None
    steps_done: int
    seconds: float
    history: list = field(default_factory=list)


@dataclass
class Agreement:
    """How well a model's prediction matches an image's corrections (labelled pixels only)."""

    name: str
    labelled: int  # labelled pixels
    before: float  # share of them the old model got right
    after: float  # ... and the new one

    @property
    def gain(self) -> float:
        return self.after - self.before


def auto_crop(project: Any, limit: int = MAX_CROP) -> int:
    """A training crop that covers the labelled images (their longest side), at most ``limit``."""
    longest = 0
    for e in project.images():
        if e.state != "mask":
            continue
        try:
            h, w = core.image_size(e.image_path)
        except core.StudioError:
            continue
        longest = max(longest, h, w)
        if longest >= limit:
            break
    longest = longest or limit
    return int(min(limit, max(64, -(-longest // 8) * 8)))


def feature_cache_bytes(model: Any, crop: int, images: int) -> int:
    """What ``cache_features`` keeps in memory: layer3 + layer4 of every training image at ``crop``."""
    import torch

    param = next(model.parameters())
    with torch.no_grad():
        stages = model.backbone(torch.zeros(1, 3, 64, 64, device=param.device, dtype=param.dtype))
    c = stages.layer3.shape[1] + stages.layer4.shape[1]
    side = -(-crop * stages.layer4.shape[-1] // 64)
    per = 2 if param.device.type == "cuda" else 4  # fp16 on CUDA, fp32 on the CPU (core.training.data)
    return int(images * c * side * side * per)


def _in_history(project: Any, loaded: Any) -> Any:
    """The history entry the loaded model came from, or None."""
    sources = [Path(s).resolve() for s in (getattr(loaded, "sources", None) or [])]
    if len(sources) != 1:
        return None
    for e in project.checkpoints():
        if e.path.resolve() == sources[0]:
            return e
    return None


def retrain_job(loaded: Any, project: Any, options: RetrainOptions, device: str | None, note: str = "", *,
                cancel: Any) -> Generator[Any, None, RetrainResult]:
    """Fine-tune a copy of ``loaded.model`` on the project's masks; yields ``core.TrainProgress``."""
    t0 = time.perf_counter()
    yield "reading the project"
    dataset = core.open_dataset(project.root, "all", layout="ours")
    crop = options.crop or auto_crop(project)
    if options.cache_features and options.freeze_backbone:
        labelled = sum(e.state == "mask" for e in project.images())
        need = feature_cache_bytes(loaded.model, crop, labelled)
        if need > CACHE_BUDGET:
            options = dataclasses.replace(options, cache_features=False)
            yield (f"not caching features: {labelled} images at {crop} px would need {need / 2**30:.1f} GB; "
                   "running the frozen backbone every step instead")
    cfg = options.train_config(device, crop)
    model = copy.deepcopy(loaded.model)
    yield "preparing" + (" (computing backbone features once per image)" if cfg.cache_features else "")
    result = yield from core.finetune(model, dataset, cfg, cancel=cancel)
    if result.cancelled or cancel():  # cancelled after the last step: nothing is kept either
        raise core.Cancelled("retraining cancelled: the model in use is unchanged")
    model = result.model.eval()
    seconds = time.perf_counter() - t0
    classes = project.classes
    base_entry = None
    if _in_history(project, loaded) is None:  # keep the starting model, so it can be restored
        name = " + ".join(Path(s).name for s in (getattr(loaded, "sources", None) or [])) or "model in use"
        base_entry = project.add_checkpoint((loaded.model, classes), note=f"starting model: {name}")
    m = result.metrics
    metrics: dict[str, Any] = {"steps": result.steps_done, "seconds": round(seconds, 1), "crop": crop,
                               "freeze_backbone": cfg.freeze_backbone}
    if m is not None:
        for key in ("miou", "pixel_acc", "mean_acc"):
            v = float(getattr(m, key))
            metrics[f"val_{key}"] = None if math.isnan(v) else round(v, 4)
    yield "saving the checkpoint"
    entry = project.add_checkpoint((model, classes), metrics=metrics,
                                   note=note or f"retrained {result.steps_done} steps in the app")
    provenance = {"source": f"retrained in PSPNet Studio (project {project.name}, model {entry.id})",
                  "train_config": cfg.to_dict(), **{k: v for k, v in metrics.items() if k.startswith("val_")}}
    report = core.LoadReport(format="pspnet-studio", loaded=list(model.state_dict()),
                             notes=[f"fine-tuned on the corrections of project {project.name}"])
    new = core.LoadedModel(model=model, config=model.cfg, classes=classes, provenance=provenance, report=report,
                           sources=[entry.path])
    return RetrainResult(new, entry, base_entry, m, result.steps_done, seconds, list(result.history))


def _predictor(model: Any, device: Any, shape: tuple[int, int]) -> Any:
    crop = None if shape[0] * shape[1] <= SINGLE_PASS_PIXELS else 1024
    return core.Predictor(model, device=device, crop=crop)


def compare_job(old_model: Any, new_model: Any, project: Any, device: Any, limit: int = COMPARE_LIMIT, *,
                cancel: Any) -> Generator[float, None, list[Agreement]]:
    """Per corrected image: the share of its labelled pixels each model predicts right."""
    yield 0.0
    dataset = core.open_dataset(project.root, "all", layout="ours")
    items = [i for i in range(len(dataset)) if dataset.mask_path(i) is not None][:limit]
    out: list[Agreement] = []
    for k, i in enumerate(items):
        if cancel():
            raise core.Cancelled("comparison cancelled")
        try:
            image, mask = dataset[i]
        except core.StudioError:
            continue
        sel = mask != 255
        n = int(sel.sum())
        if n == 0:
            continue
        before = _predictor(old_model, device, mask.shape).predict(image).labels
        after = _predictor(new_model, device, mask.shape).predict(image).labels
        out.append(Agreement(dataset.name(i), n, float((before[sel] == mask[sel]).mean()),
                             float((after[sel] == mask[sel]).mean())))
        yield (k + 1) / max(1, len(items))
    return out


def summary(rows: list[Agreement]) -> tuple[float, float, int]:
    """(before, after, images): the agreement over every labelled pixel of the compared images."""
    total = sum(r.labelled for r in rows)
    if not total:
        return math.nan, math.nan, 0
    before = sum(r.before * r.labelled for r in rows) / total
    after = sum(r.after * r.labelled for r in rows) / total
    return before, after, len(rows)


class Retrainer(QObject):
    started = Signal(int)  # steps
    progress = Signal(object)  # core.TrainProgress
    status = Signal(str)  # what the job is doing between steps
    finished = Signal(object)  # RetrainResult (the new model is in use)
    cancelled = Signal()
    failed = Signal(str)
    historyChanged = Signal()
    comparisonReady = Signal(object)  # list[Agreement]

    def __init__(self, controller: Any, editor: Any, parent: QObject | None = None):
        super().__init__(parent or controller)
        self.controller = controller
        self.editor = editor
        self.options = RetrainOptions()
        self.task: Task | None = None
        self.compare_task: Task | None = None
        self.last: RetrainResult | None = None
        self.comparison: list[Agreement] = []
        self.started_at = 0.0
        self.cancel_requested_at: float | None = None
        self._old_model: Any = None
        controller.folderChanged.connect(lambda _: self.historyChanged.emit())

    @property
    def project(self) -> Any:
        return self.editor.project

    @property
    def running(self) -> bool:
        """A retrain is under way (a cancelled one is not, even while its last step ends)."""
        return self.task is not None and not self.task.is_finished and not self.task.is_cancelled

    def problem(self) -> str:
        """Why a retrain cannot start now ("" when it can)."""
        c = self.controller
        if self.running:
            return "A retrain is running already"
        if self.project is None:
            return "Open a project (a folder with images/ and masks/) to retrain on its corrections"
        if c.loaded is None:
            return "Open a model first: retraining fine-tunes the model in use"
        if tuple(c.loaded.classes.names) != tuple(self.project.classes.names):
            return (f"The model's {len(c.loaded.classes)} classes differ from the project's "
                    f"{len(self.project.classes)}: retraining needs the project's class table")
        return ""

    def start(self, options: RetrainOptions | None = None) -> Task | None:
        if options is not None:
            self.options = options
        why = self.problem()
        if why:
            self.failed.emit(why)
            return None
        failures = self.editor.save_all_now()  # train on what is painted now
        if failures:
            name, err = next(iter(failures.items()))
            self.failed.emit(f"Retrain needs the masks saved; {name} could not be: {err}")
            return None
        c = self.controller
        self._old_model = c.loaded.model
        self.cancel_requested_at = None
        self.started_at = time.perf_counter()
        task = c.background.submit("retrain", retrain_job, c.loaded, self.project, self.options, c.device)
        self.task = task
        task.progress.connect(lambda rec: task is self.task and not task.is_cancelled and self._progress(rec))
        task.succeeded.connect(lambda result: task is self.task and not task.is_cancelled and self._succeeded(result))
        task.failed.connect(lambda exc: task is self.task and not task.is_cancelled
                            and self.failed.emit(f"Retraining failed: {exc}"))
        self.started.emit(self.options.steps)
        return task

    def cancel(self) -> None:
        """Stop retraining. Takes effect at once: the model in use never changed (a copy trains) and
        nothing is added to the history; the worker stops before its next step (the step under
        way, at most, still runs)."""
        if self.running:
            self.cancel_requested_at = time.perf_counter()
            self.task.cancel()
            self._cancelled()
        if self.compare_task is not None and not self.compare_task.is_finished:
            self.compare_task.cancel()

    def _progress(self, rec: Any) -> None:
        if isinstance(rec, str):
            self.status.emit(rec)
        else:
            self.progress.emit(rec)

    def _cancelled(self) -> None:
        self._old_model = None
        self.cancelled.emit()

    def _succeeded(self, result: RetrainResult) -> None:
        self.last = result
        c = self.controller
        old = self._old_model
        self._old_model = None
        c.set_model(result.loaded)  # swaps the model in and predicts the shown image again
        self.historyChanged.emit()
        self.finished.emit(result)
        if old is not None:
            self._compare_when_idle(old, result.loaded.model)

    def _compare_when_idle(self, old: Any, new: Any) -> None:
        """After the shown image's new prediction: the before/after agreement of every corrected image."""
        c = self.controller

        def go(busy: bool = False) -> None:
            if busy:
                return
            try:
                c.inference.busyChanged.disconnect(go)
            except (RuntimeError, TypeError):
                pass
            self.compare(old, new)

        if c.inference.busy:
            c.inference.busyChanged.connect(go)
        else:
            go()

    def compare(self, old: Any, new: Any) -> Task | None:
        if self.project is None:
            return None
        task = self.controller.background.submit("compare models", compare_job, old, new, self.project,
                                                 self.controller.device)
        self.compare_task = task

        def done(rows: list[Agreement]) -> None:
            self.comparison = rows
            self.comparisonReady.emit(rows)

        task.succeeded.connect(done)
        task.failed.connect(lambda exc: self.failed.emit(f"Comparing the models failed: {exc}"))
        return task

    # ---- the model history -------------------------------------------------------------------
    def history(self) -> list[Any]:
        return self.project.checkpoints() if self.project is not None else []

    def current_id(self) -> str | None:
        if self.project is None:
            return None
        cur = self.project.current_checkpoint
        return cur.id if cur is not None else None

    def restore(self, entry_id: str) -> Task | None:
        """Go back to an earlier model of the history (it becomes the current one and is loaded)."""
        if self.project is None:
            return None
        if self.running:
            self.failed.emit("Wait for the retrain to finish (or cancel it) before restoring a model")
            return None
        try:
            entry = self.project.restore(entry_id)
        except core.StudioError as exc:
            self.failed.emit(f"Could not restore model {entry_id}: {exc}")
            return None
        self.historyChanged.emit()
        return self.controller.open_model(entry.path)


def agreement_text(rows: list[Agreement]) -> str:
    before, after, n = summary(rows)
    if not n:
        return "No corrected images to compare"
    return (f"Agreement with the corrections: {100 * before:.1f} % -> {100 * after:.1f} % "
            f"({100 * (after - before):+.1f} points) over {n} corrected image(s)")


__all__ = ["RetrainOptions", "RetrainResult", "Agreement", "Retrainer", "retrain_job", "compare_job",
           "auto_crop", "summary", "agreement_text"]
