"""The background jobs of the window, as plain generator functions (no Qt).

Each takes a ``cancel`` callable (the worker passes it), yields progress (a float 0..1) and
returns its result. Everything that costs more than a few milliseconds on a full-size image is
done here, off the GUI thread: inference, the head-only re-run, the derived maps (aux labels,
disagreement, changed pixels, metrics, class shares) and the pyramid summaries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generator, Sequence

import numpy as np

import core

Cancel = Callable[[], bool]


def _check(cancel: Cancel) -> None:
    if cancel():
        raise core.Cancelled("cancelled")


# --- images ----------------------------------------------------------------------------------


@dataclass
class ImageData:
    path: Path
    image: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray | None = None  # (H, W) uint8 when the image has a readable mask
    mask_error: str | None = None  # why a mask file could not be used


def read_image_job(path: Path, mask_path: Path | None, classes: "core.ClassTable | None", *,
                   cancel: Cancel) -> Generator[float, None, ImageData]:
    yield 0.0
    image = core.read_image(path)
    data = ImageData(Path(path), image)
    if mask_path is not None and classes is not None:
        _check(cancel)
        try:
            data.mask = core.read_mask(mask_path, classes, shape=image.shape[:2])
        except core.StudioError as exc:  # a bad mask never blocks viewing the image
            data.mask_error = str(exc)
    return data


# --- models ----------------------------------------------------------------------------------


def load_model_job(paths: Sequence[Path], device: str, *, cancel: Cancel) -> Generator[float, None, Any]:
    yield 0.0
    sources = [str(p) for p in paths]
    return core.load_model(sources if len(sources) > 1 else sources[0], device=device)


def move_model_job(loaded: Any, device: str, *, cancel: Cancel) -> Generator[float, None, Any]:
    yield 0.0
    return core.Predictor.from_loaded(loaded, device=device)


# --- predictions -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """A prediction with everything the views derive from it."""

    path: Path | None
    prediction: Any  # core.Prediction
    base: Any  # the all-levels prediction it is compared with (itself when no level is off)
    aux_labels: np.ndarray | None
    disagreement: core.ChangeMap | None  # main vs aux head
    change: core.ChangeMap | None  # vs base, when levels are off
    shares: np.ndarray  # each class's share of the image
    metrics: dict[str, Any] = field(default_factory=dict)  # "main" / "aux" -> core.SegMetrics (with a mask)
    seconds: float = 0.0  # time the model took (forward or head re-run)
    mode: str = "full"  # "full" (backbone and heads) or "heads" (head-only re-run)

    @property
    def disabled_levels(self) -> tuple[int, ...]:
        return tuple(self.prediction.disabled_levels)


def derive(path: Path | None, pred: Any, base: Any, mask: np.ndarray | None, seconds: float,
           mode: str, aux_labels: np.ndarray | None = None) -> Outcome:
    """``aux_labels``: the auxiliary head's labels when known (a level switch does not change them)."""
    aux = aux_labels if aux_labels is not None else pred.aux_labels
    k = pred.num_classes
    disagreement = core.change_map(pred.labels, aux) if aux is not None else None
    change = core.change_map(base.labels, pred.labels) if base is not pred else None
    metrics = {}
    if mask is not None and mask.shape == pred.labels.shape:
        for name, labels in (("main", pred.labels), ("aux", aux)):
            if labels is not None:
                cm = core.ConfusionMatrix(k)
                cm.update(labels, mask)
                metrics[name] = cm.compute()
    return Outcome(path, pred, base, aux, disagreement, change, core.class_shares(pred.labels, k), metrics,
                   seconds, mode)


def predict_job(predictor: Any, image: np.ndarray, path: Path | None, mask: np.ndarray | None,
                internals: bool, *, cancel: Cancel) -> Generator[float, None, Outcome]:
    """Predict with every pyramid level on (the reference the level switches are compared with)."""
    t0 = time.perf_counter()
    base = yield from predictor.predict_steps(image, internals=internals, cancel=cancel)
    seconds = time.perf_counter() - t0
    _check(cancel)
    return derive(path, base, base, mask, seconds, "full")


def prepare_switch_job(switch: Any, *, cancel: Cancel) -> Generator[float, None, Any]:
    """Compute a LevelSwitch's cached per-level head convolutions ahead of the first switch."""
    yield 0.0
    switch.prepare()
    return switch


def rerun_job(switch: Any, base: Outcome, mask: np.ndarray | None, disabled_levels: Sequence[int], *,
              cancel: Cancel) -> Generator[float, None, Outcome]:
    """The head-only re-run from the cached features of ``base`` (no backbone, no aux head):
    ``switch`` is a ``core.LevelSwitch`` for ``base.prediction``."""
    yield 0.0
    t0 = time.perf_counter()
    pred = switch.rerun(disabled_levels) if disabled_levels else base.prediction
    seconds = time.perf_counter() - t0
    _check(cancel)
    return derive(base.path, pred, base.prediction, mask, seconds, "heads", aux_labels=base.aux_labels)


# --- the pyramid inspector's summaries ------------------------------------------------------------


@dataclass
class LevelSummary:
    bin: int
    enabled: bool
    pooled_pca: np.ndarray  # (b, b, 3) uint8, coloured in layer4's PCA basis (comparable across levels)
    reduced_pca: np.ndarray  # (b, b, 3) uint8
    upsampled_pca: np.ndarray  # (h, w, 3) uint8, in the reduced map's basis
    pooled_mean_abs: np.ndarray  # (b, b) float32
    reduced_mean_abs: np.ndarray
    upsampled_mean_abs: np.ndarray
    top_pooled: list[tuple[int, float]]
    top_reduced: list[tuple[int, float]]


@dataclass
class PyramidSummary:
    levels: list[LevelSummary]
    layer4_pca: np.ndarray  # (h, w, 3) uint8


def pyramid_summary_job(internals: Any, *, cancel: Cancel) -> Generator[float, None, PyramidSummary]:
    yield 0.0
    basis = core.fit_pca(internals.layer4, max_samples=4096)
    layer4_pca = core.pca_rgb(internals.layer4, basis)
    levels = []
    n = max(1, len(internals.levels))
    for i, lv in enumerate(internals.levels):
        _check(cancel)
        reduced_basis = core.fit_pca(lv.reduced)
        levels.append(LevelSummary(
            lv.bin, lv.enabled,
            core.pca_rgb(lv.pooled, basis), core.pca_rgb(lv.reduced, reduced_basis),
            core.pca_rgb(lv.upsampled, reduced_basis) if lv.enabled else np.zeros(lv.upsampled.shape[-2:] + (3,), np.uint8),
            core.mean_abs_activation(lv.pooled), core.mean_abs_activation(lv.reduced),
            core.mean_abs_activation(lv.upsampled),
            core.top_channels(lv.pooled, 5), core.top_channels(lv.reduced, 5)))
        yield (i + 1) / n
    return PyramidSummary(levels, layer4_pca)
