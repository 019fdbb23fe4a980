"""What to correct next, as jobs: an image's uncertainty maps, score and most uncertain
unlabelled regions; every image of a list predicted and scored; and the project's queue of
regions that "next uncertain region" (N in the app) walks, most uncertain first, across images
(core.uncertainty's numbers; tests/benchmarks/label_efficiency.py measures what it saves).

:func:`score_images` predicts with a model of its own (the caller's copy: it runs beside the
model in use) and yields one :class:`ScoredImage` per image, with its score and regions, so a
list can show scores as they come.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generator, Generic, Hashable, Sequence, TypeVar

import numpy as np
import torch

from core.classes import ClassTable
from core.data.io import read_image, read_mask
from core.errors import StudioError
from core.generators import Cancel, Progress, check_cancel
from core.infer import Prediction
from core.inference.protocol import TestProtocol
from core.inference.sampling import resize_plane
from core.jobs.models import Predictors
from core.model import PSPNet
from core.uncertainty import (DEFAULT_RULE, RankingRule, RegionScore, UncertaintyMaps, image_score, rank_regions,
                              region_scores, uncertainty_maps)

REGIONS = 32  # regions kept per image for "next region"

K = TypeVar("K", bound=Hashable)


@dataclass
class ImageUncertainty:
    path: Path
    umap: np.ndarray  # (H, W) float32 in [0, 1]
    score: float
    maps: UncertaintyMaps | None = None  # the parts, for scoring regions again as labels are added
    regions: list[RegionScore] = field(default_factory=list)  # most uncertain first, with their reasons


@dataclass(kw_only=True)
class ScoredImage(Progress):
    """One image of :func:`score_images` done: its index in the caller's list, score and regions."""

    index: int
    score: float
    regions: list[RegionScore] = field(default_factory=list)


