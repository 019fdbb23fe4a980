"""Helpers the window tests share (the fixtures are in conftest.py): opening a project and
waiting for its first image, mouse events and drags on the canvas, what an image item shows."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent
from PySide6.QtWidgets import QApplication, QMessageBox

B = QMessageBox.StandardButton


def open_project(qtbot, window, ckpt, root, timeout=30000):
    """Open a model and a project; wait until the first image is shown with its mask and prediction."""
    if "ask" not in window.__dict__:  # no modal dialog may block a test (closing with unsaved edits asks)
        window.ask = lambda *a: B.Discard
    window.open_model(ckpt)
    window.open_folder(root)
    ed, c = window.editor, window.controller
    qtbot.waitUntil(lambda: ed.mask is not None and c.outcome is not None
                    and c.outcome.path is not None and c.outcome.path.stem == ed.name, timeout=timeout)
    return ed.mask


def mouse(widget, kind: str, pos: QPoint, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    types = {"press": QEvent.Type.MouseButtonPress, "move": QEvent.Type.MouseMove,
             "release": QEvent.Type.MouseButtonRelease, "double": QEvent.Type.MouseButtonDblClick}
    left = Qt.MouseButton.LeftButton
    button = Qt.MouseButton.NoButton if kind == "move" else left
    buttons = Qt.MouseButton.NoButton if kind == "release" else left
    ev = QMouseEvent(types[kind], QPointF(pos), QPointF(widget.mapToGlobal(pos)), button, buttons, modifiers)
    QApplication.sendEvent(widget, ev)


def mouse_drag(window, pixels) -> list[tuple[float, float]]:
    """Drag over image pixels (x, y); returns the mask points the tool received."""
    canvas = window.seg.canvas
    vp = canvas.viewport()
    pos = [canvas.widget_pos_of_pixel(x, y) for x, y in pixels]
    mouse(vp, "press", pos[0])
    for p in pos[1:]:
        mouse(vp, "move", p)
    mouse(vp, "release", pos[-1])
    return [window.canvas_tools.to_mask(QPointF(p)) for p in pos]


def rendered_rgba(item) -> np.ndarray:
    """What an ImageItem paints: render it and read its QImage back as (H, W, 4) RGBA."""
    item.render()
    qimg = item.qimage.convertToFormat(item.qimage.Format.Format_RGBA8888)
    h, w = qimg.height(), qimg.width()
    buf = np.frombuffer(qimg.constBits(), np.uint8, count=qimg.sizeInBytes())
    return buf.reshape(h, qimg.bytesPerLine())[:, : w * 4].reshape(h, w, 4).copy()


def shown_indices(item) -> tuple[np.ndarray, int]:
    """The label indices an indexed ImageItem paints, read from its QImage as it is (no render
    call), and the address of that QImage's pixels."""
    qimg = item.qimage
    assert qimg is not None and qimg.format() == QImage.Format.Format_Indexed8
    bits = qimg.constBits()
    buf = np.frombuffer(bits, np.uint8, count=qimg.sizeInBytes()).reshape(qimg.height(), qimg.bytesPerLine())
    return buf[:, : qimg.width()].copy(), buf.ctypes.data


def color_table_rgba(item) -> np.ndarray:
    """An indexed ImageItem's colour table as (N, 4) RGBA uint8."""
    table = np.array(item.qimage.colorTable(), np.uint32)
    return np.stack([(table >> 16) & 255, (table >> 8) & 255, table & 255, table >> 24], 1).astype(np.uint8)
