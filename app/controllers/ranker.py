"""What to correct next: each image's uncertainty score, and the next uncertain unlabelled region.

The numbers come from core (``core.score_prediction``, ``core.score_images``: main-head entropy
and main/aux disagreement; labelled pixels count as settled). The shown image is scored
whenever its prediction arrives; "Rank Images" predicts and scores every image of the list in
the background, on a copy of the model (the list shows the scores as they come); "Next Region"
zooms to the most uncertain region of the shown image that has no label yet, then the next one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal

import core
from app.controllers.mask_editing import MaskEditor
from app.workers import Chain, Task

if TYPE_CHECKING:  # pragma: no cover
    from app.controllers.controller import Controller, ShownImage


class Ranker(QObject):
    regionRequested = Signal(object)  # core.RegionScore to zoom to
    rankingStarted = Signal(int)  # images to score
    rankingProgress = Signal(int, int)  # done, total
    rankingFinished = Signal()
    message = Signal(str)

    def __init__(self, controller: "Controller", editor: MaskEditor, parent: QObject | None = None):
        super().__init__(parent or controller)
        self.controller = controller
        self.editor = editor
        self.current: core.ImageUncertainty | None = None
        self.visited: set[tuple[int, int, int, int]] = set()
        self.rank_task: Chain | None = None
        self._region_task: Task | None = None
        controller.outcomeReady.connect(self._outcome)
        controller.imageChanged.connect(self._image_changed)
        controller.modelChanged.connect(self._model_changed)

    def _image_changed(self, shown: "ShownImage") -> None:
        if self.current is None or self.current.path != shown.path:
            self.current = None
            self.visited.clear()

    def _model_changed(self, _: core.LoadedModel) -> None:
        self.current = None
        self.visited.clear()
        if self.controller.folder is not None:
            self.controller.folder.clear_scores()

    def _mask_now(self, path: Path) -> np.ndarray | None:
        """The labels of image ``path`` as they are now (the edited mask, else the one read from disk)."""
        ed = self.editor
        if ed.mask is not None and ed.name is not None and ed.name_of(path) == ed.name:
            return ed.mask.snapshot()[0]
        shown = self.controller.image
        return shown.data.mask if shown is not None and shown.path == Path(path) else None

    def _outcome(self, outcome: core.Outcome) -> None:
        """Score the shown image (its all-levels prediction) in the background."""
        if outcome.path is None or outcome.base is not outcome.prediction:
            return
        task = self.controller.io.submit("uncertainty", core.score_prediction, outcome.path, outcome.prediction,
                                         self._mask_now(outcome.path))
        task.succeeded.connect(self._scored_current)

    def _scored_current(self, result: core.ImageUncertainty) -> None:
        shown = self.controller.image
        if shown is not None and shown.path == result.path:
            self.current = result
        folder = self.controller.folder
        i = folder.index_of(result.path) if folder is not None else -1
        if i >= 0:
            folder.set_score(i, result.score)

    # ---- next region -----------------------------------------------------------------------------
    def next_region(self) -> Task | None:
        if self.current is None:
            self.message.emit("No uncertainty map yet: wait for the prediction of this image")
            return None
        current = self.current
        task = self.controller.io.submit("uncertain regions", core.uncertain_regions_job, current.umap,
                                         self._mask_now(current.path))
        self._region_task = task
        task.succeeded.connect(lambda regions: self._regions(current, regions))
        return task

    def _regions(self, source: core.ImageUncertainty, regions: list[core.RegionScore]) -> None:
        if self.current is not source:
            return
        for r in regions:
            if r.region not in self.visited:
                self.visited.add(r.region)
                self.regionRequested.emit(r)
                y0, y1, x0, x1 = r.region
                self.message.emit(f"Uncertain region {x1 - x0}x{y1 - y0} at x {x0}, y {y0}: "
                                  f"uncertainty {r.score:.2f}, {100 * r.unlabelled:.0f} % unlabelled")
                return
        if regions and self.visited:
            self.visited.clear()  # every one was shown: start over with the most uncertain
            return self._regions(source, regions)
        self.message.emit("No unlabelled uncertain region left in this image")

    # ---- rank every image ------------------------------------------------------------------------
    def rank_all(self) -> Chain | None:
        c = self.controller
        folder = c.folder
        if c.loaded is None or folder is None or not len(folder):
            self.message.emit("Ranking needs a model and a folder or project of images")
            return None
        if self.rank_task is not None and not self.rank_task.is_finished:
            return self.rank_task
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
                                                                       c.device, items, classes)])
        self.rank_task = chain

        def progress(rec: core.Progress) -> None:
            if isinstance(rec, core.ScoredImage) and c.folder is folder:
                folder.set_score(rec.index, rec.score)
                done[0] += 1
                self.rankingProgress.emit(done[0], n)

        def finished() -> None:
            if c.folder is folder:
                folder.scores_done()
            self.rankingFinished.emit()

        chain.progress.connect(progress)
        chain.succeeded.connect(lambda _: self.message.emit(f"Ranked {n} images by uncertainty"))
        chain.failed.connect(lambda exc: self.message.emit(f"Ranking failed: {exc}"))
        chain.done.connect(finished)
        self.rankingStarted.emit(n)
        chain.start()
        return chain

    def ranked(self) -> list[int]:
        """Folder indices, most uncertain first (unscored last)."""
        return self.controller.folder.ranked() if self.controller.folder is not None else []
