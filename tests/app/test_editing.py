"""Correcting masks: the tools (with fake events, no window), then the window: painting with
simulated mouse drags, shortcuts, undo/redo across image switches, autosave, the crash-recovery
prompt, read-only unreadable masks, the close prompt, and "what to correct next"."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication, QMessageBox

import core
from app.tools import AcceptTool, BrushTool, EraserTool, FillTool, LassoTool, PickerTool, PolygonTool, ToolEvent
from app.tools.base import ToolSettings
from window_helpers import color_table_rgba, mouse, mouse_drag, open_project, shown_indices

B = QMessageBox.StandardButton


# ---------------------------------------------------------------------------------------------
# the tools, driven by fake events (no canvas)
class FakeContext:
    def __init__(self, mask, prediction=None):
        self.mask = mask
        self.prediction = prediction
        self.settings = ToolSettings()
        self.settings.set_num_classes(mask.num_classes)
        self.previews: list = []
        self.notes: list[str] = []

    def preview(self, points, closed=False):
        self.previews.append(None if points is None else list(points))

    def picked(self, label):
        self.settings.label = label

    def notify(self, text):
        self.notes.append(text)


def drag(tool, ctx, points):
    """Press at the first point, move through the rest, release at the last (as the canvas does)."""
    gen = tool.press(ctx, ToolEvent("press", *points[0]))
    if gen is None:
        return
    next(gen)
    for p in points[1:]:
        gen.send(ToolEvent("move", *p))
    with pytest.raises(StopIteration):
        gen.send(ToolEvent("release", *points[-1]))


def test_brush_drag_is_one_undo_step_equal_to_a_core_stroke():
    mask = core.LabelMask.empty((40, 50), 6)
    ctx = FakeContext(mask)
    ctx.settings.label, ctx.settings.radius = 4, 3
    pts = [(10.0, 5.0), (12.5, 15.2), (20.0, 30.0), (20.0, 30.0)]
    drag(BrushTool(), ctx, pts)
    ref = core.LabelMask.empty((40, 50), 6)
    ref.paint_stroke(pts, 4, 3)
    np.testing.assert_array_equal(mask.data, ref.data)
    assert mask.undo_count == 1 and (mask.data == 4).sum() > 100
    # the eraser paints ignore (255) with the same footprint; preserve never applies to it
    ctx.settings.set_option("preserve", True)
    drag(EraserTool(), ctx, pts[:2])
    ref.paint_stroke(pts[:2], 255, 3)
    np.testing.assert_array_equal(mask.data, ref.data)
    assert mask.undo_count == 2
    mask.undo()
    mask.undo()
    assert (mask.data == 255).all()


def test_square_brush_and_preserve_existing_labels():
    mask = core.LabelMask.empty((30, 30), 6)
    mask.paint([(15, 15)], 1, radius=2)  # an existing label
    ctx = FakeContext(mask)
    ctx.settings.label, ctx.settings.radius = 2, 5
    ctx.settings.set_option("shape", "square")
    ctx.settings.set_option("preserve", True)
    before = mask.data.copy()
    drag(BrushTool(), ctx, [(15.0, 15.0)])
    assert (mask.data[10:21, 10:21] != 255).all()  # the 11x11 square is covered
    np.testing.assert_array_equal(mask.data[before == 1], 1)  # ... but the label 1 stayed


def test_fill_polygon_lasso_and_picker():
    mask = core.LabelMask.empty((20, 20), 6)
    mask.paint_stroke([(10, 0), (10, 19)], 1, radius=0)  # a wall across the image
    ctx = FakeContext(mask)
    ctx.settings.label = 3
    FillTool().press(ctx, ToolEvent("press", 2.2, 2.8))
    assert (mask.data[:10] == 3).all() and (mask.data[11:] == 255).all()
    ctx.settings.set_option("fill_all", True)
    ctx.settings.label = 5
    mask.paint([(15, 15)], 3, radius=0)  # a 3 on the other side of the wall
    FillTool().press(ctx, ToolEvent("press", 0, 0))
    assert (mask.data[:10] == 5).all() and mask.data[15, 15] == 5  # replace-all reaches it
    mask.undo(), mask.undo(), mask.undo()
    # polygon: clicks, Backspace takes the last corner back, double-click fills
    poly = PolygonTool()
    ctx.settings.label = 2
    for p in [(12, 2), (12, 8), (7, 7)]:
        poly.press(ctx, ToolEvent("press", *p))
    assert poly.key(ctx, "backspace") and len(poly.points) == 2
    poly.press(ctx, ToolEvent("press", 18, 8))
    poly.double_click(ctx, ToolEvent("double", 18, 2))
    ref = core.LabelMask(mask.data, 6)
    assert not poly.busy and ctx.previews[-1] is None
    expected = core.LabelMask.empty((20, 20), 6)
    expected.paint_stroke([(10, 0), (10, 19)], 1, radius=0)
    expected.polygon([(12, 2), (12, 8), (18, 8), (18, 2)], 2)
    np.testing.assert_array_equal(ref.data, expected.data)
    # Esc drops an unfinished polygon; Enter with two corners says why nothing happened
    poly.press(ctx, ToolEvent("press", 1, 1))
    assert poly.key(ctx, "escape") and not poly.busy
    poly.press(ctx, ToolEvent("press", 1, 1)), poly.press(ctx, ToolEvent("press", 1, 5))
    poly.key(ctx, "enter")
    assert "three corners" in ctx.notes[-1]
    # lasso: the dragged outline is filled
    drag(LassoTool(), ctx, [(0.0, 12.0), (0.0, 18.0), (6.0, 18.0), (6.0, 12.0)])
    assert (mask.data[1:6, 13:18] == 2).all()
    # the picker reads the mask, and the prediction where nothing is painted
    pred = np.full((20, 20), 4, np.uint8)
    ctx.prediction = pred
    PickerTool().press(ctx, ToolEvent("press", 10, 3))
    assert ctx.settings.label == 1
    PickerTool().press(ctx, ToolEvent("press", 19, 19))
    assert ctx.settings.label == 4


def test_accept_prediction_under_a_brush_and_inside_a_lasso():
    mask = core.LabelMask.empty((30, 40), 6)
    pred = (np.arange(30 * 40).reshape(30, 40) % 5).astype(np.uint8)
    ctx = FakeContext(mask, pred)
    ctx.settings.radius = 2
    drag(AcceptTool(), ctx, [(5.0, 5.0), (5.0, 30.0)])
    changed = mask.data != 255
    ref = core.LabelMask.empty((30, 40), 6)
    box, sel = ref.brush_footprint([(5.0, 5.0), (5.0, 30.0)], 2)
    full = np.zeros((30, 40), bool)
    full[box.slices] = sel
    np.testing.assert_array_equal(changed, full)
    np.testing.assert_array_equal(mask.data[changed], pred[changed])
    assert mask.undo_count == 1
    # inside a lasso, with preserve: the brushed pixels stay (they are labelled now)
    mask.paint([(20, 20)], 0, radius=1)
    ctx.settings.set_option("accept_shape", "lasso")
    ctx.settings.set_option("preserve", True)
    drag(AcceptTool(), ctx, [(15.0, 15.0), (15.0, 25.0), (25.0, 25.0), (25.0, 15.0)])
    assert (mask.data[16:25, 16:25][mask.data[16:25, 16:25] != 0] == pred[16:25, 16:25][mask.data[16:25, 16:25] != 0]).all()
    assert mask.data[20, 20] == 0
    # without a prediction the tool says so and changes nothing
    ctx.prediction = None
    before = mask.data.copy()
    assert AcceptTool().press(ctx, ToolEvent("press", 1, 1)) is None
    assert "prediction" in ctx.notes[-1]
    np.testing.assert_array_equal(mask.data, before)


# ---------------------------------------------------------------------------------------------
# the window
def test_painting_with_mouse_drags_shortcuts_and_undo(qtbot, window, tiny_ckpt, project):
    window.editor.autosave.setInterval(60000)  # saved later, on purpose
    mask = open_project(qtbot, window, tiny_ckpt, project)
    # B: the brush; 3: class 3; ] and [: the brush size
    qtbot.keyClick(window, Qt.Key.Key_B)
    assert window.canvas_tools.tool.name == "brush" and window.act.tools["brush"].isChecked()
    qtbot.keyClick(window, Qt.Key.Key_3)
    assert window.tool_settings.label == 3 and window.tool_panel.class_box.currentData() == 3
    r0 = window.tool_settings.radius
    qtbot.keyClick(window, Qt.Key.Key_BracketRight)
    assert window.tool_settings.radius > r0 and window.tool_panel.size_spin.value() == round(window.tool_settings.radius)
    qtbot.keyClick(window, Qt.Key.Key_BracketLeft)
    assert window.tool_settings.radius == r0
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.AltModifier)  # display modes moved to Alt+N
    assert window.seg.mode == "confidence"
    window.act.modes["labels"].trigger()
    # a drag paints exactly what core paints along the same points, as one undo step
    window.seg.canvas.viewport().repaint()  # the mask layer as the screen shows it before the stroke
    qimage_before = window.seg.mask_layer.qimage
    assert qimage_before is not None
    points = mouse_drag(window, [(20, 30), (45, 35), (70, 60)])
    ref = core.LabelMask.empty(mask.shape, mask.num_classes)
    ref.paint_stroke(points, 3, r0)
    np.testing.assert_array_equal(mask.data, ref.data)
    assert mask.undo_count == 1 and (mask.data == 3).sum() > 200
    assert window.isWindowModified() and window.windowTitle().startswith("scene_0000.png")
    # the mask layer paints the buffer itself: its QImage (made before the stroke, not rendered again)
    # holds the mask's pixels at the mask's own address, coloured through the class table
    layer = window.seg.mask_layer
    assert np.shares_memory(layer.image, mask.data)
    assert layer.qimage is qimage_before
    shown, address = shown_indices(layer)
    assert address == mask.data.ctypes.data
    np.testing.assert_array_equal(shown, mask.data)
    np.testing.assert_array_equal(color_table_rgba(layer), window.seg.mask_lut()[:len(layer.qimage.colorTable())])
    # the brush outline followed the cursor and has the brush's size
    rect = window.canvas_tools.outline.rect()
    assert rect.width() == pytest.approx(2 * r0 + 1)
    # Ctrl+Z / Ctrl+Shift+Z
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert (mask.data == 255).all()
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    np.testing.assert_array_equal(mask.data, ref.data)
    # middle-button drags still pan (the tool ignores them)
    before = mask.data.copy()
    vp = window.seg.canvas.viewport()
    p = window.seg.canvas.widget_pos_of_pixel(10, 10)
    QApplication.sendEvent(vp, QMouseEvent(QEvent.Type.MouseButtonPress, QPointF(p), QPointF(vp.mapToGlobal(p)),
                                           Qt.MouseButton.MiddleButton, Qt.MouseButton.MiddleButton,
                                           Qt.KeyboardModifier.NoModifier))
    QApplication.sendEvent(vp, QMouseEvent(QEvent.Type.MouseButtonRelease, QPointF(p), QPointF(vp.mapToGlobal(p)),
                                           Qt.MouseButton.MiddleButton, Qt.MouseButton.NoButton,
                                           Qt.KeyboardModifier.NoModifier))
    np.testing.assert_array_equal(mask.data, before)
    # Alt+click picks the class under the cursor; accept-everywhere with preserve fills the rest
    qtbot.keyClick(window, Qt.Key.Key_1)
    mouse(vp, "press", window.seg.canvas.widget_pos_of_pixel(45, 35), Qt.KeyboardModifier.AltModifier)
    mouse(vp, "release", window.seg.canvas.widget_pos_of_pixel(45, 35), Qt.KeyboardModifier.AltModifier)
    assert window.tool_settings.label == 3 and mask.undo_count == 1
    window.act.preserve.trigger()
    window.act.accept_all.trigger()
    pred = window.controller.outcome.prediction.labels
    painted = ref.data != 255
    np.testing.assert_array_equal(mask.data[painted], 3)
    np.testing.assert_array_equal(mask.data[~painted], pred[~painted])
    assert mask.undo_count == 2


def test_history_survives_switching_images_and_autosave_writes(qtbot, window, tiny_ckpt, project):
    ed = window.editor
    ed.autosave.setInterval(150)
    first = open_project(qtbot, window, tiny_ckpt, project)
    window.act.tools["fill"].trigger()
    window.tool_settings.label = 2
    canvas, vp = window.seg.canvas, window.seg.canvas.viewport()
    mouse(vp, "press", canvas.widget_pos_of_pixel(5, 5))
    mouse(vp, "release", canvas.widget_pos_of_pixel(5, 5))
    assert (first.data == 2).all() and first.undo_count == 1
    with qtbot.waitSignal(ed.saved, timeout=10000) as blocker:
        pass  # the debounced autosave
    assert blocker.args == ["scene_0000"]
    saved = core.read_mask(project / "masks" / "scene_0000.png", core.ClassTable.load(project / "classes.json"))
    np.testing.assert_array_equal(saved, first.data)
    assert not window.isWindowModified() and not (project / "masks" / ".scene_0000.journal").exists()
    assert window.image_list.folder.entries[0].mask_state == "mask"
    # the next image, a stroke there; then back: the first image still has its undo step
    window.controller.step_image(1)
    qtbot.waitUntil(lambda: ed.name == "scene_0001" and ed.mask is not None, timeout=10000)
    window.act.tools["brush"].trigger()
    mouse_drag(window, [(10, 10), (30, 10)])
    second = ed.mask
    assert second is not first and second.undo_count == 1
    window.controller.step_image(-1)
    qtbot.waitUntil(lambda: ed.name == "scene_0000" and ed.mask is first, timeout=10000)
    qtbot.waitUntil(lambda: window.controller.image.path.stem == "scene_0000", timeout=10000)
    assert np.shares_memory(window.seg.mask_layer.image, first.data)  # shown again, with its history
    # leaving scene_0001 saved it
    qtbot.waitUntil(lambda: (project / "masks" / "scene_0001.png").exists(), timeout=10000)
    with qtbot.waitSignal(ed.saved, timeout=10000, check_params_cb=lambda name: name == "scene_0000"):
        window.act.undo.trigger()
    assert (first.data == 255).all()
    assert (core.read_mask(project / "masks" / "scene_0000.png", core.ClassTable.load(project / "classes.json"))
            == 255).all()


def test_crash_journal_is_offered_for_recovery(qtbot, tiny_ckpt, project, tmp_path):
    from app.main_window import MainWindow

    w1 = MainWindow(restore=False)
    qtbot.addWidget(w1)
    w1.show()
    w1.editor.autosave.setInterval(3_600_000)  # the crash comes before any save
    open_project(qtbot, w1, tiny_ckpt, project)
    w1.act.tools["brush"].trigger()
    w1.tool_settings.label = 4
    mouse_drag(w1, [(10, 10), (60, 40)])
    painted = w1.editor.mask.data.copy()
    assert w1.editor.project.flush_journals(10)  # the journal's writer thread has the stroke on disk
    assert (project / "masks" / ".scene_0000.journal").exists() and not (project / "masks" / "scene_0000.png").exists()
    crashed = tmp_path / "crashed"
    shutil.copytree(project, crashed)  # the folder as a crash leaves it
    w1.ask = lambda *a: B.Discard
    w1.close()
    assert w1.controller.shutdown(10000)

    asked = []
    w2 = MainWindow(restore=False)
    qtbot.addWidget(w2)
    w2.show()

    def answer(title, text, buttons, default):
        asked.append(text)
        return B.Yes

    w2.ask = answer
    w2.editor.autosave.setInterval(100)
    open_project(qtbot, w2, tiny_ckpt, crashed)
    assert len(asked) == 1 and "scene_0000" in asked[0]
    assert w2.editor.last_recovered == ["scene_0000"]
    np.testing.assert_array_equal(w2.editor.mask.data, painted)
    assert w2.editor.mask.can_undo  # the recovery is one undo step
    qtbot.waitUntil(lambda: (crashed / "masks" / "scene_0000.png").exists(), timeout=10000)
    np.testing.assert_array_equal(
        core.read_mask(crashed / "masks" / "scene_0000.png", core.ClassTable.load(crashed / "classes.json")), painted)
    w2.close()
    assert w2.controller.shutdown(10000)


def test_unreadable_mask_opens_read_only_and_is_never_overwritten(qtbot, window, tiny_ckpt, project):
    bad = project / "masks" / "scene_0000.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not a mask" * 20)
    original = bad.read_bytes()
    window.open_model(tiny_ckpt)
    window.open_folder(project)
    ed = window.editor
    qtbot.waitUntil(lambda: ed.reason.startswith("read-only"), timeout=20000)
    assert ed.mask is None and "scene_0000" in window.last_error
    assert "read-only" in window.tool_panel.state.text()
    window.act.tools["brush"].trigger()
    mouse_drag(window, [(10, 10), (40, 40)])
    assert "cannot be edited" in window.info.text()
    window.act.accept_all.trigger()
    assert window.editor.save_dirty() == [] and window.editor.save_all() is None  # nothing to save
    assert bad.read_bytes() == original
    assert window.image_list.folder.entries[0].mask_state == "unreadable mask"


def test_closing_with_unsaved_changes_asks(qtbot, tiny_ckpt, project):
    from app.main_window import MainWindow

    w = MainWindow(restore=False)
    qtbot.addWidget(w)
    w.show()
    w.editor.autosave.setInterval(3_600_000)
    open_project(qtbot, w, tiny_ckpt, project)
    w.act.tools["brush"].trigger()
    mouse_drag(w, [(5, 5), (25, 25)])
    answers = [B.Cancel, B.Save]
    asked = []

    def ask(title, text, buttons, default):
        asked.append(text)
        return answers.pop(0)

    w.ask = ask
    w.close()
    assert w.isVisible() and "scene_0000" in asked[0]  # Cancel: the window stays
    assert not (project / "masks" / "scene_0000.png").exists()
    w.close()  # Save: the masks are saved by a job, then the window closes
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=10000)
    assert len(asked) == 2
    saved = core.read_mask(project / "masks" / "scene_0000.png", core.ClassTable.load(project / "classes.json"))
    assert (saved != 255).sum() > 50
    assert w.controller.shutdown(10000)


def test_uncertainty_score_in_list_and_ranking(qtbot, window, tiny_ckpt, project):
    """The shown image's score in the list; Rank Images scores them all (N: tests/app/test_next_region.py)."""
    open_project(qtbot, window, tiny_ckpt, project)
    c = window.controller
    qtbot.waitUntil(lambda: c.folder.entries[0].score is not None, timeout=10000)
    pred = c.outcome.prediction
    umap = core.uncertainty_map(pred.probs, pred.aux_probs, entropy=pred.entropy)
    assert c.folder.entries[0].score == pytest.approx(core.image_score(umap), rel=1e-5)
    assert "uncertainty" in window.image_list.text_of(0)
    # the shown image's regions are the ranking's (core.region_scores), most uncertain first
    regions = window.ranker.current.regions
    assert regions[0].region == core.uncertain_regions(umap, k=1)[0].region
    assert [r.score for r in regions] == sorted((r.score for r in regions), reverse=True)
    # rank every image: all get scores; sorting puts the most uncertain first
    with qtbot.waitSignal(window.ranker.rankingFinished, timeout=60000):
        window.act.rank.trigger()
    scores = [e.score for e in c.folder.entries]
    assert all(s is not None for s in scores)
    window.image_list.sort_box.setChecked(True)
    assert window.image_list.order[0] == int(np.argmax(scores))
    assert window.image_list.current_index() == 0  # the shown image stays selected


