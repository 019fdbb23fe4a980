"""The synthetic context scenes: deterministic, every class, context (not appearance) decides."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import core
from core.data.io import read_image, read_mask
from core.data.synthetic import (BOAT, BUILDING, BUOY, CAR, CONE, CONTEXT_CLASSES, GRASS, ROAD, SKY, SKYSCRAPER,
                                 SYNTHETIC_CLASSES, WATER, generate_scene, scene_seed, write_demo_project)
from core.errors import DatasetError

SEEDS = range(80)


@pytest.fixture(scope="module")
def scenes() -> list[tuple[np.ndarray, np.ndarray]]:
    return [generate_scene(s) for s in SEEDS]


def test_same_seed_same_scene_and_sizes():
    a, b = generate_scene(7), generate_scene(7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = generate_scene(8)
    assert not np.array_equal(a[0], c[0])
    for size in [(32, 32), (40, 40), (96, 128), (200, 64)]:
        img, mask = generate_scene(3, size)
        assert img.shape == (*size, 3) and img.dtype == np.uint8
        assert mask.shape == size and mask.dtype == np.uint8
        assert mask.max() < len(SYNTHETIC_CLASSES)
    with pytest.raises(ValueError, match="32x32"):
        generate_scene(0, (16, 64))


def test_every_class_appears(scenes):
    seen = np.zeros(len(SYNTHETIC_CLASSES), bool)
    for _, mask in scenes:
        seen[np.unique(mask)] = True
    assert seen.all(), [SYNTHETIC_CLASSES.names[i] for i in np.flatnonzero(~seen)]
    assert set(CONTEXT_CLASSES) == {BOAT, CAR, BUILDING, SKYSCRAPER, BUOY, CONE}
    assert SYNTHETIC_CLASSES.names[BOAT] == "boat" and SYNTHETIC_CLASSES.names[SKYSCRAPER] == "skyscraper"


def _pixels(scenes, cls: int) -> np.ndarray:
    return np.concatenate([img[mask == cls] for img, mask in scenes]).astype(np.float64)


def _ring(mask: np.ndarray, obj: np.ndarray, inner: int, outer: int) -> np.ndarray:
    """The class ids between ``inner`` and ``outer`` pixels around ``obj``."""
    def grow(r: int) -> np.ndarray:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        return cv2.dilate(obj.astype(np.uint8), k).astype(bool) if r else obj

    return mask[grow(outer) & ~grow(inner)]


def _instances(mask: np.ndarray, cls: int):
    n, comp = cv2.connectedComponents((mask == cls).astype(np.uint8))
    return [comp == i for i in range(1, n)]


@pytest.mark.parametrize("pair", [(BOAT, CAR), (BUILDING, SKYSCRAPER), (BUOY, CONE)])
def test_context_pairs_look_alike(scenes, pair):
    """Colour statistics of the two classes of a pair agree: appearance cannot tell them apart."""
    a, b = (_pixels(scenes, c) for c in pair)
    assert len(a) > 500 and len(b) > 500
    np.testing.assert_allclose(a.mean(0), b.mean(0), atol=6)
    np.testing.assert_allclose(a.std(0), b.std(0), atol=6)
    # and the histograms overlap almost entirely (total variation distance of the grey levels)
    ha = np.bincount(a.mean(1).astype(int) // 8, minlength=32) / len(a)
    hb = np.bincount(b.mean(1).astype(int) // 8, minlength=32) / len(b)
    assert 0.5 * np.abs(ha - hb).sum() < 0.1


def test_markers_take_the_ground_around_them(scenes):
    for cls, ground in [(BUOY, WATER), (CONE, ROAD)]:
        around = np.concatenate([_ring(mask, obj, 0, 3) for _, mask in scenes for obj in _instances(mask, cls)])
        assert (around == ground).all(), SYNTHETIC_CLASSES.names[cls]


def test_the_district_not_the_berth_decides_vehicles(scenes):
    """Boats lie in harbours (mostly water), cars in streets (mostly road); right around either
    is water about as often as road (a quay, a puddle): the nearest ground does not decide."""
    near = {BOAT: [], CAR: []}
    far = {BOAT: [], CAR: []}
    for _, mask in scenes:
        for cls in near:
            for obj in _instances(mask, cls):
                ring = _ring(mask, obj, 0, 2)
                near[cls].append((ring[np.isin(ring, [WATER, ROAD])] == WATER).mean())
                ring = _ring(mask, obj, 14, 30)
                far[cls].append((ring[np.isin(ring, [WATER, ROAD, GRASS])] == WATER).mean())
    assert len(near[BOAT]) > 15 and len(near[CAR]) > 15
    for cls in near:
        assert 0.25 < np.mean(near[cls]) < 0.75, (SYNTHETIC_CLASSES.names[cls], np.mean(near[cls]))
    assert np.mean(far[BOAT]) > 0.55 > 0.4 > np.mean(far[CAR])


def test_the_district_not_the_foot_decides_facades(scenes):
    """A skyscraper's district is mostly road and a building's mostly grass, but what lies right at
    a facade's foot is road about as often for either: only the wider surroundings decide."""
    foot = {BUILDING: [], SKYSCRAPER: []}
    district = {BUILDING: [], SKYSCRAPER: []}
    for _, mask in scenes:
        for cls in (BUILDING, SKYSCRAPER):
            for obj in _instances(mask, cls):
                ys, xs = np.nonzero(obj)
                bottom, x0, x1 = ys.max(), xs.min(), xs.max()
                foot[cls].append(mask[bottom + 1, (x0 + x1) // 2] == ROAD)
                below = mask[bottom + 1:, max(x0 - 10, 0):x1 + 11]
                below = below[np.isin(below, [ROAD, GRASS])]
                district[cls].append((below == ROAD).mean())
    assert len(foot[BUILDING]) > 20 and len(foot[SKYSCRAPER]) > 20
    assert np.mean(district[SKYSCRAPER]) > 0.6 > 0.4 > np.mean(district[BUILDING])
    for cls in (BUILDING, SKYSCRAPER):
        assert 0.3 < np.mean(foot[cls]) < 0.7, (SYNTHETIC_CLASSES.names[cls], np.mean(foot[cls]))


def test_context_comes_at_global_and_regional_scales(scenes):
    """In most scenes the ground of the whole scene decides every look-alike in it (global pooling
    suffices); in the rest two districts disagree and only the region around an object decides."""
    global_ok, global_n, regional = 0, 0, 0
    for _, mask in scenes:
        for pair, grounds in (((BOAT, CAR), (WATER, ROAD)), ((BUILDING, SKYSCRAPER), (GRASS, ROAD))):
            present = [c for c in pair if (mask == c).any()]
            if not present:
                continue
            if len(present) == 2:
                regional += 1
                continue
            share = [(mask == g).sum() for g in grounds]
            global_ok += present[0] == pair[int(np.argmax(share))]
            global_n += 1
    assert global_ok >= 0.9 * global_n and global_n > regional > 15, (global_ok, global_n, regional)


def test_markers_of_both_kinds_in_both_kinds_of_scene(scenes):
    counts = np.zeros((2, 2), int)  # (ground scene, skyline) x (buoy, cone)
    for _, mask in scenes:
        skyline = bool(np.isin(mask, [BUILDING, SKYSCRAPER]).any() or (mask == GRASS).mean() > 0.1)
        for k, cls in enumerate((BUOY, CONE)):
            counts[int(skyline), k] += len(_instances(mask, cls))
    assert (counts >= 5).all(), counts
    assert 1 / 4 < counts[:, 0].sum() / counts[:, 1].sum() < 4, counts


def test_scenes_have_sky_on_top_and_ground_below(scenes):
    for _, mask in scenes:
        assert (mask[0] == SKY).all()
        assert np.isin(mask[-1], [WATER, ROAD, GRASS, BOAT, CAR, BUOY, CONE]).all()


def test_write_demo_project_layout_reads_back(tmp_path):
    root = write_demo_project(tmp_path / "demo", n_train=3, n_val=2, size=(48, 64), seed=5)
    assert (root / "train.txt").read_text().split() == ["scene_0000", "scene_0001", "scene_0002"]
    assert (root / "val.txt").read_text().split() == ["scene_0003", "scene_0004"]
    assert json.loads((root / "synthetic.json").read_text())["seed"] == 5
    assert core.ClassTable.load(root / "classes.json") == SYNTHETIC_CLASSES
    img, mask = generate_scene(scene_seed(5, 3), (48, 64))
    np.testing.assert_array_equal(read_image(root / "images" / "scene_0003.png"), img)
    np.testing.assert_array_equal(read_mask(root / "masks" / "scene_0003.png", SYNTHETIC_CLASSES), mask)
    from PIL import Image

    assert Image.open(root / "masks" / "scene_0003.png").mode == "P"  # an indexed PNG
    train, val = core.open_dataset(root, "train"), core.open_dataset(root, "val")
    assert len(train) == 3 and len(val) == 2
    assert train.classes.names == SYNTHETIC_CLASSES.names
    vi, vm = val[0]
    np.testing.assert_array_equal(vi, img)
    np.testing.assert_array_equal(vm, mask)


def test_write_demo_project_refuses_other_folders_and_rewrites_its_own(tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        write_demo_project(busy, n_train=1, n_val=0)
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(DatasetError, match="not a folder"):
        write_demo_project(afile)
    demo = write_demo_project(tmp_path / "demo", n_train=3, n_val=1, size=(40, 40))
    write_demo_project(demo, n_train=1, n_val=1, size=(40, 40), seed=1)  # its own: regenerated
    assert sorted(p.name for p in (demo / "images").iterdir()) == ["scene_0000.png", "scene_0001.png"]
    assert sorted(p.name for p in (demo / "masks").iterdir()) == ["scene_0000.png", "scene_0001.png"]
    assert len(core.open_dataset(demo, "train")) == 1
