"""The project's shared constants, defined once (core exports them; the app and the CLI read them here).

* :data:`IGNORE`: the ignore / unlabelled label of every mask (the paper's 255): no loss, no metric.
* :data:`IMAGE_EXTENSIONS`: the image files folders, projects and data sets list.
* :data:`NO_MASK`, :data:`MASK`, :data:`UNREADABLE`: the states of an image's mask in a project.

How a photo of any size is run is not a constant: it is the model's test protocol
(:class:`core.TestProtocol`).
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

__all__ = ["IGNORE", "IMAGE_EXTENSIONS", "MaskState", "NO_MASK", "MASK", "UNREADABLE", "MASK_STATES"]
