"""The editable mask layer: a pyqtgraph ImageItem whose QImage is an indexed (Format_Indexed8)
view of the ``LabelMask``'s own buffer.

No copy is made, so after an edit the only work left is to ask Qt to repaint the changed box
(:meth:`MaskLayer.update_region`), and the repaint touches only the screen pixels inside it.
That is what keeps a brush segment on a 4000x3000 mask far below 8 ms.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

Z_MASK = 2


class MaskLayer(pg.ImageItem):
    """Shows a (H, W) uint8 label mask through a (256, 4) lookup table, without copying it."""

    def __init__(self) -> None:
        super().__init__(axisOrder="row-major")
        self.setZValue(Z_MASK)
        self.data: np.ndarray | None = None

    def set_mask(self, data: np.ndarray | None, lut: np.ndarray | None = None) -> None:
        """``data`` must stay the same buffer for as long as it is shown (LabelMask edits in place)."""
        self.data = data
        if data is None:
            self.clear()
            return
        if data.dtype != np.uint8 or not data.flags.c_contiguous:
            raise ValueError("the mask layer needs a C-contiguous uint8 array (the LabelMask's own buffer)")
        self.setImage(data, autoLevels=False, levels=None, lut=lut)

    def update_region(self, region) -> None:
        """Repaint only the box ``(y0, y1, x0, x1)`` (a core.Region) that changed."""
        y0, y1, x0, x1 = (int(v) for v in region)
        self.update(QRectF(x0, y0, x1 - x0, y1 - y0))
