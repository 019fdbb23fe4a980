"""What to correct next: how unsure the model is, per pixel, per region and per image.

Per pixel the uncertainty is built from two numbers in [0, 1]:

* the main head's entropy divided by ``log(K)`` (1 = every class equally likely);
* how much the main and the auxiliary head disagree: the total variation distance
  ``0.5 * sum_k |p_k - q_k|`` between their class probabilities (0 = the same distribution,
  1 = no class in common). PSPNet's aux head sees only layer3, so where it and the main head
  part ways the pyramid's context decided the pixel.

The app's rule (:data:`DEFAULT_RULE`) is *gated*: ``entropy * (0.5 + 0.5 * tv)``, the entropy
raised by up to half again where the heads disagree. Disagreement alone misleads: the aux head
cannot see context, so it keeps disagreeing wherever context decides the class, also once the
main head is right there (tests/benchmarks/label_efficiency.py measured each choice; README,
"Does 'what to correct next' save work?"). Without an auxiliary head the entropy alone is used.
Pixels the user has labelled (mask != 255) count as settled: they add nothing to an image's
score and a region is only suggested where most pixels have no label yet.

Regions are the cells of an even grid whose cells are about ``tile`` pixels on a side
(:func:`default_tile`: an eighth of the image's short side). :func:`region_scores` scores them
and says why each is uncertain (:meth:`RegionScore.reason`); :func:`rank_regions` orders the
regions of many images into the one queue "next uncertain region" walks (and the benchmark
corrects in), spread across images: an image's k-th region counts ``0.8 ** k`` of its score.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, replace
from typing import Hashable, Mapping, Sequence, TypeVar

import numpy as np

from core.labels import IGNORE

_ROWS = 128  # rows per block: bounds the (K, rows, W) temporaries

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class RankingRule:
    """How pixel uncertainty becomes a ranking of regions (the app uses :data:`DEFAULT_RULE`;
    the label-efficiency benchmark's ``--rule`` tries others).

    ``mix``: the weight of main/aux disagreement against normalised entropy (0 = entropy only,
    1 = disagreement only). ``gated``: disagreement counts only as far as the main head is
    unsure (``entropy * ((1 - mix) + mix * tv)``) instead of being added to the entropy.
    ``tile_fraction``: the regions' side as a share of the image's short side (clamped to
    16..512 pixels). ``image_decay``: diversity across images; the k-th region taken from one
    image counts ``image_decay ** k`` of its score when the regions of many images are ordered
    (1 = pure score order)."""

    mix: float = 0.5
    tile_fraction: float = 1 / 8
    image_decay: float = 0.8
    gated: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"mix must be in [0, 1], not {self.mix}")
        if not 0.0 < self.tile_fraction <= 1.0:
            raise ValueError(f"tile_fraction must be in (0, 1], not {self.tile_fraction}")
        if not 0.0 < self.image_decay <= 1.0:
            raise ValueError(f"image_decay must be in (0, 1], not {self.image_decay}")


DEFAULT_RULE = RankingRule()


@dataclass(frozen=True)
class RegionScore:
    """A box ``(y0, y1, x0, x1)`` (half-open) with its mean uncertainty over unlabelled pixels.

    ``entropy`` (mean main-head entropy in nats) and ``disagreement`` (the share of pixels whose
    most likely class differs between the main and the aux head), both over the unlabelled
    pixels, say why; NaN where not known (no aux head: disagreement)."""

    region: tuple[int, int, int, int]
    score: float
    unlabelled: float  # share of the box's pixels without a label
    entropy: float = math.nan
    disagreement: float = math.nan

    @property
    def centre(self) -> tuple[float, float]:
        y0, y1, x0, x1 = self.region
        return (y0 + y1) / 2, (x0 + x1) / 2

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        y0, y1, x0, x1 = self.region
        return x1 - x0, y1 - y0

    @property
    def area(self) -> int:
        w, h = self.size
        return w * h

    def reason(self) -> str:
        """Why this region is uncertain, in words: "main and aux heads disagree on 62 % of this
        40x40 region; mean entropy 1.30 nats"."""
        w, h = self.size
        parts = []
        if not math.isnan(self.disagreement):
            parts.append(f"main and aux heads disagree on {100 * self.disagreement:.0f} % of this {w}x{h} region")
        if not math.isnan(self.entropy):
            parts.append(f"mean entropy {self.entropy:.2f} nats" + ("" if parts else f" in this {w}x{h} region"))
        return "; ".join(parts) or f"uncertainty {self.score:.2f} in this {w}x{h} region"

    def details(self) -> str:
        """The numbers behind the ranking: "uncertainty 0.71 (0 = sure, 1 = clueless), 100 % unlabelled"."""
        return f"uncertainty {self.score:.2f} (0 = sure, 1 = clueless), {100 * self.unlabelled:.0f} % unlabelled"


@dataclass
class UncertaintyMaps:
    """The per-pixel parts of the uncertainty of one prediction (what regions are scored from)."""

    entropy: np.ndarray  # (H, W) float32, main head, nats
    tv: np.ndarray | None  # (H, W) float32, total variation distance main vs aux (None: no aux head)
    disagree: np.ndarray | None  # (H, W) bool, the two heads' most likely classes differ
    num_classes: int

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.entropy.shape[0]), int(self.entropy.shape[1])

    def combined(self, mix: float = DEFAULT_RULE.mix, gated: bool = DEFAULT_RULE.gated) -> np.ndarray:
        """(H, W) float32 in [0, 1]: ``(1 - mix) * entropy / log K + mix * tv``, or gated,
        ``entropy / log K * ((1 - mix) + mix * tv)`` (entropy alone without an aux head)."""
        norm = np.float32(1.0 / math.log(self.num_classes)) if self.num_classes > 1 else np.float32(0.0)
        ent = np.clip(self.entropy * norm, 0.0, 1.0)
        if self.tv is None:
            return ent.astype(np.float32, copy=False)
        if gated:
            return (ent * ((1.0 - mix) + mix * self.tv)).astype(np.float32, copy=False)
        return ((1.0 - mix) * ent + mix * self.tv).astype(np.float32, copy=False)


