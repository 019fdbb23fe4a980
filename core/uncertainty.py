"""What to correct next: how unsure the model is, per pixel, per region and per image.

Per pixel the uncertainty is the mean of two numbers in [0, 1]:

* the main head's entropy divided by ``log(K)`` (1 = every class equally likely);
* how much the main and the auxiliary head disagree: the total variation distance
  ``0.5 * sum_k |p_k - q_k|`` between their class probabilities (0 = the same distribution,
  1 = no class in common). PSPNet's aux head sees only layer3, so where it and the main head
  part ways the pyramid's context decided the pixel, and that is worth a look.

Without an auxiliary head the entropy alone is used. Pixels the user has labelled (mask != 255)
count as settled: they add nothing to an image's score and a region is only suggested where
most pixels have no label yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from core.labels import IGNORE

_ROWS = 128  # rows per block: bounds the (K, rows, W) temporaries


@dataclass(frozen=True)
class RegionScore:
    """A box ``(y0, y1, x0, x1)`` (half-open) with its mean uncertainty over unlabelled pixels."""

    region: tuple[int, int, int, int]
    score: float
    unlabelled: float  # share of the box's pixels without a label

    @property
    def centre(self) -> tuple[float, float]:
        y0, y1, x0, x1 = self.region
        return (y0 + y1) / 2, (x0 + x1) / 2


def uncertainty_map(probs: np.ndarray, aux_probs: np.ndarray | None = None, *,
                    entropy: np.ndarray | None = None) -> np.ndarray:
    """(H, W) float32 in [0, 1] from the main head's (K, H, W) probabilities and optionally the
    aux head's; ``entropy`` (H, W, nats) saves recomputing the main head's entropy."""
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise ValueError(f"probs must be (K, H, W), not {probs.shape}")
    k, h, w = probs.shape
    if aux_probs is not None and np.shape(aux_probs) != probs.shape:
        raise ValueError(f"aux_probs {np.shape(aux_probs)} does not match probs {probs.shape}")
    if entropy is not None and np.shape(entropy) != (h, w):
        raise ValueError(f"entropy {np.shape(entropy)} does not match the {h}x{w} probabilities")
    norm = np.float32(1.0 / math.log(k)) if k > 1 else np.float32(0.0)
    out = np.empty((h, w), np.float32)
    for y in range(0, h, _ROWS):
        p = probs[:, y:y + _ROWS].astype(np.float32, copy=False)
        if entropy is not None:
            ent = np.asarray(entropy[y:y + _ROWS], np.float32)
        else:
            ent = -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(0)
        ent = np.clip(ent * norm, 0.0, 1.0)
        if aux_probs is None:
            out[y:y + _ROWS] = ent
        else:
            q = aux_probs[:, y:y + _ROWS].astype(np.float32, copy=False)
            tv = np.clip(0.5 * np.abs(p - q).sum(0), 0.0, 1.0)
            out[y:y + _ROWS] = 0.5 * (ent + tv)
    return out


def _unlabelled(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"mask {mask.shape} does not match the {shape[0]}x{shape[1]} uncertainty map")
    return mask == IGNORE


def image_score(umap: np.ndarray, mask: np.ndarray | None = None) -> float:
    """An image's score: the mean uncertainty over all its pixels, labelled pixels counting 0
    (a fully labelled image scores 0; the more unsure unlabelled area, the higher)."""
    umap = np.asarray(umap, np.float32)
    if umap.size == 0:
        return 0.0
    free = _unlabelled(mask, umap.shape)
    total = float(umap.sum(dtype=np.float64)) if free is None else float(umap[free].sum(dtype=np.float64))
    return total / umap.size


def default_tile(shape: tuple[int, int]) -> int:
    """The side of the square regions :func:`uncertain_regions` scores: a sixth of the short side,
    at least 16 and at most 512 pixels."""
    return int(min(512, max(16, min(shape) // 6)))


def _block_sums(a: np.ndarray, tile: int) -> np.ndarray:
    h, w = a.shape
    ny, nx = -(-h // tile), -(-w // tile)
    padded = np.zeros((ny * tile, nx * tile), np.float64)
    padded[:h, :w] = a
    return padded.reshape(ny, tile, nx, tile).sum(axis=(1, 3))


def uncertain_regions(umap: np.ndarray, mask: np.ndarray | None = None, *, tile: int | None = None, k: int = 5,
                      min_unlabelled: float = 0.5) -> list[RegionScore]:
    """The ``k`` most uncertain square regions (a grid of ``tile`` pixels, clipped at the border)
    that are mostly unlabelled (at least ``min_unlabelled`` of their pixels), highest first."""
    umap = np.asarray(umap, np.float32)
    if umap.ndim != 2:
        raise ValueError(f"the uncertainty map must be (H, W), not {umap.shape}")
    h, w = umap.shape
    if h == 0 or w == 0 or k <= 0:
        return []
    tile = default_tile((h, w)) if tile is None else int(tile)
    if tile < 1:
        raise ValueError(f"tile must be >= 1, not {tile}")
    free = _unlabelled(mask, (h, w))
    free_f = np.ones((h, w), np.float32) if free is None else free.astype(np.float32)
    area = _block_sums(np.ones((h, w), np.float32), tile)
    free_n = _block_sums(free_f, tile)
    sums = _block_sums(umap * free_f, tile)
    share = free_n / area
    score = np.where(free_n > 0, sums / np.maximum(free_n, 1), 0.0)
    eligible = (share >= min_unlabelled) & (free_n > 0)
    order = np.argsort(-np.where(eligible, score, -1.0), axis=None, kind="stable")
    out: list[RegionScore] = []
    nx = score.shape[1]
    for flat in order[:k]:
        ty, tx = divmod(int(flat), nx)
        if not eligible[ty, tx]:
            break
        y0, x0 = ty * tile, tx * tile
        out.append(RegionScore((y0, min(h, y0 + tile), x0, min(w, x0 + tile)), float(score[ty, tx]),
                               float(share[ty, tx])))
    return out


def rank_images(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """``(name, score)`` highest first; images without a score (NaN) last, then by name."""
    def key(item: tuple[str, float]) -> tuple[int, float, str]:
        name, s = item
        bad = s is None or not math.isfinite(s)
        return (1 if bad else 0, 0.0 if bad else -float(s), name)

    return sorted(((n, float("nan") if s is None else float(s)) for n, s in scores.items()), key=key)
