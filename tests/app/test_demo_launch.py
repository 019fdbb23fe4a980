"""The built-in demo (shipped checkpoint, and the training fallback) and the screenshot mode."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
from PySide6.QtGui import QImage

import core
from app import demo
from app.launch import run_gui

ROOT = Path(__file__).resolve().parents[2]


def test_demo_opens_project_with_a_shipped_checkpoint(qtbot, window, tiny_ckpt, studio_home):
    launcher = window.set_demo(demo.DemoLauncher(window.controller, bundled=tiny_ckpt))
    with qtbot.waitSignal(window.controller.outcomeReady, timeout=60000) as blocker:
        launcher.start()
    root = studio_home / "demo-project"
    assert (root / "classes.json").is_file() and (root / "synthetic.json").is_file()
    n = len(list((root / "images").glob("*.png")))
    assert n == core.DEMO_PROJECT_PARAMS["n_train"] + core.DEMO_PROJECT_PARAMS["n_val"]
    assert window.image_list.list.count() == n
    assert blocker.args[0].path == root / "images" / "scene_0000.png"
    assert window.controller.loaded.sources[0] == tiny_ckpt
    assert launcher.training_task is None  # nothing was trained
    assert not demo.trained_checkpoint().exists()


def test_demo_trains_a_model_when_none_is_shipped(qtbot, window, studio_home):
    launcher = window.set_demo(demo.DemoLauncher(window.controller, bundled=None, steps=2, snapshots=2))
    records = []
    launcher.trainingProgress.connect(records.append)
    with qtbot.waitSignal(launcher.trainingStarted, timeout=60000):
        launcher.start()
    assert window.train_progress.isVisible() and window.train_progress.maximum() == 2  # the window's own wiring
    # the window stays usable while training: the demo images are listed and can be opened
    assert window.image_list.list.count() > 0
    with qtbot.waitSignal(window.controller.outcomeReady, timeout=120000,
                          check_params_cb=lambda o: not launcher.showing_snapshot()):
        pass
    ckpt = demo.trained_checkpoint()
    assert ckpt.is_file()
    assert window.controller.loaded.sources[0] == ckpt
    loaded = core.load_model(ckpt)
    assert loaded.provenance["source"] == "demo training in PSPNet Studio"
    assert loaded.config.depth == 18 and len(loaded.classes) == 10
    assert [r.step for r in records if r.val is None] == [1, 2]
    # next start: the trained model is found, nothing is trained again
    assert demo.find_demo_checkpoint(None) == ckpt


def test_screenshot_mode_saves_the_window(qtbot, tiny_ckpt, scenes, tmp_path):
    out = tmp_path / "shots" / "heads.png"
    args = argparse.Namespace(model=[str(tiny_ckpt)], image=str(scenes / "images" / "scene_0002.png"),
                              project=None, view="heads", screenshot=str(out), debug=False)
    assert run_gui(args) == 0
    img = QImage(str(out))
    assert (img.width(), img.height()) == (1600, 1000)
    # the shot shows the prediction: the heads view's canvases are not a flat background
    arr = np.frombuffer(img.convertToFormat(QImage.Format.Format_RGB888).constBits(), np.uint8)
    assert len(np.unique(arr.reshape(-1, 3)[::97], axis=0)) > 50


def test_screenshot_mode_fails_clearly(tmp_path):
    """Through main.py: a model that cannot be read -> exit code 1, a message, no file."""
    out = tmp_path / "never.png"
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "gui", "--model", str(tmp_path / "missing.pth"),
                           "--image", str(tmp_path / "missing.png"), "--screenshot", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 1
    assert "error:" in proc.stderr and "missing" in proc.stderr
    assert not out.exists()
