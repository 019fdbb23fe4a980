"""What to correct next: each image's uncertainty score, and the next uncertain unlabelled region.

The numbers come from ``core.uncertainty`` (main-head entropy and main/aux disagreement;
labelled pixels count as settled). The shown image is scored whenever its prediction arrives;
"Rank Images" predicts and scores every image of the list in the background (the list shows
the scores as they come); "Next Region" zooms to the most uncertain region of the shown image
that has no label yet, then the next one, and so on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator

import numpy as np
from PySide6.QtCore import QObject, Signal

import core
from app.workers import Task

REGIONS = 32  # regions kept per image for "next region"
SINGLE_PASS_PIXELS = 2048 * 1536


@dataclass
class ImageUncertainty:
    path: Path
    umap: np.ndarray  # (H, W) float32 in [0, 1]
    score: float


def score_job(path: Path, prediction: Any, mask: np.ndarray | None, *, cancel: Any
              ) -> Generator[float, None, ImageUncertainty]:
    yield 0.0
    umap = core.uncertainty_map(prediction.probs, prediction.aux_probs, entropy=prediction.entropy)
    if mask is not None and mask.shape != umap.shape:
        mask = None
    return ImageUncertainty(Path(path), umap, core.image_score(umap, mask))


def regions_job(umap: np.ndarray, mask: np.ndarray | None, *, cancel: Any) -> Generator[float, None, list]:
    yield 0.0
    if mask is not None and mask.shape != umap.shape:
        mask = None
    return core.uncertain_regions(umap, mask, k=REGIONS)


def rank_job(model: Any, device: Any, items: list[tuple[int, Path, Any]], classes: Any, *,
             cancel: Any) -> Generator[tuple[int, float], None, dict[int, float]]:
    """Predict and score each ``(index, image path, mask)`` (mask: an array, a mask file path or
    None); yields ``(index, score)`` as each one is done."""
    single = core.Predictor(model, device=device)
    windows = core.Predictor(model, device=device, crop=1024)
    scores: dict[int, float] = {}
    for index, path, mask in items:
        if cancel():
            raise core.Cancelled("ranking cancelled")
        try:
            image = core.read_image(path)
        except core.StudioError:
            continue
        if isinstance(mask, (str, Path)):
            try:
                mask = core.read_mask(mask, classes, shape=image.shape[:2])
            except core.StudioError:
                mask = None
        pred = (single if image.shape[0] * image.shape[1] <= SINGLE_PASS_PIXELS else windows).predict(image)
        umap = core.uncertainty_map(pred.probs, pred.aux_probs, entropy=pred.entropy)
        score = core.image_score(umap, mask if mask is not None and np.shape(mask) == umap.shape else None)
        scores[index] = score
        yield index, score
    return scores


class Ranker(QObject):
    scored = Signal(int)  # an entry's score changed (index in the folder)
    regionRequested = Signal(object)  # core.RegionScore to zoom to
    rankingStarted = Signal(int)  # images to score
    rankingProgress = Signal(int, int)  # done, total
    rankingFinished = Signal()
    message = Signal(str)

    def __init__(self, controller: Any, editor: Any, parent: QObject | None = None):
        super().__init__(parent or controller)
        self.controller = controller
        self.editor = editor
        self.current: ImageUncertainty | None = None
        self.visited: set[tuple[int, int, int, int]] = set()
        self.rank_task: Task | None = None
        self._region_task: Task | None = None
        controller.outcomeReady.connect(self._outcome)
        controller.imageChanged.connect(self._image_changed)
        controller.modelChanged.connect(self._model_changed)

    def _image_changed(self, data: Any) -> None:
        if self.current is None or self.current.path != data.path:
            self.current = None
            self.visited.clear()

    def _model_changed(self, _: Any) -> None:
        folder = self.controller.folder
        self.current = None
        self.visited.clear()
        if folder is not None:
            for i, e in enumerate(folder.entries):
                if e.score is not None:
                    e.score = None
                    self.scored.emit(i)

    def _mask_now(self, path: Path) -> np.ndarray | None:
        """The labels of image ``path`` as they are now (the edited mask, else the one read from disk)."""
        ed = self.editor
        if ed.mask is not None and ed.name is not None and ed.name_of(path) == ed.name:
            return ed.mask.snapshot()[0]
        data = self.controller.image
        return data.mask if data is not None and data.path == Path(path) else None

    def _outcome(self, outcome: Any) -> None:
        """Score the shown image (its all-levels prediction) in the background."""
        if outcome.path is None or outcome.base is not outcome.prediction:
            return
        pred = outcome.prediction
        task = self.controller.io.submit("uncertainty", score_job, outcome.path, pred, self._mask_now(outcome.path))
        task.succeeded.connect(self._scored_current)

    def _scored_current(self, result: ImageUncertainty) -> None:
        data = self.controller.image
        if data is not None and data.path == result.path:
            self.current = result
        self._set_score(result.path, result.score)

    def _set_score(self, path: Path, score: float) -> None:
        folder = self.controller.folder
        if folder is None:
            return
        i = folder.index_of(path)
        if i >= 0:
            folder.entries[i].score = float(score)
            self.scored.emit(i)

    # ---- next region -----------------------------------------------------------------------------
    def next_region(self) -> Task | None:
        if self.current is None:
            self.message.emit("No uncertainty map yet: wait for the prediction of this image")
            return None
        current = self.current
        task = self.controller.io.submit("uncertain regions", regions_job, current.umap,
                                          self._mask_now(current.path))
        self._region_task = task
        task.succeeded.connect(lambda regions: self._regions(current, regions))
        return task

    def _regions(self, source: ImageUncertainty, regions: list) -> None:
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
    def rank_all(self) -> Task | None:
        c = self.controller
        if c.loaded is None or c.folder is None or not c.folder.entries:
            self.message.emit("Ranking needs a model and a folder or project of images")
            return None
        if self.rank_task is not None and not self.rank_task.is_finished:
            return self.rank_task
        items = []
        for i, e in enumerate(c.folder.entries):
            name = self.editor.name_of(e.path)
            mask: Any = None
            if name is not None and name in self.editor.masks:
                mask = self.editor.masks[name].snapshot()[0]
            elif e.mask_path is not None:
                mask = e.mask_path
            items.append((i, e.path, mask))
        classes = c.folder.classes or c.loaded.classes
        task = c.background.submit("rank images", rank_job, c.loaded.model, c.device, items, classes)
        self.rank_task = task
        n = len(items)
        done = [0]

        def progress(value: Any) -> None:
            index, score = value
            c.folder.entries[index].score = float(score)
            self.scored.emit(index)
            done[0] += 1
            self.rankingProgress.emit(done[0], n)

        task.progress.connect(progress)
        task.succeeded.connect(lambda _: (self.rankingFinished.emit(),
                                          self.message.emit(f"Ranked {n} images by uncertainty")))
        task.failed.connect(lambda exc: (self.rankingFinished.emit(), self.message.emit(f"Ranking failed: {exc}")))
        task.cancelled.connect(self.rankingFinished)
        self.rankingStarted.emit(n)
        return task

    def ranked(self) -> list[int]:
        """Folder indices, most uncertain first (unscored last)."""
        folder = self.controller.folder
        if folder is None:
            return []
        scores = {f"{i:08d}": e.score for i, e in enumerate(folder.entries)}
        return [int(i) for i, _ in core.rank_images(scores)]