def test_new_project_from_a_plain_folder_then_polygon_by_clicks_and_enter(qtbot, window, tiny_ckpt, scenes, tmp_path):
    plain = tmp_path / "photos"
    plain.mkdir()
    for name in ("scene_0000.png", "scene_0001.png"):
        shutil.copy(scenes / "images" / name, plain / name)
    window.ask = lambda *a: B.Discard
    window.open_model(tiny_ckpt)
    window.open_folder(plain)
    ed = window.editor
    qtbot.waitUntil(lambda: window.controller.image is not None and window.controller.loaded is not None,
                    timeout=20000)
    assert ed.mask is None and "not a project" in ed.reason
    window.act.tools["polygon"].trigger()
    mouse_drag(window, [(5, 5)])
    assert "cannot be edited" in window.info.text()
    root = tmp_path / "new-project"
    ed.create_project(root, window.controller.current_classes(), [e.path for e in window.controller.folder.entries])
    qtbot.waitUntil(lambda: (ed.project is not None and ed.mask is not None) or bool(window.last_error), timeout=20000)
    assert not window.last_error
    assert sorted(ed.project.names()) == ["scene_0000", "scene_0001"] and window.controller.folder.is_project
    # a polygon: three clicks on the canvas, Enter fills it (Enter goes to the tool, not to a shortcut)
    window.tool_settings.label = 7
    for x, y in ((10, 10), (60, 10), (60, 50)):
        mouse_drag(window, [(x, y)])
    assert window.canvas_tools.tool.busy and window.canvas_tools.path.points
    window.seg.canvas.setFocus()
    qtbot.keyClick(window.seg.canvas, Qt.Key.Key_Return)
    expected = core.LabelMask.empty(ed.mask.shape, ed.mask.num_classes)
    expected.polygon([(10, 10), (10, 60), (50, 60)], 7)
    np.testing.assert_array_equal(ed.mask.data, expected.data)
    assert not window.canvas_tools.tool.busy and not window.canvas_tools.path.points
    # Esc drops a polygon in progress without cancelling anything else
    mouse_drag(window, [(5, 70)])
    qtbot.keyClick(window.seg.canvas, Qt.Key.Key_Escape)
    assert not window.canvas_tools.tool.busy and ed.mask.undo_count == 1
