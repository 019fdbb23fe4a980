"""One writer per project, through the real window: a project that another process holds asks (a
real dialog, real clicks) whether to open it read-only or not at all; a read-only project says so
(title, banner, disabled tools with the reason), shows its saved masks, refuses painting with the
reason and writes nothing; a lock from another computer can be taken over; a folder that cannot be
written opens read-only with the reason; a project the window leaves is closed (its lock goes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

import core
from core.project_lock import LOCK_FILE
from app.widgets.project_locked_dialog import ProjectLockedDialog
from window_helpers import mouse_drag
from tests.core.child_process import read_line as _line, spawn

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")

_HOLDER = """
    import sys
    from core.project import Project
    p = Project.open(sys.argv[1])
    m = p.load_mask("scene_0000")
    m.paint((5, 5), 1, radius=3)  # an unsaved stroke: in the holder's journal only
    assert p.flush_journals(30)
    print("ready", flush=True)
    sys.stdin.readline()  # hold the project until told
    p.close()
    print("closed", flush=True)
"""

_OPENER = """
    import sys
    from core.project import Project
    try:
        Project.open(sys.argv[1]).close()
    except Exception as exc:
        print(type(exc).__name__, flush=True)
    else:
        print("opened", flush=True)
"""


def _spawn(tmp_path: Path, code: str, *args: str) -> subprocess.Popen:
    return spawn(tmp_path, code, *args)


def _release(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert _line(proc) == "closed"
    proc.wait(30)


def _files(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _opened_elsewhere(tmp_path: Path, root: Path) -> str:
    """Whether another process can open the project for writing now."""
    proc = _spawn(tmp_path, _OPENER, str(root))
    try:
        return _line(proc)
    finally:
        proc.wait(30)


def click_in_dialog(qtbot, button_text: str, seen: list) -> None:
    """When the project-locked dialog shows (modal, in its own event loop), click ``button_text``."""
    tries = [0]

    def attempt() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ProjectLockedDialog):
            tries[0] += 1
            if tries[0] < 500:
                QTimer.singleShot(20, attempt)
            return
        seen.append({"text": dialog.text(), "info": dialog.informativeText(),
                     "buttons": [b.text() for b in dialog.buttons()]})
        button = next(b for b in dialog.buttons() if b.text() == button_text)
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, attempt)


@pytest.fixture
def saved_masks(project, scenes) -> Path:
    """The project with a saved mask of scene_0001 (to be seen read-only)."""
    classes = core.ClassTable.load(project / "classes.json")
    gt = core.read_mask(scenes / "masks" / "scene_0001.png", classes)
    core.write_mask(project / "masks" / "scene_0001.png", gt, classes)
    return project


def _wait_project(qtbot, window, name="scene_0000"):
    qtbot.waitUntil(lambda: window.controller.image is not None and window.controller.image.path.stem == name
                    and window.editor.name == name, timeout=20000)


def test_a_project_held_by_another_process_opens_read_only_after_a_click(qtbot, window, tiny_ckpt, saved_masks,
                                                                        tmp_path):
    root = saved_masks
    holder = _spawn(tmp_path, _HOLDER, str(root))
    try:
        assert _line(holder) == "ready"
        before = _files(root)
        window.open_model(tiny_ckpt)
        seen: list = []
        click_in_dialog(qtbot, "Open Read-Only", seen)
        window.open_folder(root)  # the dialog runs (modal) until the click
        assert len(seen) == 1
        assert f"pid {holder.pid}" in seen[0]["text"] and "open for writing in another program" in seen[0]["text"]
        assert "Take Over the Lock" not in seen[0]["buttons"]  # a live lock is never offered for taking over
        assert {"Open Read-Only", "Don't Open"} <= set(seen[0]["buttons"])
        _wait_project(qtbot, window)
        ed, c = window.editor, window.controller
        assert c.folder.read_only and ed.project.read_only
        # read-only, persistently: the title, a banner that cannot be closed, the tools disabled with the reason
        assert "(read-only)" in window.windowTitle() and root.name in window.windowTitle()
        banner = window.banners.banner("read-only")
        assert banner is not None and banner.isVisible() and not banner.closable
        assert f"pid {holder.pid}" in banner.text
        for name in ("brush", "eraser", "fill", "polygon", "lasso", "accept"):
            act = window.act.tools[name]
            assert not act.isEnabled() and "read-only" in act.toolTip() and f"pid {holder.pid}" in act.toolTip()
            assert not window.tool_panel.buttons[name].isEnabled()
        assert window.act.tools["pan"].isEnabled() and window.act.tools["picker"].isEnabled()
        assert not window.act.retrain.isEnabled() and not window.act.save_masks.isEnabled()
        assert "read-only project" in window.tool_panel.state.text()
        # the brush's shortcut does nothing; painting anyway is refused with the reason
        qtbot.keyClick(window.seg.canvas, Qt.Key.Key_B)
        assert window.canvas_tools.tool.name == "pan"
        window.canvas_tools.set_tool("brush")
        mouse_drag(window, [(10, 10), (40, 40)])
        assert "cannot be edited" in window.info.text() and f"pid {holder.pid}" in window.info.text()
        assert ed.mask is None and not ed.dirty and ed.save_dirty() == [] and ed.save_all() is None
        # the masks are readable masks of a read-only project, not "unreadable masks"
        entries = {e.path.stem: e.mask_state for e in c.folder.entries}
        assert entries["scene_0001"] == core.MASK and core.UNREADABLE not in entries.values()
        window.image_list.list.setFocus()
        item_rect = window.image_list.list.visualItemRect(window.image_list.list.item(window.image_list.row_of(1)))
        qtbot.mouseClick(window.image_list.list.viewport(), Qt.MouseButton.LeftButton, pos=item_rect.center())
        _wait_project(qtbot, window, "scene_0001")
        saved = core.read_mask(root / "masks" / "scene_0001.png", core.ClassTable.load(root / "classes.json"))
        np.testing.assert_array_equal(window.seg.mask_layer.data, saved)  # its saved mask is shown
        assert c.folder.entries[1].mask_state == core.MASK
        # a retrain is refused with the reason
        with qtbot.waitSignal(window.retrainer.failed, timeout=5000) as blocker:
            window.retrainer.start()
        assert "read-only" in blocker.args[0] and f"pid {holder.pid}" in blocker.args[0]
        ed.saver.wait(10000)
        assert _files(root) == before  # nothing was written, moved or deleted: the journal is the holder's

        # the other program closes it (its unsaved stroke stays in its journal): "Reopen for Writing" (a real
        # click on the banner) opens it for writing, and the stroke the other program left is offered back
        _release(holder)
        asked = []
        window.ask = lambda title, text, *a: asked.append(text) or QMessageBox.StandardButton.Yes
        qtbot.mouseClick(banner.buttons["Reopen for Writing"], Qt.MouseButton.LeftButton)
        assert len(asked) == 1 and "scene_0000" in asked[0]
        assert ed.last_recovered == ["scene_0000"]
        assert ed.masks["scene_0000"].data[5, 5] == 1  # the holder's stroke
        window.controller.open_index(0)
        qtbot.waitUntil(lambda: window.editor.mask is not None, timeout=20000)
        assert not c.folder.read_only and "read-only" not in window.banners
        assert window.act.tools["brush"].isEnabled() and "read-only" not in window.act.tools["brush"].toolTip()
        assert "(read-only)" not in window.windowTitle()
        assert _opened_elsewhere(tmp_path, root) == "ProjectLockedError"  # this window holds it now
    finally:
        _release(holder)


def test_dont_open_leaves_everything_as_it_was(qtbot, window, tiny_ckpt, project, scenes, tmp_path):
    window.open_model(tiny_ckpt)
    window.open_folder(scenes)
    _wait_project(qtbot, window)
    previous = window.controller.folder
    holder = _spawn(tmp_path, _HOLDER, str(project))
    try:
        assert _line(holder) == "ready"
        before = _files(project)
        seen: list = []
        click_in_dialog(qtbot, "Don't Open", seen)
        window.open_folder(project)
        assert len(seen) == 1
        assert window.controller.folder is previous and window.editor.project is previous.project
        assert "not opened" in window.info.text() and f"pid {holder.pid}" in window.info.text()
        assert _files(project) == before
        # an image of that project, opened on its own, asks too; "Don't Open" opens neither
        click_in_dialog(qtbot, "Don't Open", seen)
        assert window.controller.open_image(project / "images" / "scene_0002.png") is None
        assert len(seen) == 2 and window.controller.folder is previous
        assert window.controller.image.path.parent == scenes / "images"
    finally:
        _release(holder)


def test_a_lock_from_another_computer_can_be_taken_over_with_a_warning(qtbot, window, tiny_ckpt, project):
    lock = project / LOCK_FILE
    lock.write_text(json.dumps({"pid": 4242, "host": "render-farm-7", "time": "2025-01-01T00:00:00+00:00",
                                "program": "main.py gui", "boot": "another-boot-id", "start": 1, "token": "abc"}))
    window.open_model(tiny_ckpt)
    seen: list = []
    click_in_dialog(qtbot, "Take Over the Lock", seen)
    window.open_folder(project)
    assert len(seen) == 1
    assert "render-farm-7" in seen[0]["text"] and "cannot be told" in seen[0]["info"]
    assert "lose" in seen[0]["info"]  # the warning: what taking over costs if that program still runs
    assert "Open Read-Only" in seen[0]["buttons"] and "Don't Open" in seen[0]["buttons"]
    qtbot.waitUntil(lambda: window.editor.mask is not None, timeout=20000)
    assert not window.controller.folder.read_only
    holder = core.Project.lock_holder(project)
    assert holder is not None and holder.pid == os.getpid()
    assert "read-only" not in window.banners


def _make_unwritable(folder: Path) -> "callable | None":
    """Make ``folder`` unwritable for this process for real: permissions, or (as root, whom permissions do
    not stop) a read-only bind mount. Returns the undo, or None when neither works here."""
    os.chmod(folder, 0o555)
    probe = folder / ".probe"
    try:
        probe.touch()
    except OSError:
        return lambda: os.chmod(folder, 0o755)
    probe.unlink()
    os.chmod(folder, 0o755)
    try:
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        subprocess.run(["umount", str(folder)], capture_output=True)
        return None
    return lambda: subprocess.run(["umount", str(folder)], check=True, capture_output=True)


def test_a_folder_that_cannot_be_written_opens_read_only_with_the_reason(qtbot, window, tiny_ckpt, saved_masks):
    root = saved_masks
    undo = _make_unwritable(root)
    if undo is None:
        pytest.skip("cannot make a folder unwritable here (root without mount)")
    try:
        before = _files(root)
        window.open_model(tiny_ckpt)
        window.open_folder(root)  # no question: there is no other writer, the folder just cannot be written
        _wait_project(qtbot, window)
        assert QApplication.activeModalWidget() is None
        reason = window.editor.read_only_reason
        assert "cannot be written" in reason
        assert window.controller.folder.read_only and "(read-only)" in window.windowTitle()
        assert reason in window.banners.text("read-only")
        assert not window.act.tools["brush"].isEnabled()
        assert window.controller.folder.entries[1].mask_state == core.MASK
        assert "open folder" not in window.banners  # it opened: no failure to report
        window.editor.saver.wait(10000)
        assert _files(root) == before
    finally:
        undo()


def test_a_project_the_window_leaves_is_closed_and_its_lock_goes(qtbot, window, tiny_ckpt, project, scenes, tmp_path):
    window.open_model(tiny_ckpt)
    window.open_folder(project)
    qtbot.waitUntil(lambda: window.editor.mask is not None, timeout=20000)
    first = window.editor.project
    window.open_folder(project)  # opened again: the same project, held once
    assert window.editor.project is first
    assert _opened_elsewhere(tmp_path, project) == "ProjectLockedError"
    window.act.tools["brush"].trigger()
    mouse_drag(window, [(10, 10), (50, 30)])
    painted = window.editor.mask.data.copy()
    window.open_folder(scenes)  # leaving it saves the mask, then closes the project
    qtbot.waitUntil(lambda: first.closed, timeout=20000)
    assert _opened_elsewhere(tmp_path, project) == "opened"
    saved = core.read_mask(project / "masks" / "scene_0000.png", core.ClassTable.load(project / "classes.json"))
    np.testing.assert_array_equal(saved, painted)
