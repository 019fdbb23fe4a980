"""What a new user meets in the first hour (issue 14): the first start says what it is doing while
the demo project is written; nothing offers to undo or accept with no image open; editing a hidden
mask shows it; the retrain panel's texts stay true after a restore, and the demo's own labels are
called so, not "corrected images"."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

import core
from app import demo
from app.controllers.retrainer import RetrainOptions, labels_phrase
from core.jobs import demo_model
from window_helpers import mouse_drag, open_project

SMALL_DEMO = {"n_train": 6, "n_val": 2, "size": (96, 96), "seed": 0}


def test_the_first_start_shows_the_demo_project_being_written(qtbot, window, tiny_ckpt, studio_home, monkeypatch):
    monkeypatch.setattr(demo_model, "DEMO_PROJECT_PARAMS", SMALL_DEMO)
    card = window.startup_progress
    assert not card.isVisible()
    launcher = window.set_demo(demo.DemoLauncher(window.controller, bundled=tiny_ckpt))
    seen = []

    def record(rec: core.Progress) -> None:  # on the GUI thread, while the worker writes the scenes
        seen.append((card.isVisible(), card.bar.value(), card.detail.text(), window.controller.folder is None))

    launcher.preparing.connect(record)
    with qtbot.waitSignal(window.controller.folderChanged, timeout=60000):
        launcher.start()
    assert len(seen) == 1 + 8  # the start, then one report per scene
    assert all(visible and no_folder for visible, _, _, no_folder in seen)  # shown while the window stays live
    values = [v for _, v, _, _ in seen]
    assert values == sorted(values) and values[-1] == 100
    assert seen[-1][2] == "Writing demo scene 8 of 8 ..."
    assert str(studio_home / "demo-project") in card.where.text()
    # the card is over the central view, inside it
    assert card.parentWidget() is window.tabs and window.tabs.rect().contains(card.geometry())
    qtbot.waitUntil(lambda: not card.isVisible(), timeout=5000)  # gone once the project is open
    assert window.image_list.list.count() == 8
    # the next start finds the project: nothing to show
    seen.clear()
    again = window.set_demo(demo.DemoLauncher(window.controller, bundled=tiny_ckpt))
    again.preparing.connect(record)
    with qtbot.waitSignal(again.prepared, timeout=30000):
        again.start(with_model=False)
    assert seen == [] and not card.isVisible()


def test_nothing_to_undo_redo_accept_or_save_with_no_image_open(qtbot, window, tiny_ckpt, project):
    act = window.act
    for a in (act.undo, act.redo, act.accept_all, act.save_masks):
        assert not a.isEnabled(), a.text()
    buttons = [b for b in window.tool_panel.findChildren(type(window.tool_panel.buttons["pan"]))
               if b.defaultAction() in (act.undo, act.redo, act.accept_all, act.save_masks)]
    assert len(buttons) == 4 and not any(b.isEnabled() for b in buttons)
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # does nothing, says nothing wrong
    assert window.last_error == ""
    mask = open_project(qtbot, window, tiny_ckpt, project)
    assert act.accept_all.isEnabled() and not act.undo.isEnabled() and not act.save_masks.isEnabled()
    window.editor.autosave.setInterval(3_600_000)
    window.act.tools["brush"].trigger()
    mouse_drag(window, [(10, 10), (30, 12)])
    assert mask.dirty and act.undo.isEnabled() and act.save_masks.isEnabled()


def test_painting_a_hidden_mask_shows_it_and_says_so(qtbot, window, tiny_ckpt, project):
    mask = open_project(qtbot, window, tiny_ckpt, project)
    qtbot.keyClick(window, Qt.Key.Key_M)  # hide the mask
    assert not window.seg.mask_box.isChecked() and not window.seg.mask_layer.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_B)
    qtbot.keyClick(window, Qt.Key.Key_2)
    mouse_drag(window, [(20, 20), (60, 24)])
    assert (mask.data == 2).sum() > 50
    assert window.seg.mask_box.isChecked() and window.act.show_mask.isChecked()
    assert window.seg.mask_layer.isVisible()
    assert "mask was hidden" in window.info.text()
    # shown already: painting says nothing about it
    window.show_message("")
    mouse_drag(window, [(20, 60), (60, 64)])
    assert window.info.text() == ""


def test_the_retrain_panel_says_what_is_in_use_after_a_restore(qtbot, window, tiny_ckpt, corrected):
    open_project(qtbot, window, tiny_ckpt, corrected)
    panel, rt, c = window.retrain_panel, window.retrainer, window.controller
    panel.set_options(RetrainOptions(steps=3, lr=0.01, batch=2, crop=0, freeze_backbone=True, cache_features=True))
    with qtbot.waitSignal(rt.finished, timeout=60000):
        window.act.retrain.trigger()
    assert panel.status.text().startswith("Model 0002 trained") and "comparing" in panel.status.text()
    with qtbot.waitSignal(rt.comparisonReady, timeout=60000):
        pass
    # compared: the line says what is in use, no longer that it is comparing
    assert panel.status.text().startswith("Model 0002 trained") and panel.status.text().endswith("and in use")
    assert "3 corrected image(s)" in panel.compare_label.text()  # the user's own corrections
    # restore the starting model: the panel says so, not "Model 0002 ... in use"
    with qtbot.waitSignal(c.modelChanged, timeout=20000):
        rt.restore("0001")
    assert panel.status.text().startswith("Model 0001 restored and in use"), panel.status.text()
    assert "0002" not in panel.status.text() and panel.progress.text() == "restored"
    assert "model 0001 is in use now" in panel.compare_label.text()  # the table is the old retrain's
    # another model opened from a file: the panel does not claim a history model is in use
    with qtbot.waitSignal(c.modelChanged, timeout=20000):
        window.open_model(tiny_ckpt)
    assert panel.status.text().startswith(f"In use now: {tiny_ckpt.name}")


def test_the_demo_retrain_names_the_demos_own_labels(qtbot, window, tiny_ckpt, studio_home, monkeypatch):
    monkeypatch.setattr(demo_model, "DEMO_PROJECT_PARAMS", SMALL_DEMO)
    launcher = window.set_demo(demo.DemoLauncher(window.controller, bundled=tiny_ckpt))
    window.ask = lambda *a: QMessageBox.StandardButton.Discard  # no modal prompt on close
    with qtbot.waitSignal(window.controller.outcomeReady, timeout=60000):
        launcher.start()
    qtbot.waitUntil(lambda: window.editor.mask is not None, timeout=10000)
    rt, panel = window.retrainer, window.retrain_panel
    assert rt.training_labels() == labels_phrase(8, 8)
    panel.set_options(RetrainOptions(steps=2, lr=0.01, batch=2, crop=0, freeze_backbone=True, cache_features=True))
    with qtbot.waitSignal(rt.comparisonReady, timeout=90000) as blocker:
        window.act.retrain.trigger()
        assert "the demo's own labels of 8 image(s) (you have corrected none of them yet)" in window.info.text()
    rows = blocker.args[0]
    assert len(rows) == 8
    for text in (panel.compare_label.text(), window.info.text()):
        assert "over the demo's own labels of 8 image(s)" in text and "corrected image(s)" not in text, text
    # one image corrected and saved: the texts count it as the user's
    window.editor.autosave.setInterval(10)
    window.act.tools["brush"].trigger()
    window.tool_settings.label = 3
    with qtbot.waitSignal(window.editor.saved, timeout=20000):
        mouse_drag(window, [(10, 10), (40, 12)])
    assert rt.training_labels() == "8 labelled image(s): 1 corrected by you, 7 with the demo's own labels"
    assert rt.comparison_text(rows).endswith(
        "over 8 labelled image(s): 1 corrected by you, 7 with the demo's own labels")


@pytest.mark.parametrize("images, demo_, text", [
    (3, 0, "3 corrected image(s)"),
    (64, 64, "the demo's own labels of 64 image(s) (you have corrected none of them yet)"),
    (64, 60, "64 labelled image(s): 4 corrected by you, 60 with the demo's own labels")])
def test_labels_phrase(images, demo_, text):
    assert labels_phrase(images, demo_) == text


def test_a_user_project_keeps_cores_agreement_text(qtbot, window, corrected):
    window.open_folder(corrected)
    qtbot.waitUntil(lambda: window.editor.project is not None, timeout=10000)
    rows = [core.Agreement("scene_0001", 100, 0.5, 0.75)]
    assert window.retrainer.comparison_text(rows) == core.agreement_text(rows)
    assert window.retrainer.training_labels() == "the corrections"
    assert np.isclose(core.agreement_summary(rows)[1], 0.75)
