"""The controller: one QObject that owns the core objects and turns their events into signals.

It holds the current model (``core.LoadedModel`` and its ``Predictor``), the image list, the
current image (and its mask), and the current prediction; every long step runs as a job of a
:class:`~app.workers.TaskRunner`. Views and widgets only read what the signals carry and call
the methods here; they never talk to core's long-running parts themselves.

Inference is one job at a time: opening another image cancels the running prediction; a result
that arrives for an image or model no longer shown is dropped.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PySide6.QtCore import QObject, Signal

import core
from app import jobs
from app.editing import Editor
from app.folder import ImageEntry, ImageFolder, folder_of_image, scan_folder
from app.ranking import Ranker
from app.retrain import Retrainer
from app.workers import Task, TaskRunner

# An image up to this many pixels is predicted in one pass with internals (for the pyramid
# inspector and the head-only re-run); a larger one runs in sliding windows (with progress).
MAX_SINGLE_PASS_PIXELS = 2048 * 1536
SLIDING_CROP = 1024
CACHE_SIZE = 4  # predictions kept for going back to an image


class Controller(QObject):
    # model
    modelLoading = Signal(str)  # a description of what is being loaded
    modelChanged = Signal(object)  # core.LoadedModel, or None
    deviceChanged = Signal(str)
    classesChanged = Signal(object)  # core.ClassTable
    # images
    folderChanged = Signal(object)  # ImageFolder
    entryChanged = Signal(int)  # an entry's state (mask / predicted) changed
    imageChanged = Signal(object)  # jobs.ImageData (photo shown at once)
    # predictions
    predictionStarted = Signal()
    predictionProgress = Signal(float)
    outcomeReady = Signal(object)  # jobs.Outcome: what the views show
    pyramidReady = Signal(object)  # jobs.PyramidSummary for the current base prediction
    levelsChanged = Signal(object)  # tuple of disabled bins
    busyChanged = Signal(bool)
    # messages
    message = Signal(str)  # a status line
    error = Signal(str)  # a user-facing error (shown in the status bar and a dialog if wanted)

    def __init__(self, parent: QObject | None = None, *, device: str = "cpu",
                 max_single_pass_pixels: int = MAX_SINGLE_PASS_PIXELS):
        super().__init__(parent)
        self.inference = TaskRunner("inference", self)  # model loads, predictions, re-runs: serial
        self.io = TaskRunner("io", self)  # image reading, summaries
        self.background = TaskRunner("background", self)  # demo training and other long jobs
        for r in (self.inference, self.io):
            r.busyChanged.connect(self._emit_busy)
        self.loaded: Any = None  # core.LoadedModel
        self.predictor: Any = None  # single pass, with internals
        self.window_predictor: Any = None  # sliding windows for big images
        self.device = device
        self.classes: Any = None
        self.folder: ImageFolder | None = None
        self.image: jobs.ImageData | None = None
        self.base_outcome: jobs.Outcome | None = None  # all pyramid levels on
        self.outcome: jobs.Outcome | None = None  # what is shown (levels switched off applied)
        self.pyramid: jobs.PyramidSummary | None = None
        self.disabled_levels: tuple[int, ...] = ()
        self.max_single_pass_pixels = max_single_pass_pixels
        self._model_gen = 0  # bumped when the model or device changes
        self._image_gen = 0  # bumped when the image changes
        self._predict_task: Task | None = None
        self._rerun_task: Task | None = None
        self._read_task: Task | None = None
        self._cache: OrderedDict[tuple, jobs.Outcome] = OrderedDict()
        self._switch: Any = None  # core.LevelSwitch of base_outcome, made on the first level switch
        self.last_timing: dict[str, float] = {}
        # correcting masks, retraining, what to correct next (each its own object; see their modules)
        self.editor = Editor(self)
        self.retrainer = Retrainer(self, self.editor)
        self.ranker = Ranker(self, self.editor)

    # ------------------------------------------------------------------------------------------
    # state
    @property
    def busy(self) -> bool:
        return self.inference.busy or self.io.busy

    def _emit_busy(self, _: bool = False) -> None:
        self.busyChanged.emit(self.busy)

    @property
    def bins(self) -> tuple[int, ...]:
        return tuple(self.loaded.model.bins) if self.loaded is not None else ()

    @property
    def prediction(self) -> Any:
        return self.outcome.prediction if self.outcome is not None else None

    def _mask(self) -> Any:
        """The current image's mask, when its class table is the model's (else no metrics)."""
        if self.image is None or self.image.mask is None or self.loaded is None:
            return None
        project = self.folder.classes if self.folder is not None else None
        if project is not None and tuple(project.names) != tuple(self.loaded.classes.names):
            return None
        return self.image.mask

    def current_classes(self) -> Any:
        if self.classes is not None:
            return self.classes
        if self.folder is not None and self.folder.classes is not None:
            return self.folder.classes
        return None

    # ------------------------------------------------------------------------------------------
    # models
    def open_model(self, paths: str | Path | Sequence[str | Path]) -> Task:
        """Load a checkpoint (ours or any importable format; two files for CSAIL encoder + decoder)."""
        paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
        names = " + ".join(p.name for p in paths)
        self.modelLoading.emit(names)
        self.message.emit(f"Loading model {names} ...")
        self._cancel_inference()
        task = self.inference.submit("load model", jobs.load_model_job, paths, self.device)
        task.succeeded.connect(self._on_model_loaded)
        task.failed.connect(lambda exc: self._fail(f"Could not load the model {names}", exc))
        return task

    def set_model(self, loaded: Any) -> None:
        """Use an already loaded model (e.g. one just trained)."""
        self._on_model_loaded(loaded)

    def _on_model_loaded(self, loaded: Any) -> None:
        self.loaded = loaded
        predictor = core.Predictor.from_loaded(loaded, device=self.device)
        self.device = str(predictor.device)
        self._make_predictors(predictor)
        names = (" + ".join(Path(s).name for s in getattr(loaded, "sources", []) or [])
                 or str(loaded.provenance.get("source", "model")))
        self.message.emit(f"Model {names} loaded ({loaded.report.format}, {len(loaded.classes)} classes)")
        self.modelChanged.emit(loaded)
        self.deviceChanged.emit(self.device)
        self._set_classes(loaded.classes)
        self.repredict()

    def _make_predictors(self, predictor: Any) -> None:
        self._model_gen += 1
        self._cache.clear()
        self.predictor = predictor
        self.window_predictor = core.Predictor(predictor.model, device=predictor.device, crop=SLIDING_CROP,
                                               classes=predictor.classes)
        self.disabled_levels = tuple(b for b in self.disabled_levels if b in self.bins)
        if self.folder is not None:
            for i, e in enumerate(self.folder.entries):
                if e.predicted:
                    e.predicted = False
                    self.entryChanged.emit(i)

    def set_device(self, device: str) -> Task | None:
        """Move the model to another device ("cpu", "cuda:0", ...) and predict again."""
        if device == self.device:
            return None
        if self.loaded is None:
            self.device = device
            self.deviceChanged.emit(device)
            return None
        self._cancel_inference()
        self.message.emit(f"Moving the model to {core.device_name(device)} ...")
        task = self.inference.submit("move model", jobs.move_model_job, self.loaded, device)

        def moved(predictor: Any) -> None:
            self.device = device
            self._make_predictors(predictor)
            self.deviceChanged.emit(device)
            self.message.emit(f"Model on {core.device_name(device)}")
            self.repredict()

        task.succeeded.connect(moved)
        task.failed.connect(lambda exc: self._fail(f"Could not move the model to {device}", exc))
        return task

    def _set_classes(self, classes: Any) -> None:
        self.classes = classes
        self.classesChanged.emit(classes)

    # ------------------------------------------------------------------------------------------
    # folders and images
    def open_folder(self, root: str | Path, open_first: bool = True) -> ImageFolder | None:
        try:
            folder = scan_folder(root)
        except core.StudioError as exc:
            self._fail("Could not open the folder", exc)
            return None
        self._set_folder(folder)
        if open_first and folder.entries:
            self.open_image(folder.entries[0].path)
        elif not folder.entries:
            self.message.emit(f"{root}: no images found")
        return folder

    def _set_folder(self, folder: ImageFolder) -> None:
        self.folder = folder
        if self.loaded is None and folder.classes is not None:
            self._set_classes(folder.classes)
        self.folderChanged.emit(folder)

    def open_index(self, index: int) -> None:
        if self.folder is not None and 0 <= index < len(self.folder.entries):
            self.open_image(self.folder.entries[index].path)

    def step_image(self, delta: int) -> None:
        if self.folder is None or not self.folder.entries:
            return
        i = self.current_index()
        n = len(self.folder.entries)
        self.open_index((i + delta) % n if i >= 0 else 0)

    def current_index(self) -> int:
        if self.folder is None or self.image is None:
            return -1
        return self.folder.index_of(self.image.path)

    def open_image(self, path: str | Path) -> Task:
        """Show an image: the photo as soon as it is read, the prediction when it is ready.

        Cancels whatever prediction is running."""
        path = Path(path)
        if self.folder is None or self.folder.index_of(path) < 0:
            try:
                self._set_folder(folder_of_image(path))
            except core.StudioError:
                pass
        entry = self._entry(path)
        self._image_gen += 1
        gen = self._image_gen
        self._cancel_inference()
        if self._read_task is not None:
            self._read_task.cancel()
        classes = self.folder.classes if self.folder is not None else None  # masks use the project's table
        mask_path = entry.mask_path if entry is not None else None
        task = self.io.submit("read image", jobs.read_image_job, path, mask_path, classes)
        self._read_task = task
        task.succeeded.connect(lambda data: self._on_image_read(data, gen))
        task.failed.connect(lambda exc: gen == self._image_gen and self._fail(f"Could not open {path.name}", exc))
        return task

    def _entry(self, path: Path) -> ImageEntry | None:
        if self.folder is None:
            return None
        i = self.folder.index_of(path)
        return self.folder.entries[i] if i >= 0 else None

    def _on_image_read(self, data: jobs.ImageData, gen: int) -> None:
        if gen != self._image_gen:
            return
        self.image = data
        self.outcome = self.base_outcome = None
        self.pyramid = None
        self.imageChanged.emit(data)
        h, w = data.image.shape[:2]
        note = f"  (mask not used: {data.mask_error})" if data.mask_error else ""
        self.message.emit(f"{data.path.name}: {w}x{h}{', with mask' if data.mask is not None else ''}{note}")
        self.repredict()

    # ------------------------------------------------------------------------------------------
    # predictions
    def _cancel_inference(self) -> None:
        for t in (self._predict_task, self._rerun_task):
            if t is not None and not t.is_finished:
                t.cancel()
        self._predict_task = self._rerun_task = None

    def cancel(self) -> None:
        """Stop the running prediction (the photo stays)."""
        if self._predict_task is not None or self._rerun_task is not None:
            self._cancel_inference()
            self.message.emit("Prediction cancelled")

    def repredict(self, use_cache: bool = True) -> Task | None:
        """Predict the current image with the current model (from the cache when possible)."""
        if self.image is None:
            return None
        if self.predictor is None:
            if not self.inference.busy and not self.background.busy:
                self.message.emit(f"{self.image.path.name}: no model yet - open one with Model > Open Model (Ctrl+M)")
            return None
        self._cancel_inference()
        key = (str(self.image.path), self._model_gen)
        cached = self._cache.get(key) if use_cache else None
        if cached is not None:
            self._cache.move_to_end(key)
            self._show_base(cached)
            return None
        data = self.image
        h, w = data.image.shape[:2]
        single = h * w <= self.max_single_pass_pixels
        predictor = self.predictor if single else self.window_predictor
        self.predictionStarted.emit()
        self.predictionProgress.emit(0.0)
        t0 = time.perf_counter()
        gen = (self._image_gen, self._model_gen)
        task = self.inference.submit("predict", jobs.predict_job, predictor, data.image, data.path, self._mask(),
                                     single)
        self._predict_task = task
        task.progress.connect(lambda v: self._on_progress(v, gen))
        task.succeeded.connect(lambda out: self._on_predicted(out, gen, key, t0))
        task.failed.connect(lambda exc: self._fail(f"Prediction of {data.path.name} failed", exc))
        task.cancelled.connect(lambda: self.predictionProgress.emit(-1.0))
        return task

    def _current(self, gen: tuple[int, int]) -> bool:
        return gen == (self._image_gen, self._model_gen)

    def _on_progress(self, value: Any, gen: tuple[int, int]) -> None:
        if self._current(gen) and isinstance(value, (int, float)):
            self.predictionProgress.emit(float(value))

    def _on_predicted(self, outcome: jobs.Outcome, gen: tuple[int, int], key: tuple, t0: float) -> None:
        if not self._current(gen):
            return
        self._predict_task = None
        self.last_timing["predict_s"] = time.perf_counter() - t0
        self._cache[key] = outcome
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        entry = self._entry(outcome.path) if outcome.path is not None else None
        if entry is not None and not entry.predicted:
            entry.predicted = True
            self.entryChanged.emit(self.folder.entries.index(entry))
        self.message.emit(f"Predicted {outcome.path.name if outcome.path else 'image'} in {outcome.seconds:.2f} s")
        self._show_base(outcome)

    def _show_base(self, outcome: jobs.Outcome) -> None:
        """Show an all-levels prediction; then apply the switched-off levels, if any."""
        self.outcome = self.base_outcome = outcome
        self.pyramid = None
        self._switch = None
        self.predictionProgress.emit(1.0)
        self.outcomeReady.emit(outcome)
        if outcome.prediction.internals is not None:
            self._summarise(outcome)
        if self.disabled_levels and outcome.prediction.internals is not None:
            self._rerun()

    def _summarise(self, outcome: jobs.Outcome) -> None:
        gen = (self._image_gen, self._model_gen)
        task = self.io.submit("pyramid summary", jobs.pyramid_summary_job, outcome.base.internals)

        def done(summary: jobs.PyramidSummary) -> None:
            if self._current(gen) and self.base_outcome is outcome:
                self.pyramid = summary
                self.pyramidReady.emit(summary)

        task.succeeded.connect(done)
        task.failed.connect(lambda exc: self._fail("Could not summarise the pyramid levels", exc))

    # ------------------------------------------------------------------------------------------
    # pyramid levels
    def _level_switch(self) -> Any:
        if self._switch is None or self._switch.base is not self.base_outcome.prediction:
            self._switch = core.LevelSwitch(self.predictor.model, self.base_outcome.prediction,
                                            device=self.predictor.device)
        return self._switch

    def prepare_levels(self) -> Task | None:
        """Get the level switches of the current prediction ready in the background (the pyramid
        view does this when it is shown, so that the first switch answers as fast as the next)."""
        if not self.can_rerun() or (self._switch is not None and self._switch.base is self.base_outcome.prediction):
            return None
        return self.inference.submit("prepare level switches", jobs.prepare_switch_job, self._level_switch())

    def can_rerun(self) -> bool:
        return self.base_outcome is not None and self.base_outcome.prediction.internals is not None

    def set_level_enabled(self, bin: int, enabled: bool) -> Task | None:
        """Switch one pyramid level on or off; re-runs the heads on the cached features."""
        if bin not in self.bins:
            raise ValueError(f"no pyramid level with bin {bin}; levels are {self.bins}")
        disabled = set(self.disabled_levels)
        (disabled.discard if enabled else disabled.add)(bin)
        return self.set_disabled_levels(tuple(sorted(disabled)))

    def set_disabled_levels(self, disabled: Sequence[int]) -> Task | None:
        disabled = tuple(sorted(set(int(b) for b in disabled)))
        if disabled == self.disabled_levels:
            return None
        self.disabled_levels = disabled
        self.levelsChanged.emit(disabled)
        if self.base_outcome is None:
            return None
        if not self.can_rerun():
            self.message.emit("This prediction has no cached features (sliding windows); "
                              "level switches apply to smaller images")
            return None
        return self._rerun()

    def _rerun(self) -> Task | None:
        if self._rerun_task is not None and not self._rerun_task.is_finished:
            self._rerun_task.cancel()
        self._rerun_task = None
        if not self.disabled_levels:  # back to the reference prediction: nothing to compute
            self.outcome = self.base_outcome
            self.message.emit("All pyramid levels on")
            self.outcomeReady.emit(self.outcome)
            return None
        base = self.base_outcome.prediction
        data = self.image
        gen = (self._image_gen, self._model_gen)
        t0 = time.perf_counter()
        task = self.inference.submit("re-run heads", jobs.rerun_job, self._level_switch(), self.base_outcome,
                                     self._mask(), self.disabled_levels)
        self._rerun_task = task

        def done(outcome: jobs.Outcome) -> None:
            if not self._current(gen) or self.base_outcome is None or self.base_outcome.prediction is not base:
                return
            if outcome.disabled_levels != self.disabled_levels:
                return  # a newer switch is on its way
            self._rerun_task = None
            self.last_timing["rerun_s"] = time.perf_counter() - t0
            self.outcome = outcome
            change = outcome.change
            self.message.emit(f"Levels off: {', '.join(map(str, outcome.disabled_levels))} - "
                              f"{change.changed if change else 0} pixels changed "
                              f"({100 * (change.share if change else 0):.2f} %), "
                              f"heads re-run in {1000 * outcome.seconds:.0f} ms")
            self.outcomeReady.emit(outcome)

        task.succeeded.connect(done)
        task.failed.connect(lambda exc: self._fail("Re-running the heads failed", exc))
        return task

    # ------------------------------------------------------------------------------------------
    def _fail(self, what: str, exc: BaseException) -> None:
        text = f"{what}: {exc}" if str(exc) else f"{what}: {type(exc).__name__}"
        self.predictionProgress.emit(-1.0)
        self.error.emit(text)

    def shutdown(self, timeout_ms: int = 60000) -> bool:
        """Cancel every job and wait for the worker threads (call before the window goes)."""
        ok = True
        for r in (self.background, self.inference, self.io):
            r.cancel_all()
        for r in (self.background, self.inference, self.io):
            ok = r.shutdown(timeout_ms) and ok
        return self.editor.shutdown(timeout_ms) and ok
