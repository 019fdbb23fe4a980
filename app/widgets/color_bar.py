"""The colour bar of a heat map: what the colours of the confidence, entropy or class
probability overlay mean, in little space (its low and high ends, the scale in between)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QLinearGradient, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

GRADIENT_MIN = 40  # pixels of gradient at the least
GRADIENT_PREFERRED = 110


class ColorBar(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.lut: np.ndarray | None = None
        self.low = ""
        self.high = ""
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def set_map(self, lut: np.ndarray | None, low: str = "", high: str = "", tip: str = "") -> None:
        """A (256, 4) RGBA table from ``low`` to ``high``; None shows nothing."""
        self.lut = None if lut is None else np.asarray(lut, np.uint8)
        self.low, self.high = low, high
        self.setToolTip(tip)
        self.updateGeometry()
        self.update()

    def _text_width(self) -> int:
        fm = self.fontMetrics()
        return fm.horizontalAdvance(self.low) + fm.horizontalAdvance(self.high) + 8

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        return QSize(self._text_width() + GRADIENT_PREFERRED, self.fontMetrics().height() + 4)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(self._text_width() + GRADIENT_MIN, self.fontMetrics().height() + 4)

    def paintEvent(self, _ev: QPaintEvent) -> None:  # noqa: N802
        if self.lut is None:
            return
        p = QPainter(self)
        fm = self.fontMetrics()
        r = self.rect()
        lw, hw = fm.horizontalAdvance(self.low), fm.horizontalAdvance(self.high)
        p.setPen(self.palette().windowText().color())
        p.drawText(QRect(r.left(), r.top(), lw, r.height()), Qt.AlignmentFlag.AlignVCenter, self.low)
        p.drawText(QRect(r.right() - hw + 1, r.top(), hw, r.height()), Qt.AlignmentFlag.AlignVCenter, self.high)
        bar = QRect(r.left() + lw + 4, r.top() + 3, max(1, r.width() - lw - hw - 8), r.height() - 6)
        grad = QLinearGradient(bar.left(), 0, bar.right(), 0)
        n = len(self.lut)
        for i in np.linspace(0, n - 1, 16).astype(int):
            red, green, blue, _ = (int(v) for v in self.lut[i])
            grad.setColorAt(i / (n - 1), QColor(red, green, blue))
        p.fillRect(bar, grad)
        p.setPen(self.palette().mid().color())
        p.drawRect(bar.adjusted(0, 0, -1, -1))
        p.end()


__all__ = ["ColorBar"]
