"""One owner per piece of state, the model on one thread, and a GUI thread that never waits:
the image list is a model whose changes are signals; the photo and its mask arrive together;
every job that touches the model in use runs on the inference runner (others get copies);
saving masks happens on the masks runner, also before a retrain and when closing."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import core
from app.image_folder import ImageFolder
from window_helpers import mouse_drag, open_project


def test_the_image_folder_changes_only_through_signalling_methods(qtbot, project):
    folder = ImageFolder.scan(project)
    assert isinstance(folder.entries, tuple) and len(folder) == 4 and folder.is_project
    changed, bulk = [], []
    folder.entryChanged.connect(changed.append)
    folder.rowsChanged.connect(lambda: bulk.append(1))
    folder.set_predicted(2)
    folder.set_predicted(2)  # no change, no signal
    folder.set_mask_state("scene_0001", core.MASK)
    folder.set_score(3, 0.25)
    assert changed == [2, 1, 3]
    assert folder.entry(1).mask_path == project / "masks" / "scene_0001.png" and folder.entry(3).score == 0.25
    folder.clear_scores()
    folder.clear_predicted()
    assert bulk == [1, 1] and all(e.score is None and not e.predicted for e in folder.entries)
    with pytest.raises(AttributeError):
        folder.entries.append(None)


def test_the_photo_and_its_mask_reach_the_views_in_one_signal(qtbot, window, tiny_ckpt, project):
    open_project(qtbot, window, tiny_ckpt, project)
    seen = []

    def on_image(shown):  # whatever the order of the slots, the mask comes with the photo
        seen.append((shown.path.stem, shown.mask, window.editor.mask))

    window.controller.imageChanged.connect(on_image)
    first = window.editor.mask
    window.controller.step_image(1)
    qtbot.waitUntil(lambda: len(seen) == 1, timeout=10000)
    window.controller.step_image(-1)  # back: the mask kept with its history, shown at once with the photo
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=10000)
    (n1, m1, e1), (n0, m0, e0) = seen
    assert n1 == "scene_0001" and m1 is not None and m1 is e1 and m1 is not first
    assert n0 == "scene_0000" and m0 is first and e0 is first
    assert np.shares_memory(window.seg.mask_layer.image, first.data)


def test_the_model_is_moved_copied_and_run_only_on_the_inference_runner(qtbot, window, tiny_ckpt, project,
                                                                       monkeypatch):
    gui = threading.get_ident()
    placed, copied, ranked_with = [], [], []
    on, copy_job, score = core.Predictors.on, core.copy_loaded_job, core.score_images

    def spy_on(model, device, classes=None, protocol=None, **kw):
        placed.append(threading.get_ident())
        return on(model, device, classes, protocol, **kw)

    def spy_copy(loaded, *, cancel=None):
        copied.append(threading.get_ident())
        return (yield from copy_job(loaded, cancel=cancel))

    def spy_score(model, device, items, classes, *, protocol=None, cancel=None):
        ranked_with.append((model, protocol))
        return (yield from score(model, device, items, classes, protocol=protocol, cancel=cancel))

    monkeypatch.setattr(core.Predictors, "on", staticmethod(spy_on))
    monkeypatch.setattr(core, "copy_loaded_job", spy_copy)
    monkeypatch.setattr(core, "score_images", spy_score)
    open_project(qtbot, window, tiny_ckpt, project)
    c = window.controller
    with qtbot.waitSignal(window.ranker.rankingFinished, timeout=60000):
        window.act.rank.trigger()
    inference = set(copied)
    assert len(inference) == 1 and gui not in inference
    assert placed[0] in inference  # the model was loaded and placed where it is run
    assert len(ranked_with) == 1 and ranked_with[0][0] is not c.loaded.model  # ranking ran on its own copy
    assert ranked_with[0][1] == c.protocol  # under the protocol the window predicts with
    assert all(e.score is not None for e in c.folder.entries)


def test_masks_are_saved_off_the_gui_thread_before_a_retrain_and_on_close(qtbot, tiny_ckpt, corrected,
                                                                         monkeypatch):
    from app.main_window import MainWindow

    gui = threading.get_ident()
    savers = []
    save = core.Project.save_mask

    def spy(self, name, mask):
        savers.append(threading.get_ident())
        return save(self, name, mask)

    monkeypatch.setattr(core.Project, "save_mask", spy)
    w = MainWindow(restore=False)
    qtbot.addWidget(w)
    w.show()
    w.editor.autosave.setInterval(3_600_000)
    open_project(qtbot, w, tiny_ckpt, corrected)
    w.act.tools["brush"].trigger()
    w.tool_settings.label = 2
    mouse_drag(w, [(5, 5), (40, 20)])
    w.retrain_panel.set_options(type(w.retrain_panel.options())(steps=2, batch=2, crop=96))
    with qtbot.waitSignal(w.retrainer.finished, timeout=60000):
        w.act.retrain.trigger()
    assert len(savers) == 1 and savers[0] != gui and not w.editor.dirty
    mouse_drag(w, [(5, 50), (40, 60)])
    w.ask = lambda *a: __import__("PySide6.QtWidgets", fromlist=["QMessageBox"]).QMessageBox.StandardButton.Save
    w.close()
    assert w.isVisible()  # closing waits for the save job, not on the GUI thread
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=20000)
    assert len(savers) == 2 and gui not in savers
    assert w.controller.shutdown(10000)


def test_a_retrain_keeps_no_copy_of_the_model_when_it_is_done(qtbot, window, tiny_ckpt, corrected):
    import gc

    open_project(qtbot, window, tiny_ckpt, corrected)
    gc.collect()
    before = {id(o) for o in gc.get_objects() if type(o) is core.PSPNet}
    rt = window.retrainer
    window.retrain_panel.set_options(type(window.retrain_panel.options())(steps=2, batch=2, crop=96))
    with qtbot.waitSignal(rt.comparisonReady, timeout=60000):
        window.act.retrain.trigger()
    qtbot.waitUntil(lambda: not window.controller.busy and not window.controller.background.busy, timeout=20000)
    qtbot.wait(50)  # the runners let their last task go one round later
    for runner in (window.controller.inference, window.controller.background, window.controller.io):
        runner._retired = []
    gc.collect()
    new = [o for o in gc.get_objects() if type(o) is core.PSPNet and id(o) not in before]
    # of the models the retrain made (the starting copy, the trained one, the copy for the
    # comparison) only the one in use is left
    assert new == [window.controller.loaded.model], len(new)
