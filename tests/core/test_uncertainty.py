"""core.uncertainty: the per-pixel map (entropy + main/aux disagreement), image scores, regions."""

from __future__ import annotations

import math

import numpy as np
import pytest

import core
from core.uncertainty import default_tile, image_score, rank_images, uncertain_regions, uncertainty_map


def one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k, dtype=np.float32)[labels].transpose(2, 0, 1).copy()


def test_map_is_zero_when_heads_agree_and_sure_and_one_when_uniform():
    labels = np.array([[0, 1], [2, 3]])
    p = one_hot(labels, 4)
    np.testing.assert_allclose(uncertainty_map(p, p.copy()), 0.0, atol=1e-6)
    uniform = np.full((4, 2, 2), 0.25, np.float32)
    np.testing.assert_allclose(uncertainty_map(uniform), 1.0, atol=1e-6)  # entropy alone = log K / log K
    np.testing.assert_allclose(uncertainty_map(uniform, uniform), 0.5, atol=1e-6)  # no disagreement


def test_disagreement_is_the_total_variation_distance():
    main = one_hot(np.zeros((1, 3), int), 3)
    aux = one_hot(np.array([[0, 1, 2]]), 3)
    # sure main head: entropy 0; tv 0 where the heads agree, 1 where they do not
    np.testing.assert_allclose(uncertainty_map(main, aux), [[0.0, 0.5, 0.5]], atol=1e-6)
    half = np.zeros((3, 1, 1), np.float32)
    half[0] = half[1] = 0.5
    ent = math.log(2) / math.log(3)
    q = one_hot(np.zeros((1, 1), int), 3)
    assert uncertainty_map(half, q)[0, 0] == pytest.approx(0.5 * (ent + 0.5), abs=1e-6)
    # a given entropy map is used as it is (and row blocks give the same map as one pass)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 300, 7)).astype(np.float32)
    p = np.exp(logits) / np.exp(logits).sum(0)
    q = np.roll(p, 1, axis=0)
    ent = -(p * np.log(p)).sum(0)
    full = 0.5 * (ent / math.log(5) + 0.5 * np.abs(p - q).sum(0))
    np.testing.assert_allclose(uncertainty_map(p, q), full, atol=1e-5)
    np.testing.assert_allclose(uncertainty_map(p, q, entropy=ent), full, atol=1e-5)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="aux_probs"):
        uncertainty_map(np.zeros((3, 4, 4)), np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        uncertainty_map(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="mask"):
        image_score(np.zeros((4, 4)), np.zeros((4, 5), np.uint8))


def test_image_score_counts_labelled_pixels_as_settled():
    umap = np.full((10, 10), 0.8, np.float32)
    assert image_score(umap) == pytest.approx(0.8)
    mask = np.full((10, 10), 255, np.uint8)
    mask[:5] = 3  # half labelled
    assert image_score(umap, mask) == pytest.approx(0.4)
    assert image_score(umap, np.zeros((10, 10), np.uint8)) == 0.0


def test_regions_find_the_uncertain_patch_and_skip_labelled_ones():
    umap = np.full((64, 96), 0.1, np.float32)
    umap[16:32, 48:64] = 0.9  # the most uncertain tile
    umap[0:16, 0:16] = 0.7  # second
    regions = uncertain_regions(umap, tile=16, k=3)
    assert [r.region for r in regions[:2]] == [(16, 32, 48, 64), (0, 16, 0, 16)]
    assert regions[0].score == pytest.approx(0.9) and regions[0].unlabelled == 1.0
    assert regions[2].score == pytest.approx(0.1)
    # once the top patch is labelled it is no longer suggested
    mask = np.full(umap.shape, 255, np.uint8)
    mask[16:32, 48:64] = 1
    regions = uncertain_regions(umap, mask, tile=16, k=2)
    assert regions[0].region == (0, 16, 0, 16)
    assert all(r.region != (16, 32, 48, 64) for r in regions)
    # a tile labelled in part counts only its unlabelled pixels, and only when mostly unlabelled
    mask[:] = 255
    mask[16:28, 48:64] = 1  # 75 % labelled: not eligible
    assert all(r.region != (16, 32, 48, 64) for r in uncertain_regions(umap, mask, tile=16, k=30))
    # tiles at the border are clipped to the image
    edge = uncertain_regions(np.ones((20, 20), np.float32), tile=16, k=4)
    assert sorted(r.region for r in edge) == [(0, 16, 0, 16), (0, 16, 16, 20), (16, 20, 0, 16), (16, 20, 16, 20)]
    assert uncertain_regions(umap, np.zeros(umap.shape, np.uint8), tile=16) == []  # all labelled


def test_default_tile_and_ranking():
    assert default_tile((3000, 4000)) == 500
    assert default_tile((60, 80)) == 16
    assert default_tile((10000, 10000)) == 512
    ranked = rank_images({"b": 0.2, "a": 0.5, "c": float("nan"), "d": 0.2})
    assert [n for n, _ in ranked] == ["a", "b", "d", "c"]


def test_exported_from_core():
    assert core.uncertainty_map is uncertainty_map and core.uncertain_regions is uncertain_regions
    assert core.RegionScore.__name__ == "RegionScore"