def _check(probs: np.ndarray, aux_probs: np.ndarray | None, entropy: np.ndarray | None) -> tuple[int, int, int]:
    if np.ndim(probs) != 3:
        raise ValueError(f"probs must be (K, H, W), not {np.shape(probs)}")
    k, h, w = np.shape(probs)
    if aux_probs is not None and np.shape(aux_probs) != np.shape(probs):
        raise ValueError(f"aux_probs {np.shape(aux_probs)} does not match probs {np.shape(probs)}")
    if entropy is not None and np.shape(entropy) != (h, w):
        raise ValueError(f"entropy {np.shape(entropy)} does not match the {h}x{w} probabilities")
    return k, h, w


def uncertainty_maps(probs: np.ndarray, aux_probs: np.ndarray | None = None, *,
                     entropy: np.ndarray | None = None, labels: np.ndarray | None = None) -> UncertaintyMaps:
    """The entropy, main/aux distance and disagreement maps of (K, H, W) probabilities (in row
    blocks, so the temporaries stay small); ``entropy`` (H, W, nats) and ``labels`` (the main
    head's argmax) save recomputing them."""
    k, h, w = _check(probs, aux_probs, entropy)
    if labels is not None and np.shape(labels) != (h, w):
        labels = None
    ent_out = np.empty((h, w), np.float32)
    tv_out = np.empty((h, w), np.float32) if aux_probs is not None else None
    dis_out = np.empty((h, w), bool) if aux_probs is not None else None
    buf = np.empty((k, min(h, _ROWS), w), np.float32) if aux_probs is not None else None
    for y in range(0, h, _ROWS):
        p = np.asarray(probs[:, y:y + _ROWS], np.float32)
        if entropy is not None:
            ent_out[y:y + _ROWS] = np.asarray(entropy[y:y + _ROWS], np.float32)
        else:
            ent_out[y:y + _ROWS] = -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(0)
        if aux_probs is not None:
            q = np.asarray(aux_probs[:, y:y + _ROWS], np.float32)
            diff = np.subtract(p, q, out=buf[:, :p.shape[1]])
            np.abs(diff, out=diff)
            tv = diff.sum(0)
            tv *= 0.5
            tv_out[y:y + _ROWS] = np.clip(tv, 0.0, 1.0)
            top = labels[y:y + _ROWS] if labels is not None else p.argmax(0)
            # the aux head's favourite beats the main head's (a max is far cheaper than an argmax over K)
            q_top = np.take_along_axis(q, top[None].astype(np.intp), 0)[0]
            dis_out[y:y + _ROWS] = q.max(0) > q_top
    return UncertaintyMaps(ent_out, tv_out, dis_out, k)


