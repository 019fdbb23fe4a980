"""core.uncertainty: the per-pixel map (entropy + main/aux disagreement), image scores, regions."""

from __future__ import annotations

import math
from dataclasses import replace

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
    np.testing.assert_allclose(uncertainty_map(uniform, uniform, gated=False), 0.5, atol=1e-6)  # no disagreement
    np.testing.assert_allclose(uncertainty_map(uniform, uniform), 0.5, atol=1e-6)  # gated: 1 * (0.5 + 0)


def test_disagreement_is_the_total_variation_distance():
    main = one_hot(np.zeros((1, 3), int), 3)
    aux = one_hot(np.array([[0, 1, 2]]), 3)
    # sure main head: entropy 0; tv 0 where the heads agree, 1 where they do not
    np.testing.assert_allclose(uncertainty_map(main, aux, gated=False), [[0.0, 0.5, 0.5]], atol=1e-6)
    # gated (the default): a sure main head is not uncertain, whatever the aux head says
    np.testing.assert_allclose(uncertainty_map(main, aux), [[0.0, 0.0, 0.0]], atol=1e-6)
    half = np.zeros((3, 1, 1), np.float32)
    half[0] = half[1] = 0.5
    ent = math.log(2) / math.log(3)
    q = one_hot(np.zeros((1, 1), int), 3)
    assert uncertainty_map(half, q, gated=False)[0, 0] == pytest.approx(0.5 * (ent + 0.5), abs=1e-6)
    assert uncertainty_map(half, q)[0, 0] == pytest.approx(ent * (0.5 + 0.5 * 0.5), abs=1e-6)
    # a given entropy map is used as it is (and row blocks give the same map as one pass)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 300, 7)).astype(np.float32)
    p = np.exp(logits) / np.exp(logits).sum(0)
    q = np.roll(p, 1, axis=0)
    ent = -(p * np.log(p)).sum(0)
    full = 0.5 * (ent / math.log(5) + 0.5 * np.abs(p - q).sum(0))
    np.testing.assert_allclose(uncertainty_map(p, q, gated=False), full, atol=1e-5)
    np.testing.assert_allclose(uncertainty_map(p, q, entropy=ent, gated=False), full, atol=1e-5)
    gated = ent / math.log(5) * (0.5 + 0.5 * 0.5 * np.abs(p - q).sum(0))
    np.testing.assert_allclose(uncertainty_map(p, q, entropy=ent), gated, atol=1e-5)
    # the disagreement map: the two heads' most likely classes differ (with or without the labels given)
    q = np.exp(rng.normal(size=p.shape)).astype(np.float32)
    q /= q.sum(0)
    differ = p.argmax(0) != q.argmax(0)
    assert 0 < differ.sum() < differ.size
    np.testing.assert_array_equal(core.uncertainty_maps(p, q).disagree, differ)
    np.testing.assert_array_equal(core.uncertainty_maps(p, q, labels=p.argmax(0).astype(np.uint8)).disagree, differ)


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
    # the grid is even: no sliver of a cell at the border (20 px with 16-px tiles: one cell; 40: two of 20)
    assert [r.region for r in uncertain_regions(np.ones((20, 20), np.float32), tile=16, k=4)] == [(0, 20, 0, 20)]
    edge = uncertain_regions(np.ones((40, 20), np.float32), tile=16, k=None)
    assert sorted(r.region for r in edge) == [(0, 20, 0, 20), (20, 40, 0, 20)]
    assert len(uncertain_regions(np.ones((128, 128), np.float32), tile=21, k=None)) == 36  # 6 x 6 cells of 21-22
    assert uncertain_regions(umap, np.zeros(umap.shape, np.uint8), tile=16) == []  # all labelled


