"""The window's controller: the image shown (with its editable mask) and its predictions.

It owns the runners (serial job queues, app/workers.py), the model in use
(:class:`~app.controllers.models.ModelInUse`), the image list (:class:`~app.image_folder.ImageFolder`)
and the feature controllers built on them: :class:`~app.controllers.mask_editing.MaskEditor`,
:class:`~app.controllers.retrainer.Retrainer`, :class:`~app.controllers.ranker.Ranker`. Views
and widgets only read what the signals carry and call the methods here.

An image reaches the views in one signal, ``imageChanged(ShownImage)``: the photo and its
editable mask together (the mask editor loads it while the photo is read). Inference is one job
at a time on the inference runner: opening another image cancels the running prediction; a
result that arrives for an image or model no longer shown is dropped.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PySide6.QtCore import QObject, Signal

import core
from app.controllers.class_guard import ClassGuard
from app.controllers.mask_editing import MaskEditor, MaskRequest
from app.controllers.models import ModelInUse
from app.controllers.project_opening import ProjectOpening
from app.controllers.project_access import ProjectAccess
from app.controllers.ranker import Ranker
from app.controllers.retrainer import Retrainer
from app.image_folder import ImageEntry, ImageFolder
from app.workers import Task, TaskRunner

CACHE_BYTES = 768 * 2**20  # predictions kept for going back to an image, by the memory they hold


@dataclass
class ShownImage:
    """What the views show of an image: the photo, the mask file's labels (for metrics) and the
    editable mask (None: read-only, ``reason`` says why)."""

    data: core.ImageData
    mask: core.LabelMask | None = None
    reason: str = ""

    @property
    def path(self) -> Path:
        return self.data.path

    @property
    def image(self) -> np.ndarray:
        return self.data.image


class Controller(QObject):
    # model
    modelLoading = Signal(str)  # a description of what is being loaded
    modelChanged = Signal(object)  # core.LoadedModel, or None
    deviceChanged = Signal(str)
    classesChanged = Signal(object)  # core.ClassTable
    # images
    folderChanged = Signal(object)  # ImageFolder (its rows' changes: ImageFolder.entryChanged)
    imageChanged = Signal(object)  # ShownImage: the photo and its editable mask, together
    # predictions
    predictionStarted = Signal()
    predictionProgress = Signal(float)
    previewReady = Signal(object)  # core.Outcome: a first look (the main head of the first windows), refined later
    protocolChanged = Signal(object)  # core.TestProtocol in use (the model's own unless one was chosen)
    levelsBusy = Signal(str)  # what a level switch is computing ("" when done or stopped)
    overlayMapReady = Signal(object, str, int, object)  # prediction, mode, class id, (H, W) uint8 heat map
    overlayMapFailed = Signal(object)  # prediction
    outcomeReady = Signal(object)  # core.Outcome: what the views show
    pyramidReady = Signal(object)  # core.PyramidSummary for the current base prediction
    levelsChanged = Signal(object)  # tuple of disabled bins
    busyChanged = Signal(bool)
    # messages
    message = Signal(str)  # a status line
    error = Signal(str)  # a user-facing error (shown in the status bar and a dialog if wanted)
    problem = Signal(str, str, object)  # key ("open folder:ROOT", "model", ...), text, exception: shown until closed

    def __init__(self, parent: QObject | None = None, *, device: str = "cpu", cache_bytes: int = CACHE_BYTES):
        super().__init__(parent)
        self.inference = TaskRunner("inference", self)  # the model: loads, moves, copies, predictions, re-runs
        self.io = TaskRunner("io", self)  # image reading, summaries, scores
        self.background = TaskRunner("background", self)  # training and other long jobs on copies of the model
        for r in (self.inference, self.io):
            r.busyChanged.connect(self._emit_busy)
        self.models = ModelInUse(self.inference, device, self)
        self.models.loading.connect(self.modelLoading)
        self.models.changed.connect(self._model_changed)
        self.models.deviceChanged.connect(self._device_changed)
        self.models.failed.connect(lambda what, exc: self._fail(what, exc, "model"))
        self.classes: core.ClassTable | None = None
        self.folder: ImageFolder | None = None
        self.image: ShownImage | None = None
        self.base_outcome: core.Outcome | None = None  # all pyramid levels on
        self.outcome: core.Outcome | None = None  # what is shown (levels switched off applied)
        self.pyramid: core.PyramidSummary | None = None
        self.disabled_levels: tuple[int, ...] = ()
        self.cache_bytes = int(cache_bytes)
        self._levels_note = ""  # what levelsBusy said last
        self._maps_task: Task | None = None  # a switched prediction's maps, being made
        self.protocol_overrides: dict[str, object] = {}  # the user's choices over the model's own protocol
        self._image_gen = 0  # bumped when the image changes
        self._predict_task: Task | None = None
        self._rerun_task: Task | None = None
        self._read_task: Task | None = None
        self._cache: OrderedDict[tuple, core.Outcome] = OrderedDict()
        self._switch: core.LevelSwitch | None = None  # of base_outcome, made on the first level switch
        self._cache_gen = 0  # the model generation the cache holds predictions of
        self.last_timing: dict[str, float] = {}
        # correcting masks, retraining, what to correct next (each its own object; see their modules)
        self.editor = MaskEditor(self)
        self.retrainer = Retrainer(self, self.editor)
        self.ranker = Ranker(self, self.editor)
        self.class_guard = ClassGuard(self, self.editor)  # painting waits while the model's classes are not the project's
        self.opening = ProjectOpening(self)  # folders as projects: their class table, the model their history has in use
        self.access = ProjectAccess(self)  # opens folders and projects (locked ones: ask; read-only ones: why)
        self.access.message.connect(self.message)

    # ------------------------------------------------------------------------------------------
    # state
    @property
    def busy(self) -> bool:
        return self.inference.busy or self.io.busy

    def _emit_busy(self, _: bool = False) -> None:
        self.busyChanged.emit(self.busy)

    @property
    def loaded(self) -> core.LoadedModel | None:
        return self.models.loaded

    @property
    def device(self) -> str:
        return self.models.device

    @property
    def predictor(self) -> core.Predictor | None:
        """The predictor of the model in use, under the test protocol in use."""
        return self.models.predictors.predictor if self.models.predictors is not None else None

    @property
    def protocol(self) -> core.TestProtocol | None:
        """The test protocol predictions use (None: no model)."""
        return self.models.predictors.protocol if self.models.predictors is not None else None

    def set_protocol_overrides(self, overrides: dict[str, object]) -> None:
        """Predict with some fields of the model's own test protocol changed (``base_size``: pixels
        or None for native size, ``crop``: pixels or None for the whole image, ``scales``,
        ``flip``; an empty dict: the model's own), for this model and the next ones, and again now."""
        overrides = dict(overrides)
        if overrides == self.protocol_overrides:
            return
        self.protocol_overrides = overrides
        if self.models.predictors is None:
            return
        self._apply_protocol()
        self.repredict()

    def _apply_protocol(self) -> None:
        p = self.models.predictors
        protocol = p.default.replace(**self.protocol_overrides) if self.protocol_overrides else None
        self.models.predictors = p.with_protocol(protocol)
        self._switch = None
        self.protocolChanged.emit(self.models.predictors.protocol)

    @property
    def bins(self) -> tuple[int, ...]:
        return self.models.bins

    @property
    def prediction(self) -> core.Prediction | None:
        return self.outcome.prediction if self.outcome is not None else None

    def _mask(self) -> np.ndarray | None:
        """The current image's mask file labels, when its class table is the model's (else no metrics)."""
        if self.image is None or self.image.data.mask is None or self.loaded is None:
            return None
        project = self.folder.classes if self.folder is not None else None
        if project is not None and tuple(project.names) != tuple(self.loaded.classes.names):
            return None
        return self.image.data.mask

    def current_classes(self) -> core.ClassTable | None:
        if self.classes is not None:
            return self.classes
        if self.folder is not None and self.folder.classes is not None:
            return self.folder.classes
        return None

    # ------------------------------------------------------------------------------------------
    # models
    def open_model(self, paths: str | Path | Sequence[str | Path]) -> Task:
        """Load a checkpoint (ours or any importable format; two files for CSAIL encoder + decoder)."""
        names = " + ".join(Path(p).name for p in ([paths] if isinstance(paths, (str, Path)) else paths))
        self.message.emit(f"Loading model {names} ...")
        self._cancel_inference()
        return self.models.open(paths)

    def set_model(self, loaded: core.LoadedModel) -> Task:
        """Use an already loaded model (e.g. one just trained); in use once the task is done."""
        return self.models.use(loaded)

    def set_device(self, device: str) -> Task | None:
        """Move the model to another device ("cpu", "cuda:0", ...) and predict again."""
        if device != self.device and self.loaded is not None:
            self._cancel_inference()
            self.message.emit(f"Moving the model to {core.device_name(device)} ...")
        return self.models.set_device(device)

    def _model_changed(self, loaded: core.LoadedModel) -> None:
        self._new_predictors()
        names = (" + ".join(Path(s).name for s in loaded.sources or [])
                 or str(loaded.provenance.get("source", "model")))
        self.message.emit(f"Model {names} loaded ({loaded.report.format}, {len(loaded.classes)} classes)")
        self.modelChanged.emit(loaded)
        self.protocolChanged.emit(self.protocol)  # after the panel knows the model's own protocol
        if loaded.classes != self.classes:  # a model just fine-tuned keeps its table: no widget rebuilt
            self._set_classes(loaded.classes)
        self.repredict()

    def _device_changed(self, device: str) -> None:
        self.deviceChanged.emit(device)
        if self.loaded is not None and self._cache_gen != self.models.generation:  # moved: predict again
            self._new_predictors()
            self.message.emit(f"Model on {core.device_name(device)}")
            self.repredict()

    def _new_predictors(self) -> None:
        self._apply_protocol()
        self._cache_gen = self.models.generation
        self._cache.clear()
        self._switch = None
        self.disabled_levels = tuple(b for b in self.disabled_levels if b in self.bins)
        if self.folder is not None:
            self.folder.clear_predicted()

    def _set_classes(self, classes: core.ClassTable) -> None:
        self.classes = classes
        self.classesChanged.emit(classes)

    def use_classes(self, classes: core.ClassTable) -> None:
        """Show ``classes`` (the project's table, changed while no model is in use)."""
        self._set_classes(classes)

    # ------------------------------------------------------------------------------------------
    # folders and images
    def open_folder(self, root: str | Path, open_first: bool = True, *,
                    classes: core.ClassTable | None = None) -> ImageFolder | None:
        """Open a folder or project (``classes``: the class table for a project whose own is lost)."""
        try:
            folder = self.access.scan(root, **({"classes": classes} if classes is not None else {}))
        except core.StudioError as exc:
            self._fail(f"Could not open the folder {Path(root).name}", exc, f"open folder:{Path(root)}")
            return None
        if folder is None:  # the user chose not to open it
            return None
        self._set_folder(folder)
        if open_first and folder.entries:
            self.open_image(folder.entries[0].path)
        elif not folder.entries:
            self.message.emit(f"{root}: no images found")
        return folder

    def _set_folder(self, folder: ImageFolder) -> None:
        old, self.folder = self.folder, folder
        if self.loaded is None and folder.classes is not None:
            self._set_classes(folder.classes)
        self.folderChanged.emit(folder)
        if old is not None and old is not folder:
            old.deleteLater()

    def open_index(self, index: int) -> None:
        if self.folder is not None and 0 <= index < len(self.folder):
            self.open_image(self.folder.entries[index].path)

    def step_image(self, delta: int) -> None:
        if self.folder is None or not len(self.folder):
            return
        i = self.current_index()
        n = len(self.folder)
        self.open_index((i + delta) % n if i >= 0 else 0)

    def current_index(self) -> int:
        if self.folder is None or self.image is None:
            return -1
        return self.folder.index_of(self.image.path)

    def open_image(self, path: str | Path) -> Task | None:
        """Show an image: the photo and its mask as soon as both are read, the prediction when ready.

        Cancels whatever prediction is running. None: the image's project is locked and the user
        chose not to open it."""
        path = Path(path)
        if self.folder is None or self.folder.index_of(path) < 0:
            try:
                folder = self.access.of_image(path)
            except core.StudioError as exc:  # the image still opens, alone (its project could not be)
                self._fail(f"{path.name} opens without its project", exc, "open project")
            else:
                if folder is None:  # the user chose not to open its project: nor the image, then
                    return None
                self._set_folder(folder)
        entry = self._entry(path)
        self._image_gen += 1
        gen = self._image_gen
        self._cancel_inference()
        if self._read_task is not None:
            self._read_task.cancel()
        classes = self.folder.classes if self.folder is not None else None  # masks use the project's table
        mask_path = entry.mask_path if entry is not None else None
        task = self.io.submit("read image", core.read_image_and_mask, path, mask_path, classes)
        self._read_task = task
        request = self.editor.request(path)  # the editable mask, loaded meanwhile
        parts: dict[str, object] = {}

        def ready(key: str, value: object) -> None:
            parts[key] = value
            if gen == self._image_gen and len(parts) == 2:
                self._show_image(parts["data"], parts["mask"])  # type: ignore[arg-type]

        task.succeeded.connect(lambda data: ready("data", data))
        task.failed.connect(lambda exc: gen == self._image_gen and self._fail(f"Could not open {path.name}", exc,
                                                                               "open image"))
        request.ready.connect(lambda req: ready("mask", req))
        request.start()
        return task

    def _entry(self, path: Path) -> ImageEntry | None:
        if self.folder is None:
            return None
        i = self.folder.index_of(path)
        return self.folder.entries[i] if i >= 0 else None

    def _show_image(self, data: core.ImageData, mask: MaskRequest) -> None:
        self.image = ShownImage(data, mask.mask, mask.reason)
        self.outcome = self.base_outcome = None
        self.pyramid = None
        self.editor.set_current(mask)  # the editor's state first: the views' handlers read it
        self.imageChanged.emit(self.image)
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
        predictors = self.models.predictors
        if predictors is None:
            if not self.inference.busy and not self.background.busy:
                self.message.emit(f"{self.image.path.name}: no model yet - open one with Model > Open Model (Ctrl+M)")
            return None
        self._cancel_inference()
        key = self.cache_key()
        cached = self._cache.get(key) if use_cache else None
        if cached is not None:
            self._cache.move_to_end(key)
            self._show_base(cached)
            return None
        data = self.image.data
        self.predictionStarted.emit()
        self.predictionProgress.emit(0.0)
        t0 = time.perf_counter()
        gen = self._gen()
        name = data.path.name
        self.message.emit(f"Predicting {name} ({predictors.protocol.describe()}) ...")
        task = self.inference.submit("predict", core.predict_outcome, predictors.predictor, data.image, data.path,
                                     self._mask(), True, preview=True)
        self._predict_task = task
        task.progress.connect(lambda rec: self._on_progress(rec, gen))
        task.succeeded.connect(lambda out: self._on_predicted(out, gen, key, t0))
        task.failed.connect(lambda exc: self._prediction_failed(name, exc, gen))
        task.cancelled.connect(lambda: self.predictionProgress.emit(-1.0))
        return task

    def _prediction_failed(self, name: str, exc: BaseException, gen: tuple[int, int]) -> None:
        """A failed prediction says why and holds nothing: out of memory, the cached predictions go too."""
        if not self._current(gen):
            return
        self._predict_task = None
        if self.outcome is not None and self.outcome.prediction.is_preview:
            self.outcome = None  # a first look of the failed prediction is not kept
        if isinstance(exc, (core.PredictionOutOfMemory, core.PredictionTooLarge)):
            self._cache.clear()
        self._fail(f"Prediction of {name} failed", exc, "predict")

    def _gen(self) -> tuple[int, int]:
        return (self._image_gen, self.models.generation)

    def _current(self, gen: tuple[int, int]) -> bool:
        return gen == self._gen()

    def _on_progress(self, rec: core.Progress, gen: tuple[int, int]) -> None:
        if not self._current(gen):
            return
        if isinstance(rec, core.PreviewReady) and self.base_outcome is None:
            self.outcome = rec.outcome  # shown until the whole prediction replaces it
            self.message.emit(f"{rec.outcome.path.name if rec.outcome.path else 'image'}: a first look "
                              f"(the main head, {100 * float(rec.fraction or 0):.0f} % done); refining ...")
            self.previewReady.emit(rec.outcome)
            self.outcomeReady.emit(rec.outcome)
        if rec.fraction is not None:
            self.predictionProgress.emit(float(rec.fraction))

    def _on_predicted(self, outcome: core.Outcome, gen: tuple[int, int], key: tuple, t0: float) -> None:
        if not self._current(gen):
            return
        self._predict_task = None
        self.last_timing["predict_s"] = time.perf_counter() - t0
        self._cache[key] = outcome
        self._trim_cache()
        if self.folder is not None and outcome.path is not None:
            i = self.folder.index_of(outcome.path)
            if i >= 0:
                self.folder.set_predicted(i)
        self.message.emit(f"Predicted {outcome.path.name if outcome.path else 'image'} in {outcome.seconds:.2f} s")
        self._show_base(outcome)

    def cache_key(self, path: Path | None = None) -> tuple:
        """The cache's key of an image's prediction (default: the image shown) with the model and
        protocol in use."""
        p = self.models.predictors
        where = path if path is not None else (self.image.path if self.image is not None else None)
        return (str(where), self.models.generation, p.protocol if p is not None else None)

    def cached_bytes(self) -> int:
        """The memory the cached predictions hold."""
        return sum(o.memory_bytes() for o in self._cache.values())

    def _trim_cache(self) -> None:
        """Drop the least recently shown predictions while the cache holds more than its budget
        (the newest stays, whatever its size)."""
        while len(self._cache) > 1 and self.cached_bytes() > self.cache_bytes:
            self._cache.popitem(last=False)

    def _show_base(self, outcome: core.Outcome) -> None:
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

    def _summarise(self, outcome: core.Outcome) -> None:
        gen = self._gen()
        task = self.io.submit("pyramid summary", core.summarise_pyramid, outcome.base.internals)

        def done(summary: core.PyramidSummary) -> None:
            if self._current(gen) and self.base_outcome is outcome:
                self.pyramid = summary
                self.pyramidReady.emit(summary)

        task.succeeded.connect(done)
        task.failed.connect(lambda exc: self._fail("Could not summarise the pyramid levels", exc))

    # ------------------------------------------------------------------------------------------
    # pyramid levels
    def _level_switch(self) -> core.LevelSwitch:
        base = self.base_outcome.prediction
        if self._switch is None or self._switch.base is not base:
            p = self.models.predictors
            self._switch = core.level_switch(p.model, base, p.device, module=p.module)
        return self._switch

    def prepare_levels(self) -> Task | None:
        """Get the level switches of the current prediction ready in the background (the pyramid
        view does this when it is shown, so that the first switch answers as fast as the next)."""
        if not self.can_rerun() or (self._switch is not None and self._switch.base is self.base_outcome.prediction):
            return None
        return self.inference.submit("prepare level switches", core.prepare_level_switch, self._level_switch())

    def can_rerun(self) -> bool:
        return (self.base_outcome is not None and self.base_outcome.prediction.internals is not None
                and self.models.predictors is not None)

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
            self.message.emit("This model has no pyramid pooling module: there is no level to switch"
                              if not self.bins else "This prediction kept no features to re-run the heads on")
            return None
        return self._rerun()

    def _materialize(self, prediction: core.Prediction) -> None:
        """The shown switch's probability maps, made on the io runner (the inference runner stays
        free for the next switch; one not needed any more is dropped)."""
        if self._maps_task is not None and not self._maps_task.is_finished:
            self._maps_task.cancel()
        self._maps_task = self.io.submit("probability maps", core.materialize_job, prediction)
        self._maps_task.failed.connect(lambda exc: self._fail("Could not make the probability maps", exc))

    def _levels_busy(self, text: str) -> None:
        if text != self._levels_note:
            self._levels_note = text
            self.levelsBusy.emit(text)

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
        gen = self._gen()
        t0 = time.perf_counter()
        off = ", ".join(map(str, self.disabled_levels))
        self._levels_busy(f"Re-running the heads with level(s) {off} off ...")
        task = self.inference.submit("re-run heads", core.rerun_outcome, self._level_switch(), self.base_outcome,
                                     self._mask(), self.disabled_levels)
        self._rerun_task = task
        task.done.connect(lambda: self._rerun_task in (None, task) and self._levels_busy(""))

        def ready(rec: core.Progress) -> None:  # the labels first; the maps follow on the worker
            if isinstance(rec, core.SwitchReady):
                show(rec.outcome, finished=False)

        def done(outcome: core.Outcome) -> None:
            show(outcome, finished=True)

        def show(outcome: core.Outcome, finished: bool) -> None:
            if not self._current(gen) or self.base_outcome is None or self.base_outcome.prediction is not base:
                return
            if outcome.disabled_levels != self.disabled_levels:
                return  # a newer switch is on its way
            if finished:
                self._rerun_task = None
            if self.outcome is outcome:
                return  # shown when its labels were ready
            self._levels_busy("")
            self.last_timing["rerun_s"] = time.perf_counter() - t0
            self.outcome = outcome
            self._materialize(outcome.prediction)
            change = outcome.change
            self.message.emit(f"Levels off: {', '.join(map(str, outcome.disabled_levels))} - "
                              f"{change.changed if change else 0} pixels changed "
                              f"({100 * (change.share if change else 0):.2f} %), "
                              f"heads re-run in {1000 * outcome.seconds:.0f} ms")
            self.outcomeReady.emit(outcome)

        task.progress.connect(ready)
        task.succeeded.connect(done)
        task.failed.connect(lambda exc: self._fail("Re-running the heads failed", exc))
        return task

    # ------------------------------------------------------------------------------------------
    # heat maps of big photos (a view asks; they take a second or more)
    def make_overlay_map(self, prediction: core.Prediction, mode: str, class_id: int) -> Task:
        task = self.io.submit("overlay map", core.overlay_map_job, prediction, mode, class_id)
        task.succeeded.connect(lambda m: self.overlayMapReady.emit(prediction, mode, class_id, m))
        task.failed.connect(lambda exc: (self.overlayMapFailed.emit(prediction),
                                         self._fail(f"Could not make the {mode} map", exc)))
        return task

    # ------------------------------------------------------------------------------------------
    def _fail(self, what: str, exc: BaseException, key: str = "error") -> None:
        text = f"{what}: {exc}" if str(exc) else f"{what}: {type(exc).__name__}"
        self.predictionProgress.emit(-1.0)
        self.error.emit(text)
        self.problem.emit(key, text, exc)

    def shutdown(self, timeout_ms: int = 60000) -> bool:
        """Cancel every job and wait for the worker threads (call when the window goes)."""
        ok = True
        for r in (self.background, self.inference, self.io):
            r.cancel_all()
        for r in (self.background, self.inference, self.io):
            ok = r.shutdown(timeout_ms) and ok
        return self.editor.shutdown(timeout_ms) and ok
