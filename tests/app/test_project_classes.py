"""Projects with their own classes, through the window: the class-table chooser (built-in
tables, the model's, a file, a list edited here), New Project with it; painting refused with a
note that stays while the model predicts another table, nothing of the model's output written
into a mask (brush, accept tool, accept everywhere); the model adapted to the project's classes
and retrained; a project whose classes.json is missing or damaged, and a folder of images/
without one, opened through the chooser (or as plain images); classes added later with every
mask still valid."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

import core
from app.controllers.retrainer import RetrainOptions
from app.dialogs.class_table import Choice, ClassTableDialog, EditClassesDialog
from window_helpers import mouse_drag, open_project

LEFT = Qt.MouseButton.LeftButton
B = QMessageBox.StandardButton


def test_the_chooser_offers_every_kind_of_table(qtbot, tmp_path):
    model = core.ClassTable.from_names(["sky", "road", "car"], "mine")
    dlg = ClassTableDialog(model_classes=model)
    qtbot.addWidget(dlg)
    dlg.show()
    assert list(dlg.options) == ["ade20k", "voc", "cityscapes", "model", "file", "new"]
    assert dlg.selected == "model" and dlg.preview.count() == 3  # the model's table first, when there is a model
    for key, n in (("ade20k", 150), ("voc", 21), ("cityscapes", 19)):
        qtbot.mouseClick(dlg.options[key], LEFT, pos=dlg.options[key].rect().center())
        assert dlg.selected == key and dlg.preview.count() == n and dlg.ok.isEnabled()
    assert dlg.preview.item(0).text() == "0: road"  # Cityscapes
    # a file: a good one, then a damaged one (refused, with the reason)
    good = tmp_path / "classes.json"
    core.ClassTable.from_names(["a", "b"]).save(good)
    assert dlg.load_file(str(good)) and dlg.selected == "file" and dlg.ok.isEnabled() and dlg.preview.count() == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert not dlg.load_file(str(bad))
    assert "cannot read class table" in dlg.status.text() and not dlg.ok.isEnabled()
    # a new list, edited here
    qtbot.mouseClick(dlg.options["new"], LEFT, pos=dlg.options["new"].rect().center())
    ed = dlg.editor
    assert dlg.stack.currentWidget() is ed and ed.names() == ["background", "object"]
    qtbot.mouseClick(ed.add_button, LEFT)
    ed.set_name(2, "kite")
    ed.set_color(2, (1, 2, 3))
    ed.set_name(1, "background")
    assert "same name" in dlg.status.text() and not dlg.ok.isEnabled()
    ed.set_name(1, "person")
    assert dlg.ok.isEnabled()
    qtbot.mouseClick(dlg.ok, LEFT)
    assert dlg.result() and dlg.choice.key == "new"
    assert dlg.choice.table.names == ("background", "person", "kite") and dlg.choice.table.colors[2] == (1, 2, 3)
    # for photos, New Project starts from a real table rather than the demo model's
    other = ClassTableDialog(model_classes=core.SYNTHETIC_CLASSES, default="ade20k")
    qtbot.addWidget(other)
    assert other.selected == "ade20k" and other.choice is None


def test_the_chooser_refuses_a_table_too_small_for_the_masks(qtbot):
    calls = []
    dlg = ClassTableDialog(allow_plain=True, mask_ids=lambda cb: calls.append(cb))
    qtbot.addWidget(dlg)
    assert "Reading the class ids" in dlg.status.text()
    calls[0](20)  # the masks use ids up to 20
    dlg.select("cityscapes")  # 19 classes
    assert not dlg.ok.isEnabled() and "at least 21" in dlg.status.text()
    dlg.select("voc")  # 21
    assert dlg.ok.isEnabled() and "up to 20" in dlg.status.text()
    qtbot.mouseClick(dlg.plain_button, LEFT)
    assert dlg.plain and dlg.choice is None


def _paintable(window) -> bool:
    return window.canvas_tools.mask is not None


def test_new_project_with_voc_classes_refuses_the_models_ids_until_the_model_is_adapted(
        qtbot, window, tiny_ckpt, scenes, tmp_path, monkeypatch):
    window.ask = lambda *a: B.Discard
    voc = core.ClassTable.builtin("voc")
    window.project_ui.new_project_choice = lambda: Choice("voc", "the PASCAL VOC class table", voc)
    images = [scenes / "images" / n for n in ("scene_0000.png", "scene_0001.png")]
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", staticmethod(lambda *a, **k: ([str(p) for p in images], "")))
    root = tmp_path / "voc-project"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(root)))
    window.open_model(tiny_ckpt)  # the demo's 10 classes
    qtbot.waitUntil(lambda: window.controller.loaded is not None, timeout=20000)
    window.act.new_project.trigger()
    ed, c = window.editor, window.controller
    qtbot.waitUntil(lambda: ed.project is not None and ed.mask is not None and c.outcome is not None, timeout=30000)
    assert core.ClassTable.load(root / "classes.json") == voc and ed.project.classes == voc
    # the note stays above the image; the tools have nothing to paint in
    notes = window.banners
    note = notes.banner("classes")
    assert note is not None and note.isVisible() and not note.closable
    assert "Painting is off" in note.text and "10 classes" in note.text and "21 classes" in note.text
    window.show_message("another message")
    assert notes.banner("classes") is note
    assert not _paintable(window)
    for tool in ("brush", "accept", "fill"):
        window.act.tools[tool].trigger()
        mouse_drag(window, [(10, 10), (60, 40)])
        assert "cannot be edited" in window.info.text() and "classes" in window.info.text()
    window.act.accept_all.trigger()
    assert "another class table" in window.info.text()
    assert ed.prediction() is None
    assert not ed.mask.dirty and (ed.mask.data == 255).all()
    assert not (root / "masks" / "scene_0000.png").exists()
    assert "differ" in window.retrainer.problem()

    # adapt the model (from the note): it predicts the project's 21 classes and joins the history
    with qtbot.waitSignal(c.opening.adapted, timeout=30000) as blocker:
        qtbot.mouseClick(note.buttons["Adapt this model to the project's classes"], LEFT)
    out = blocker.args[0]
    qtbot.waitUntil(lambda: c.loaded is out.loaded, timeout=20000)
    assert c.loaded.classes == voc and c.loaded.model.cfg.num_classes == 21
    entry = ed.project.current_checkpoint
    assert entry is not None and c.loaded.sources == [entry.path] and "21 classes" in entry.note
    assert out.kept == ["boat", "car"]  # the synthetic classes that are VOC classes keep their training
    assert notes.banner("classes") is None and _paintable(window)
    # painting works now, in the project's ids, and it retrains on them
    qtbot.waitUntil(lambda: c.outcome is not None and c.predictor.model is c.loaded.model, timeout=20000)
    window.act.tools["brush"].trigger()
    window.tool_settings.label = voc.names.index("cat")
    mouse_drag(window, [(10, 10), (100, 60)])
    assert ed.mask.dirty and (ed.mask.data == voc.names.index("cat")).any()
    window.retrain_panel.set_options(RetrainOptions(steps=2, lr=0.01, batch=2, crop=0, freeze_backbone=True,
                                                    cache_features=True))
    with qtbot.waitSignal(window.retrainer.finished, timeout=60000) as blocker:
        window.act.retrain.trigger()
    assert [e.id for e in ed.project.checkpoints()] == ["0001", "0002"]
    assert blocker.args[0].loaded.classes == voc
    saved = core.read_mask(root / "masks" / "scene_0000.png", voc)
    assert (saved == voc.names.index("cat")).any()


def test_a_missing_or_damaged_class_table_is_chosen_again(qtbot, window, tiny_ckpt, corrected):
    window.ask = lambda *a: B.Discard
    before = {n: (corrected / "masks" / f"{n}.png").read_bytes() for n in ("scene_0001", "scene_0002")}
    table = core.ClassTable.load(corrected / "classes.json")
    (corrected / "classes.json").unlink()
    asked = []

    def choose(request):
        asked.append(request)
        return Choice("file", "the saved class table", table), False

    window.project_ui.choose_classes = choose
    window.open_model(tiny_ckpt)
    result = window.open_folder(corrected)
    assert result.state == "classes" and len(asked) == 1
    req = asked[0]
    assert req.is_project and not req.damaged and "missing" in str(req.error)
    ed = window.editor
    qtbot.waitUntil(lambda: ed.project is not None and ed.mask is not None, timeout=20000)
    assert core.ClassTable.load(corrected / "classes.json") == table
    assert {n: (corrected / "masks" / f"{n}.png").read_bytes() for n in before} == before
    note = window.banners.banner("folder")
    assert note is not None and "with the saved class table (10 classes)" in note.text
    assert window.banners.banner("classes") is None  # the model's classes are the project's


def test_a_damaged_table_is_kept_beside_the_chosen_one(qtbot, window, corrected):
    (corrected / "classes.json").write_text('{"classes": [{"name": 3}]}')
    table = core.SYNTHETIC_CLASSES
    seen = []
    window.project_ui.choose_classes = lambda req: (seen.append(req), (Choice("file", "x", table), False))[1]
    window.open_folder(corrected)
    assert seen and seen[0].damaged
    qtbot.waitUntil(lambda: window.editor.project is not None, timeout=20000)
    assert (corrected / "classes.json.damaged").read_text() == '{"classes": [{"name": 3}]}'
    assert "kept beside it" in window.banners.banner("folder").text


def _images_folder(tmp_path: Path, scenes: Path) -> Path:
    root = tmp_path / "photos"
    (root / "images").mkdir(parents=True)
    for n in ("scene_0002.png", "scene_0003.png"):
        shutil.copy(scenes / "images" / n, root / "images" / n)
    return root


def test_a_folder_of_images_without_classes_becomes_a_project_or_opens_as_plain_images(qtbot, tmp_path, scenes,
                                                                                       tiny_ckpt):
    from app.launch import build_window

    root = _images_folder(tmp_path, scenes)
    voc = core.ClassTable.builtin("voc")
    # gui --project DIR: asks; the answer "plain images" opens them, says so, writes nothing
    from app.project_ui import ProjectUi

    answers = iter([(None, True), (Choice("voc", "the PASCAL VOC class table", voc), False)])
    asked = []
    orig = ProjectUi.choose_classes
    ProjectUi.choose_classes = lambda self, req: (asked.append(req), next(answers))[1]
    try:
        w = build_window(argparse.Namespace(model=[str(tiny_ckpt)], project=str(root), image=None, view=None,
                                            screenshot=None))
        qtbot.addWidget(w)
        w.show()
        w.ask = lambda *a: B.Discard
        assert len(asked) == 1 and not asked[0].is_project
        c = w.controller
        assert c.folder is not None and not c.folder.is_project and len(c.folder.entries) == 2
        note = w.banners.banner("folder")
        assert "opened as plain images" in note.text and "not opened as a project" in note.text
        assert not (root / "classes.json").exists() and not (root / "project.json").exists()
        # "Choose a class table...": asked again; VOC makes it a project
        qtbot.mouseClick(note.buttons["Choose a class table..."], LEFT)
        assert len(asked) == 2
        qtbot.waitUntil(lambda: c.folder.is_project, timeout=10000)
        assert core.ClassTable.load(root / "classes.json") == voc and (root / "project.json").is_file()
        assert "is a project now, with the PASCAL VOC class table (21 classes)" in \
            w.banners.banner("folder").text
    finally:
        ProjectUi.choose_classes = orig
    w.close()
    assert w.controller.shutdown(10000)


def test_screenshot_mode_reports_the_missing_class_table(tmp_path, scenes):
    from app.launch import run_gui

    root = _images_folder(tmp_path, scenes)
    args = argparse.Namespace(model=None, project=str(root), image=None, view=None,
                              screenshot=str(tmp_path / "never.png"), debug=False)
    assert run_gui(args) == 1
    assert not (tmp_path / "never.png").exists() and not (root / "classes.json").exists()


def test_classes_added_later_keep_every_mask_valid(qtbot, window, tiny_ckpt, corrected):
    mask = open_project(qtbot, window, tiny_ckpt, corrected)
    ed, c = window.editor, window.controller
    old = ed.project.classes
    saved = {n: core.read_mask(corrected / "masks" / f"{n}.png", old) for n in ("scene_0001", "scene_0002")}
    dlg = EditClassesDialog(old, window, ed.project.name)
    qtbot.addWidget(dlg)
    dlg.show()
    editor = dlg.editor
    editor.grid.selectRow(0)
    assert not editor.remove_button.isEnabled()  # the classes in the masks stay
    qtbot.mouseClick(editor.add_button, LEFT)
    editor.set_name(10, "kite")
    editor.grid.selectRow(10)
    assert editor.remove_button.isEnabled()
    save = dlg.buttons.button(dlg.buttons.StandardButton.Save)
    qtbot.mouseClick(save, LEFT)
    assert dlg.result_table.names == old.names + ("kite",)
    assert c.opening.update_classes(dlg.result_table)
    table = ed.project.classes
    assert json.loads((corrected / "classes.json").read_text())["classes"][10]["name"] == "kite"
    for n, data in saved.items():
        np.testing.assert_array_equal(core.read_mask(corrected / "masks" / f"{n}.png", table), data)
    # the model predicts the old table: painting waits, with the note; the open mask takes the new id
    assert window.banners.banner("classes") is not None and mask.num_classes == 11
    assert "1 class(es) more" in window.banners.banner("classes").text
    with qtbot.waitSignal(c.opening.adapted, timeout=30000) as blocker:
        window.act.adapt_model.trigger()
    assert blocker.args[0].kept == list(old.names)  # the ten known classes keep their training
    qtbot.waitUntil(lambda: c.loaded.classes == table and window.banners.banner("classes") is None,
                    timeout=20000)
    assert c.loaded.model.cfg.num_classes == 11 and window.tool_panel.class_box.count() == 11