def test_default_tile_and_ranking():
    assert default_tile((3000, 4000)) == 375  # an eighth of the short side
    assert default_tile((128, 128)) == 16 and default_tile((128, 128), 1 / 6) == 21
    assert default_tile((10000, 10000)) == 512 and default_tile((60, 80)) == 16
    ranked = rank_images({"b": 0.2, "a": 0.5, "c": float("nan"), "d": 0.2})
    assert [n for n, _ in ranked] == ["a", "b", "d", "c"]


def test_exported_from_core():
    assert core.uncertainty_map is uncertainty_map and core.uncertain_regions is uncertain_regions
    assert core.RegionScore.__name__ == "RegionScore"


def test_maps_and_region_reasons():
    """The per-pixel parts (entropy in nats, main/aux distance, argmax disagreement) and a region's reason."""
    k = 4
    main = one_hot(np.zeros((64, 64), int), k) * 0.96 + 0.01  # sure of class 0 ...
    aux = main.copy()
    aux[:, 16:32, 16:32] = one_hot(np.ones((16, 16), int), k) * 0.96 + 0.01  # ... the aux head says 1 here
    main[:, 48:64, 0:16] = 0.25  # and the main head has no idea here
    maps = core.uncertainty_maps(main, aux)
    assert maps.shape == (64, 64) and maps.num_classes == k
    assert maps.disagree[16:32, 16:32].all() and maps.disagree.sum() == 256
    np.testing.assert_allclose(maps.entropy[48:, :16], math.log(4), rtol=1e-5)
    np.testing.assert_allclose(maps.tv[16:32, 16:32], 0.96, atol=1e-5)
    np.testing.assert_allclose(maps.combined(0.0), uncertainty_map(main, aux, mix=0.0), atol=1e-6)
    np.testing.assert_allclose(maps.combined(0.5), uncertainty_map(main, aux), atol=1e-6)
    # gated: disagreement counts only where the main head is unsure (sure and disagreeing: 0)
    ent = maps.entropy / math.log(k)
    np.testing.assert_allclose(maps.combined(0.5, gated=True), ent * (0.5 + 0.5 * maps.tv), atol=1e-6)
    assert maps.combined(1.0, gated=True)[16:32, 16:32].max() < 0.2 < maps.combined(1.0, gated=False)[16:32, 16:32].min()
    # 16-px regions (a quarter of the side): the uniform one first ((1 + 0.72) / 2), then the disagreeing one
    quarter = core.RankingRule(tile_fraction=0.25)
    regions = core.region_scores(maps, k=2, rule=quarter)
    assert [r.region for r in regions] == [(48, 64, 0, 16), (16, 32, 16, 32)]
    assert regions[1].disagreement == 1.0 and regions[0].disagreement == 0.0
    assert regions[0].entropy == pytest.approx(math.log(4), rel=1e-5)
    text = regions[1].reason()
    assert "main and aux heads disagree on 100 % of this 16x16 region" in text and "nats" in text
    # labelled pixels do not count: half the disagreeing cell labelled -> its numbers are over the other half
    mask = np.full((64, 64), 255, np.uint8)
    mask[16:24, 16:32] = 0
    half = [r for r in core.region_scores(maps, mask, k=None, rule=quarter) if r.region == (16, 32, 16, 32)][0]
    assert half.unlabelled == 0.5 and half.disagreement == 1.0
    # with entropy alone the disagreeing cell is no longer uncertain; with disagreement alone it leads
    plain = core.RankingRule(tile_fraction=0.25, gated=False)
    assert core.region_scores(maps, k=1, rule=replace(plain, mix=0.0))[0].region == (48, 64, 0, 16)
    assert core.region_scores(maps, k=1, rule=replace(plain, mix=1.0))[0].region == (16, 32, 16, 32)
    # gated, disagreement counts only where the main head is unsure: the sure, disagreeing cell drops back
    assert core.region_scores(maps, k=1, rule=replace(quarter, mix=1.0))[0].region == (48, 64, 0, 16)
    # no aux head: entropy only, and the reason says nothing of disagreement
    alone = core.region_scores(core.uncertainty_maps(main), k=1, rule=quarter)[0]
    assert math.isnan(alone.disagreement) and "disagree" not in alone.reason()


