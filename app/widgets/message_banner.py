"""Messages that stay: banners above the central view, one per problem, until the problem is over
or the user closes them (the status line is for what is happening now; the next message replaces it).

A :class:`BannerArea` holds the window's banners, keyed: showing a message under a key that is
shown already replaces that banner's text, level and buttons in place, so one problem is one
banner however often it is reported. Each :class:`MessageBanner` has a level (info, warning,
error: its colour and icon), the text (selectable, word-wrapped; the full text is also its
tooltip), optional action buttons and, unless the problem is a state the user cannot close
(a read-only project), a close button. Every warning and error shown is also logged.

Use::

    area.show_message("model", "Could not load the model x.pth: ...", ERROR,
                      actions=[BannerAction("Open Model...", window.open_model_dialog)])
    area.dismiss("model")

Which key is used for what, and when each goes away, is app/alerts.py's to decide.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QStyle, QToolButton,
                               QVBoxLayout, QWidget)

log = logging.getLogger("app.messages")

INFO, WARNING, ERROR = "info", "warning", "error"
LEVELS = (INFO, WARNING, ERROR)
# background, border, text: readable on light and dark window themes alike (the banner sets all three)
_COLORS = {INFO: ("#e8f0fe", "#1a73e8", "#174ea6"), WARNING: ("#fef7e0", "#f9ab00", "#5f3b00"),
           ERROR: ("#fce8e6", "#d93025", "#a50e0e")}
_ICONS = {INFO: QStyle.StandardPixmap.SP_MessageBoxInformation, WARNING: QStyle.StandardPixmap.SP_MessageBoxWarning,
          ERROR: QStyle.StandardPixmap.SP_MessageBoxCritical}
_LOG_LEVELS = {INFO: logging.INFO, WARNING: logging.WARNING, ERROR: logging.ERROR}


@dataclass(frozen=True)
class BannerAction:
    """A button on a banner: ``text`` (its label), ``callback`` (called with no argument), ``tip``;
    ``dismiss``: the banner closes when it is clicked."""

    text: str
    callback: Callable[[], object]
    tip: str = ""
    dismiss: bool = False


class MessageBanner(QFrame):
    """One message: icon, text, action buttons, close button."""

    closeRequested = Signal(str)  # key: the user clicked the close button
    actionTriggered = Signal(str, str)  # key, the action's text (after its callback ran)

    def __init__(self, key: str, level: str, text: str, actions: Sequence[BannerAction] = (),
                 closable: bool = True, parent: QWidget | None = None):
        super().__init__(parent)
        self.key = key
        self.setObjectName("messageBanner")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setAutoFillBackground(True)
        self.icon = QLabel()
        self.icon.setFixedSize(QSize(18, 18))
        self.label = QLabel()
        self.label.setObjectName("messageBannerText")
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # long file paths cannot be wrapped: never let them widen the window (they are cut, the tooltip has all)
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.label.setMinimumWidth(80)
        self.buttons_box = QHBoxLayout()
        self.buttons_box.setSpacing(4)
        self.close_button = QToolButton()
        self.close_button.setObjectName("messageBannerClose")
        self.close_button.setAutoRaise(True)
        self.close_button.setText("\u2715")
        self.close_button.setToolTip("Close this message")
        self.close_button.clicked.connect(lambda: self.closeRequested.emit(self.key))
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        lay.setSpacing(8)
        lay.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        lay.addWidget(self.label, 1)
        lay.addLayout(self.buttons_box)
        lay.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self.buttons: dict[str, QPushButton] = {}
        self.actions: list[BannerAction] = []
        self.level = ""
        self.text = ""
        self.update_message(level, text, actions, closable)

    def update_message(self, level: str, text: str, actions: Sequence[BannerAction] = (),
                       closable: bool = True) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown message level {level!r}; levels are {', '.join(LEVELS)}")
        if level != self.level:
            self.level = level
            self.setProperty("level", level)
            bg, border, fg = _COLORS[level]
            self.setStyleSheet(f"QFrame#messageBanner {{ background: {bg}; border: none; border-bottom: 1px solid "
                               f"{border}; border-left: 4px solid {border}; }} QLabel#messageBannerText "
                               f"{{ color: {fg}; }} QToolButton#messageBannerClose {{ color: {fg}; }}")
            self.icon.setPixmap(self.style().standardIcon(_ICONS[level]).pixmap(16, 16))
        if text != self.text:
            self.text = text
            self.label.setText(text)
            self.label.setToolTip(text)
        if [a.text for a in actions] != [a.text for a in self.actions]:  # the same buttons stay (focus, hover)
            while self.buttons_box.count():
                item = self.buttons_box.takeAt(0)
                if item.widget() is not None:
                    item.widget().deleteLater()
            self.buttons = {}
            for i, action in enumerate(actions):
                b = QPushButton(action.text)
                b.setCursor(Qt.CursorShape.PointingHandCursor)
                b.clicked.connect(lambda _=False, i=i: self._triggered(self.actions[i]))
                self.buttons_box.addWidget(b, 0, Qt.AlignmentFlag.AlignTop)
                self.buttons[action.text] = b
        self.actions = list(actions)
        for action in actions:
            self.buttons[action.text].setToolTip(action.tip)
        self.close_button.setVisible(closable)

    @property
    def closable(self) -> bool:
        return not self.close_button.isHidden()

    def _triggered(self, action: BannerAction) -> None:
        action.callback()
        self.actionTriggered.emit(self.key, action.text)
        if action.dismiss:
            self.closeRequested.emit(self.key)


class BannerArea(QWidget):
    """The window's banners, newest last, above the central view (hidden, taking no room, when empty)."""

    shown = Signal(str)  # key: a banner was shown or its message changed
    dismissed = Signal(str)  # key: a banner went (closed by the user, or its problem is over)
    closedByUser = Signal(str)  # key: the user closed it with its close button (then ``dismissed`` follows)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("bannerArea")
        self._banners: dict[str, MessageBanner] = {}
        self._lay = QVBoxLayout(self)
        self._lay.setContentsMargins(0, 0, 0, 0)
        self._lay.setSpacing(0)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.setVisible(False)

    def show_message(self, key: str, text: str, level: str = ERROR, actions: Sequence[BannerAction] = (),
                     closable: bool = True) -> MessageBanner:
        """Show ``text`` under ``key`` (replacing what that key showed); logged unless unchanged."""
        banner = self._banners.get(key)
        if banner is None or (banner.text, banner.level) != (text, level):
            log.log(_LOG_LEVELS.get(level, logging.ERROR), "%s", text)
        if banner is None:
            banner = MessageBanner(key, level, text, actions, closable, self)
            banner.closeRequested.connect(self._close_requested)
            self._banners[key] = banner
            self._lay.addWidget(banner)
            banner.show()  # at once, not on the next pass of the event loop
        else:
            banner.update_message(level, text, actions, closable)
        self.setVisible(True)
        self.shown.emit(key)
        return banner

    def _close_requested(self, key: str) -> None:
        self.closedByUser.emit(key)
        self.dismiss(key)

    def dismiss(self, key: str) -> bool:
        """Take the banner of ``key`` away; False when there was none."""
        banner = self._banners.pop(key, None)
        if banner is None:
            return False
        self._lay.removeWidget(banner)
        banner.hide()
        banner.deleteLater()
        self.setVisible(bool(self._banners))
        self.dismissed.emit(key)
        return True

    def dismiss_where(self, predicate: Callable[[str], bool]) -> None:
        for key in [k for k in self._banners if predicate(k)]:
            self.dismiss(key)

    def banner(self, key: str) -> MessageBanner | None:
        return self._banners.get(key)

    def text(self, key: str) -> str:
        """The text shown under ``key`` ("" when none)."""
        banner = self._banners.get(key)
        return banner.text if banner is not None else ""

    def keys(self) -> list[str]:
        return list(self._banners)

    def __contains__(self, key: object) -> bool:
        return key in self._banners

    def __len__(self) -> int:
        return len(self._banners)
