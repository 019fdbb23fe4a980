"""What the window is doing on the first start: a card over the central view while the demo
project is written (a few seconds), with the scene being written and a progress bar.

The work runs in a worker (app/demo.py's DemoLauncher); the window stays usable, and the card
goes away when the demo project is open. A later start finds the project and shows nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QFrame, QLabel, QProgressBar, QVBoxLayout, QWidget

import core

if TYPE_CHECKING:  # pragma: no cover
    from app.demo import DemoLauncher

CARD_WIDTH = 380


class StartupProgress(QFrame):
    """A card centred over ``host`` (it follows the host's size)."""

    def __init__(self, host: QWidget):
        super().__init__(host)
        self.host = host
        self.setObjectName("startupProgress")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setStyleSheet("#startupProgress { background: palette(window); border: 1px solid palette(mid);"
                           " border-radius: 6px; }")
        self.title = QLabel("<b>Preparing the demo project</b>")
        self.detail = QLabel("")
        self.detail.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 100)
        self.bar.setTextVisible(True)
        self.where = QLabel("")
        self.where.setWordWrap(True)
        self.where.setStyleSheet("color: #5f6368;")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(16, 12, 16, 12)
        lay.addWidget(self.title)
        lay.addWidget(self.detail)
        lay.addWidget(self.bar)
        lay.addWidget(self.where)
        self.hide()
        host.installEventFilter(self)

    def follow(self, demo: "DemoLauncher") -> None:
        """Show the demo launcher's progress while it writes the demo project."""
        demo.preparing.connect(self.report)
        demo.prepared.connect(self.finish)
        self.where.setText(f"First start only: the demo's images and labels go into {demo.project_dir}. "
                           "The window can be used meanwhile.")

    def report(self, rec: core.Progress) -> None:
        text = rec.message or "writing the demo project"
        self.detail.setText(text[:1].upper() + text[1:] + " ...")
        if rec.fraction is None:
            self.bar.setRange(0, 0)  # busy
        else:
            self.bar.setRange(0, 100)
            self.bar.setValue(int(round(100 * rec.fraction)))
        if not self.isVisible():
            self.show()
            self.raise_()
        self._place()

    def finish(self) -> None:
        self.hide()

    def _place(self) -> None:
        host = self.host.rect()
        w = min(CARD_WIDTH, max(200, host.width() - 24))
        h = self.layout().totalHeightForWidth(w) if self.layout().hasHeightForWidth() else self.sizeHint().height()
        self.setGeometry(host.center().x() - w // 2, host.center().y() - h // 2, w, h)

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:  # noqa: N802 (Qt name)
        if obj is self.host and ev.type() == QEvent.Type.Resize and self.isVisible():
            self._place()
        return False


__all__ = ["StartupProgress"]
