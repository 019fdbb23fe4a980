"""Training augmentation as in the PSPNet paper and the authors' code (semseg).

The authors apply, in this order: random scale (0.5-2.0), random rotation (±10°, image
bilinear, mask nearest, corners filled with the mean / the ignore label), Gaussian blur
(5x5 kernel, image only), horizontal flip, then pad to the crop size (mean / ignore, the pad
split evenly on both sides) and take a random crop.

Here scale, rotation, flip and crop are one affine map, so each output pixel is
interpolated once and only the crop is ever computed (a 2x scale of a large image would
otherwise build a 4x larger intermediate). Pixels outside the scaled+rotated canvas are
filled exactly as the authors' pad and rotation fill them; the blur runs on the crop, which
differs from blurring the whole canvas only in a 2-pixel band at the crop's edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from core.config import IMAGENET_MEAN
from core.constants import IGNORE
from core.errors import MaskError

__all__ = ["TrainAugment", "IMAGENET_MEAN"]

_BLUR_KERNEL = (5, 5)  # the authors' "radius 5" GaussianBlur; sigma from the kernel size


@dataclass
class TrainAugment:
    crop: int | tuple[int, int] = 473
    scale: tuple[float, float] = (0.5, 2.0)
    rotate: float = 10.0  # degrees, uniform in [-rotate, rotate]
    blur: float = 0.5  # probability of a Gaussian blur
    flip: bool = True  # horizontal, with probability 0.5
    mean: tuple[float, float, float] = IMAGENET_MEAN  # image fill value (RGB, 0..255)
    ignore_index: int = IGNORE

    def __post_init__(self) -> None:
        h, w = self.crop_size
        if h < 1 or w < 1:
            raise ValueError(f"crop size must be positive, not {self.crop}")
        lo, hi = self.scale
        if not 0 < lo <= hi:
            raise ValueError(f"scale range must satisfy 0 < low <= high, not {self.scale}")
        if not 0.0 <= self.blur <= 1.0:
            raise ValueError(f"blur is a probability in 0..1, not {self.blur}")

    @property
    def crop_size(self) -> tuple[int, int]:
        """(height, width) of the output."""
        if isinstance(self.crop, int):
            return self.crop, self.crop
        h, w = self.crop
        return int(h), int(w)

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One random augmentation: (crop_h x crop_w x 3 float32 image on the 0..255 scale,
        crop_h x crop_w uint8 mask). Deterministic given the state of ``rng``."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be HxWx3, not {image.shape}")
        if mask.ndim != 2 or mask.shape != image.shape[:2]:
            raise MaskError(f"mask of shape {mask.shape} does not match the image's {image.shape[:2]}")
        if mask.dtype != np.uint8:
            raise MaskError(f"mask must be uint8, not {mask.dtype}")
        h, w = mask.shape
        ch, cw = self.crop_size

        # the random draws, always all of them and in one order, so a seed fixes everything
        s = float(rng.uniform(*self.scale))
        angle = float(rng.uniform(-self.rotate, self.rotate)) if self.rotate > 0 else 0.0
        do_blur = bool(rng.random() < self.blur)
        do_flip = bool(rng.random() < 0.5) and self.flip
        # canvas = the scaled image (rotation keeps its size), padded evenly up to the crop
        H, W = max(1, round(h * s)), max(1, round(w * s))
        pad_top, pad_left = max(ch - H, 0) // 2, max(cw - W, 0) // 2
        oy = int(rng.integers(0, max(H, ch) - ch + 1)) - pad_top  # crop origin in canvas coordinates
        ox = int(rng.integers(0, max(W, cw) - cw + 1)) - pad_left

        # forward map source -> output, in continuous coordinates (pixel i spans [i, i+1))
        scale = np.diag([W / w, H / h, 1.0])
        rot = _about((W / 2, H / 2), cv2.getRotationMatrix2D((0.0, 0.0), angle, 1.0))
        flip = np.array([[-1.0, 0, W], [0, 1, 0], [0, 0, 1]]) if do_flip else np.eye(3)
        crop = np.array([[1.0, 0, -ox], [0, 1, -oy], [0, 0, 1]])
        half = np.array([[1.0, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
        m = np.linalg.inv(half) @ crop @ flip @ rot @ scale @ half  # pixel-index coordinates

        # only the part of the source that lands in the crop is converted to float
        (x0, y0), (x1, y1) = _footprint(m, cw, ch, w, h)
        if x0 >= x1 or y0 >= y1:  # nothing of the image in the crop (cannot happen with pad-centred crops)
            x0, y0, x1, y1 = 0, 0, 1, 1
        m_sub = m @ np.array([[1.0, 0, x0], [0, 1, y0], [0, 0, 1]])
        src = image[y0:y1, x0:x1].astype(np.float32)
        mean = tuple(float(v) for v in self.mean)
        out_img = cv2.warpAffine(src, m_sub[:2], (cw, ch), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=mean)
        out_mask = cv2.warpAffine(np.ascontiguousarray(mask[y0:y1, x0:x1]), m_sub[:2], (cw, ch),
                                  flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                                  borderValue=int(self.ignore_index))
        if do_blur:
            out_img = cv2.GaussianBlur(out_img, _BLUR_KERNEL, 0)
        # outside the canvas is padding: exactly the mean / the ignore label, never blurred
        # (with a flip the canvas is mirrored onto itself, so its extent is unchanged)
        top, left = max(0, -oy), max(0, -ox)
        bottom, right = min(ch, H - oy), min(cw, W - ox)
        for view in (out_img, out_mask):
            fill = mean if view is out_img else int(self.ignore_index)
            view[:top] = fill
            view[max(bottom, top):] = fill
            view[:, :left] = fill
            view[:, max(right, left):] = fill
        return out_img, out_mask


def _about(center: tuple[float, float], linear: np.ndarray) -> np.ndarray:
    """The 2x3 rotation (about the origin) as a 3x3 map about ``center``."""
    cx, cy = center
    a = np.eye(3)
    a[:2, :2] = linear[:, :2]
    to_origin = np.array([[1.0, 0, -cx], [0, 1, -cy], [0, 0, 1]])
    back = np.array([[1.0, 0, cx], [0, 1, cy], [0, 0, 1]])
    return back @ a @ to_origin


def _footprint(m: np.ndarray, cw: int, ch: int, w: int, h: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Bounding box (x0, y0), (x1, y1) of the source pixels that the output reads, with margin."""
    inv = np.linalg.inv(m)
    corners = np.array([[-1, -1, 1], [cw, -1, 1], [-1, ch, 1], [cw, ch, 1]], float).T
    src = inv @ corners
    x0 = max(0, math.floor(src[0].min()) - 1)
    y0 = max(0, math.floor(src[1].min()) - 1)
    x1 = min(w, math.ceil(src[0].max()) + 2)
    y1 = min(h, math.ceil(src[1].max()) + 2)
    return (x0, y0), (x1, y1)
