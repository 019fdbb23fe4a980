"""The project's shared constants, defined once (core exports them; the app and the CLI read them here).

* :data:`IGNORE`: the ignore / unlabelled label of every mask (the paper's 255): no loss, no metric.
* :data:`IMAGE_EXTENSIONS`: the image files folders, projects and data sets list.
* :data:`NO_MASK`, :data:`MASK`, :data:`UNREADABLE`: the states of an image's mask in a project.
* :data:`SINGLE_PASS_PIXELS`, :data:`SLIDING_CROP`: an image up to that many pixels is predicted
  in one pass (with internals: the pyramid inspector, level switches); a larger one in
  ``SLIDING_CROP`` windows, so that a 12-megapixel photo costs a bounded amount of memory.
"""

from __future__ import annotations

from typing import Literal

IGNORE = 255

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

MaskState = Literal["no mask", "mask", "unreadable mask"]
NO_MASK: MaskState = "no mask"
MASK: MaskState = "mask"
UNREADABLE: MaskState = "unreadable mask"
MASK_STATES: tuple[MaskState, ...] = (NO_MASK, MASK, UNREADABLE)

SINGLE_PASS_PIXELS = 2048 * 1536
SLIDING_CROP = 1024


def single_pass(shape: tuple[int, ...], limit: int = SINGLE_PASS_PIXELS) -> bool:
    """Whether an image of ``shape`` (H, W, ...) is predicted in one pass (else in sliding windows)."""
    return int(shape[0]) * int(shape[1]) <= limit


__all__ = ["IGNORE", "IMAGE_EXTENSIONS", "MaskState", "NO_MASK", "MASK", "UNREADABLE", "MASK_STATES",
           "SINGLE_PASS_PIXELS", "SLIDING_CROP", "single_pass"]
