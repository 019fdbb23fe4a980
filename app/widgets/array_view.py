"""A small label that shows an array as an image, scaled without smoothing (grids stay crisp)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy


def qimage_from_array(a: np.ndarray) -> QImage:
    """(H, W) uint8 grey or (H, W, 3) uint8 RGB -> a QImage that owns a copy of the pixels."""
    a = np.ascontiguousarray(a, dtype=np.uint8)
    h, w = a.shape[:2]
    if a.ndim == 2:
        img = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_Grayscale8)
    elif a.ndim == 3 and a.shape[2] == 3:
        img = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGB888)
    elif a.ndim == 3 and a.shape[2] == 4:
        img = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGBA8888)
    else:
        raise ValueError(f"cannot show an array of shape {a.shape} as an image")
    return img.copy()


class ArrayView(QLabel):
    def __init__(self, box: int = 120, parent=None):
        super().__init__(parent)
        self._box = box
        self._image: QImage | None = None
        self.array: np.ndarray | None = None
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(box // 2, box // 2)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.setStyleSheet("background: #202124; color: #9aa0a6;")

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(self._box, self._box)

    def set_array(self, a: np.ndarray | None, text: str = "") -> None:
        self.array = None if a is None else np.asarray(a)
        self._image = None if a is None else qimage_from_array(a)
        self.setToolTip(text)
        if a is None:
            self.setPixmap(QPixmap())
            self.setText(text)
        self._rescale()

    def resizeEvent(self, ev) -> None:  # noqa: N802
        super().resizeEvent(ev)
        self._rescale()

    def _rescale(self) -> None:
        if self._image is None:
            return
        size = self.contentsRect().size()
        if size.width() < 2 or size.height() < 2:
            return
        pix = QPixmap.fromImage(self._image).scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                                    Qt.TransformationMode.FastTransformation)
        self.setPixmap(pix)
