"""Write failures reach the user, truthfully, with a real refusal from the kernel: this process's file
size limit (RLIMIT_FSIZE) is cut to a few bytes while the window runs, so every write past it fails
(EFBIG, as a full disk fails with ENOSPC), the journal's writer thread and the mask saves included.

A save that fails while the journal holds the edits says they are in the journal (and they are, on
disk); once the journal fails too, a persistent warning says crash protection is off for that image
(naming the file) and the save's message says the edits are in memory only (and they are); when the
disk takes writes again the journal retries, the warning goes, and Save Again saves."""

from __future__ import annotations

import contextlib
import resource
import signal
import sys

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QToolButton

import core
from window_helpers import mouse_drag, open_project

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")


@contextlib.contextmanager
def full_disk():
    """Every write past 8 bytes of a file fails (EFBIG) in this process until the block ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a refused write returns EFBIG instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (8, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)


def _journalled(project, name, shape) -> np.ndarray:
    """What the crash journal on disk would give back after a crash (the saved mask is empty here)."""
    journal = core.StrokeJournal(project / "masks" / f".{name}.journal")
    replayed, _n = journal.replay(np.full(shape, 255, np.uint8))
    return replayed


def test_a_full_disk_shows_where_the_edits_are_and_the_journal_warning_until_it_works(qtbot, window, tiny_ckpt,
                                                                                    project):
    ed = window.editor
    ed.autosave.setInterval(3_600_000)  # saves happen when the test clicks
    mask = open_project(qtbot, window, tiny_ckpt, project)
    window.act.tools["brush"].trigger()
    window.tool_settings.label = 3
    mouse_drag(window, [(10, 10), (40, 20)])
    assert ed.project.flush_journals(10)
    first = mask.data.copy()
    mpath = project / "masks" / "scene_0000.png"
    assert not mpath.exists()
    try:
        with full_disk():
            # 1. the save fails; the journal has every edit on disk: the message says so, and it is true
            save_button = next(b for b in window.tool_panel.findChildren(QToolButton)
                               if b.defaultAction() is window.act.save_masks)
            with qtbot.waitSignal(ed.saveFailuresChanged, timeout=10000):
                qtbot.mouseClick(save_button, Qt.MouseButton.LeftButton)
            text = window.banners.text("save")
            assert str(mpath) in text and "File too large" in text
            assert "crash journal .scene_0000.journal" in text and "memory only" not in text
            np.testing.assert_array_equal(_journalled(project, "scene_0000", mask.shape), first)
            assert "journal" not in window.banners and not mpath.exists()

            # 2. a new stroke cannot be journalled: crash protection is off, persistently, and the save says
            # the edits are in memory only (true: the journal on disk lacks the new stroke)
            with qtbot.waitSignal(ed.journals.problemsChanged, timeout=10000):
                mouse_drag(window, [(60, 50), (90, 70)])
            warning = window.banners.banner("journal")
            assert warning is not None and warning.isVisible() and warning.level == "warning"
            journal_file = project / "masks" / ".scene_0000.journal"
            assert "Crash protection is off for scene_0000" in warning.text and str(journal_file) in warning.text
            assert "memory only" in window.banners.text("save")
            assert "crash journal .scene_0000.journal cannot be written either" in window.banners.text("save")
            assert not np.array_equal(_journalled(project, "scene_0000", mask.shape), mask.data)
            with qtbot.waitSignal(ed.saveFailuresChanged, timeout=10000):
                qtbot.mouseClick(window.banners.banner("save").buttons["Save Again"], Qt.MouseButton.LeftButton)
            assert "memory only" in window.banners.text("save") and not mpath.exists()
            window.show_message("something else happens")  # the status line moves on; the banners stay
            assert "journal" in window.banners and "save" in window.banners and mask.dirty
        # 3. the disk takes writes again: the journal retries on its own and the warning goes
        qtbot.waitUntil(lambda: "journal" not in window.banners, timeout=30000)
        assert "Crash protection works again" in window.info.text()
        np.testing.assert_array_equal(_journalled(project, "scene_0000", mask.shape), mask.data)
        assert "crash journal .scene_0000.journal" in window.banners.text("save")  # true again
        with qtbot.waitSignal(ed.saved, timeout=10000):
            qtbot.mouseClick(window.banners.banner("save").buttons["Save Again"], Qt.MouseButton.LeftButton)
        assert "save" not in window.banners and not mask.dirty
        classes = core.ClassTable.load(project / "classes.json")
        np.testing.assert_array_equal(core.read_mask(mpath, classes), mask.data)
    finally:
        ed.saver.wait(10000)
