"""Mouse and keys on an image canvas -> the active tool (the tool host).

An event filter on the canvas: with an editing tool active, the left button belongs to the
tool (a press starts the tool's drag generator, each move is sent to it, the release ends it);
the middle button still pans, the right button and the wheel still zoom. With the pan tool the
canvas behaves as before. The brush outline follows the cursor.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtGui import QMouseEvent

import core

from app.tools import make_tools
from app.tools.base import Drag, Tool, ToolEvent, ToolSettings
from app.tools.previews import BrushOutline, PathPreview
from app.views.canvas import ImageCanvas

log = logging.getLogger(__name__)

_KEYS = {Qt.Key.Key_Return: "enter", Qt.Key.Key_Enter: "enter", Qt.Key.Key_Escape: "escape",
         Qt.Key.Key_Backspace: "backspace"}


class CanvasTools(QObject):
    """Routes a canvas's mouse input to the active tool; is the tools' context."""

    toolChanged = Signal(str)
    labelPicked = Signal(int)
    notice = Signal(str)  # something for the status bar
    strokeFinished = Signal()

    def __init__(self, canvas: ImageCanvas, settings: ToolSettings, parent: QObject | None = None):
        super().__init__(parent)
        self.canvas = canvas
        self.settings = settings
        self.tools: dict[str, Tool] = make_tools()
        self.tool: Tool = self.tools["pan"]
        self._previous = "brush"
        self._mask: core.LabelMask | None = None
        self.read_only_reason = "no project open"
        self.prediction_source: Callable[[], np.ndarray | None] = lambda: None
        self._drag: Drag | None = None
        self._refused = False  # a press was refused (read-only): its drag is swallowed, the notice stays
        self.outline = BrushOutline(canvas.vb)
        self.path = PathPreview(canvas.vb)
        canvas.viewport().installEventFilter(self)
        canvas.installEventFilter(self)
        settings.changed.connect(self._settings_changed)

    # ---- the tools' context --------------------------------------------------------------------
    @property
    def mask(self) -> core.LabelMask | None:
        return self._mask

    @property
    def prediction(self) -> np.ndarray | None:
        pred = self.prediction_source()
        if pred is None or self._mask is None or pred.shape != self._mask.shape:
            return None
        return pred

    def preview(self, points: list[tuple[float, float]] | None, closed: bool = False) -> None:
        self.path.set_points(points, closed)

    def picked(self, label: int) -> None:
        self.settings.label = label
        self.labelPicked.emit(label)
        if self.tool.name == "picker":
            self.set_tool(self._previous)

    def notify(self, text: str) -> None:
        self.notice.emit(text)

    # ---- state -----------------------------------------------------------------------------------
    def set_mask(self, mask: core.LabelMask | None, read_only_reason: str = "") -> None:
        """The mask the tools edit (None: read-only, with the reason shown when a tool is used)."""
        self.finish_drag()
        self.tool.cancel(self)
        self._mask = mask
        self.read_only_reason = read_only_reason

    def set_tool(self, name: str) -> None:
        if name not in self.tools:
            raise ValueError(f"unknown tool {name!r}; tools are {', '.join(self.tools)}")
        if self.tool.name == name:
            return
        self.finish_drag()
        self.tool.cancel(self)
        if self.tool.name not in ("picker", "pan"):
            self._previous = self.tool.name
        self.tool = self.tools[name]
        vp = self.canvas.viewport()
        if name == "pan":
            vp.unsetCursor()
            self.outline.hide()
        else:
            vp.setCursor(Qt.CursorShape.CrossCursor)
        self._refresh_outline()
        self.toolChanged.emit(name)

    def finish_drag(self) -> None:
        """End a drag in progress (its stroke is committed)."""
        drag, self._drag = self._drag, None
        if drag is not None:
            drag.close()

    @property
    def dragging(self) -> bool:
        return self._drag is not None

    # ---- events ----------------------------------------------------------------------------------
    def to_mask(self, widget_pos: QPointF) -> tuple[float, float]:
        """Widget position -> mask point (y, x), pixel centres at integers, sub-pixel exact."""
        scene = self.canvas.viewportTransform().inverted()[0].map(QPointF(widget_pos))
        p = self.canvas.vb.mapSceneToView(scene)
        return p.y() - 0.5, p.x() - 0.5

    def _tool_event(self, kind: str, ev: QMouseEvent) -> ToolEvent:
        y, x = self.to_mask(ev.position())
        mods = ev.modifiers()
        return ToolEvent(kind, y, x, alt=bool(mods & Qt.KeyboardModifier.AltModifier),
                         shift=bool(mods & Qt.KeyboardModifier.ShiftModifier))

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:  # noqa: N802 (Qt name)
        t = ev.type()
        if obj is self.canvas:
            if t in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress) and ev.key() in _KEYS and self.tool.busy:
                if t == QEvent.Type.ShortcutOverride:
                    ev.accept()  # the key comes to us, not to a window shortcut (Esc = cancel prediction)
                    return True
                return self.tool.key(self, _KEYS[ev.key()])
            return False
        if obj is not self.canvas.viewport():
            return False
        if t == QEvent.Type.MouseMove:
            return self._move(ev)
        if t == QEvent.Type.Leave:
            self.outline.hide()
            return False
        if self.tool.name == "pan" or ev.type() not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease,
                                                        QEvent.Type.MouseButtonDblClick):
            return False
        if ev.button() != Qt.MouseButton.LeftButton:
            return False  # middle pans, right zooms, as before
        if t == QEvent.Type.MouseButtonPress:
            self._press(ev)
        elif t == QEvent.Type.MouseButtonRelease:
            self._release(ev)
        else:
            self._double(ev)
        return True

    def _usable(self) -> bool:
        if self.tool.edits and self._mask is None:
            self.notify(f"This image cannot be edited: {self.read_only_reason}")
            return False
        return True

    def _run(self, fn: Callable[[], Any]) -> Any:
        """Call into the tool; a refused edit (or a drag that ended) must not leave a drag hanging."""
        try:
            return fn()
        except StopIteration:
            self._drag = None
        except Exception as exc:
            log.exception("tool %s failed", self.tool.name)
            self._drag = None
            self.notify(f"{self.tool.title.replace('&', '')}: {exc}")
        return None

    def _press(self, ev: QMouseEvent) -> None:
        self.finish_drag()
        self._refused = not self._usable()
        if self._refused:
            return
        tev = self._tool_event("press", ev)
        drag = self._run(lambda: self.tool.press(self, tev))
        if drag is not None:
            self._drag = drag
            self._run(lambda: next(drag))  # the press itself (paints the first dab)

    def _move(self, ev: QMouseEvent) -> bool:
        tev = self._tool_event("move", ev)
        self._place_outline(tev.y, tev.x)
        if self._drag is None:
            return self._refused and bool(ev.buttons() & Qt.MouseButton.LeftButton)  # else hover: the readout
        drag = self._drag
        self._run(lambda: drag.send(tev))
        return True

    def _release(self, ev: QMouseEvent) -> None:
        self._refused = False
        drag = self._drag
        if drag is None:
            return
        tev = self._tool_event("release", ev)
        self._run(lambda: drag.send(tev))
        self._drag = None
        drag.close()
        self.strokeFinished.emit()

    def _double(self, ev: QMouseEvent) -> None:
        if not self.tool.wants_double_click:
            self._press(ev)
            return
        if not self._usable():
            return
        tev = self._tool_event("double", ev)
        self._run(lambda: self.tool.double_click(self, tev))

    # ---- the brush outline -------------------------------------------------------------------------
    def _place_outline(self, y: float, x: float) -> None:
        if self.tool.shows_brush(self.settings):
            self.outline.show(y, x, self.settings.radius, self.settings.shape)
        elif self.outline.visible:
            self.outline.hide()

    def _refresh_outline(self) -> None:
        c = self.outline.centre
        if c is not None and self.tool.shows_brush(self.settings):
            self.outline.show(c[0], c[1], self.settings.radius, self.settings.shape)
        else:
            self.outline.hide()

    def _settings_changed(self) -> None:
        self._refresh_outline()