def uncertainty_map(probs: np.ndarray, aux_probs: np.ndarray | None = None, *,
                    entropy: np.ndarray | None = None, mix: float = DEFAULT_RULE.mix,
                    gated: bool = DEFAULT_RULE.gated) -> np.ndarray:
    """(H, W) float32 in [0, 1] from the main head's (K, H, W) probabilities and optionally the
    aux head's (see :meth:`UncertaintyMaps.combined`); ``entropy`` (H, W, nats) saves recomputing
    the main head's entropy."""
    return uncertainty_maps(probs, aux_probs, entropy=entropy).combined(mix, gated)


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


def default_tile(shape: tuple[int, int], fraction: float = DEFAULT_RULE.tile_fraction) -> int:
    """The side of the square regions :func:`uncertain_regions` scores: ``fraction`` (a sixth)
    of the short side, at least 16 and at most 512 pixels."""
    return int(min(512, max(16, int(min(shape) * fraction))))


def grid_edges(length: int, tile: int) -> np.ndarray:
    """Cell edges along one axis: ``round(length / tile)`` (at least 1) cells as even as pixels
    allow, so that no cell is a sliver at the border."""
    n = max(1, int(round(length / max(1, tile))))
    return np.round(np.linspace(0, length, n + 1)).astype(np.int64)


def _cell_sums(a: np.ndarray, ey: np.ndarray, ex: np.ndarray) -> np.ndarray:
    """Sums of ``a`` over the grid cells (an integral image, read at the edges)."""
    s = np.zeros((a.shape[0] + 1, a.shape[1] + 1), np.float64)
    np.cumsum(np.cumsum(a, axis=0, dtype=np.float64), axis=1, out=s[1:, 1:])
    c = s[np.ix_(ey, ex)]
    return c[1:, 1:] - c[:-1, 1:] - c[1:, :-1] + c[:-1, :-1]


def uncertain_regions(umap: np.ndarray, mask: np.ndarray | None = None, *, tile: int | None = None,
                      k: int | None = 5, min_unlabelled: float = 0.5) -> list[RegionScore]:
    """The ``k`` (None: all) most uncertain grid cells of about ``tile`` pixels (see
    :func:`grid_edges`) that are mostly unlabelled (at least ``min_unlabelled`` of their
    pixels), highest first; a cell's score is its mean uncertainty over its unlabelled pixels."""
    umap = np.asarray(umap, np.float32)
    if umap.ndim != 2:
        raise ValueError(f"the uncertainty map must be (H, W), not {umap.shape}")
    h, w = umap.shape
    if h == 0 or w == 0 or (k is not None and k <= 0):
        return []
    tile = default_tile((h, w)) if tile is None else int(tile)
    if tile < 1:
        raise ValueError(f"tile must be >= 1, not {tile}")
    free = _unlabelled(mask, (h, w))
    ey, ex = grid_edges(h, tile), grid_edges(w, tile)
    area = np.outer(np.diff(ey), np.diff(ex)).astype(np.float64)
    if free is None:
        free_n, sums = area, _cell_sums(umap, ey, ex)
    else:
        free_n, sums = _cell_sums(free, ey, ex), _cell_sums(np.where(free, umap, 0.0), ey, ex)
    share = free_n / area
    score = np.where(free_n > 0, sums / np.maximum(free_n, 1), 0.0)
    eligible = (share >= min_unlabelled) & (free_n > 0)
    order = np.argsort(-np.where(eligible, score, -1.0), axis=None, kind="stable")
    out: list[RegionScore] = []
    nx = score.shape[1]
    for flat in order if k is None else order[:k]:
        ty, tx = divmod(int(flat), nx)
        if not eligible[ty, tx]:
            break
        out.append(RegionScore((int(ey[ty]), int(ey[ty + 1]), int(ex[tx]), int(ex[tx + 1])), float(score[ty, tx]),
                               float(share[ty, tx])))
    return out


