"""Fixtures for the window tests: offscreen Qt, a private app home, a tiny model, demo scenes, projects,
the window. (Helpers that are not fixtures: window_helpers.py.)"""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before Qt is imported anywhere

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import core  # noqa: E402


@pytest.fixture(autouse=True)
def studio_home(tmp_path, monkeypatch) -> Path:
    """Settings, the demo project and the trained demo model go into a fresh folder per test."""
    home = tmp_path / "studio-home"
    home.mkdir()
    monkeypatch.setenv("PSPNET_STUDIO_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def scenes(tmp_path_factory) -> Path:
    """A small demo project (our layout: images/, masks/, classes.json) of 96x128 scenes."""
    root = tmp_path_factory.mktemp("scenes") / "project"
    return core.write_demo_project(root, n_train=3, n_val=1, size=(96, 128), seed=0)


def tiny_model(num_classes: int, seed: int = 0) -> "core.PSPNet":
    """A tiny untrained PSPNet whose predictions still vary over the image (and with the levels):
    non-trivial BatchNorm statistics and a sharpened classifier."""
    torch.manual_seed(seed)
    model = core.build_model(core.ModelConfig(depth=18, base_width=8, num_classes=num_classes, head_channels=32,
                                              aux_channels=16))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        model.head.classifier.weight.mul_(20)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory, scenes) -> Path:
    classes = core.ClassTable.load(scenes / "classes.json")
    path = tmp_path_factory.mktemp("models") / "tiny.safetensors"
    core.save_checkpoint(path, tiny_model(len(classes)), classes, {"source": "tests/app fixture"})
    return path


@pytest.fixture(scope="session")
def big_image(tmp_path_factory) -> Path:
    """A 1024x1024 photo-like image: slow enough with the tiny model to switch away mid-inference."""
    return write_photo(tmp_path_factory.mktemp("big") / "big.png", 1024, 1024, cells=(16, 16), seed=0)


def write_photo(path: Path, h: int, w: int, *, cells: tuple[int, int], seed: int) -> Path:
    """A photo-like image (random colours, smoothly resized from a ``cells`` grid), written as the
    suffix says (PNG, or JPEG at quality 90)."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (*cells, 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if path.suffix.lower() in (".jpg", ".jpeg") else []
    assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
    return path


@pytest.fixture
def project(tmp_path, scenes) -> Path:
    """A new project holding the scenes' images and no masks yet."""
    classes = core.ClassTable.load(scenes / "classes.json")
    p = core.Project.create(tmp_path / "project", classes)
    p.add_images(sorted((scenes / "images").glob("*.png")))
    return p.root


@pytest.fixture
def corrected(project, scenes) -> Path:
    """The project with corrections of an earlier session: the true masks of three images."""
    classes = core.ClassTable.load(project / "classes.json")
    for name in ("scene_0001", "scene_0002", "scene_0003"):
        gt = core.read_mask(scenes / "masks" / f"{name}.png", classes)
        core.write_mask(project / "masks" / f"{name}.png", gt, classes)
    return project


@pytest.fixture
def window(qtbot):
    from app.main_window import MainWindow

    w = MainWindow(restore=False)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    yield w
    if w.isVisible():
        w.close()
    assert w.controller.shutdown(20000)


def wait_outcome(qtbot, controller, timeout: int = 30000, check=None):
    """Wait for the next shown prediction (optionally one that passes ``check``)."""
    with qtbot.waitSignal(controller.outcomeReady, timeout=timeout,
                          check_params_cb=(lambda o: check(o)) if check else None) as blocker:
        pass
    return blocker.args[0]
