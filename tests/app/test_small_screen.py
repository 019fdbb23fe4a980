"""A 1280x720 screen (issue 14): the window's minimum fits it in every view, Show mode and dock,
with long texts and a 150-class table; its default layout there (and at 1600x1000) shows the
class table's rows, readable retrain curves and the whole before/after table; the shortcuts
dialog fits; the window opens maximised or centred and is kept on the screen; ``--size``."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pytest
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QApplication

import core
from app import window_geometry
from app.controllers.retrainer import RetrainOptions
from app.launch import parse_size, run_gui
from app.views.segmentation_view import MODES
from app.widgets.fit_progress import FitProgressBar
from app.widgets.shortcuts_dialog import ShortcutsDialog, plain
from window_helpers import open_project

ROOT = Path(__file__).resolve().parents[2]
SMALL = QSize(1280, 720)
ROOM = QSize(1280, 720 - 64)  # a 1280x720 screen less a desktop panel and a window title bar
ADE20K = ROOT / "resources" / "classes" / "ade20k.json"


def settle(qtbot, ms: int = 50) -> None:
    QApplication.processEvents()
    qtbot.wait(ms)
    QApplication.processEvents()


def assert_fits(window, what: str) -> None:
    hint = window.minimumSizeHint()
    assert hint.width() <= ROOM.width() and hint.height() <= ROOM.height(), \
        f"{what}: the window needs {hint.width()}x{hint.height()}, more than {ROOM.width()}x{ROOM.height()}"


def retrain(qtbot, window, steps: int = 3) -> list[core.Agreement]:
    window.retrain_panel.set_options(RetrainOptions(steps=steps, lr=0.01, batch=2, crop=0, freeze_backbone=True,
                                                    cache_features=True))
    with qtbot.waitSignal(window.retrainer.comparisonReady, timeout=90000) as blocker:
        window.act.retrain.trigger()
    return blocker.args[0]


def test_the_window_fits_1280x720_in_every_view_mode_and_dock(qtbot, window, tiny_ckpt, corrected):
    open_project(qtbot, window, tiny_ckpt, corrected)
    retrain(qtbot, window)  # the retrain panel full: curves, the before/after rows, the history
    docks = [window.images_dock, window.tools_dock, window.legend_dock, window.model_dock, window.retrain_dock]
    for dock in docks:
        dock.show()
    # long texts: an error that names a long path in the status bar, a long image-list title
    window.show_error("Could not read /home/someone/a/very/long/folder/name/" + "x" * 300 + ".png: damaged")
    for raised, tab, mode in itertools.product((window.model_dock, window.retrain_dock), range(3), MODES):
        raised.raise_()
        window.tabs.setCurrentIndex(tab)
        window.act.modes[mode].trigger()
        settle(qtbot, 0)
        assert_fits(window, f"{raised.windowTitle()} dock, tab {window.tabs.tabText(tab)}, Show {mode}")
    # a real model's class table: 150 classes, some with long names ("chest of drawers, chest, bureau, dresser")
    ade = core.ClassTable.load(ADE20K)
    window.controller.classesChanged.emit(ade)
    window.act.modes["class"].trigger()
    window.seg.class_box.setCurrentIndex(len(ade) - 1)
    settle(qtbot, 0)
    assert window.legend.table.rowCount() == 150
    assert_fits(window, "a 150-class table")
    # and the window really takes a 1280x720 screen's size (Qt keeps a window at least its minimum)
    window.showNormal()
    window.resize(SMALL)
    settle(qtbot)
    assert window.size() == SMALL
    # the status bar and the right panel are inside the window
    for w in (window.statusBar(), window.legend_dock, window.retrain_dock):
        r = QRect(w.mapTo(window, w.rect().topLeft()), w.size())
        assert window.rect().contains(r), (w, r)


def tick_texts(axis) -> list[tuple[QRect, str]]:
    """The tick labels an axis draws: (rect, text)."""
    img = QImage(8, 8, QImage.Format.Format_ARGB32)
    p = QPainter(img)
    try:
        specs = axis.generateDrawSpecs(p)
    finally:
        p.end()
    return [(rect.toAlignedRect(), text) for rect, _flags, text in specs[2]] if specs else []


@pytest.mark.parametrize("size", [(1280, 720), (1600, 1000)])
def test_the_default_layout_shows_rows_readable_curves_and_whole_tables(qtbot, window, tiny_ckpt, corrected, size):
    open_project(qtbot, window, tiny_ckpt, corrected)
    window.resize(*size)
    settle(qtbot)
    window_geometry.default_docks(window)
    window.retrain_dock.raise_()
    settle(qtbot, 100)
    panel = window.retrain_panel
    rows = retrain(qtbot, window, steps=4)
    settle(qtbot, 100)
    small = size == (1280, 720)

    # the class table: at least 6 of its 10 rows in view, whole
    table = window.legend.table
    view = table.viewport().rect()
    shown = [r for r in range(table.rowCount()) if view.contains(table.visualRect(table.model().index(r, 0)))]
    assert len(shown) >= (6 if small else 9), f"{len(shown)} class rows in view"

    # the curves: above the tables on a tall dock, in a tab of their own on a short one
    assert panel.stacked is (not small)
    if small:
        assert panel.tabs.tabText(0) == "Curves" and panel.tabs.currentWidget() is panel.compare_page
        panel.tabs.setCurrentIndex(0)
        settle(qtbot, 100)
    for plot in (panel.loss_plot, panel.lr_plot, panel.val_plot):
        assert plot.getViewBox().height() >= 40, plot.getViewBox().height()
        ticks = tick_texts(plot.getAxis("left"))
        assert len(ticks) >= 2, (ticks, plot.getAxis("left").range)  # a scale to read
        for (a, ta), (b, tb) in itertools.combinations(ticks, 2):
            assert not a.intersects(b), f"tick labels {ta!r} and {tb!r} overlap"
    steps = tick_texts(panel.val_plot.getAxis("bottom"))
    assert len(steps) >= 2 and all(not a.intersects(b) for (a, _), (b, _) in itertools.combinations(steps, 2))
    panel.show_results()
    settle(qtbot)

    # the before/after table: every number column whole, in view; the names readable
    t = panel.compare
    assert t.rowCount() == len(rows) == 3  # the corrected images
    header, width = t.horizontalHeader(), t.viewport().width()
    for col in (2, 3, 4):  # Before, After, Change
        assert not t.isColumnHidden(col)
        right = header.sectionViewportPosition(col) + header.sectionSize(col)
        assert right <= width, f"column {t.horizontalHeaderItem(col).text()} ends at {right} of {width} px"
        for r in range(t.rowCount()):
            text = t.item(r, col).text()
            assert t.fontMetrics().horizontalAdvance(text) < header.sectionSize(col), text
    assert header.sectionSize(0) > t.fontMetrics().horizontalAdvance("scene_0000")
    assert t.isColumnHidden(1) is (panel.width() < 380)  # Pixels: only in a wide dock (each row's tip has it)
    assert "labelled pixels" in t.item(0, 0).toolTip()

    # the progress text fits its bar, and the status line says what happened, not "comparing ..."
    bar = panel.progress
    assert bar.fontMetrics().horizontalAdvance(bar.text()) <= bar.room()
    assert panel.status.text().startswith("Model 0002 trained") and "comparing" not in panel.status.text()


def test_the_progress_text_is_the_longest_that_fits(qtbot):
    bar = FitProgressBar()
    qtbot.addWidget(bar)
    bar.setRange(0, 40)
    bar.setValue(12)
    bar.set_texts("step %v/%m  ETA 1:05", "%v/%m  ETA 1:05", "%v/%m")
    for width, expected in ((400, "step 12/40  ETA 1:05"), (None, "12/40  ETA 1:05"), (60, "12/40")):
        if width is None:  # just wide enough for the second text
            width = bar.fontMetrics().horizontalAdvance("12/40  ETA 1:05") + 12
        bar.resize(width, 22)
        bar.show()
        assert bar.text() == expected
        assert bar.fontMetrics().horizontalAdvance(bar.text()) <= bar.room() or expected == "12/40"
    assert bar.toolTip() == "step 12/40  ETA 1:05"  # the whole text, always
    bar.setFormat("done")
    assert bar.text() == "done"


def test_f1_shows_every_shortcut_in_a_dialog_that_fits_the_screen(qtbot, window):
    qtbot.keyClick(window, Qt.Key.Key_F1)
    dlg = window.shortcuts_dialog
    assert isinstance(dlg, ShortcutsDialog)
    qtbot.waitUntil(dlg.isVisible, timeout=3000)
    keys = {dlg.table.item(r, 0).text(): dlg.table.item(r, 1).text() for r in range(dlg.table.rowCount())}
    assert keys["F1"] == "Keyboard Shortcuts" and keys["Ctrl+R"] == "Retrain on Corrections"
    assert all(str(k) in keys for k in range(10))  # the class keys
    assert "Pan & Zoom" in keys.values()  # "&&" of a menu text is one "&"
    assert plain("&Open && Save") == "Open & Save"
    # on a 1280x720 screen it fits, Close button included; here it fits the screen it is on
    on_small = dlg.size_for(SMALL)
    assert on_small.height() <= SMALL.height() - 100 and on_small.width() <= SMALL.width()
    assert dlg.minimumSizeHint().height() <= on_small.height()
    screen = dlg.screen().availableGeometry()
    assert dlg.frameGeometry().height() <= screen.height() and dlg.width() <= screen.width()
    close = dlg.buttons.button(dlg.buttons.StandardButton.Close)
    assert dlg.rect().contains(QRect(close.mapTo(dlg, close.rect().topLeft()), close.size()))
    # typing filters the table
    qtbot.keyClicks(dlg.filter, "retrain")
    shown = dlg.visible_rows()
    assert shown and all("retrain" in " ".join(dlg.table.item(r, c).text() for c in range(3)).lower() for r in shown)
    assert len(shown) < dlg.table.rowCount()
    qtbot.mouseClick(close, Qt.MouseButton.LeftButton)
    assert not dlg.isVisible()
    assert window.isVisible()  # the window was never blocked


def test_first_start_opens_maximised_on_a_small_screen_and_centred_on_a_large_one():
    rect, maximised = window_geometry.first_geometry(QRect(0, 0, 1280, 720 - 32))
    assert maximised and rect == QRect(0, 0, 1280, 688)
    rect, maximised = window_geometry.first_geometry(QRect(0, 0, 1366, 768))
    assert maximised
    rect, maximised = window_geometry.first_geometry(QRect(0, 30, 1920, 1050))
    assert not maximised and rect.size() == QSize(1600, 945) and rect.center() == QRect(0, 30, 1920, 1050).center()
    rect, maximised = window_geometry.first_geometry(QRect(0, 0, 2560, 1440))
    assert not maximised and rect.size() == QSize(1600, 1000)
    # a geometry saved on a larger screen is shrunk and moved onto this one
    assert window_geometry.fitted(QRect(300, 200, 1600, 1000), QRect(0, 0, 1280, 720)) == QRect(0, 0, 1280, 720)
    assert window_geometry.fitted(QRect(900, 500, 600, 400), QRect(0, 0, 1280, 720)) == QRect(680, 320, 600, 400)


def test_the_window_geometry_is_remembered_and_kept_on_screen(qtbot):
    from app.main_window import MainWindow

    def opened() -> MainWindow:
        w = MainWindow(restore=True)
        qtbot.addWidget(w)
        w.show()
        qtbot.waitExposed(w)
        return w

    def closed(w: MainWindow) -> None:
        w.close()
        assert w.controller.shutdown(10000)

    w = opened()  # the first start: the screen here is small (offscreen: 800x800)
    assert w.screen().availableGeometry().width() < window_geometry.MAXIMISE_BELOW.width()
    assert w.isMaximized()
    w.showNormal()
    w.setGeometry(40, 50, 700, 560)
    settle(qtbot)
    saved = w.geometry()
    closed(w)
    w = opened()
    assert not w.isMaximized() and w.geometry() == saved
    # a window saved larger than the screen (another monitor) comes back inside it
    w.setGeometry(100, 100, 2400, 1600)
    closed(w)
    w = opened()
    area = w.screen().availableGeometry()
    assert area.contains(w.geometry()), (w.geometry(), area)
    closed(w)


def test_screenshot_size_option(qtbot, tiny_ckpt, scenes, tmp_path):
    assert parse_size("1280x720") == (1280, 720) and parse_size(None) == (1600, 1000) and parse_size("screen") is None
    for bad in ("1280", "axb", "10x10"):
        with pytest.raises(ValueError, match="--size"):
            parse_size(bad)
    out = tmp_path / "small.png"
    args = argparse.Namespace(model=[str(tiny_ckpt)], image=str(scenes / "images" / "scene_0001.png"),
                              project=None, view="overlay", screenshot=str(out), size="1280x720", debug=False)
    assert run_gui(args) == 0
    img = QImage(str(out))
    assert (img.width(), img.height()) == (1280, 720)
    args.size = "12x12"
    assert run_gui(args) == 2
