"""Retrain: fine-tune the current model on the project's corrected masks, in the background.

One :class:`~app.workers.Chain` of jobs, nothing waiting on the GUI thread: save every unsaved
mask (masks runner) -> copy the model in use (inference runner, where the model lives) ->
``core.finetune_project`` on that copy (background runner; it trains a copy of the copy, records
the new checkpoint in the project's history, the starting model too the first time) -> put the
new model in use (inference runner) and predict the shown image again. Then the before/after
comparison (``core.compare_models``) runs in the background on the starting copy and a copy of
the new model. A cancel, a failure or a crash leaves the model in use untouched. A retrain keeps
its project open while it runs (leaving the project meanwhile does not close it under the job).

Restoring an earlier model of the history loads it once, in a worker (``core.restore_model_job``
on the background runner: core checks the file before the history changes), then puts it in use
on the inference runner; a damaged checkpoint fails with the reason and changes nothing. A
read-only project refuses both, with its reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

import core
from app.controllers.mask_editing import MaskEditor
from app.workers import Chain, Task

if TYPE_CHECKING:  # pragma: no cover
    from app.controllers.controller import Controller

_D = core.FINETUNE_DEFAULTS


@dataclass
class RetrainOptions:
    """What the options panel sets (core.FINETUNE_DEFAULTS). ``crop`` 0 = automatic (the images'
    size, at most 473); ``cache_features`` applies with the frozen backbone only."""

    steps: int = _D["steps"]
    lr: float = _D["lr"]
    batch: int = _D["batch"]
    crop: int = _D["crop"]
    freeze_backbone: bool = _D["freeze_backbone"]
    cache_features: bool = _D["cache_features"]
    aux_weight: float = _D["aux_weight"]

    def settings(self) -> dict[str, Any]:
        """The fields over core.FINETUNE_DEFAULTS that core.finetune_project takes."""
        return {"steps": int(self.steps), "lr": float(self.lr), "batch": int(self.batch), "crop": int(self.crop),
                "freeze_backbone": bool(self.freeze_backbone),
                "cache_features": bool(self.cache_features and self.freeze_backbone),
                "aux_weight": float(self.aux_weight)}


def labels_phrase(images: int, demo: int) -> str:
    """The masks a retrain learns from, by where they came from: ``demo`` of the ``images`` still hold
    the built-in demo's own labels (core.demo_labels), the others were corrected by the user."""
    if demo <= 0:
        return f"{images} corrected image(s)"
    if demo >= images:
        return f"the demo's own labels of {images} image(s) (you have corrected none of them yet)"
    return f"{images} labelled image(s): {images - demo} corrected by you, {demo} with the demo's own labels"


class _Refused(core.StudioError):
    """A retrain that could not start (its text is the whole message)."""


