"""Model > Get a Pretrained Model...: the zoo listed with its facts, a download from a real HTTP
server on 127.0.0.1 driven by mouse clicks (progress, Cancel, resume), the model in use
afterwards, a cached model used without downloading, offline and server errors in words a user
can act on, and a file downloaded by hand (the authors' semseg entries) checked and used. Also
the note the demo model shows on a photo that is not one of its scenes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import Qt

import core
from app.controllers.model_fetch import ModelFetcher
from tests.core.http_fixture import Route, refused_url, serving

LEFT = Qt.MouseButton.LeftButton


@pytest.fixture()
def server():
    with serving() as state:
        yield state


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory) -> bytes:
    """A small model of the demo's classes, large enough (about 3 MB) to download in several chunks."""
    torch.manual_seed(0)
    model = core.build_model(core.ModelConfig(depth=18, base_width=16, num_classes=10, head_channels=32,
                                              aux_channels=16)).eval()
    path = tmp_path_factory.mktemp("zoo") / "m.safetensors"
    core.save_checkpoint(path, model, core.SYNTHETIC_CLASSES, {"source": "zoo test"})
    return path.read_bytes()


def entry(name: str, url: str | None, data: bytes, *, download: str = "direct", task: str = "segmentation",
          file_name: str = "model.safetensors") -> dict:
    import hashlib

    return {
        "name": name, "title": f"PSPNet R-18 {name}, synthetic scenes, a test", "source": "tests",
        "dataset": "synthetic scenes", "classes": {"count": 10, "table": None}, "task": task,
        "architecture": {"network": "PSPNet", "depth": 18, "backbone": "ResNet-18, width 16", "heads": "PSPHead"},
        "results": [{"metric": "mIoU", "value": 73.7, "protocol": "single-scale", "detail": "16 scenes"}],
        "files": [{"role": "checkpoint", "file_name": file_name, "url": url, "size": len(data),
                   "size_mb": round(len(data) / 1e6, 1), "sha256": hashlib.sha256(data).hexdigest(),
                   "expect": {"format": "pspnet-studio"}, "path_on_page": None if url else f"exp/{file_name}"}],
        "download": download, "page": "https://example.org/shared-folder" if download == "manual" else None,
        "licence": "MIT (test)", "facts_from": ["tests"],
        "how_to_get": None if download == "direct" else f"open the shared folder, choose exp/{file_name}",
    }


@pytest.fixture()
def zoo(tmp_path, monkeypatch):
    """Write a zoo table and make it the app's: ``zoo(entries) -> path``."""
    from core import zoo as zoo_module

    def make(entries: list[dict]) -> Path:
        path = tmp_path / f"zoo-{len(list(tmp_path.glob('zoo-*.json')))}.json"
        path.write_text(json.dumps({"format": 1, "models": entries}))
        monkeypatch.setattr(zoo_module, "ZOO_FILE", path)
        return path

    monkeypatch.setattr(ModelFetcher, "options", {"retries": 1, "backoff": 0.01, "timeout": 10.0})
    return make


def click_row(qtbot, dlg, name: str) -> None:
    item = dlg.item_of(name)
    rect = dlg.tree.visualItemRect(item)
    qtbot.mouseClick(dlg.tree.viewport(), LEFT, pos=rect.center())
    assert dlg.current.name == name


def open_zoo(qtbot, window):
    window.act.get_model.trigger()
    dlg = window.project_ui.zoo_dialog
    qtbot.waitExposed(dlg)
    return dlg


