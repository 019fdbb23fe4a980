"""What to correct next, through the window with real key presses and clicks: N walks the
project's uncertain regions in the ranking's order (core.assess + core.rank_regions, what the
label-efficiency benchmark corrects in), opening the image each is in, outlining it and saying
why; "Sort by uncertainty" starts a ranking when there is none, with progress; after a retrain
the ranking is redone in the background on a copy of the new model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

import core
from app.controllers.retrainer import RetrainOptions
from window_helpers import open_project


def press_n(qtbot, window, timeout=20000) -> tuple[Path, core.RegionScore]:
    with qtbot.waitSignal(window.ranker.regionRequested, timeout=timeout) as blocker:
        qtbot.keyClick(window, Qt.Key.Key_N)
    qtbot.wait(1)  # the outline and the message come with the same event-loop pass
    return window.controller.image.path.resolve(), blocker.args[0]


def sort_and_wait(qtbot, window) -> list[tuple[int, int]]:
    """Click "Sort by uncertainty" (no ranking yet): the ranking starts, with progress in the list."""
    progress = []
    window.ranker.rankingProgress.connect(lambda done, n: progress.append((done, n)))
    box = window.image_list.sort_box
    with qtbot.waitSignal(window.ranker.rankingFinished, timeout=60000):
        with qtbot.waitSignal(window.ranker.rankingStarted, timeout=5000):
            qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=box.rect().center())
        assert box.isChecked() and window.image_list.rank_progress.isVisible()
    assert not window.image_list.rank_progress.isVisible()
    return progress


def expected_queue(window) -> list[tuple[Path, tuple[int, int, int, int]]]:
    """The project's queue computed here, independently: each image predicted by a copy of the
    model in use and assessed by core (no labels yet), all ranked by core.rank_regions."""
    predictors = core.Predictors.on(core.copy_model(window.controller.loaded.model), "cpu")
    per = {}
    for e in window.controller.folder.entries:
        pred = predictors.predictor.predict(core.read_image(e.path))
        per[e.path.resolve()] = core.assess(pred, None).regions
    return [(k, r.region) for k, r in core.rank_regions(per)]


def test_n_walks_the_projects_regions_in_score_order_outlines_and_explains(qtbot, window, tiny_ckpt, project):
    open_project(qtbot, window, tiny_ckpt, project)
    c, rk = window.controller, window.ranker
    qtbot.waitUntil(lambda: rk.current is not None, timeout=10000)
    progress = sort_and_wait(qtbot, window)
    n = len(c.folder)
    assert progress[0] == (0, n) and progress[-1] == (n, n) and [d for d, _ in progress] == list(range(n + 1))
    assert all(e.score is not None for e in c.folder.entries) and rk.ranked
    assert window.image_list.order[0] == int(np.argmax([e.score for e in c.folder.entries]))
    expected = expected_queue(window)
    walked, seen_images = [], set()
    for _ in range(8):
        path, region = press_n(qtbot, window)
        walked.append((path, region.region))
        seen_images.add(path)
        # the region is outlined on this image, and the view is zoomed to it
        outline = window.region_outline
        y0, y1, x0, x1 = region.region
        assert outline.visible and outline.path == path and outline.rect() == (x0, y0, x1 - x0, y1 - y0)
        (vx0, vx1), (vy0, vy1) = window.seg.canvas.vb.viewRange()
        assert vx0 <= x0 and x1 <= vx1 and vy0 <= y0 and y1 <= vy1 and vx1 - vx0 < c.image.image.shape[1]
        # and the status bar says why
        text = window.info.text()
        assert path.name in text and text.startswith("Main and aux heads disagree on") and "nats" in text
        assert "the most uncertain unlabelled region left in the project" in text
        assert f"{x1 - x0}x{y1 - y0} region" in text
    assert walked == expected[:8]
    assert len(seen_images) >= 2, "the walk should cross images (one image holds every top region?)"


def test_n_moves_to_the_next_image_when_this_one_is_labelled(qtbot, window, tiny_ckpt, project, scenes):
    open_project(qtbot, window, tiny_ckpt, project)
    c, rk, ed = window.controller, window.ranker, window.editor
    qtbot.waitUntil(lambda: rk.current is not None, timeout=10000)
    first = c.image.path.resolve()
    # the whole first image labelled (its true mask), then N: the next region is in another image
    truth = core.read_mask(scenes / "masks" / f"{first.stem}.png", core.ClassTable.load(project / "classes.json"))
    ed.mask.assign((0, truth.shape[0], 0, truth.shape[1]), truth)
    with qtbot.waitSignal(rk.rankingFinished, timeout=60000):
        path, region = press_n(qtbot, window, timeout=60000)  # N starts the ranking itself
    assert path != first and c.image.path.resolve() == path
    assert window.region_outline.visible and window.region_outline.path == path
    text = window.info.text()
    assert f"{first.name} has no unlabelled uncertain region left" in text and path.name in text
    # going back to the labelled image: N never proposes a region there
    for _ in range(5):
        p, _r = press_n(qtbot, window)
        assert p != first


def test_n_says_when_no_region_is_left_in_the_project(qtbot, window, tiny_ckpt, project, scenes):
    classes = core.ClassTable.load(project / "classes.json")
    for p in sorted((project / "images").glob("*.png")):  # every image labelled (an earlier session)
        core.write_mask(project / "masks" / p.name, core.read_mask(scenes / "masks" / p.name, classes), classes)
    open_project(qtbot, window, tiny_ckpt, project)
    rk = window.ranker
    qtbot.waitUntil(lambda: rk.current is not None, timeout=10000)
    with qtbot.waitSignal(rk.rankingFinished, timeout=60000):
        qtbot.keyClick(window, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: "No unlabelled uncertain region left in the project's 4 images" in window.info.text(),
                    timeout=10000)
    assert not window.region_outline.visible and rk.ranked


def test_ranking_is_redone_in_the_background_after_a_retrain(qtbot, window, tiny_ckpt, corrected):
    open_project(qtbot, window, tiny_ckpt, corrected)
    c, rk, rt = window.controller, window.ranker, window.retrainer
    with qtbot.waitSignal(rk.rankingFinished, timeout=60000):
        qtbot.keyClick(window, Qt.Key.Key_U, Qt.KeyboardModifier.ControlModifier)
    before = [e.score for e in c.folder.entries]
    assert all(s is not None for s in before)
    ranked_with = []
    rk.rankingStarted.connect(lambda n: ranked_with.append(c.loaded.model))
    window.retrain_panel.set_options(RetrainOptions(steps=5, lr=0.05, batch=2, crop=0, freeze_backbone=True,
                                                    cache_features=True, aux_weight=0.4))
    with qtbot.waitSignal(rt.finished, timeout=60000):
        window.act.retrain.trigger()
    qtbot.waitUntil(lambda: rk.ranked and not rk.ranking, timeout=60000)
    assert ranked_with and ranked_with[-1] is c.loaded.model  # started for the new model ...
    assert rk.rank_task is not None and rk.rank_task.is_finished
    after = [e.score for e in c.folder.entries]
    assert all(s is not None for s in after) and after != before  # ... and every image scored with it
    path, region = press_n(qtbot, window)  # N walks the new ranking
    assert window.region_outline.visible and region.region in [r.region for r in rk.queue._regions[path]]
