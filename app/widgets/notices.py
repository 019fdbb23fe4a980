"""Notes that stay above the views until they no longer apply (or are closed): what the demo
model knows, why painting is off, how a folder was opened. Unlike the status line, the next
message does not replace them. Each has a key (one note per key), a text, buttons for what to
do about it, and, when it may be dismissed, a close button.

(Issue 12's shared error banner may take these over at merge time: this module is the one place
that shows them.)
"""

from __future__ import annotations

from typing import Callable, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFrame, QGridLayout, QHBoxLayout, QLabel, QMainWindow, QPushButton, QSizePolicy, QToolButton,
                               QVBoxLayout, QWidget)

STYLES = {
    "info": "QFrame#notice { background: #e8f0fe; border: 1px solid #a8c7fa; border-radius: 4px; }",
    "warning": "QFrame#notice { background: #fef7e0; border: 1px solid #f9ab00; border-radius: 4px; }",
    "error": "QFrame#notice { background: #fce8e6; border: 1px solid #ee675c; border-radius: 4px; }",
}

Action = tuple[str, Callable[[], object]]


class Notice(QFrame):
    """One note: text, buttons, and a close button when ``closable``."""

    closed = Signal(str)  # its key, when the user closed it

    def __init__(self, key: str, text: str, actions: Sequence[Action] = (), kind: str = "info",
                 closable: bool = True, parent: QWidget | None = None):
        super().__init__(parent)
        self.key = key
        self.kind = kind
        self.setObjectName("notice")
        self.setStyleSheet(STYLES.get(kind, STYLES["info"]))
        self.label = QLabel(text)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.label.setMinimumWidth(200)
        grid = QGridLayout(self)
        grid.setContentsMargins(8, 4, 4, 4)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(2)
        grid.addWidget(self.label, 0, 0)
        self.buttons: dict[str, QPushButton] = {}
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        for title, slot in actions:
            b = QPushButton(title)
            b.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
            b.clicked.connect(lambda _=False, s=slot: s())
            row.addWidget(b)
            self.buttons[title] = b
        row.addStretch(1)
        if actions:
            grid.addLayout(row, 1, 0)  # under the text: the text keeps the width
        self.close_button: QToolButton | None = None
        if closable:
            x = QToolButton()
            x.setText("\u00d7")
            x.setToolTip("Close this note")
            x.setAutoRaise(True)
            x.clicked.connect(self._close)
            grid.addWidget(x, 0, 1, Qt.AlignmentFlag.AlignTop)
            self.close_button = x

    @property
    def text(self) -> str:
        return self.label.text()

    def _close(self) -> None:
        self.hide()
        self.closed.emit(self.key)


class NoticeArea(QWidget):
    """The notes above the window's central widget (see :meth:`install`)."""

    closed = Signal(str)  # a note's key, when the user closed it

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.lay = QVBoxLayout(self)
        self.lay.setContentsMargins(4, 4, 4, 0)
        self.lay.setSpacing(4)
        self.notices: dict[str, Notice] = {}
        self.setVisible(False)

    @classmethod
    def install(cls, window: QMainWindow) -> "NoticeArea":
        """Put a notice area above ``window``'s central widget (which stays what it was, inside)."""
        area = cls()
        central = window.takeCentralWidget()
        holder = QWidget()
        lay = QVBoxLayout(holder)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(area)
        if central is not None:
            lay.addWidget(central, 1)
        window.setCentralWidget(holder)
        return area

    def show_notice(self, key: str, text: str, actions: Sequence[Action] = (), kind: str = "info",
                    closable: bool = True) -> Notice:
        """Show (or replace) the note ``key``."""
        self.hide_notice(key)
        notice = Notice(key, text, actions, kind, closable, self)
        notice.closed.connect(self._closed)
        self.notices[key] = notice
        self.lay.addWidget(notice)
        self.setVisible(True)
        return notice

    def hide_notice(self, key: str) -> None:
        notice = self.notices.pop(key, None)
        if notice is not None:
            notice.hide()
            notice.deleteLater()
        self.setVisible(bool(self.notices))

    def notice(self, key: str) -> Notice | None:
        """The note ``key`` when it is shown."""
        n = self.notices.get(key)
        return n if n is not None and not n.isHidden() else None

    def _closed(self, key: str) -> None:
        self.hide_notice(key)
        self.closed.emit(key)
