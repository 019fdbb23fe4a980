"""The main window: opening images (API, drop, list), the overlay through the lookup table, the
hover readout, display modes, the legend, recent files and layout remembered."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

import core
from app import colormaps
from app.views.segmentation_view import hover_text
from core import inspect as ins
from window_helpers import rendered_rgba


def open_and_wait(qtbot, window, model: Path, image: Path):
    window.open_model(model)
    with qtbot.waitSignal(window.controller.outcomeReady, timeout=30000) as blocker:
        window.open_image(image)
    return blocker.args[0]


def test_prediction_arrives_and_overlay_is_labels_through_lut(qtbot, window, tiny_ckpt, scenes):
    img_path = scenes / "images" / "scene_0001.png"
    outcome = open_and_wait(qtbot, window, tiny_ckpt, img_path)
    pred = outcome.prediction
    image = core.read_image(img_path)
    assert pred.labels.shape == image.shape[:2]
    # the reference: the same model run directly through core
    loaded = core.load_model(tiny_ckpt)
    expected = core.Predictor.from_loaded(loaded).predict(image)
    np.testing.assert_array_equal(pred.labels, expected.labels)
    assert len(np.unique(pred.labels)) > 1  # a test image where the overlay has structure
    # the overlay shows those labels through the class lookup table, pixel for pixel
    seg = window.seg
    assert np.shares_memory(seg.canvas.overlay.image, pred.labels)  # no copy: the fast indexed path
    lut = colormaps.class_lut(loaded.classes)
    np.testing.assert_array_equal(rendered_rgba(seg.canvas.overlay), lut[pred.labels])
    np.testing.assert_array_equal(rendered_rgba(seg.canvas.photo)[..., :3], image)
    # the image list marks the image as predicted; the legend shows class shares
    idx = window.controller.folder.index_of(img_path)
    assert window.image_list.state_of(idx) == "predicted"
    assert "predicted" in window.image_list.list.item(idx).text()
    shares = ins.class_shares(expected.labels, len(loaded.classes))
    row = window.legend.row_of(int(np.argmax(shares)))
    assert window.legend.table.item(row, 1).text() == f"{100 * shares.max():.1f} %"
    assert window.windowTitle().startswith("scene_0001.png")


def simulate_drop(window, paths) -> tuple[bool, bool]:
    """A drag entering the window, then the drop (Qt delivers a drop only after an accepted enter)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(window.width() / 2, window.height() / 2)
    enter = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    return enter.isAccepted(), drop.isAccepted()


def test_drop_opens_image_and_model(qtbot, window, tiny_ckpt, scenes):
    img_path = scenes / "images" / "scene_0002.png"
    with qtbot.waitSignal(window.controller.outcomeReady, timeout=30000) as blocker:
        accepted = simulate_drop(window, [tiny_ckpt, img_path])
    assert accepted == (True, True)
    assert blocker.args[0].path == img_path
    assert window.controller.loaded.sources[0].name == tiny_ckpt.name
    # something that is neither image, folder nor checkpoint: an error that says so, nothing changes
    simulate_drop(window, [scenes / "classes.json"])
    assert "Nothing to open" in window.last_error
    assert window.controller.image.path == img_path


def test_image_list_opens_images_and_shows_mask_state(qtbot, window, tiny_ckpt, scenes):
    window.open_model(tiny_ckpt)
    with qtbot.waitSignal(window.controller.outcomeReady, timeout=30000):
        window.open_folder(scenes)
    assert window.image_list.list.count() == 4
    assert window.image_list.state_of(1) == "mask"
    with qtbot.waitSignal(window.controller.outcomeReady, timeout=30000) as blocker:
        window.image_list.list.setCurrentRow(2)  # as a click or arrow key does
    assert blocker.args[0].path.name == "scene_0002.png"
    assert window.controller.image.mask is not None  # the project's mask was read with the image
    with qtbot.waitSignal(window.controller.outcomeReady, timeout=30000) as blocker:
        window.act.next.trigger()
    assert blocker.args[0].path.name == "scene_0003.png"


def test_hover_readout_in_status_bar(qtbot, window, tiny_ckpt, scenes):
    outcome = open_and_wait(qtbot, window, tiny_ckpt, scenes / "images" / "scene_0000.png")
    pred = outcome.prediction
    canvas = window.seg.canvas
    names = window.controller.classes.names
    uncertain = np.unravel_index(np.argmax(pred.entropy), pred.entropy.shape)  # a pixel with a real top-3
    for x, y in ((10, 20), (int(uncertain[1]), int(uncertain[0]))):
        pos = canvas.widget_pos_of_pixel(x, y)
        qtbot.mouseMove(canvas.viewport(), pos)
        qtbot.waitUntil(lambda: window.info.text().startswith(f"x {x}, y {y} "), timeout=3000)
        text = window.info.text()
        c = int(pred.labels[y, x])
        assert f"{names[c]} {100 * pred.probs[c, y, x]:.1f} %" in text
        top3 = np.argsort(-pred.probs[:, y, x], kind="stable")[:3]
        assert "top-3: " + ", ".join(f"{names[i]} {100 * pred.probs[i, y, x]:.1f} %" for i in top3) in text
        assert text == hover_text(outcome, window.controller.classes, x, y)
    # leaving the image goes back to the last message
    qtbot.mouseMove(canvas.viewport(), QPoint(1, 1))
    qtbot.waitUntil(lambda: not window.info.text().startswith("x "), timeout=3000)


