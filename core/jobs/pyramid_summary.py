"""The pyramid inspector's summaries: each level's pooled grid, reduced branch and upsampled
branch as PCA colours (in layer4's basis, comparable across levels) and mean |activation|."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generator

import numpy as np

from core.generators import Cancel, Progress, check_cancel
from core.inspect import fit_pca, mean_abs_activation, pca_rgb, top_channels
from core.model import Internals


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


def summarise_pyramid(internals: Internals, *, cancel: Cancel = None) -> Generator[Progress, None, PyramidSummary]:
    yield Progress(fraction=0.0, message="summarising the pyramid levels")
    basis = fit_pca(internals.layer4, max_samples=4096)
    layer4_pca = pca_rgb(internals.layer4, basis)
    levels = []
    n = max(1, len(internals.levels))
    for i, lv in enumerate(internals.levels):
        check_cancel(cancel, "summary cancelled")
        reduced_basis = fit_pca(lv.reduced)
        upsampled = (pca_rgb(lv.upsampled, reduced_basis) if lv.enabled
                     else np.zeros(lv.upsampled.shape[-2:] + (3,), np.uint8))
        levels.append(LevelSummary(lv.bin, lv.enabled, pca_rgb(lv.pooled, basis), pca_rgb(lv.reduced, reduced_basis),
                                   upsampled, mean_abs_activation(lv.pooled), mean_abs_activation(lv.reduced),
                                   mean_abs_activation(lv.upsampled), top_channels(lv.pooled, 5),
                                   top_channels(lv.reduced, 5)))
        yield Progress(fraction=(i + 1) / n)
    return PyramidSummary(levels, layer4_pca)