def test_rank_regions_walks_images_in_score_order_and_can_spread():
    R = core.RegionScore
    per = {"a": [R((0, 8, 0, 8), 0.9, 1.0), R((0, 8, 8, 16), 0.8, 1.0), R((8, 16, 0, 8), 0.7, 1.0)],
           "b": [R((0, 8, 0, 8), 0.85, 1.0), R((0, 8, 8, 16), 0.1, 1.0)], "c": []}
    order = core.rank_regions(per, core.RankingRule(image_decay=1.0))  # pure score order
    assert [(k, r.score) for k, r in order] == [("a", 0.9), ("b", 0.85), ("a", 0.8), ("a", 0.7), ("b", 0.1)]
    assert core.rank_regions(per, core.RankingRule(image_decay=1.0), limit=2) == order[:2]
    # diversity: the second region of an image counts half -> b's first comes before a's second
    two = {"a": per["a"], "b": [R((0, 8, 0, 8), 0.5, 1.0)]}
    spread = core.rank_regions(two, core.RankingRule(image_decay=0.5))
    assert [(k, r.score) for k, r in spread] == [("a", 0.9), ("b", 0.5), ("a", 0.8), ("a", 0.7)]
    # a walk continued (one of a's regions handed out already) goes on as the whole order does
    rest = core.rank_regions({"a": per["a"][1:], "b": two["b"]}, core.RankingRule(image_decay=0.5), taken={"a": 1})
    assert rest == spread[1:]
    with pytest.raises(ValueError, match="mix"):
        core.RankingRule(mix=1.5)


def test_region_queue_hands_out_across_images_and_skips_labelled_regions():
    R = core.RegionScore
    q = core.RegionQueue(core.RankingRule(image_decay=1.0))
    q.set_regions("a", [R((0, 8, 0, 8), 0.9, 1.0), R((0, 8, 8, 16), 0.3, 1.0)])
    q.set_regions("b", [R((0, 8, 0, 8), 0.6, 1.0)])
    first = q.next()
    assert (first.key, first.region.score, first.left, first.images) == ("a", 0.9, 3, 2)
    assert q.next(lambda k, r: k != "a").key == "b" and q.next(lambda k, r: k != "a") is None
    q2 = core.RegionQueue(core.RankingRule(image_decay=1.0))
    q2.set_regions("a", [R((0, 8, 0, 8), 0.9, 1.0), R((0, 8, 8, 16), 0.3, 1.0)])
    q2.set_regions("b", [R((0, 8, 0, 8), 0.6, 1.0)])
    assert [q2.next().key for _ in range(3)] == ["a", "b", "a"] and q2.next() is None and q2.visited == 3
    q2.restart()
    assert q2.next(lambda k, r: k == "b").key == "b"  # a region labelled since is skipped
    # an image scored again replaces its regions (handed-out ones stay handed out)
    q2.set_regions("a", [R((0, 8, 0, 8), 0.95, 1.0), R((8, 16, 0, 8), 0.5, 1.0)])
    nxt = q2.next()
    assert (nxt.key, nxt.region.region) == ("a", (0, 8, 0, 8))
    q2.forget("a")
    assert "a" not in q2 and q2.keys() == ["b"]
    # with the default spread across images the walk hands out exactly the one-shot order
    rng = np.random.default_rng(3)
    many = {name: [R((8 * i, 8 * i + 8, 0, 8), float(rng.random()), 1.0) for i in range(6)] for name in "pqrs"}
    q3 = core.RegionQueue()
    for name, regions in many.items():
        q3.set_regions(name, regions)
    walk = [(item.key, item.region) for item in iter(q3.next, None)]
    assert walk == core.rank_regions(many) and len(walk) == 24
    assert walk != core.rank_regions(many, core.RankingRule(image_decay=1.0))  # the spread changes the order
