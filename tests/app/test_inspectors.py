"""The pyramid inspector (levels off -> head-only re-run, changed pixels) and the heads comparison."""

from __future__ import annotations

import numpy as np
import pytest

import core
from core import inspect as ins


@pytest.fixture
def shown(qtbot, window, tiny_ckpt, scenes):
    """The window with the tiny model's prediction of a scene that has a mask."""
    window.open_model(tiny_ckpt)
    with qtbot.waitSignal(window.controller.outcomeReady, timeout=30000) as blocker:
        window.open_folder(scenes)
    outcome = blocker.args[0]
    assert outcome.path.name == "scene_0000.png"
    return window, outcome


def test_pyramid_levels_are_shown(qtbot, shown):
    window, outcome = shown
    c = window.controller
    view = window.pyramid
    assert tuple(view.cards) == (1, 2, 3, 6)
    qtbot.waitUntil(lambda: c.pyramid is not None, timeout=20000)
    levels = outcome.prediction.internals.levels
    # PCA summaries (default): b x b grids, upsampled at layer4's size
    for lv in levels:
        card = view.cards[lv.bin]
        assert card.pooled.array.shape == (lv.bin, lv.bin, 3)
        assert card.reduced.array.shape == (lv.bin, lv.bin, 3)
        assert card.upsampled.array.shape == tuple(lv.upsampled.shape[-2:]) + (3,)
    # one channel, chosen with the slider: that channel of each map, scaled to 0..255
    view.pooled_channel.slider.setValue(5)
    view.branch_channel.slider.setValue(3)
    assert view.summary_box.currentData() == "channel"
    lv6 = [lv for lv in levels if lv.bin == 6][0]
    np.testing.assert_array_equal(view.cards[6].pooled.array, ins.to_uint8(lv6.pooled[0, 5].numpy()))
    np.testing.assert_array_equal(view.cards[6].reduced.array, ins.to_uint8(lv6.reduced[0, 3].numpy()))
    # mean absolute activation
    view.summary_box.setCurrentIndex(1)
    np.testing.assert_array_equal(view.cards[2].reduced.array,
                                  ins.to_uint8(ins.mean_abs_activation(levels[1].reduced), 0.0, None))


def test_switching_a_level_off_reruns_heads_only(qtbot, shown, tiny_ckpt):
    window, outcome = shown
    c = window.controller
    base = outcome.prediction
    # the reference, straight from core: the heads re-run with level 6 off
    loaded = core.load_model(tiny_ckpt)
    predictor = core.Predictor.from_loaded(loaded)
    expected = predictor.rerun_heads(base, [6])
    assert 0 < np.count_nonzero(expected.labels != base.labels) < base.labels.size  # the level matters here

    calls = []
    backbone = c.predictor.model.backbone
    orig_forward = backbone.forward
    backbone.forward = lambda *a, **k: calls.append(1) or orig_forward(*a, **k)
    try:
        with qtbot.waitSignal(c.outcomeReady, timeout=20000) as blocker:
            window.pyramid.cards[6].setChecked(False)  # the level's checkbox, as a click does
    finally:
        backbone.forward = orig_forward
    off = blocker.args[0]
    assert calls == []  # the backbone was not recomputed
    assert off.mode == "heads" and off.disabled_levels == (6,)
    labels = off.prediction.labels
    assert (labels != expected.labels).mean() < 1e-3  # core's re-run, up to float ties
    np.testing.assert_allclose(off.prediction.probs, expected.probs, atol=1e-3)  # a sharpened classifier
    n_changed = int(np.count_nonzero(labels != base.labels))
    assert off.change.changed == n_changed and off.change.total == base.labels.size
    # every view shows the new prediction; the pyramid view shows the changed pixels and their share
    np.testing.assert_array_equal(window.seg.canvas.overlay.image, labels)
    np.testing.assert_array_equal(window.pyramid.result.overlay.image, labels)
    np.testing.assert_array_equal(window.pyramid.changed.overlay.image.astype(bool), labels != base.labels)
    assert f"{n_changed:,} of {base.labels.size:,}" in window.pyramid.changed_label.text()
    assert f"({100 * n_changed / base.labels.size:.2f} %)" in window.pyramid.changed_label.text()
    assert "heads re-run" in window.info.text()

    # a second level off: both are off together
    with qtbot.waitSignal(c.outcomeReady, timeout=20000) as blocker:
        window.pyramid.cards[1].setChecked(False)
    both = predictor.rerun_heads(base, [1, 6])
    assert (blocker.args[0].prediction.labels != both.labels).mean() < 1e-3
    # all back on: the original prediction, no change
    with qtbot.waitSignal(c.outcomeReady, timeout=20000) as blocker:
        window.act.all_levels.trigger()
    assert blocker.args[0].prediction is base and blocker.args[0].change is None
    assert all(card.isChecked() for card in window.pyramid.cards.values())
    assert "none" in window.pyramid.changed_label.text()


def test_levels_stay_off_for_the_next_image(qtbot, shown, tiny_ckpt):
    window, _ = shown
    c = window.controller
    with qtbot.waitSignal(c.outcomeReady, timeout=20000):
        c.set_level_enabled(2, False)
    # the next image: the full prediction first, then the re-run with level 2 off
    with qtbot.waitSignal(c.outcomeReady, timeout=30000, check_params_cb=lambda o: o.mode == "heads") as blocker:
        window.act.next.trigger()
    o = blocker.args[0]
    assert o.path.name == "scene_0001.png" and o.disabled_levels == (2,)
    assert not window.pyramid.cards[2].isChecked()


def test_heads_panel_shows_both_heads_disagreement_and_metrics(qtbot, shown, scenes):
    window, outcome = shown
    pred = outcome.prediction
    heads = window.heads
    aux = pred.aux_probs.argmax(0).astype(np.uint8)
    np.testing.assert_array_equal(heads.main.overlay.image, pred.labels)
    np.testing.assert_array_equal(heads.aux.overlay.image, aux)
    disagree = pred.labels != aux
    np.testing.assert_array_equal(heads.diff.overlay.image.astype(bool), disagree)
    n = int(disagree.sum())
    assert f"{n:,} of {disagree.size:,} pixels ({100 * n / disagree.size:.2f} %)" in heads.diff_metrics.text()
    # zoom and pan are linked
    heads.main.vb.setRange(xRange=(10, 40), yRange=(5, 35), padding=0)
    for other in (heads.aux, heads.diff):
        np.testing.assert_allclose(other.vb.viewRange()[0], heads.main.vb.viewRange()[0], atol=1e-6)
    # accuracy against the project's mask, computed here directly
    classes = core.ClassTable.load(scenes / "classes.json")
    mask = core.read_mask(scenes / "masks" / "scene_0000.png", classes)
    valid = mask != 255
    acc_main = float((pred.labels == mask)[valid].mean())
    acc_aux = float((aux == mask)[valid].mean())
    assert f"pixel accuracy {100 * acc_main:.1f} %" in heads.main_metrics.text()
    assert f"pixel accuracy {100 * acc_aux:.1f} %" in heads.aux_metrics.text()
    assert "mIoU" in heads.main_metrics.text()
    assert outcome.metrics["main"].pixel_acc == pytest.approx(acc_main)
