"""Retrain: fine-tuning a tiny model on a project's corrections improves the agreement with
them; the new model is saved in the project's history and swapped in; rollback; Cancel keeps
the previous model; the command line fine-tunes a project made by the app."""

from __future__ import annotations

import time

import numpy as np
import torch
from PySide6.QtWidgets import QMessageBox

import core
from app.controllers.retrainer import RetrainOptions
from window_helpers import mouse_drag, open_project

B = QMessageBox.StandardButton


def state_of(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_retrain_improves_agreement_saves_history_and_rolls_back(qtbot, window, tiny_ckpt, corrected, scenes):
    mask = open_project(qtbot, window, tiny_ckpt, corrected)
    c, rt, panel = window.controller, window.retrainer, window.retrain_panel
    old_loaded = c.loaded
    old_state = state_of(old_loaded.model)
    # one more correction, painted now and not saved yet: the retrain must see it
    window.editor.autosave.setInterval(3_600_000)
    window.act.tools["brush"].trigger()
    window.tool_settings.label = 6
    mouse_drag(window, [(10, 20), (100, 20)])
    assert mask.dirty
    panel.set_options(RetrainOptions(steps=40, lr=0.1, batch=2, crop=0, freeze_backbone=True,
                                     cache_features=True, aux_weight=0.4))
    records = []
    rt.progress.connect(records.append)
    with qtbot.waitSignal(rt.finished, timeout=60000) as blocker:
        window.act.retrain.trigger()
        assert not window.act.retrain.isEnabled() and window.act.cancel_retrain.isEnabled()
    result = blocker.args[0]
    assert not mask.dirty and (corrected / "masks" / "scene_0000.png").exists()
    # progress: every step, validation on the fixed split, and the curves show them
    steps = [r.step for r in records if r.val is None]
    assert steps == list(range(1, 41))
    vals = [r for r in records if r.val is not None]
    assert vals and all(0.0 <= r.val.miou <= 1.0 for r in vals)
    assert panel.progress.value() == 40 and len(panel.series["main"]) == 40 and len(panel.series["lr"]) == 40
    assert len(panel.series["val"]) == len({r.step for r in vals})
    assert panel.series["lr"][0] > panel.series["lr"][-1]  # poly decay
    # the project's history: the starting model, then the new one with its metrics, current
    project = window.editor.project
    history = project.checkpoints()
    assert [e.id for e in history] == ["0001", "0002"]
    assert history[0].note.startswith("starting model") and history[1].parent == "0001"
    assert history[1].metrics["steps"] == 40 and history[1].metrics["val_miou"] is not None
    assert project.current_checkpoint.id == "0002"
    assert panel.history.rowCount() == 2 and "(in use)" in panel.history.item(0, 0).text()
    # swapped in and the shown image predicted again; the old model's weights were not touched
    assert c.loaded is result.loaded and c.loaded.sources == [history[1].path]
    assert same_weights(state_of(old_loaded.model), old_state)
    saved = core.load_model(history[1].path)
    assert same_weights(state_of(saved.model), state_of(result.loaded.model))
    qtbot.waitUntil(lambda: c.outcome is not None and c.predictor.model is result.loaded.model
                    and c._cache.get(c.cache_key()) is c.outcome, timeout=20000)
    # the shown prediction is the new model's (the saved checkpoint's, predicted here directly)
    reference = core.Predictors.on(saved.model, "cpu").predictor.predict(c.image.image)
    np.testing.assert_array_equal(c.outcome.prediction.labels, reference.labels)
    # before / after: the new model agrees much better with the corrections
    with qtbot.waitSignal(rt.comparisonReady, timeout=60000) as blocker:
        pass
    rows = blocker.args[0]
    assert {r.name for r in rows} == {"scene_0000", "scene_0001", "scene_0002", "scene_0003"}
    before, after, n = core.agreement_summary(rows)
    assert after > before + 0.12, (before, after)
    assert panel.compare.rowCount() == 4 and "->" in panel.compare_label.text()
    # rollback: the starting model again
    with qtbot.waitSignal(c.modelChanged, timeout=20000):
        rt.restore("0001")
    assert project.current_checkpoint.id == "0001"
    assert same_weights(state_of(c.loaded.model), old_state)
    assert "(in use)" in panel.history.item(1, 0).text()


def test_cancel_keeps_the_previous_model(qtbot, window, tiny_ckpt, corrected):
    open_project(qtbot, window, tiny_ckpt, corrected)
    c, rt = window.controller, window.retrainer
    loaded = c.loaded
    before = state_of(loaded.model)
    window.retrain_panel.set_options(RetrainOptions(steps=100000, lr=0.05, batch=2, crop=96,
                                                    freeze_backbone=False, cache_features=False))
    with qtbot.waitSignal(rt.progress, timeout=60000):
        window.act.retrain.trigger()
    task = rt.task
    t0 = time.perf_counter()
    with qtbot.waitSignal(rt.cancelled, timeout=2000):
        window.act.cancel_retrain.trigger()
    qtbot.waitUntil(lambda: task.is_finished, timeout=2000)  # the worker stopped too
    assert time.perf_counter() - t0 < 2.0 and not rt.running
    assert c.loaded is loaded and same_weights(state_of(c.loaded.model), before)
    assert window.editor.project.checkpoints() == []
    assert "Cancelled" in window.retrain_panel.status.text() and window.act.retrain.isEnabled()


def test_retrain_refuses_clearly(qtbot, window, tiny_ckpt, project, scenes):
    # no model
    window.open_folder(project)
    with qtbot.waitSignal(window.retrainer.failed, timeout=5000) as blocker:
        window.act.retrain.trigger()
    assert "model" in blocker.args[0]
    # a model and a project but nothing painted: core says so, nothing is added
    open_project(qtbot, window, tiny_ckpt, project)
    with qtbot.waitSignal(window.retrainer.failed, timeout=30000) as blocker:
        window.act.retrain.trigger()
    assert "labelled pixel" in blocker.args[0] and "labelled pixel" in window.retrain_panel.status.text()
    assert window.editor.project.checkpoints() == []


def test_command_line_finetunes_a_project_made_by_the_app(corrected, tiny_ckpt, tmp_path):
    from core.cli import main

    out = tmp_path / "tuned.safetensors"
    rc = main(["finetune", "--project", str(corrected), "--model", str(tiny_ckpt), "--out", str(out),
               "--steps", "3", "--batch", "2", "--crop", "96", "--freeze-backbone", "--cache-features",
               "--add-to-project", "--quiet"])
    assert rc == 0 and out.is_file()
    assert len(core.load_model(out).classes) == 10
    reopened = core.Project.open(corrected)
    assert reopened.current_checkpoint is not None and reopened.current_checkpoint.path.is_file()