def explain(region: RegionScore, maps: UncertaintyMaps, mask: np.ndarray | None = None) -> RegionScore:
    """``region`` with its mean entropy (nats) and main/aux disagreement over its unlabelled pixels."""
    y0, y1, x0, x1 = region.region
    free = _unlabelled(mask, maps.shape)
    sel = np.ones((y1 - y0, x1 - x0), bool) if free is None else free[y0:y1, x0:x1]
    if not sel.any():
        return region
    ent = float(maps.entropy[y0:y1, x0:x1][sel].mean(dtype=np.float64))
    dis = math.nan if maps.disagree is None else float(maps.disagree[y0:y1, x0:x1][sel].mean(dtype=np.float64))
    return replace(region, entropy=ent, disagreement=dis)


def region_scores(maps: UncertaintyMaps, mask: np.ndarray | None = None, *, k: int | None = 32,
                  rule: RankingRule = DEFAULT_RULE, min_unlabelled: float = 0.5) -> list[RegionScore]:
    """The ``k`` (None: all) most uncertain mostly-unlabelled regions of one prediction under
    ``rule``, highest first, each with the reason (mean entropy, main/aux disagreement)."""
    umap = maps.combined(rule.mix, rule.gated)
    regions = uncertain_regions(umap, mask, tile=default_tile(maps.shape, rule.tile_fraction), k=k,
                                min_unlabelled=min_unlabelled)
    return [explain(r, maps, mask) for r in regions]


def rank_regions(regions: Mapping[K, Sequence[RegionScore]], rule: RankingRule = DEFAULT_RULE,
                 limit: int | None = None, taken: Mapping[K, int] | None = None) -> list[tuple[K, RegionScore]]:
    """The regions of many images as one queue, ``(image key, region)``, most uncertain first.

    With ``rule.image_decay`` < 1 an image's k-th region counts ``decay ** k`` of its score, so
    the queue moves between images instead of draining one; ``taken`` counts regions of an image
    handed out already (a queue walked so far continues as it would have). Ties: by key order,
    then position."""
    keys = list(regions)
    lists = {key: sorted(regions[key], key=lambda r: (-r.score, r.region)) for key in keys}
    count = {key: int((taken or {}).get(key, 0)) for key in keys}
    heads = [(-lists[key][0].score * rule.image_decay ** count[key], pos, 0)
             for pos, key in enumerate(keys) if lists[key]]
    heapq.heapify(heads)
    out: list[tuple[K, RegionScore]] = []
    while heads and (limit is None or len(out) < limit):
        _, pos, i = heapq.heappop(heads)
        key = keys[pos]
        out.append((key, lists[key][i]))
        count[key] += 1
        if i + 1 < len(lists[key]):
            heapq.heappush(heads, (-lists[key][i + 1].score * rule.image_decay ** count[key], pos, i + 1))
    return out


def rank_images(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """``(name, score)`` highest first; images without a score (NaN) last, then by name."""
    def key(item: tuple[str, float]) -> tuple[int, float, str]:
        name, s = item
        bad = s is None or not math.isfinite(s)
        return (1 if bad else 0, 0.0 if bad else -float(s), name)

    return sorted(((n, float("nan") if s is None else float(s)) for n, s in scores.items()), key=key)
