"""Errors that stay: the banner mechanism (app/widgets/message_banner.py), and the window's use of it
for start-up failures, failed opens, damaged images, files that are not images and folders that
are not projects. Every check goes through the real window (``app.launch.build_window`` for the
start-up cases); buttons are clicked with the mouse."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget

import core
from app.dialogs.class_table import Choice
from app.widgets.message_banner import ERROR, INFO, WARNING, BannerAction, BannerArea
from window_helpers import B


def _args(**kw) -> argparse.Namespace:
    base = {"model": None, "image": None, "project": None, "view": None, "screenshot": None}
    base.update(kw)
    return argparse.Namespace(**base)


@pytest.fixture
def launched(qtbot):
    """``build_window(args)`` as ``python main.py gui ...`` does, closed after the test."""
    from app.launch import build_window

    made = []

    def launch(**kw):
        w = build_window(_args(**kw))
        w.ask = lambda *a: B.Discard
        qtbot.addWidget(w)
        w.show()
        made.append(w)
        return w

    yield launch
    for w in made:
        if w.isVisible():
            w.close()
        assert w.controller.shutdown(20000)


def truncated_jpeg(path: Path) -> Path:
    """A JPEG cut in half with an end marker appended: it decodes, part of it grey."""
    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), (128, 96), interpolation=cv2.INTER_CUBIC)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    data = buf.tobytes()
    path.write_bytes(data[: len(data) // 2] + b"\xff\xd9")
    return path


def test_banners_replace_by_key_have_levels_buttons_and_close(qtbot, caplog):
    host = QWidget()
    area = BannerArea(host)
    QVBoxLayout(host).addWidget(area)
    qtbot.addWidget(host)
    host.show()
    assert not area.isVisible() and len(area) == 0  # empty: hidden, no room taken
    clicked = []
    with caplog.at_level(logging.INFO, logger="app.messages"):
        first = area.show_message("save", "Could not save a.png: disk full", ERROR,
                                  [BannerAction("Save Again", lambda: clicked.append("again"))])
        area.show_message("info", "3 files are not images", INFO)
        assert area.isVisible() and area.keys() == ["save", "info"]
        same = area.show_message("save", "Could not save a.png and b.png: disk full", ERROR,
                                 [BannerAction("Save Again", lambda: clicked.append("again 2"))])
    assert same is first and first.text == "Could not save a.png and b.png: disk full" and len(area) == 2
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.INFO, logging.ERROR]  # errors are logged
    qtbot.mouseClick(first.buttons["Save Again"], Qt.MouseButton.LeftButton)
    assert clicked == ["again 2"]  # the newest callback of the same button
    warn = area.show_message("state", "read-only", WARNING, closable=False)
    assert not warn.closable and warn.level == WARNING
    qtbot.mouseClick(first.close_button, Qt.MouseButton.LeftButton)
    assert "save" not in area and area.keys() == ["info", "state"]
    dismissing = area.show_message("x", "once", INFO, [BannerAction("OK", lambda: None, dismiss=True)])
    qtbot.mouseClick(dismissing.buttons["OK"], Qt.MouseButton.LeftButton)
    assert "x" not in area
    assert area.dismiss("info") and area.dismiss("state") and not area.dismiss("state")
    assert not area.isVisible()
    with pytest.raises(ValueError, match="level"):
        area.show_message("bad", "text", "fatal")


def test_start_up_with_a_damaged_jpeg_warns_until_another_image_is_shown(qtbot, launched, tiny_ckpt, scenes, tmp_path):
    bad = truncated_jpeg(tmp_path / "truncated.jpg")
    w = launched(image=str(bad), model=[str(tiny_ckpt)])
    qtbot.waitUntil(lambda: w.controller.outcome is not None, timeout=30000)
    banner = w.banners.banner("image damaged")
    assert banner is not None and banner.isVisible() and banner.level == WARNING
    assert "truncated.jpg" in banner.text and "part of the image may be missing" in banner.text
    assert "premature end of data segment" in banner.text
    assert "Predicted" in w.info.text()  # the status line moved on; the warning stays
    w.controller.open_image(scenes / "images" / "scene_0000.png")
    qtbot.waitUntil(lambda: w.controller.image.path.name == "scene_0000.png", timeout=20000)
    assert "image damaged" not in w.banners  # it was that image's warning
    w.controller.open_image(bad)
    qtbot.waitUntil(lambda: "image damaged" in w.banners, timeout=20000)


def test_start_up_failures_stay_in_banners(qtbot, launched, tiny_ckpt, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    bad_model = tmp_path / "bad.pth"
    bad_model.write_bytes(b"not a checkpoint at all")
    project = tmp_path / "damaged"
    core.write_demo_project(project, n_train=1, n_val=0, size=(48, 64), seed=0)
    meta = {"format": "pspnet-studio-project", "version": "x", "name": "damaged", "classes": "classes.json"}
    (project / "project.json").write_text(json.dumps(meta))
    w = launched(image=str(broken), model=[str(bad_model)], project=str(project))
    qtbot.waitUntil(lambda: "model" in w.banners and "open image" in w.banners, timeout=30000)
    assert "bad.pth" in w.banners.text("model")
    assert "broken.jpg" in w.banners.text("open image")
    folder_key = f"open folder:{project}"
    assert "project.json" in w.banners.text(folder_key) and "version" in w.banners.text(folder_key)
    w.show_message("later messages replace the status line")
    assert {"model", "open image", folder_key} <= set(w.banners.keys())
    # a model that loads takes the model's failure away; the others stay until closed
    w.open_model(tiny_ckpt)
    qtbot.waitUntil(lambda: "model" not in w.banners, timeout=30000)
    assert "open image" in w.banners and folder_key in w.banners
    qtbot.mouseClick(w.banners.banner("open image").close_button, Qt.MouseButton.LeftButton)
    assert "open image" not in w.banners


def test_a_folder_without_a_class_table_says_so_and_offers_the_chooser(qtbot, launched, scenes, tmp_path,
                                                                        monkeypatch):
    from app.project_ui import ProjectUi

    root = tmp_path / "no_classes"
    shutil.copytree(scenes, root)
    (root / "classes.json").unlink()
    table = core.ClassTable.load(scenes / "classes.json")
    answers = iter([(None, False), (Choice("file", "the scenes' classes", table), False)])  # cancel, then a table
    asked = []
    monkeypatch.setattr(ProjectUi, "choose_classes", lambda self, req: (asked.append(req.root), next(answers))[1])
    w = launched(project=str(root))
    key = f"open folder:{root}"
    qtbot.waitUntil(lambda: key in w.banners, timeout=20000)
    assert asked == [root]  # asked at once; the user cancelled: the banner stays and says why
    assert "classes.json" in w.banners.text(key) and "class table" in w.banners.text(key)
    assert w.controller.folder is None or not w.controller.folder.is_project
    button = w.banners.banner(key).buttons["Choose Class Table..."]
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert asked == [root, root]
    qtbot.waitUntil(lambda: w.editor.project is not None and w.controller.folder.is_project, timeout=20000)
    assert key not in w.banners and (root / "classes.json").is_file()


def test_a_plain_folder_given_as_project_says_it_is_not_one(qtbot, launched, scenes, tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for name in ("scene_0000.png", "scene_0001.png"):
        shutil.copy(scenes / "images" / name, root / name)
    (root / "notes.jpg").write_text("shopping list, not a photo")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    w = launched(project=str(root))
    qtbot.waitUntil(lambda: w.controller.folder is not None, timeout=20000)
    banner = w.banners.banner("folder")  # app/project_ui.py's note: plain images, not a project
    assert banner is not None and banner.level == INFO and "not a project" in banner.text
    assert "Make a project of them..." in banner.buttons
    # files that are not images are not in the list, and the window says which
    assert [e.path.name for e in w.controller.folder.entries] == ["scene_0000.png", "scene_0001.png"]
    assert w.image_list.list.count() == 2
    skipped = w.banners.text("skipped")
    assert "2 file(s)" in skipped and "notes.jpg" in skipped and "broken.png" in skipped
