"""Check before trusting, in the app: restoring a model of the history (a click in the retrain panel)
loads it once, in a worker thread, checked by core; a damaged checkpoint gives a clear error in a
banner and leaves the model in use, and the history, as they were."""

from __future__ import annotations

import threading

import pytest
import torch
from PySide6.QtCore import Qt

import core
from conftest import tiny_model
from window_helpers import open_project


def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def with_history(project, tmp_path):
    """The project with two models in its history: 0001 (seed 1) and 0002 (seed 2, current)."""
    classes = core.ClassTable.load(project / "classes.json")
    p = core.Project.open(project)
    for seed in (1, 2):
        path = tmp_path / f"model-{seed}.safetensors"
        core.save_checkpoint(path, tiny_model(len(classes), seed=seed), classes, {"source": f"seed {seed}"})
        p.add_checkpoint(path, {"steps": seed}, f"seed {seed}")
    p.close()
    return project


def _click_restore(qtbot, window, entry_id: str) -> None:
    panel = window.retrain_panel
    window.retrain_dock.show()
    window.retrain_dock.raise_()
    panel.tabs.setCurrentIndex(panel.tabs.count() - 1)  # the model history
    table = panel.history
    row = next(r for r in range(table.rowCount()) if table.item(r, 0).data(Qt.ItemDataRole.UserRole) == entry_id)
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=table.visualItemRect(table.item(row, 0)).center())
    assert panel.selected_model() == entry_id
    qtbot.mouseClick(panel.restore_btn, Qt.MouseButton.LeftButton)


def test_restore_loads_the_model_once_in_a_worker(qtbot, window, tiny_ckpt, with_history, monkeypatch):
    open_project(qtbot, window, tiny_ckpt, with_history)
    c = window.controller
    threads = []
    real = core.Project.restore_model

    def spy(self, entry, device=None):
        threads.append(threading.current_thread())
        return real(self, entry, device)

    monkeypatch.setattr(core.Project, "restore_model", spy)
    monkeypatch.setattr(c, "open_model", lambda *a, **k: pytest.fail("restore must not load the file a second time"))
    expected = _state(core.load_model(with_history / "checkpoints" / "model-0001.safetensors").model)
    with qtbot.waitSignal(c.modelChanged, timeout=30000):
        _click_restore(qtbot, window, "0001")
    assert len(threads) == 1 and threads[0] is not threading.main_thread()
    assert _same(_state(c.loaded.model), expected)
    assert window.editor.project.current_checkpoint.id == "0001"
    qtbot.waitUntil(lambda: "(in use)" in window.retrain_panel.history.item(1, 0).text(), timeout=10000)


def test_a_damaged_checkpoint_is_refused_and_changes_nothing(qtbot, window, tiny_ckpt, with_history):
    open_project(qtbot, window, tiny_ckpt, with_history)
    c, project = window.controller, window.editor.project
    ckpt = with_history / "checkpoints" / "model-0001.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:200])  # cut short: a crash while it was copied, a bad disk
    in_use, weights = c.loaded, _state(c.loaded.model)
    with qtbot.waitSignal(window.retrainer.failed, timeout=30000) as blocker:
        _click_restore(qtbot, window, "0001")
    text = blocker.args[0]
    assert "Could not restore model 0001" in text and str(ckpt) in text
    assert text in window.banners.text("error")  # an error that stays
    assert c.loaded is in_use and _same(_state(c.loaded.model), weights)  # the model in use is unchanged
    assert project.current_checkpoint.id == "0002"
    assert core.Project.open(with_history, read_only=True).current_checkpoint.id == "0002"  # on disk too
