"""The model in use, on one thread: every job that runs, moves or copies it goes through the
inference runner (a serial queue), so a device switch never moves the weights under a running
forward pass. Jobs on other threads (fine-tuning, ranking, the before/after comparison) get a
copy made there (:meth:`ModelInUse.copy`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from PySide6.QtCore import QObject, Signal

import core
from app.workers import Task, TaskRunner


class ModelInUse(QObject):
    loading = Signal(str)  # a description of what is being loaded
    changed = Signal(object)  # core.LoadedModel (now in use, with its predictors), or None
    deviceChanged = Signal(str)
    failed = Signal(str, object)  # what failed, the exception

    def __init__(self, runner: TaskRunner, device: str = "cpu", parent: QObject | None = None):
        super().__init__(parent)
        self.runner = runner  # the inference runner: the only thread that touches the model
        self.loaded: core.LoadedModel | None = None
        self.predictors: core.Predictors | None = None
        self.device = device
        self.generation = 0  # bumped whenever the model or its device changes

    @property
    def bins(self) -> tuple[int, ...]:
        return tuple(self.loaded.model.bins) if self.loaded is not None else ()

    def open(self, paths: str | Path | Sequence[str | Path]) -> Task:
        """Load a checkpoint (ours or any importable format; two files for CSAIL encoder + decoder)."""
        paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
        names = " + ".join(p.name for p in paths)
        self.loading.emit(names)
        task = self.runner.submit("load model", core.load_model_job, paths, self.device)
        task.succeeded.connect(lambda pair: self._in_use(*pair))
        task.failed.connect(lambda exc: self.failed.emit(f"Could not load the model {names}", exc))
        return task

    def use(self, loaded: core.LoadedModel) -> Task:
        """Use an already loaded model (one just trained): placed on the device on the runner."""
        task = self.runner.submit("use model", core.place_model_job, loaded, self.device)
        task.succeeded.connect(lambda predictors: self._in_use(loaded, predictors))
        task.failed.connect(lambda exc: self.failed.emit("Could not use the model", exc))
        return task

    def set_device(self, device: str) -> Task | None:
        """Move the model to another device ("cpu", "cuda:0", ...)."""
        if device == self.device:
            return None
        if self.loaded is None:
            self.device = device
            self.deviceChanged.emit(device)
            return None
        loaded = self.loaded
        task = self.runner.submit("move model", core.place_model_job, loaded, device)

        def moved(predictors: core.Predictors) -> None:
            if self.loaded is loaded:
                self.device = device
                self.predictors = predictors
                self.generation += 1
                self.deviceChanged.emit(device)

        task.succeeded.connect(moved)
        task.failed.connect(lambda exc: self.failed.emit(f"Could not move the model to {device}", exc))
        return task

    def copy(self) -> Task:
        """A copy of the model in use (a LoadedModel with its own weights), made on the runner: for a
        job on another thread. The task fails with core.StudioError when no model is in use."""
        loaded = self.loaded
        if loaded is None:
            raise core.StudioError("no model in use")
        return self.runner.submit("copy model", core.copy_loaded_job, loaded)

    def _in_use(self, loaded: core.LoadedModel, predictors: core.Predictors) -> None:
        self.loaded = loaded
        self.predictors = predictors
        self.device = str(predictors.device)
        self.generation += 1
        self.changed.emit(loaded)
        self.deviceChanged.emit(self.device)
