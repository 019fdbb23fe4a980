"""The built-in demo (the app's first run): synthetic context scenes and a small model.

The demo project is written on first use (``core.ensure_demo_project``) into the app's data
folder (``PSPNET_STUDIO_HOME`` overrides it). The model is the one the demo project's history
has in use (after a retrain or a restore), else the checkpoint shipped in
``resources/demo/model.safetensors``; without it, one is trained in the background on the
demo project (``core.train_demo_model``: progress in the status bar, snapshots shown as it
learns), saved into the data folder and used from then on. The window stays usable throughout.

``PSPNET_DEMO_STEPS`` sets the number of training steps of that fallback (default 150: about a
minute on two CPU cores, validation mIoU about 0.55 on the synthetic scenes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

import core
from app.settings import studio_home
from app.workers import Task

if TYPE_CHECKING:  # pragma: no cover
    from app.controllers.controller import Controller

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
BUNDLED_CHECKPOINT = RESOURCES / "demo" / "model.safetensors"
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


class DemoLauncher(QObject):
    """Opens the demo in a controller: project first (images at once), then the model."""

    trainingStarted = Signal(int)  # steps
    trainingProgress = Signal(object)  # core.TrainProgress
    trainingFinished = Signal(str)  # a message
    failed = Signal(str)
    preparing = Signal(object)  # core.Progress while the demo project is written (the first start only)
    prepared = Signal()  # the demo project is there (or could not be written)

    def __init__(self, controller: "Controller", *, bundled: Path | None = BUNDLED_CHECKPOINT,
                 steps: int = DEMO_STEPS, snapshots: int = SNAPSHOTS, parent: QObject | None = None):
        super().__init__(parent or controller)
        self.controller = controller
        self.bundled = bundled
        self.steps = steps
        self.snapshots = snapshots
        self.training_task: Task | None = None
        self.project_dir = demo_project_dir()
        self._snapshots: list[core.LoadedModel] = []  # the intermediate models this launcher put in use

    def showing_snapshot(self) -> bool:
        """Whether the model in use is an intermediate model of the demo training."""
        loaded = self.controller.loaded
        return loaded is not None and any(loaded is s for s in self._snapshots)

    def _replaceable(self) -> bool:
        return self.controller.loaded is None or self.showing_snapshot()

    def start(self, with_model: bool = True) -> None:
        task = self.controller.io.submit("demo project", core.ensure_demo_project, self.project_dir)
        task.succeeded.connect(lambda root: self._project_ready(root, with_model))
        task.failed.connect(lambda exc: self.failed.emit(f"Could not write the demo project: {exc}"))
        task.progress.connect(self.preparing)
        task.done.connect(self.prepared)

    def _project_ready(self, root: Path, with_model: bool) -> None:
        """The demo project is open: the model its history has in use (a retrain, a restore) is
        loaded; without one, the demo model (``with_model``). When the history's model cannot be
        loaded, the window offers the others, the demo model among them."""
        ckpt = find_demo_checkpoint(self.bundled)
        opened = self.controller.opening.open(root, alternatives=[ckpt] if ckpt is not None else [])
        if not with_model or opened.model or opened.state == "failed":
            return
        if ckpt is not None:
            self.controller.open_model(ckpt)
        else:
            self.train()

    def train(self) -> None:
        out = trained_checkpoint()
        self.controller.message.emit(f"No demo model yet: training one on the demo project ({self.steps} steps) ...")
        task = self.controller.background.submit("train demo model", core.train_demo_model, self.project_dir, out,
                                                 self.steps, self.snapshots)
        self.training_task = task
        self.trainingStarted.emit(self.steps)
        task.progress.connect(self._progress)
        task.succeeded.connect(self._trained)
        task.failed.connect(lambda exc: self.failed.emit(f"Training the demo model failed: {exc}"))
        task.cancelled.connect(lambda: self.trainingFinished.emit("Demo training cancelled"))

    def _progress(self, rec: core.DemoProgress) -> None:
        if rec.train is not None:
            self.trainingProgress.emit(rec.train)
        if rec.snapshot is not None and self._replaceable():
            self._snapshots.append(rec.snapshot)
            self.controller.set_model(rec.snapshot)
            self.controller.message.emit(f"Showing the demo model after {rec.step} of {self.steps} steps "
                                         "(training goes on)")

    def _trained(self, path: Path) -> None:
        self.trainingFinished.emit(f"Demo model trained and saved to {path}")
        if self._replaceable():
            self.controller.open_model(path)
        self._snapshots = [s for s in self._snapshots if s is self.controller.loaded]
