"""What to correct next: each image's uncertainty score, and the next uncertain unlabelled region
across the whole project.

The numbers come from core (``core.score_prediction``, ``core.score_images``: main-head entropy
and main/aux disagreement; labelled pixels count as settled) and so does the order regions are
handed out in (``core.RegionQueue``: the same ranking tests/benchmarks/label_efficiency.py
measures). The shown image is scored whenever its prediction arrives; "Rank Images" (also
started by "Next Region" and by "Sort by uncertainty" when no ranking exists) predicts and
scores every image of the list in the background, on a copy of the model, the list showing
scores as they come. After the model changes (a retrain) a ranking that was asked for runs
again, in the background. "Next Region" hands out the most uncertain unlabelled region left in
the project: in the shown image, or in another image, which it opens; the window outlines the
region and says why it was chosen.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

import core
from app.controllers.mask_editing import MaskEditor
from app.workers import Chain, Task

if TYPE_CHECKING:  # pragma: no cover
    from app.controllers.controller import Controller, ShownImage

MIN_UNLABELLED = 0.5  # a region is handed out while at least this share of it has no label


def _key(path: Path | str) -> Path:
    return Path(path).resolve()


class Ranker(QObject):
    regionRequested = Signal(object)  # core.RegionScore of the shown image: outline it and zoom to it
    rankingStarted = Signal(int)  # images to score
    rankingProgress = Signal(int, int)  # done, total
    rankingFinished = Signal()  # done, cancelled or failed
    message = Signal(str)

    def __init__(self, controller: "Controller", editor: MaskEditor, parent: QObject | None = None):
        super().__init__(parent or controller)
        self.controller = controller
        self.editor = editor
        self.current: core.ImageUncertainty | None = None  # the shown image's maps and regions
        self.queue: core.RegionQueue[Path] = core.RegionQueue()
        self.shown_region: core.RegionScore | None = None  # the last region handed out in the shown image
        self.rank_task: Chain | None = None
        self.ranked = False  # every image of the folder was scored with the model in use
        self.wanted = False  # a ranking was asked for in this folder: it is redone when the model changes
        self._pending: tuple[Path, core.RegionScore, str] | None = None  # a region in the image being opened
        self._region_task: Task | None = None
        self._say_again: tuple[Path, str] | None = None
        self._next_when_ranked = False  # N found nothing while the ranking ran: hand out its first region then  # said before the image's prediction: say it after it too
        controller.outcomeReady.connect(self._outcome)
        controller.imageChanged.connect(self._image_changed)
        controller.modelChanged.connect(self._model_changed)
        controller.folderChanged.connect(self._folder_changed)
        retrainer = getattr(controller, "retrainer", None)
        if retrainer is not None:  # a ranking must not hold up a retrain (they share the background runner)
            retrainer.started.connect(lambda _: self.cancel_ranking())
            retrainer.cancelled.connect(self._resume)  # no new model: finish the ranking with this one
            retrainer.failed.connect(lambda _: self._resume())

    # ---- state -----------------------------------------------------------------------------------
    @property
    def ranking(self) -> bool:
        """A ranking is under way."""
        return self.rank_task is not None and not self.rank_task.is_finished

    def _resume(self) -> None:
        if self.wanted and not self.ranked and not self.ranking:
            QTimer.singleShot(0, lambda: self.wanted and not self.ranked and not self.ranking and self.rank_all())

    def _folder_changed(self, _folder) -> None:
        self._next_when_ranked = False
        self.cancel_ranking()
        self.queue.clear()
        self.ranked = self.wanted = False
        self._pending = None

    def _image_changed(self, shown: "ShownImage") -> None:
        key = _key(shown.path)
        old = self.current
        if old is not None and _key(old.path) != key:
            self._rescore_regions(old)  # its labels may have changed while it was shown
        if old is None or _key(old.path) != key:
            self.current = None
            self.shown_region = None
        pending = self._pending
        if pending is not None and pending[0] == key:
            self._pending = None
            # after every handler of this image change (the views fit the new photo first)
            QTimer.singleShot(0, lambda: self._hand_out(key, pending[1], pending[2]))

    def _model_changed(self, _: core.LoadedModel) -> None:
        self.cancel_ranking()
        self.current = None
        self.shown_region = None
        self.queue.clear()
        self.ranked = False
        if self.controller.folder is not None:
            self.controller.folder.clear_scores()
        if self.wanted:  # the scores were of the old model: rank again, in the background
            self.rank_all(refresh=True)

    def _mask_now(self, path: Path) -> np.ndarray | None:
        """The labels of image ``path`` as they are now (the edited mask, else the one read from disk)."""
        ed = self.editor
        name = ed.name_of(path)
        if name is not None and ed.mask is not None and name == ed.name:
            return ed.mask.snapshot()[0]
        if name is not None and name in ed.masks:
            return ed.masks[name].snapshot()[0]
        shown = self.controller.image
        return shown.data.mask if shown is not None and _key(shown.path) == _key(path) else None

    def _usable(self, key: Path, region: core.RegionScore) -> bool:
        """Whether ``region`` of image ``key`` is still mostly unlabelled under the labels now."""
        ed = self.editor
        name = ed.name_of(key)
        mask = None
        if name is not None and ed.mask is not None and name == ed.name:
            mask = ed.mask.data
        elif name is not None and name in ed.masks:
            mask = ed.masks[name].data
        if mask is None:
            return True
        y0, y1, x0, x1 = region.region
        box = mask[y0:y1, x0:x1]
        return box.size > 0 and float((box == core.IGNORE).mean()) >= MIN_UNLABELLED

    # ---- the shown image -------------------------------------------------------------------------
    def _outcome(self, outcome: core.Outcome) -> None:
        """Score the shown image (its all-levels prediction) in the background."""
        if outcome.path is None or outcome.base is not outcome.prediction or outcome.prediction.is_preview:
            return  # a level switch, or a first look: the whole prediction is scored when it comes
        again = self._say_again
        if again is not None and again[0] == _key(outcome.path):
            self._say_again = None
            self.message.emit(again[1])  # "Predicted ..." came just before: the reason stays in view
        task = self.controller.io.submit("uncertainty", core.score_prediction, outcome.path, outcome.prediction,
                                         self._mask_now(outcome.path))
        task.succeeded.connect(self._scored_current)

    def _scored_current(self, result: core.ImageUncertainty) -> None:
        shown = self.controller.image
        if shown is not None and _key(shown.path) == _key(result.path):
            self.current = result
            self.queue.set_regions(_key(result.path), result.regions)
        folder = self.controller.folder
        i = folder.index_of(result.path) if folder is not None else -1
        if i >= 0:
            folder.set_score(i, result.score)

    def _rescore_regions(self, source: core.ImageUncertainty) -> Task:
        """The regions of ``source`` under its labels now, into the queue (a job on the io runner)."""
        task = self.controller.io.submit("uncertain regions", core.uncertain_regions_job, source,
                                         self._mask_now(source.path))
        key = _key(source.path)
        task.succeeded.connect(lambda regions: key in self.queue and self.queue.set_regions(key, regions))
        return task

    # ---- next region -----------------------------------------------------------------------------
    def next_region(self) -> Task | None:
        """Hand out the most uncertain unlabelled region left in the project (N). Starts a
        ranking of the project's images first when there is none."""
        c = self.controller
        if c.loaded is None:
            self.message.emit("Next uncertain region needs a model: open one with Model > Open Model (Ctrl+M)")
            return None
        folder = c.folder
        if folder is not None and len(folder) > 1 and not self.ranked and not self.ranking:
            self.rank_all()
        if self.current is None:
            self._advance()
            return None
        task = self._rescore_regions(self.current)  # the shown image's labels change as it is painted
        self._region_task = task
        task.succeeded.connect(lambda _: task is self._region_task and self._advance())
        return task

    def _advance(self) -> None:
        again = ""
        item = self.queue.next(self._usable)
        if item is None and self.queue.visited:
            self.queue.restart()  # every region was handed out once: start over with the most uncertain
            item = self.queue.next(self._usable)
            again = "; every region was shown once, starting again"
        if item is None:
            self._next_when_ranked = self.ranking
            self.message.emit(self._nothing_left())
            return
        self._next_when_ranked = False
        shown = self.controller.image
        scope = "in the images scored so far (ranking the others)" if self.ranking else "in the project"
        why = (f"the most uncertain unlabelled region left {scope} ({item.left} in {item.images} "
               f"image{'s' if item.images != 1 else ''})")
        if shown is not None and _key(shown.path) == item.key:
            self._hand_out(item.key, item.region, f"{why}, in {item.key.name}{again}")
            return
        where = f"opened {item.key.name}"
        if shown is not None:
            rest = [r for k, r in self.queue.pending(self._usable) if k == _key(shown.path)]
            where += (f" ({shown.path.name} has no unlabelled uncertain region left)" if not rest else
                      f" (more uncertain than any region left in {shown.path.name})")
        self._pending = (item.key, item.region, f"{why}; {where}{again}")
        self.message.emit(f"Opening {item.key.name} for the most uncertain region left ...")
        self.controller.open_image(item.key)

    def _hand_out(self, key: Path, region: core.RegionScore, why: str) -> None:
        shown = self.controller.image
        if shown is None or _key(shown.path) != key:
            return
        self.shown_region = region
        self.regionRequested.emit(region)
        reason = region.reason()
        text = f"{reason[:1].upper()}{reason[1:]}: {why}"  # the reason first: a long status line is cut at its end
        out = self.controller.outcome
        predicted = out is not None and out.path is not None and _key(out.path) == key
        self._say_again = None if predicted else (key, text)
        self.message.emit(text)

    def _nothing_left(self) -> str:
        folder = self.controller.folder
        n = len(folder) if folder is not None else 1
        if self.ranking:
            return ("No unlabelled uncertain region known yet: ranking the project's images (see the image list); "
                    "the most uncertain region follows when they are scored")
        if self.current is None and not self.queue.keys():
            return "No uncertainty map yet: wait for the prediction of this image"
        if n > 1 and not self.ranked:
            return "No unlabelled uncertain region left in the images scored so far: rank the images (Ctrl+U)"
        return ("No unlabelled uncertain region left in this image" if n <= 1 else
                f"No unlabelled uncertain region left in the project's {n} images")

    # ---- rank every image ------------------------------------------------------------------------
    def ensure_ranked(self) -> Chain | None:
        """Start a ranking unless one has been done (or is under way) with the model in use."""
        if self.ranked or self.ranking:
            self.wanted = True
            return self.rank_task if self.ranking else None
        return self.rank_all()

    def cancel_ranking(self) -> None:
        if self.ranking:
            self.rank_task.cancel()

    def rank_all(self, refresh: bool = False) -> Chain | None:
        c = self.controller
        folder = c.folder
        if c.loaded is None or folder is None or not len(folder):
            self.message.emit("Ranking needs a model and a folder or project of images")
            return None
        if self.ranking:
            return self.rank_task
        self.wanted = True
        items: list[tuple[int, Path, np.ndarray | Path | None]] = []
        for i, e in enumerate(folder.entries):
            name = self.editor.name_of(e.path)
            mask: np.ndarray | Path | None = None
            if name is not None and name in self.editor.masks:
                mask = self.editor.masks[name].snapshot()[0]
            elif e.mask_path is not None:
                mask = e.mask_path
            items.append((i, e.path, mask))
        classes = folder.classes or c.loaded.classes
        n = len(items)
        done = [0]
        # a copy of the model, made where the model lives, ranks beside the predictions of the shown image
        chain = Chain("rank images", [lambda _: c.models.copy(),
                                      lambda copy: c.background.submit("rank images", core.score_images, copy.model,
                                                                       c.device, items, classes,
                                                                       protocol=c.protocol)])
        self.rank_task = chain

        def progress(rec: core.Progress) -> None:
            if isinstance(rec, core.ScoredImage) and c.folder is folder and chain is self.rank_task:
                folder.set_score(rec.index, rec.score)
                key = _key(folder.entries[rec.index].path)
                shown = c.image
                if self.current is None or shown is None or _key(shown.path) != key:
                    self.queue.set_regions(key, rec.regions)  # the shown image's own scoring is fresher
                done[0] += 1
                self.rankingProgress.emit(done[0], n)

        def succeeded(_: object) -> None:
            if chain is self.rank_task:
                self.ranked = True
                self.message.emit(f"Ranked {n} images by uncertainty" + (" with the new model" if refresh else ""))
                if self._next_when_ranked:
                    self._next_when_ranked = False
                    self._advance()

        def finished() -> None:
            if c.folder is folder:
                folder.scores_done()
            self.rankingFinished.emit()

        chain.progress.connect(progress)
        chain.succeeded.connect(succeeded)
        chain.failed.connect(lambda exc: self.message.emit(f"Ranking failed: {exc}"))
        chain.done.connect(finished)
        self.rankingStarted.emit(n)
        self.rankingProgress.emit(0, n)
        chain.start()
        return chain

    def ranked_order(self) -> list[int]:
        """Folder indices, most uncertain first (unscored last)."""
        return self.controller.folder.ranked() if self.controller.folder is not None else []
