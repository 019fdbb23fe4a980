"""Training augmentation: shapes, determinism, image/mask alignment, padding and fills."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.config import IMAGENET_MEAN
from core.data.augment import TrainAugment
from core.errors import MaskError

PALETTE = np.array([(230, 20, 20), (20, 200, 40), (30, 40, 220), (240, 220, 30), (200, 30, 200)], np.uint8)


def _scene(h: int = 90, w: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A grid of 10x10 cells of random classes; each class is one constant colour, so the colour
    encodes the label. No feature is thinner than 10 pixels, so even at scale 0.5 a
    bilinear image pixel sees only the classes that the nearest-neighbour mask has around it."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, len(PALETTE), size=(-(-h // 10), -(-w // 10)), dtype=np.uint8)
    mask = np.repeat(np.repeat(cells, 10, axis=0), 10, axis=1)[:h, :w].copy()
    mask[:10, :] = 255  # an unlabelled strip
    image = PALETTE[np.minimum(mask, len(PALETTE) - 1)].copy()
    return image, mask


def _interior(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood holds a single label (away from every boundary and the fill)."""
    lo = cv2.erode(mask, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    hi = cv2.dilate(mask, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    inner = (lo == hi) & (mask != 255)
    inner[[0, -1], :] = inner[:, [0, -1]] = False  # the crop's frame: its outside neighbours are unseen
    return inner


@pytest.mark.parametrize("size,crop", [((30, 40), 64), ((300, 400), (50, 70)), ((90, 120), (97, 61))])
def test_output_shapes_and_types(size, crop):
    image, mask = _scene(*size)
    out_img, out_mask = TrainAugment(crop=crop)(image, mask, np.random.default_rng(1))
    ch, cw = (crop, crop) if isinstance(crop, int) else crop
    assert out_img.shape == (ch, cw, 3) and out_img.dtype == np.float32
    assert out_mask.shape == (ch, cw) and out_mask.dtype == np.uint8
    assert 0.0 <= out_img.min() and out_img.max() <= 255.0


def test_same_seed_same_output_and_seeds_differ():
    image, mask = _scene()
    aug = TrainAugment(crop=64)
    a = aug(image, mask, np.random.default_rng(7))
    b = aug(image, mask, np.random.default_rng(7))
    c = aug(image, mask, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_image_and_mask_stay_aligned():
    aug = TrainAugment(crop=(72, 96), blur=0.0, rotate=10.0)
    checked = 0
    for seed in range(24):
        image, mask = _scene(seed=seed)
        out_img, out_mask = aug(image, mask, np.random.default_rng(seed))
        inner = _interior(out_mask)
        expect = PALETTE[np.minimum(out_mask, len(PALETTE) - 1)].astype(np.float32)
        diff = np.abs(out_img - expect).max(axis=-1)
        assert diff[inner].max(initial=0) < 1.0, f"seed {seed}: image and mask disagree inside regions"
        checked += int(inner.sum())
    assert checked > 24 * 72 * 96 * 0.3  # the check covered most pixels


def test_misalignment_would_be_caught():
    """The alignment check itself: a mask shifted by 3 pixels fails it."""
    image, mask = _scene()
    out_img, out_mask = TrainAugment(crop=64, blur=0.0)(image, mask, np.random.default_rng(3))
    shifted = np.roll(out_mask, 3, axis=1)
    inner = _interior(shifted)
    expect = PALETTE[np.minimum(shifted, len(PALETTE) - 1)].astype(np.float32)
    assert np.abs(out_img - expect).max(axis=-1)[inner].max() > 50


def test_identity_and_flip_are_exact():
    image, mask = _scene(40, 50)
    aug = TrainAugment(crop=(40, 50), scale=(1.0, 1.0), rotate=0.0, blur=0.0)
    seen = set()
    for seed in range(8):
        out_img, out_mask = aug(image, mask, np.random.default_rng(seed))
        if np.array_equal(out_mask, mask):
            np.testing.assert_array_equal(out_img, image.astype(np.float32))
            seen.add("same")
        else:
            np.testing.assert_array_equal(out_mask, mask[:, ::-1])
            np.testing.assert_array_equal(out_img, image[:, ::-1].astype(np.float32))
            seen.add("flipped")
    assert seen == {"same", "flipped"}
    no_flip = TrainAugment(crop=(40, 50), scale=(1.0, 1.0), rotate=0.0, blur=0.0, flip=False)
    for seed in range(4):
        np.testing.assert_array_equal(no_flip(image, mask, np.random.default_rng(seed))[1], mask)


def test_padding_is_mean_and_ignore_and_centred():
    image, mask = _scene(40, 60)
    mask[mask == 255] = 0
    aug = TrainAugment(crop=50, scale=(0.5, 0.5), rotate=0.0, blur=1.0)  # canvas 20x30, padded to 50x50
    out_img, out_mask = aug(image, mask, np.random.default_rng(0))
    canvas = np.zeros((50, 50), bool)
    canvas[15:35, 10:40] = True  # the pad is split evenly, as in the authors' code
    assert (out_mask[~canvas] == 255).all()
    assert (out_mask[canvas] != 255).all()
    np.testing.assert_array_equal(out_img[~canvas], np.broadcast_to(np.float32(IMAGENET_MEAN), (int((~canvas).sum()), 3)))


def test_rotation_fills_corners():
    image, mask = _scene(60, 60)
    mask[mask == 255] = 1
    aug = TrainAugment(crop=60, scale=(1.0, 1.0), rotate=45.0, blur=0.0, flip=False)
    for seed in range(20):
        draws = np.random.default_rng(seed)
        draws.uniform(1.0, 1.0)
        if abs(draws.uniform(-45.0, 45.0)) > 20:
            break
    out_img, out_mask = aug(image, mask, np.random.default_rng(seed))
    for y, x in [(0, 0), (0, 59), (59, 0), (59, 59)]:
        assert out_mask[y, x] == 255
        np.testing.assert_allclose(out_img[y, x], IMAGENET_MEAN, atol=1e-3)
    assert (out_mask[20:40, 20:40] != 255).all()


def test_blur_changes_the_image_only():
    image, mask = _scene()
    sharp = TrainAugment(crop=64, blur=0.0)(image, mask, np.random.default_rng(5))
    soft = TrainAugment(crop=64, blur=1.0)(image, mask, np.random.default_rng(5))
    np.testing.assert_array_equal(sharp[1], soft[1])
    assert not np.array_equal(sharp[0], soft[0])
    assert np.abs(sharp[0] - soft[0]).max() > 20  # edges got softened


def test_bad_inputs():
    image, mask = _scene()
    aug = TrainAugment(crop=32)
    with pytest.raises(MaskError, match="does not match"):
        aug(image, mask[:-1], np.random.default_rng(0))
    with pytest.raises(MaskError, match="uint8"):
        aug(image, mask.astype(np.int32), np.random.default_rng(0))
    with pytest.raises(ValueError):
        TrainAugment(scale=(2.0, 0.5))
    with pytest.raises(ValueError):
        TrainAugment(crop=0)
