"""What to correct next, as jobs: an image's uncertainty map and score, its most uncertain
unlabelled regions, and every image of a list predicted and scored (core.uncertainty's numbers).

:func:`score_images` predicts with a model of its own (the caller's copy: it runs beside the
model in use) and yields one :class:`ScoredImage` per image, so a list can show scores as
they come.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Generator, Sequence

import numpy as np
import torch

from core.classes import ClassTable
from core.data.io import read_image, read_mask
from core.errors import StudioError
from core.generators import Cancel, Progress, check_cancel
from core.infer import Prediction
from core.jobs.models import Predictors
from core.model import PSPNet
from core.uncertainty import RegionScore, image_score, uncertain_regions, uncertainty_map

REGIONS = 32  # regions kept per image for "next region"


@dataclass
class ImageUncertainty:
    path: Path
    umap: np.ndarray  # (H, W) float32 in [0, 1]
    score: float


@dataclass(kw_only=True)
class ScoredImage(Progress):
    """One image of :func:`score_images` done: its index in the caller's list and its score."""

    index: int
    score: float


def _fitting(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    return mask if mask is not None and np.shape(mask) == tuple(shape) else None


def score_prediction(path: Path, prediction: Prediction, mask: np.ndarray | None, *,
                     cancel: Cancel = None) -> Generator[Progress, None, ImageUncertainty]:
    """The uncertainty map of a prediction and its image score (labelled pixels of ``mask`` count 0)."""
    yield Progress(fraction=0.0, message="scoring the uncertainty")
    umap = uncertainty_map(prediction.probs, prediction.aux_probs, entropy=prediction.entropy)
    return ImageUncertainty(Path(path), umap, image_score(umap, _fitting(mask, umap.shape)))


def uncertain_regions_job(umap: np.ndarray, mask: np.ndarray | None, k: int = REGIONS, *,
                          cancel: Cancel = None) -> Generator[Progress, None, list[RegionScore]]:
    """The ``k`` most uncertain, mostly unlabelled regions of an uncertainty map, highest first."""
    yield Progress(fraction=0.0, message="finding uncertain regions")
    return uncertain_regions(umap, _fitting(mask, umap.shape), k=k)


def score_images(model: PSPNet, device: str | torch.device, items: Sequence[tuple[int, Path, np.ndarray | Path | None]],
                 classes: ClassTable, *, cancel: Cancel = None) -> Generator[ScoredImage, None, dict[int, float]]:
    """Predict and score each ``(index, image path, mask)`` (mask: an array, a mask file or None);
    yields a :class:`ScoredImage` as each one is done; returns {index: score}. An image that
    cannot be read is left out; a mask that cannot be read counts as no labels."""
    predictors = Predictors.on(model, device)
    scores: dict[int, float] = {}
    for k, (index, path, mask) in enumerate(items):
        check_cancel(cancel, "ranking cancelled")
        try:
            image = read_image(path)
        except StudioError:
            continue
        if isinstance(mask, (str, Path)):
            try:
                mask = read_mask(mask, classes, shape=image.shape[:2])
            except StudioError:
                mask = None
        pred = predictors.for_image(image.shape).predict(image)
        umap = uncertainty_map(pred.probs, pred.aux_probs, entropy=pred.entropy)
        scores[index] = image_score(umap, _fitting(mask, umap.shape))
        yield ScoredImage(index=index, score=scores[index], fraction=(k + 1) / max(1, len(items)))
    return scores


def ranked_indices(scores: Sequence[float | None]) -> list[int]:
    """Indices of ``scores``, most uncertain first (unscored last, then by index)."""
    from core.uncertainty import rank_images

    return [int(i) for i, _ in rank_images({f"{i:08d}": s for i, s in enumerate(scores)})]