def test_download_with_progress_cancel_resume_then_the_model_is_in_use(qtbot, window, scenes, zoo, server,
                                                                        model_bytes, studio_home):
    route = Route(model_bytes, hold_after=600_000)
    url = server.add("/zoo/model.safetensors", route)
    zoo([entry("test-scenes", url, model_bytes), entry("test-semseg", None, model_bytes, download="manual",
                                                        file_name="train_epoch_1.pth"),
         entry("test-backbone", url, model_bytes, task="backbone")])
    window.open_image(scenes / "images" / "scene_0001.png")
    qtbot.waitUntil(lambda: window.controller.image is not None, timeout=10000)
    dlg = open_zoo(qtbot, window)
    # the list: the segmentation models with their facts; the backbones on request
    rows = [dlg.tree.topLevelItem(i) for i in range(dlg.tree.topLevelItemCount())]
    assert [r.data(0, Qt.ItemDataRole.UserRole).name for r in rows] == ["test-scenes", "test-semseg"]
    assert [r.text(5) for r in rows] == ["download", "by hand"]
    assert rows[0].text(2) == "synthetic scenes (10)" and rows[0].text(3) == "73.70 / –"
    assert rows[0].text(4) == f"{len(model_bytes) / 1e6:.1f} MB"
    dlg.show_box.setCurrentIndex(2)
    assert dlg.tree.topLevelItemCount() == 3
    dlg.show_box.setCurrentIndex(0)
    click_row(qtbot, dlg, "test-semseg")
    assert not dlg.get_button.isEnabled() and dlg.file_button.isEnabled()
    text = dlg.details.toPlainText()
    assert "https://example.org/shared-folder" in text and "exp/train_epoch_1.pth" in text and "MIT" in text
    click_row(qtbot, dlg, "test-scenes")
    assert dlg.get_button.text() == "Download and use" and dlg.get_button.isEnabled()
    target = studio_home / "models" / "test-scenes" / "model.safetensors"
    assert f"goes to {target}" in dlg.details.toPlainText()

    # Download: progress while the server holds the rest of the file
    qtbot.mouseClick(dlg.get_button, LEFT)
    qtbot.waitUntil(lambda: dlg.progress.isVisible() and dlg.progress.value() > 0, timeout=10000)
    assert dlg.cancel_button.isEnabled() and not dlg.get_button.isEnabled() and not dlg.tree.isEnabled()
    assert "of" in dlg.status.text() and "MB" in dlg.status.text()
    # Cancel: the download stops, what it has is kept, nothing under the final name, no model
    qtbot.mouseClick(dlg.cancel_button, LEFT)
    route.release.set()
    qtbot.waitUntil(lambda: "cancelled" in dlg.status.text(), timeout=10000)
    part = target.with_name(target.name + ".part")
    assert part.is_file() and 0 < part.stat().st_size < len(model_bytes)
    assert not target.exists() and window.controller.loaded is None
    assert not dlg.progress.isVisible() and dlg.get_button.isEnabled() and dlg.get_button.text() == "Download and use"
    # Download again: it resumes, checks, moves the file in place, loads it; the dialog closes
    kept = part.stat().st_size
    with qtbot.waitSignal(dlg.modelInUse, timeout=30000):
        qtbot.mouseClick(dlg.get_button, LEFT)
    assert server.requests("/zoo/model.safetensors")[-1][0] == f"bytes={kept}-"  # (Range, If-Range) asked for
    assert target.read_bytes() == model_bytes and not part.exists()
    c = window.controller
    assert c.loaded.sources == [target] and not dlg.isVisible()
    # in use: the shown image is predicted with it
    qtbot.waitUntil(lambda: c.outcome is not None and c.predictor is not None and c.predictor.model is c.loaded.model,
                    timeout=30000)

    # cached now: shown as such, and used without downloading
    n = len(server.log)
    window.open_model(window.controller.loaded.sources)  # reload, so that "Use" changes something
    dlg = open_zoo(qtbot, window)
    assert dlg.item_of("test-scenes").text(5) == "in the cache"
    click_row(qtbot, dlg, "test-scenes")
    assert dlg.get_button.text() == "Use"
    before = c.models.generation
    with qtbot.waitSignal(dlg.modelInUse, timeout=30000):
        qtbot.mouseClick(dlg.get_button, LEFT)
    assert len(server.log) == n and c.models.generation > before and c.loaded.sources == [target]


