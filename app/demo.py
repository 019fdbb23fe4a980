"""The built-in demo (the app's first run): synthetic context scenes and a small model.

The demo project is written on first use with ``core.write_demo_project`` into the app's data
folder (``PSPNET_STUDIO_HOME`` overrides it). The model is the checkpoint shipped in
``resources/demo/model.safetensors``; without it, one is trained in the background on the
demo project (progress in the status bar, snapshots shown as it learns), saved into the data
folder and used from then on. The window stays usable throughout.

``PSPNET_DEMO_STEPS`` sets the number of training steps of that fallback (default 150: about a
minute on two CPU cores, validation mIoU about 0.55 on the synthetic scenes).
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator

from PySide6.QtCore import QObject, Signal

import core
from app.settings import studio_home

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
BUNDLED_CHECKPOINT = RESOURCES / "demo" / "model.safetensors"
PROJECT_PARAMS = {"n_train": 48, "n_val": 16, "size": (128, 128), "seed": 0}
DEMO_STEPS = int(os.environ.get("PSPNET_DEMO_STEPS", "150"))
SNAPSHOTS = 4  # intermediate models shown while the demo model trains


def demo_project_dir() -> Path:
    return studio_home() / "demo-project"


def trained_checkpoint() -> Path:
    """Where a demo model trained on this machine is kept."""
    return studio_home() / "demo-model.safetensors"


def find_demo_checkpoint(bundled: Path | None = BUNDLED_CHECKPOINT) -> Path | None:
    for p in (bundled, trained_checkpoint()):
        if p is not None and Path(p).is_file():
            return Path(p)
    return None


def demo_model_config(num_classes: int) -> "core.ModelConfig":
    """A tiny ResNet-18-style PSPNet: trains in a minute or two on two CPU cores."""
    return core.ModelConfig(depth=18, base_width=16, num_classes=num_classes, head_channels=64, aux_channels=32,
                            stem="deep")


def demo_train_config(steps: int) -> "core.TrainConfig":
    return core.TrainConfig(steps=steps, batch=8, crop=PROJECT_PARAMS["size"][0], scale=(0.75, 1.5), rotate=5.0,
                            val_limit=16)  # on the GPU when there is one


def ensure_project_job(root: Path, *, cancel: Any) -> Generator[float, None, Path]:
    """Write the demo project unless it is there already."""
    yield 0.0
    root = Path(root)
    if not ((root / "classes.json").is_file() and (root / "images").is_dir()):
        core.write_demo_project(root, **PROJECT_PARAMS)
    return root


@dataclass
class Snapshot:
    """An intermediate model of the demo training (shown while training goes on)."""

    step: int
    loaded: Any  # core.LoadedModel


def _as_loaded(model: Any, classes: Any, provenance: dict, source: Path | None) -> Any:
    report = core.LoadReport(format="pspnet-studio", loaded=list(model.state_dict()),
                             notes=["trained in this session on the demo project"])
    return core.LoadedModel(model=model, config=model.cfg, classes=classes, provenance=provenance, report=report,
                            sources=[source] if source else [])


def train_demo_job(project: Path, out: Path, steps: int, snapshots: int = SNAPSHOTS, *,
                   cancel: Any) -> Generator[Any, None, Path]:
    """Train the demo model on the demo project; yields ``TrainProgress`` and ``Snapshot`` records,
    saves the model to ``out`` and returns that path."""
    train_set = core.open_dataset(project, "train")
    val_set = core.open_dataset(project, "val")
    classes = train_set.classes
    model = core.build_model(demo_model_config(len(classes)))
    cfg = demo_train_config(steps)
    every = max(1, steps // max(1, snapshots)) if snapshots else 0
    gen = core.train(model, train_set, val_set, cfg, cancel=cancel, classes=classes)
    t0 = time.perf_counter()
    while True:
        try:
            rec = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        yield rec
        if every and rec.val is None and rec.step % every == 0 and rec.step < steps:
            snap = copy.deepcopy(model).eval()  # the trainer updates ``model`` in place
            yield Snapshot(rec.step, _as_loaded(snap, classes, {"source": "demo training", "step": rec.step}, None))
    if result.cancelled:
        raise core.Cancelled("demo training cancelled")
    provenance = {"source": "demo training in PSPNet Studio", "project": "synthetic context scenes",
                  "project_params": {**PROJECT_PARAMS, "size": list(PROJECT_PARAMS["size"])},
                  "train_config": cfg.to_dict(), "seconds": round(time.perf_counter() - t0, 1),
                  "val_miou": None if result.metrics is None else result.metrics.miou}
    out.parent.mkdir(parents=True, exist_ok=True)
    core.save_checkpoint(out, result.model.cpu(), classes, provenance)
    return out


class DemoLauncher(QObject):
    """Opens the demo in a controller: project first (images at once), then the model."""

    trainingStarted = Signal(int)  # steps
    trainingProgress = Signal(object)  # core.TrainProgress
    trainingFinished = Signal(str)  # a message
    failed = Signal(str)

    def __init__(self, controller: Any, *, bundled: Path | None = BUNDLED_CHECKPOINT, steps: int = DEMO_STEPS,
                 snapshots: int = SNAPSHOTS, parent: QObject | None = None):
        super().__init__(parent or controller)
        self.controller = controller
        self.bundled = bundled
        self.steps = steps
        self.snapshots = snapshots
        self.training_task = None
        self.project_dir = demo_project_dir()

    def start(self, with_model: bool = True) -> None:
        task = self.controller.io.submit("demo project", ensure_project_job, self.project_dir)
        task.succeeded.connect(lambda root: self._project_ready(root, with_model))
        task.failed.connect(lambda exc: self.failed.emit(f"Could not write the demo project: {exc}"))

    def _project_ready(self, root: Path, with_model: bool) -> None:
        self.controller.open_folder(root)
        if not with_model:
            return
        ckpt = find_demo_checkpoint(self.bundled)
        if ckpt is not None:
            self.controller.open_model(ckpt)
        else:
            self.train()

    def train(self) -> None:
        out = trained_checkpoint()
        self.controller.message.emit(f"No demo model yet: training one on the demo project ({self.steps} steps) ...")
        task = self.controller.background.submit("train demo model", train_demo_job, self.project_dir, out,
                                                 self.steps, self.snapshots)
        self.training_task = task
        self.trainingStarted.emit(self.steps)
        task.progress.connect(self._progress)
        task.succeeded.connect(self._trained)
        task.failed.connect(lambda exc: self.failed.emit(f"Training the demo model failed: {exc}"))
        task.cancelled.connect(lambda: self.trainingFinished.emit("Demo training cancelled"))

    def _progress(self, rec: Any) -> None:
        if isinstance(rec, Snapshot):
            if self.controller.loaded is None or self.controller.loaded.provenance.get("source") == "demo training":
                self.controller.set_model(rec.loaded)
                self.controller.message.emit(f"Showing the demo model after {rec.step} of {self.steps} steps "
                                             "(training goes on)")
        else:
            self.trainingProgress.emit(rec)

    def _trained(self, path: Path) -> None:
        self.trainingFinished.emit(f"Demo model trained and saved to {path}")
        loaded = self.controller.loaded
        if loaded is None or loaded.provenance.get("source") == "demo training":
            self.controller.open_model(path)