def _fitting(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    return mask if mask is not None and np.shape(mask) == tuple(shape) else None


def prediction_maps(prediction: Prediction) -> UncertaintyMaps:
    """The uncertainty maps of a prediction at the photo's size. They are computed from the
    working-resolution probabilities (what the protocol ran at: 512 x 384 for a 12-megapixel
    photo under semseg's ADE20K protocol, not 150 photo-sized planes), then resized bilinearly;
    the heads' disagreement is read from their photo-sized labels, which are exact."""
    size = prediction.size
    aux = prediction.work_aux_probs
    probs, entropy = prediction.work_probs, prediction.work_entropy
    if np.shape(entropy) != np.shape(probs)[1:]:  # the probabilities were kept on a coarser grid
        entropy = None
    work = uncertainty_maps(probs, aux, entropy=entropy)
    entropy = work.entropy if work.shape == size else resize_plane(work.entropy, size, dtype=np.float32)
    tv = disagree = None
    if work.tv is not None:
        tv = work.tv if work.shape == size else np.clip(resize_plane(work.tv, size, dtype=np.float32), 0.0, 1.0)
        aux_labels = prediction.aux_labels
        disagree = (prediction.labels != aux_labels) if aux_labels is not None else (
            work.disagree if work.shape == size else resize_plane(work.disagree.astype(np.float32), size) > 0.5)
    return UncertaintyMaps(entropy, tv, disagree, prediction.num_classes)


def assess(prediction: Prediction, mask: np.ndarray | None, *, path: str | Path = "", k: int | None = REGIONS,
           rule: RankingRule = DEFAULT_RULE) -> ImageUncertainty:
    """The uncertainty of one prediction: maps, image score and the ``k`` most uncertain mostly
    unlabelled regions under ``rule`` (labelled pixels of ``mask`` count as settled). The app's
    ranking and the label-efficiency benchmark both score images with this."""
    maps = prediction_maps(prediction)
    umap = maps.combined(rule.mix, rule.gated)
    mask = _fitting(mask, maps.shape)
    return ImageUncertainty(Path(path), umap, image_score(umap, mask), maps, region_scores(maps, mask, k=k, rule=rule))


def score_prediction(path: Path, prediction: Prediction, mask: np.ndarray | None, *,
                     cancel: Cancel = None) -> Generator[Progress, None, ImageUncertainty]:
    """The uncertainty maps of a prediction, its image score and regions (labelled pixels of ``mask`` count 0)."""
    yield Progress(fraction=0.0, message="scoring the uncertainty")
    return assess(prediction, mask, path=path)


def uncertain_regions_job(source: ImageUncertainty, mask: np.ndarray | None, k: int = REGIONS, *,
                          cancel: Cancel = None) -> Generator[Progress, None, list[RegionScore]]:
    """The ``k`` most uncertain, mostly unlabelled regions of a scored image under its labels
    now (``mask``), highest first, with their reasons."""
    yield Progress(fraction=0.0, message="finding uncertain regions")
    if source.maps is None:
        from core.uncertainty import uncertain_regions

        return uncertain_regions(source.umap, _fitting(mask, source.umap.shape), k=k)
    return region_scores(source.maps, _fitting(mask, source.maps.shape), k=k)


def score_images(model: PSPNet, device: str | torch.device, items: Sequence[tuple[int, Path, np.ndarray | Path | None]],
                 classes: ClassTable, *, protocol: TestProtocol | None = None,
                 cancel: Cancel = None) -> Generator[ScoredImage, None, dict[int, float]]:
    """Predict (under ``protocol``, default the model's own) and score each ``(index, image path,
    mask)`` (mask: an array, a mask file or None); yields a :class:`ScoredImage` (score and
    regions) as each one is done; returns {index: score}. An image that cannot be read is left
    out; a mask that cannot be read counts as no labels."""
    predictors = Predictors.on(model, device, protocol=protocol)
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
        found = assess(pred, mask, path=path)
        scores[index] = found.score
        yield ScoredImage(index=index, score=found.score, regions=found.regions,
                          fraction=(k + 1) / max(1, len(items)), message=f"ranked {Path(path).name}")
    return scores


def ranked_indices(scores: Sequence[float | None]) -> list[int]:
    """Indices of ``scores``, most uncertain first (unscored last, then by index)."""
    from core.uncertainty import rank_images

    return [int(i) for i, _ in rank_images({f"{i:08d}": s for i, s in enumerate(scores)})]


@dataclass(frozen=True)
class QueuedRegion(Generic[K]):
    """What :meth:`RegionQueue.next` hands out: the image, the region, and how many are left."""

    key: K
    region: RegionScore
    left: int  # regions in the queue not handed out yet, this one included
    images: int  # images those regions are in


class RegionQueue(Generic[K]):
    """The uncertain regions of a project's images, handed out most uncertain first across images
    (:func:`core.uncertainty.rank_regions`, the order the benchmark corrects in).

    Each image's regions are replaced when it is scored again (a new prediction, new labels);
    regions handed out are remembered until :meth:`restart`, so the queue walks on."""

    def __init__(self, rule: RankingRule = DEFAULT_RULE):
        self.rule = rule
        self._regions: dict[K, list[RegionScore]] = {}
        self._visited: set[tuple[K, tuple[int, int, int, int]]] = set()

    def set_regions(self, key: K, regions: Sequence[RegionScore]) -> None:
        self._regions[key] = list(regions)

    def forget(self, key: K) -> None:
        self._regions.pop(key, None)

    def clear(self) -> None:
        self._regions.clear()
        self._visited.clear()

    def restart(self) -> None:
        """Hand out the regions handed out already again (after the queue ran dry)."""
        self._visited.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._regions

    def keys(self) -> list[K]:
        return list(self._regions)

    def pending(self, usable: Callable[[K, RegionScore], bool] | None = None) -> list[tuple[K, RegionScore]]:
        """The queue as it stands: regions not handed out (and ``usable``), in order."""
        left = {key: [r for r in rs if (key, r.region) not in self._visited and (usable is None or usable(key, r))]
                for key, rs in self._regions.items()}
        taken: dict[K, int] = {}
        for key, _ in self._visited:  # the walk so far: the spread across images continues from it
            taken[key] = taken.get(key, 0) + 1
        return rank_regions(left, self.rule, taken=taken)

    @property
    def visited(self) -> int:
        return len(self._visited)

    def next(self, usable: Callable[[K, RegionScore], bool] | None = None) -> QueuedRegion[K] | None:
        """The most uncertain region not handed out yet (and ``usable``: e.g. still mostly
        unlabelled under the labels now), or None when there is none; it counts as handed out."""
        order = self.pending(usable)
        if not order:
            return None
        key, region = order[0]
        self._visited.add((key, region.region))
        return QueuedRegion(key, region, len(order), len({k for k, _ in order}))
