"""Reopen what was in use: a project (the demo included) opens with the model its history marks
as in use, through the app: retrain, restore an earlier version, close the window, a new window
on the same project uses the restored version. A missing or unreadable file is said, and the
others are offered (the history's, the bundled demo model for the demo)."""

from __future__ import annotations

import argparse
import json

import torch
from PySide6.QtWidgets import QMessageBox

import core
from app import demo
from app.controllers.retrainer import RetrainOptions
from app.launch import build_window
from app.main_window import MainWindow
from window_helpers import open_project

B = QMessageBox.StandardButton


def new_window(qtbot) -> MainWindow:
    w = MainWindow(restore=False)
    qtbot.addWidget(w)
    w.ask = lambda *a: B.Discard
    w.show()
    return w


def close(w: MainWindow) -> None:
    w.close()
    assert w.controller.shutdown(20000)


def test_retrain_restore_close_reopen_uses_the_restored_version(qtbot, tiny_ckpt, corrected):
    w1 = new_window(qtbot)
    open_project(qtbot, w1, tiny_ckpt, corrected)
    w1.retrain_panel.set_options(RetrainOptions(steps=3, lr=0.05, batch=2, crop=0, freeze_backbone=True,
                                                cache_features=True))
    with qtbot.waitSignal(w1.retrainer.finished, timeout=60000):
        w1.act.retrain.trigger()
    project = w1.editor.project
    first, second = project.checkpoints()
    assert project.current_checkpoint == second and w1.controller.loaded.sources == [second.path]
    # restore the starting model (as the history table's Restore does)
    with qtbot.waitSignal(w1.controller.modelChanged, timeout=30000):
        w1.retrainer.restore(first.id)
    assert w1.controller.loaded.sources == [first.path]
    assert json.loads((corrected / "project.json").read_text())["current_model"] == first.id
    close(w1)

    # a new window on the same project, with no model given: the restored version is in use
    w2 = new_window(qtbot)
    opened = w2.open_folder(corrected)
    assert opened.state == "project" and opened.model
    c = w2.controller
    qtbot.waitUntil(lambda: c.loaded is not None and c.outcome is not None, timeout=30000)
    assert c.loaded.sources == [first.path]
    restored = core.load_model(first.path)
    assert all(torch.equal(v, restored.model.state_dict()[k]) for k, v in c.loaded.model.state_dict().items())
    assert w2.retrainer.current_id() == first.id
    close(w2)

    # the same from the command line's way in: `gui --project DIR` without --model
    w3 = build_window(argparse.Namespace(model=None, project=str(corrected), image=None, view=None, screenshot=None))
    qtbot.addWidget(w3)
    w3.ask = lambda *a: B.Discard
    c3 = w3.controller
    qtbot.waitUntil(lambda: c3.loaded is not None and c3.outcome is not None and not c3.inference.busy, timeout=30000)
    qtbot.wait(200)  # nothing else (the demo model) is loaded after it
    assert not c3.inference.busy and c3.loaded.sources == [first.path]
    close(w3)
    # with --model, that model wins
    w4 = build_window(argparse.Namespace(model=[str(tiny_ckpt)], project=str(corrected), image=None, view=None,
                                         screenshot=None))
    qtbot.addWidget(w4)
    w4.ask = lambda *a: B.Discard
    c4 = w4.controller
    qtbot.waitUntil(lambda: c4.loaded is not None and c4.outcome is not None and not c4.inference.busy, timeout=30000)
    qtbot.wait(200)
    assert not c4.inference.busy and c4.loaded.sources == [tiny_ckpt]
    close(w4)


def test_a_missing_model_file_is_said_and_the_others_are_offered(qtbot, tiny_ckpt, corrected):
    p = core.Project.open(corrected)
    a = p.add_checkpoint(tiny_ckpt, note="first")
    b = p.add_checkpoint(tiny_ckpt, note="second")
    p.close()
    b.path.unlink()
    w = new_window(qtbot)
    asked = []

    def choose(problem):
        asked.append(problem)
        return problem.others[0], False

    w.project_ui.choose_instead = choose
    w.open_folder(corrected)
    assert len(asked) == 1
    problem = asked[0]
    assert problem.entry.id == b.id and "missing" in problem.reason and str(b.path) in problem.reason
    assert [e.id for e in problem.others] == [a.id] and problem.alternatives == []
    assert f"model {b.id}" in w.last_error and "cannot be loaded" in w.last_error
    c = w.controller
    qtbot.waitUntil(lambda: c.loaded is not None, timeout=30000)
    assert c.loaded.sources == [a.path]
    assert json.loads((corrected / "project.json").read_text())["current_model"] == a.id  # chosen: now in use
    close(w)