class Retrainer(QObject):
    started = Signal(int)  # steps
    progress = Signal(object)  # core.TrainProgress
    status = Signal(str)  # what the job is doing between steps
    finished = Signal(object)  # core.ProjectFinetune (the new model is in use)
    cancelled = Signal()
    failed = Signal(str)
    historyChanged = Signal()
    comparisonReady = Signal(object)  # list[core.Agreement]
    restored = Signal(object)  # core.CheckpointEntry: the project's current model again (being loaded)

    def __init__(self, controller: "Controller", editor: MaskEditor, parent: QObject | None = None):
        super().__init__(parent or controller)
        self.controller = controller
        self.editor = editor
        self.options = RetrainOptions()
        self.task: Chain | None = None
        self.compare_task: Chain | None = None
        self.restore_task: Chain | None = None
        self.last: core.ProjectFinetune | None = None
        self.comparison: list[core.Agreement] = []
        self.started_at = 0.0
        self.cancel_requested_at: float | None = None
        controller.folderChanged.connect(lambda _: self.historyChanged.emit())

    @property
    def project(self) -> core.Project | None:
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
        if self.project.read_only:
            return f"This project is read-only, so a retrain cannot add its model to it: {self._read_only_reason()}"
        if c.loaded is None:
            return "Open a model first: retraining fine-tunes the model in use"
        if tuple(c.loaded.classes.names) != tuple(self.project.classes.names):
            return (f"The model's {len(c.loaded.classes)} classes differ from the project's "
                    f"{len(self.project.classes)}: retraining needs the project's class table (Model > Adapt Model "
                    "to the Project's Classes, or a model of the project's classes)")
        return ""

    def start(self, options: RetrainOptions | None = None) -> Chain | None:
        if options is not None:
            self.options = options
        why = self.problem()
        if why:
            self.failed.emit(why)
            return None
        c, project, settings = self.controller, self.project, self.options.settings()
        state: dict[str, Any] = {}
        try:
            held = core.Project.open(project.root)  # the same object, counted: kept open for the run
        except core.StudioError as exc:
            self.failed.emit(f"Retraining needs the project open for writing: {exc}")
            return None
        if held is not project:  # cannot happen while the project is open here; never train into another
            held.close()
            self.failed.emit("Retraining needs the project open for writing: it was closed meanwhile")
            return None

        def saved(out: core.SavedMasks | None) -> Task:  # train on what is painted now
            if out is not None and out.failed:
                name, err = next(iter(out.failed.items()))
                raise _Refused(f"Retrain needs the masks saved; {name} could not be: {err}")
            self.status.emit("copying the model")
            return c.models.copy()

        def copied(before: core.LoadedModel) -> Task:
            state["before"] = before
            return c.background.submit("retrain", core.finetune_project, before, project, settings,
                                       device=c.device, origin="app")

        def trained(result: core.ProjectFinetune) -> Task:
            state["result"] = result
            self.status.emit("putting the new model in use")
            return c.set_model(result.loaded)  # predicts the shown image again once in use

        chain = Chain("retrain", [lambda _: self.editor.save_all(), saved, copied, trained])
        self.task = chain
        self.cancel_requested_at = None
        self.started_at = time.perf_counter()
        chain.progress.connect(lambda rec: chain is self.task and not chain.is_cancelled and self._progress(rec))
        chain.succeeded.connect(lambda _: chain is self.task and self._succeeded(state.pop("result"), state.pop("before")))
        chain.done.connect(state.clear)  # the starting copy is not kept after the run
        chain.done.connect(lambda: c.background.submit("release project", core.close_project_job, held))
        chain.failed.connect(lambda exc: chain is self.task and self.failed.emit(
            str(exc) if isinstance(exc, _Refused) else f"Retraining failed: {exc}"))
        chain.done.connect(lambda: self.historyChanged.emit())
        self.started.emit(int(settings["steps"]))
        chain.start()
        return chain

    def cancel(self) -> None:
        """Stop retraining. Takes effect at once: the model in use never changed (a copy trains) and
        nothing is added to the history; the worker stops before its next step (the step under
        way, at most, still runs)."""
        if self.running:
            self.cancel_requested_at = time.perf_counter()
            self.task.cancel()
            self.cancelled.emit()
        if self.compare_task is not None and not self.compare_task.is_finished:
            self.compare_task.cancel()

    def _progress(self, rec: core.Progress) -> None:
        if isinstance(rec, core.TrainProgress):
            self.progress.emit(rec)
        elif rec.message:
            self.status.emit(rec.message)

    def _succeeded(self, result: core.ProjectFinetune, before: core.LoadedModel) -> None:
        self.last = result
        self.historyChanged.emit()
        self.finished.emit(result)
        self.compare(before.model)

    def compare(self, before: core.PSPNet) -> Chain | None:
        """The before/after agreement of every corrected image: ``before`` (a model of its own)
        against a copy of the model now in use, made after the shown image's new prediction."""
        if self.project is None:
            return None
        c, project = self.controller, self.project
        chain = Chain("compare models", [lambda _: c.models.copy(),
                                         lambda after: c.background.submit("compare models", core.compare_models,
                                                                           before, after.model, project, c.device)])
        self.compare_task = chain

        def done(rows: list[core.Agreement]) -> None:
            self.comparison = rows
            self.comparisonReady.emit(rows)

        chain.succeeded.connect(done)
        chain.failed.connect(lambda exc: self.failed.emit(f"Comparing the models failed: {exc}"))
        chain.start()
        return chain

    # ---- what the masks are ------------------------------------------------------------------------
    def demo_labelled(self) -> set[str]:
        """The project's masks that are still the built-in demo's own labels (none in a user's project)."""
        return core.demo_labels(self.project.root) if self.project is not None else set()

    def training_labels(self) -> str:
        """What a retrain of the open project learns from, for the status line."""
        demo = self.demo_labelled()
        if not demo or self.project is None:
            return "the corrections"
        masks = [n for n in self.project.names() if self.project.mask_path(n).is_file()]
        return labels_phrase(len(masks), len(demo & set(masks)))

    def comparison_text(self, rows: list[core.Agreement]) -> str:
        """core.agreement_text, saying so when the masks compared are the demo's own labels."""
        demo = self.demo_labelled() & {r.name for r in rows}
        if not demo:
            return core.agreement_text(rows)
        before, after, n = core.agreement_summary(rows)
        return (f"Agreement with the masks: {100 * before:.1f} % -> {100 * after:.1f} % "
                f"({100 * (after - before):+.1f} points) over {labels_phrase(n, len(demo))}")

    # ---- the model history -------------------------------------------------------------------
    def history(self) -> list[core.CheckpointEntry]:
        return self.project.checkpoints() if self.project is not None else []

    def current_id(self) -> str | None:
        if self.project is None:
            return None
        cur = self.project.current_checkpoint
        return cur.id if cur is not None else None

    def _read_only_reason(self) -> str:
        return self.editor.read_only_reason or (self.project.read_only_reason if self.project else "")

    def restore(self, entry_id: str) -> Chain | None:
        """Go back to an earlier model of the history: loaded (and checked) in a worker, then made
        the current one and put in use. The model in use stays when the checkpoint is damaged."""
        if self.project is None:
            return None
        if self.running:
            self.failed.emit("Wait for the retrain to finish (or cancel it) before restoring a model")
            return None
        if self.project.read_only:
            self.failed.emit(f"Cannot restore model {entry_id}: the project is read-only: {self._read_only_reason()}")
            return None
        c, project = self.controller, self.project
        self.status.emit(f"loading model {entry_id} of the history")

        def put_in_use(pair: tuple[core.CheckpointEntry, core.LoadedModel]) -> Task:
            self.restored.emit(pair[0])  # loaded: it is the project's current model again
            return c.set_model(pair[1])  # predicts the shown image again once in use

        chain = Chain("restore model", [
            lambda _: c.background.submit("restore model", core.restore_model_job, project, entry_id),
            put_in_use])
        self.restore_task = chain
        chain.succeeded.connect(lambda _: self.historyChanged.emit())
        chain.failed.connect(lambda exc: (self.historyChanged.emit(),
                                          self.failed.emit(f"Could not restore model {entry_id}: {exc}")))
        chain.start()
        return chain
