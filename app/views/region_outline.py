"""The outline of the region "Next Uncertain Region" (N) chose, drawn over a canvas.

A dashed rectangle (a cosmetic pen: the same width at any zoom) above the photo and the
overlays, with the region's uncertainty as its tooltip. It belongs to one image: the window
hides it when another image is shown.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsRectItem

import core
from app.views.canvas import ImageCanvas

COLOR = "#ffd400"


class RegionOutline:
    def __init__(self, canvas: ImageCanvas):
        self.canvas = canvas
        self.path: Path | None = None
        self.region: core.RegionScore | None = None
        self.item = QGraphicsRectItem()
        pen = QPen(QColor(COLOR))
        pen.setCosmetic(True)
        pen.setWidthF(2.5)
        pen.setStyle(Qt.PenStyle.DashLine)
        self.item.setPen(pen)
        self.item.setBrush(Qt.BrushStyle.NoBrush)
        self.item.setZValue(10)  # above the photo, the prediction and the mask
        self.item.setVisible(False)
        canvas.vb.addItem(self.item, ignoreBounds=True)

    @property
    def visible(self) -> bool:
        return self.item.isVisible()

    def rect(self) -> tuple[float, float, float, float]:
        """(x0, y0, width, height) in image pixels."""
        r = self.item.rect()
        return r.x(), r.y(), r.width(), r.height()

    def show(self, path: Path | None, region: core.RegionScore) -> None:
        y0, y1, x0, x1 = region.region
        self.path, self.region = (Path(path).resolve() if path is not None else None), region
        self.item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        self.item.setToolTip(f"{region.reason()}\n{region.details()}")
        self.item.setVisible(True)

    def clear(self) -> None:
        self.path = self.region = None
        self.item.setVisible(False)

    def image_shown(self, path: Path) -> None:
        """Another image is shown: the outline goes (it stays for the image it was drawn on)."""
        if self.path is None or Path(path).resolve() != self.path:
            self.clear()