def test_the_demo_opens_with_its_historys_model_and_offers_the_bundled_one(qtbot, tiny_ckpt, studio_home, tmp_path):
    # the demo project exists, with a retrained model in use
    root = demo.demo_project_dir()
    core.run_to_end(core.ensure_demo_project(root))
    p = core.Project.open(root)
    entry = p.add_checkpoint(tiny_ckpt, note="retrained in an earlier session")
    p.close()
    w = new_window(qtbot)
    launcher = w.set_demo(demo.DemoLauncher(w.controller, bundled=tiny_ckpt))
    launcher.start()
    c = w.controller
    qtbot.waitUntil(lambda: c.loaded is not None and c.outcome is not None and not c.inference.busy, timeout=60000)
    qtbot.wait(200)
    assert not c.inference.busy and c.loaded.sources == [entry.path]  # not the bundled model
    close(w)

    # its file damaged: said, and the bundled demo model is offered
    entry.path.write_bytes(b"not a checkpoint")
    w = new_window(qtbot)
    asked = []

    def choose(problem):
        asked.append(problem)
        return problem.alternatives[0], False

    w.project_ui.choose_instead = choose
    w.set_demo(demo.DemoLauncher(w.controller, bundled=tiny_ckpt)).start()
    qtbot.waitUntil(lambda: bool(asked), timeout=60000)
    problem = asked[0]
    assert problem.entry.id == entry.id and problem.alternatives == [tiny_ckpt] and problem.others == []
    assert "cannot be loaded" in w.last_error or "Could not load" in w.last_error
    c = w.controller
    qtbot.waitUntil(lambda: c.loaded is not None, timeout=30000)
    assert c.loaded.sources == [tiny_ckpt]
    close(w)


def test_opening_an_image_of_a_project_uses_its_model_too(qtbot, tiny_ckpt, corrected):
    p = core.Project.open(corrected)
    entry = p.add_checkpoint(tiny_ckpt, note="in use")
    p.close()
    w = new_window(qtbot)
    w.open_image(corrected / "images" / "scene_0002.png")  # File > Open Image, a drop, a recent image
    c = w.controller
    qtbot.waitUntil(lambda: c.loaded is not None and c.outcome is not None, timeout=30000)
    assert c.folder.project is not None and c.loaded.sources == [entry.path]
    close(w)
    # gui --image IMAGE (no --model): the same, and not the demo model after it
    w = build_window(argparse.Namespace(model=None, project=None, image=str(corrected / "images" / "scene_0001.png"),
                                        view=None, screenshot=None))
    qtbot.addWidget(w)
    w.ask = lambda *a: B.Discard
    c = w.controller
    qtbot.waitUntil(lambda: c.loaded is not None and c.outcome is not None and not c.inference.busy, timeout=30000)
    qtbot.wait(200)
    assert not c.inference.busy and c.loaded.sources == [entry.path]
    close(w)


def test_the_model_in_use_dialog_lists_the_history(qtbot, tiny_ckpt, corrected):
    from app.controllers.project_opening import InUseProblem
    from app.dialogs.model_in_use import ModelInUseDialog

    p = core.Project.open(corrected)
    a = p.add_checkpoint(tiny_ckpt, {"val_miou": 0.5}, note="first")
    b = p.add_checkpoint(tiny_ckpt, note="second")
    c = p.add_checkpoint(tiny_ckpt, note="third")
    a.path.unlink()
    problem = InUseProblem(p, c, "its file is damaged", [b, a], [tiny_ckpt])
    dlg = ModelInUseDialog(problem)
    qtbot.addWidget(dlg)
    assert dlg.list.count() == 3
    assert "model 0002" in dlg.list.item(0).text() and "second" in dlg.list.item(0).text()
    assert "file is missing" in dlg.list.item(1).text() and "validation mIoU 0.500" in dlg.list.item(1).text()
    dlg.select(tiny_ckpt)
    dlg.use_button.click()
    assert dlg.chosen == tiny_ckpt
    p.close()