def test_display_modes_opacity_and_visibility(qtbot, window, tiny_ckpt, scenes):
    outcome = open_and_wait(qtbot, window, tiny_ckpt, scenes / "images" / "scene_0000.png")
    pred = outcome.prediction
    seg = window.seg
    window.act.modes["confidence"].trigger()
    assert seg.mode == "confidence"
    np.testing.assert_array_equal(seg.canvas.overlay.image, np.round(pred.confidence * 255).astype(np.uint8))
    window.act.modes["entropy"].trigger()
    expected = np.clip(np.round(pred.entropy / math.log(pred.num_classes) * 255), 0, 255).astype(np.uint8)
    assert np.abs(seg.canvas.overlay.image.astype(int) - expected).max() <= 1
    seg.set_mode("class", 3)
    np.testing.assert_array_equal(seg.canvas.overlay.image, np.round(pred.probs[3] * 255).astype(np.uint8))
    assert window.act.modes["class"].isChecked()
    window.act.modes["labels"].trigger()
    assert np.shares_memory(seg.canvas.overlay.image, pred.labels)
    # opacity and show/hide act on the overlay item
    window.act.less_opaque.trigger()
    assert seg.canvas.overlay.opacity() == pytest.approx(0.5)
    window.act.overlay.trigger()
    assert not seg.canvas.overlay.isVisible() and not seg.show_box.isChecked()
    window.act.overlay.trigger()
    assert seg.canvas.overlay.isVisible()


def test_legend_hides_classes(qtbot, window, tiny_ckpt, scenes):
    outcome = open_and_wait(qtbot, window, tiny_ckpt, scenes / "images" / "scene_0000.png")
    pred = outcome.prediction
    shown = int(np.bincount(pred.labels.ravel()).argmax())
    window.legend.set_class_visible(shown, False)
    assert window.legend.hidden() == {shown}
    rgba = rendered_rgba(window.seg.canvas.overlay)
    assert (rgba[pred.labels == shown, 3] == 0).all()
    assert (rgba[pred.labels != shown, 3] == 255).all()
    window.legend.set_all_visible(True)
    assert (rendered_rgba(window.seg.canvas.overlay)[..., 3] == 255).all()
    # "present only" lists just the classes in the prediction
    window.legend.present_only.setChecked(True)
    visible = {int(window.legend.table.item(r, 0).data(Qt.ItemDataRole.UserRole))
               for r in range(window.legend.table.rowCount()) if not window.legend.table.isRowHidden(r)}
    assert visible == set(np.unique(pred.labels).tolist())


def test_bad_image_reports_error_and_keeps_state(qtbot, window, tiny_ckpt, scenes, tmp_path):
    open_and_wait(qtbot, window, tiny_ckpt, scenes / "images" / "scene_0000.png")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with qtbot.waitSignal(window.controller.error, timeout=10000) as blocker:
        window.controller.open_image(bad)
    assert "broken.png" in blocker.args[0]
    assert window.last_error == blocker.args[0]
    assert window.controller.image.path.name == "scene_0000.png"
    assert bad.read_bytes().endswith(b"garbage")


def test_bad_model_reports_error(qtbot, window, tmp_path):
    bad = tmp_path / "nope.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with qtbot.waitSignal(window.controller.error, timeout=10000) as blocker:
        window.open_model(bad)
    assert "nope.safetensors" in blocker.args[0]
    assert window.controller.loaded is None


def test_recent_files_and_layout_are_remembered(qtbot, tiny_ckpt, scenes):
    from app.main_window import MainWindow

    w = MainWindow(restore=True)
    qtbot.addWidget(w)
    w.show()
    w.open_model(tiny_ckpt)
    with qtbot.waitSignal(w.controller.outcomeReady, timeout=30000):
        w.open_image(scenes / "images" / "scene_0003.png")
    w.tabs.setCurrentIndex(2)
    w.seg.set_opacity(0.3)
    w.legend_dock.hide()
    w.close()
    assert w.controller.shutdown(10000)

    w2 = MainWindow(restore=True)
    qtbot.addWidget(w2)
    w2.show()
    assert w2.settings.recent("images")[0] == str((scenes / "images" / "scene_0003.png").resolve())
    assert w2.settings.recent("models")[0] == str(tiny_ckpt.resolve())
    assert w2.tabs.currentIndex() == 2
    assert w2.seg.opacity.value() == 30
    assert not w2.legend_dock.isVisible()
    w2.fill_recent("images", w2.recent_menus["images"])
    assert w2.recent_menus["images"].actions()[0].text() == "scene_0003.png"
    w2.close()
    assert w2.controller.shutdown(10000)


def test_shortcuts_are_shown_in_menus(window):
    texts = {}
    for menu_action in window.menuBar().actions():
        for act in menu_action.menu().actions():
            if not act.isSeparator() and act.menu() is None:
                texts[act.text().replace("&", "")] = act.shortcut().toString()
    for name in ("Open Image...", "Open Model...", "Next Image", "Previous Image", "Predict Again", "Cancel",
                 "Segmentation", "Pyramid Levels", "Labels", "Confidence", "Show Overlay", "Fit to Window"):
        assert texts.get(name), f"{name} has no shortcut in its menu"