def test_offline_says_what_to_do_then_a_file_downloaded_elsewhere_is_used(qtbot, window, zoo, model_bytes,
                                                                          studio_home, tmp_path):
    url = refused_url()
    zoo([entry("test-scenes", url, model_bytes)])
    dlg = open_zoo(qtbot, window)
    qtbot.mouseClick(dlg.get_button, LEFT)
    qtbot.waitUntil(lambda: bool(dlg.last_error), timeout=20000)
    target = studio_home / "models" / "test-scenes" / "model.safetensors"
    text = dlg.status.text()
    assert "connection refused" in text and url in text and str(target) in text
    assert "Choose downloaded file" in text and not target.exists()
    assert dlg.get_button.isEnabled() and dlg.file_button.isEnabled()
    # a wrong file is refused, nothing is placed
    wrong = tmp_path / "wrong.safetensors"
    wrong.write_bytes(model_bytes[:-10] + b"0123456789")
    dlg.choose_files = lambda: [str(wrong)]
    dlg.last_error = ""
    qtbot.mouseClick(dlg.file_button, LEFT)
    qtbot.waitUntil(lambda: bool(dlg.last_error), timeout=20000)
    assert "not the published file" in dlg.status.text() and not target.exists()
    assert window.controller.loaded is None
    # the right one: checked, copied into the cache, loaded
    good = tmp_path / "downloaded.safetensors"
    good.write_bytes(model_bytes)
    dlg.choose_files = lambda: [str(good)]
    with qtbot.waitSignal(dlg.modelInUse, timeout=30000):
        qtbot.mouseClick(dlg.file_button, LEFT)
    assert target.read_bytes() == model_bytes and good.is_file()
    assert window.controller.loaded.sources == [target]


def test_a_server_error_and_a_file_given_by_hand(qtbot, window, zoo, server, model_bytes, studio_home, tmp_path):
    url = server.add("/broken.safetensors", Route(model_bytes, status=503))
    zoo([entry("test-scenes", url, model_bytes),
         entry("test-semseg", None, model_bytes, download="manual", file_name="train_epoch_1.pth")])
    dlg = open_zoo(qtbot, window)
    qtbot.mouseClick(dlg.get_button, LEFT)
    qtbot.waitUntil(lambda: bool(dlg.last_error), timeout=20000)
    assert "503" in dlg.status.text() and url in dlg.status.text()
    assert len(server.requests("/broken.safetensors")) == 2  # one retry
    # the authors' entry: the page and the file to choose; a downloaded file is checked and used
    click_row(qtbot, dlg, "test-semseg")
    assert "open the shared folder" in dlg.details.toPlainText()
    manual = tmp_path / "train_epoch_1.pth"
    manual.write_bytes(model_bytes)
    dlg.choose_files = lambda: [str(manual)]
    with qtbot.waitSignal(dlg.modelInUse, timeout=30000):
        qtbot.mouseClick(dlg.file_button, LEFT)
    target = studio_home / "models" / "test-semseg" / "train_epoch_1.pth"
    assert target.read_bytes() == model_bytes and window.controller.loaded.sources == [target]


def test_the_demo_model_says_what_it_knows_on_a_photo(qtbot, window, scenes, tmp_path):
    from app.demo import BUNDLED_CHECKPOINT

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(scenes / "images" / "scene_0002.png", photos / "holiday.png")
    window.open_model(BUNDLED_CHECKPOINT)
    window.open_folder(scenes)  # the demo's own scenes: no note
    qtbot.waitUntil(lambda: window.controller.outcome is not None, timeout=30000)
    notes = window.banners
    assert notes.banner("demo-model") is None
    window.open_image(photos / "holiday.png")
    qtbot.waitUntil(lambda: notes.banner("demo-model") is not None, timeout=20000)
    note = notes.banner("demo-model")
    assert "synthetic scenes" in note.text and "10 classes" in note.text and "skyscraper" in note.text
    assert note.isVisible()
    window.show_message("something else")  # a status line does not replace it
    assert notes.banner("demo-model") is not None
    qtbot.mouseClick(note.buttons["Get a pretrained model..."], LEFT)
    dlg = window.project_ui.zoo_dialog
    qtbot.waitExposed(dlg)
    assert dlg.tree.topLevelItemCount() > 0
    dlg.reject()
    # closed by the user: it stays closed for this model; another model shows no such note
    qtbot.mouseClick(note.close_button, LEFT)
    assert notes.banner("demo-model") is None
    window.open_image(photos / "holiday.png")
    qtbot.wait(300)
    assert notes.banner("demo-model") is None
    # a model of real classes on the same photo: no note
    other = tmp_path / "voc.safetensors"
    voc = core.ClassTable.builtin("voc")
    core.save_checkpoint(other, core.build_model(core.ModelConfig(depth=18, base_width=8, num_classes=len(voc), head_channels=32,
                                                                   aux_channels=16)).eval(), voc, {"source": "test"})
    window.open_model(other)
    qtbot.waitUntil(lambda: window.controller.loaded is not None and window.controller.loaded.sources == [other],
                    timeout=20000)
    assert notes.banner("demo-model") is None
