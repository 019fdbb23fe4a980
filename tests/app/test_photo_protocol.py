"""Real-sized photos in the app under the model's test protocol (issue 10, app side): the photo at
once, a "predicting" note with progress, a first look then the whole prediction, heat maps of
big photos made off the GUI thread, the protocol choices of the model panel, a cache bounded in
bytes, failures that say why and keep the app usable, busy level switches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

import core
from app.launch import Screenshot
from app.widgets.model_panel import DEFAULT
from tests.app.conftest import tiny_model, write_photo

PROTOCOL = core.TestProtocol(base_size=64, crop=48, flip=True, source="tests: a small semseg-like protocol")


@pytest.fixture(scope="module")
def protocol_ckpt(tmp_path_factory, scenes) -> Path:
    """The tiny model with a protocol of its own (long side 64, 48-pixel windows, mirrored), as
    an importer or our training records one."""
    classes = core.ClassTable.load(scenes / "classes.json")
    path = tmp_path_factory.mktemp("protocol") / "tiny_protocol.safetensors"
    core.save_checkpoint(path, tiny_model(len(classes)), classes, {"source": "tests"}, protocol=PROTOCOL)
    return path


@pytest.fixture(scope="module")
def phone_photo(tmp_path_factory) -> Path:
    """A 4000x3000 JPEG, what a phone takes."""
    return write_photo(tmp_path_factory.mktemp("phone") / "phone.jpg", 3000, 4000, cells=(24, 32), seed=1)


def load(qtbot, window, ckpt: Path) -> None:
    with qtbot.waitSignal(window.controller.modelChanged, timeout=30000):
        window.open_model(ckpt)


def final(qtbot, controller, timeout: int = 60000) -> core.Outcome:
    """The next shown prediction that is not a first look."""
    with qtbot.waitSignal(controller.outcomeReady, timeout=timeout,
                          check_params_cb=lambda o: not o.prediction.is_preview) as blocker:
        pass
    return blocker.args[0]


def test_a_phone_photo_shows_at_once_then_a_first_look_then_the_overlay(qtbot, window, protocol_ckpt, phone_photo):
    c = window.controller
    load(qtbot, window, protocol_ckpt)
    assert c.protocol == PROTOCOL
    seen: list[tuple[str, object]] = []
    c.imageChanged.connect(lambda shown: seen.append(("photo", shown.image.shape)))
    c.predictionProgress.connect(lambda v: seen.append(("note", window.seg.busy_text())))
    c.previewReady.connect(lambda o: seen.append(("preview", o)))
    c.outcomeReady.connect(lambda o: seen.append(("outcome", o)))
    window.open_image(phone_photo)
    outcome = final(qtbot, c)
    kinds = [k for k, _ in seen]
    assert kinds[0] == "photo" and seen[0][1] == (3000, 4000, 3)  # the photo first, before any prediction
    notes = [v for k, v in seen if k == "note"]
    assert notes[0] == "Predicting ..." and any(n.startswith("Predicting ... ") and n.endswith("%") for n in notes)
    previews = [v for k, v in seen if k == "preview"]
    assert len(previews) == 1 and previews[0].prediction.is_preview  # a first look (the unmirrored windows)
    assert kinds.index("preview") < kinds.index("outcome") - 1 or kinds.count("outcome") == 2
    assert any(n.startswith("A first look") for n in notes[kinds.index("preview"):])
    assert previews[0].prediction.labels.shape == (3000, 4000) and previews[0].prediction.aux_labels is None
    # the whole prediction: labels at the photo's size, probabilities at the protocol's 64x48
    pred = outcome.prediction
    assert not pred.is_preview and pred.labels.shape == (3000, 4000) and pred.working_size == (48, 64)
    assert pred.protocol == PROTOCOL and pred.aux_labels is not None
    expected = core.Predictor.from_loaded(core.load_model(protocol_ckpt)).predict(core.read_image(phone_photo))
    # what core predicts with the model's own protocol (the app runs the BatchNorm-folded inference
    # copy: float rounding can flip a pixel whose two best classes tie)
    assert np.abs(np.asarray(pred.work_probs, np.float32) - np.asarray(expected.work_probs, np.float32)).max() < 2e-3
    assert (pred.labels != expected.labels).mean() < 1e-5
    assert window.seg.busy_text() == "" and c.outcome is outcome
    assert np.array_equal(window.seg.overlay_index(), pred.labels)
    # the inspector runs on the same (working-resolution) pass and says what it shows
    assert pred.internals is not None and "working image" in window.pyramid.window_note.text()
    # a heat map of a 12-megapixel photo is made by a job, with a note meanwhile
    with qtbot.waitSignal(c.overlayMapReady, timeout=30000):
        window.seg.set_mode("confidence")
        assert window.seg.busy_text() == "Making the confidence map ..." and window.seg.overlay_index() is None
    assert window.seg.busy_text() == ""
    assert np.array_equal(window.seg.overlay_index(), core.overlay_map(pred, "confidence"))
    # the cache counts what the prediction holds
    assert c.cached_bytes() == outcome.memory_bytes() > pred.labels.nbytes + pred.aux_labels.nbytes


def test_the_model_panel_offers_the_protocol_with_the_models_own_shown(qtbot, window, protocol_ckpt, scenes):
    c, panel = window.controller, window.model_panel
    load(qtbot, window, protocol_ckpt)
    boxes = panel.protocol_boxes
    assert boxes["base_size"].itemText(0) == "the model's (64 px)" and boxes["crop"].itemText(0) == "the model's (48 px)"
    assert boxes["flip"].itemText(0) == "the model's (on)" and boxes["scales"].itemText(0) == "the model's (1)"
    assert "long side 64" in panel.protocol.text() and PROTOCOL.source in panel.protocol.text()
    image = scenes / "images" / "scene_0001.png"
    window.open_image(image)
    first = final(qtbot, c)
    assert first.prediction.working_size == (48, 64)  # 96x128 scaled to a long side of 64
    # native size, the whole image: what a user who wants full resolution picks
    boxes["base_size"].setFocus()
    panel.choose(base_size=None, crop=None, flip=False)
    native = final(qtbot, c)
    assert c.protocol.base_size is None and c.protocol.crop is None and not c.protocol.flip
    assert native.prediction.working_size == (96, 128) and native.prediction.protocol == c.protocol
    assert "native size" in panel.protocol.text()
    direct = core.Predictor.from_loaded(core.load_model(protocol_ckpt), base_size=None, crop=None, flip=False)
    assert np.array_equal(native.prediction.labels, direct.predict(core.read_image(image)).labels)
    # back to the model's own: the cached prediction comes back without predicting again
    started: list[bool] = []
    c.predictionStarted.connect(lambda: started.append(True))
    panel.choose(base_size=DEFAULT, crop=DEFAULT, flip=DEFAULT)
    assert c.protocol == PROTOCOL and c.outcome is first and not started
    # the choice holds for the next model too (a retrain's result, another checkpoint)
    panel.choose(scales=core.MULTI_SCALES)
    final(qtbot, c)
    load(qtbot, window, protocol_ckpt)
    assert c.protocol.scales == core.MULTI_SCALES and c.protocol.base_size == 64


def test_the_prediction_cache_is_bounded_in_bytes(qtbot, window, protocol_ckpt, scenes):
    c = window.controller
    load(qtbot, window, protocol_ckpt)
    paths = sorted((scenes / "images").glob("*.png"))[:3]
    for p in paths:
        window.open_image(p)
        final(qtbot, c)
    assert len(c._cache) == 3 and c.cached_bytes() == sum(o.memory_bytes() for o in c._cache.values())
    one = max(o.memory_bytes() for o in c._cache.values())
    c.cache_bytes = int(1.5 * one)  # room for one prediction: the newest stays
    started: list[bool] = []
    c.predictionStarted.connect(lambda: started.append(True))
    window.open_image(paths[0])  # from the cache: shown again, now the most recent
    qtbot.waitUntil(lambda: c.outcome is not None and c.outcome.path == paths[0], timeout=10000)
    assert not started and len(c._cache) == 3
    window.open_image(paths[1])  # from the cache too: trimmed only when a new prediction joins it
    qtbot.waitUntil(lambda: c.outcome is not None and c.outcome.path == paths[1], timeout=10000)
    c.repredict(use_cache=False)
    final(qtbot, c)
    assert [Path(k[0]) for k in c._cache] == [paths[1]] and c.cached_bytes() <= c.cache_bytes


def test_a_prediction_too_large_for_memory_says_so_frees_and_the_app_goes_on(qtbot, window, protocol_ckpt, scenes,
                                                                               phone_photo):
    c = window.controller
    load(qtbot, window, protocol_ckpt)
    window.open_image(scenes / "images" / "scene_0001.png")
    final(qtbot, c)
    assert len(c._cache) == 1
    c.models.predictors.predictor.memory_limit = 64 * 2**10  # 64 KiB: nothing fits
    with qtbot.waitSignal(c.error, timeout=30000) as blocker:
        window.open_image(phone_photo)
    text = blocker.args[0]
    assert text.startswith("Prediction of phone.jpg failed: a 4000x3000 image needs about") and "available" in text
    assert "phone.jpg" in window.banners.text("predict") and not c._cache and c.outcome is None
    assert window.seg.busy_text() == "" and not window.progress.isVisible()
    # usable: with the memory back, the same photo predicts
    c.models.predictors.predictor.memory_limit = None
    c.repredict()
    assert final(qtbot, c).prediction.labels.shape == (3000, 4000)


def test_a_screenshot_of_a_failed_prediction_exits_non_zero_with_the_reason(qtbot, window, protocol_ckpt, scenes,
                                                                            tmp_path):
    c = window.controller
    load(qtbot, window, protocol_ckpt)
    c.models.predictors.predictor.memory_limit = 64 * 2**10
    out = tmp_path / "shot.png"
    shot = Screenshot(window, out, "overlay", timeout_s=60)
    window.open_image(scenes / "images" / "scene_0001.png")
    app = QApplication.instance()
    code = app.exec()  # as `gui --screenshot` runs: the screenshot ends the event loop with its exit code
    assert code == shot.code == 1 and shot.message.startswith("error: Prediction of scene_0001.png failed: ")
    assert "needs about" in shot.message and not out.exists()


def test_a_level_switch_shows_that_it_is_busy(qtbot, window, protocol_ckpt, scenes):
    c = window.controller
    load(qtbot, window, protocol_ckpt)
    window.open_image(scenes / "images" / "scene_0001.png")
    final(qtbot, c)
    notes: list[str] = []
    c.levelsBusy.connect(notes.append)
    c.levelsBusy.connect(lambda t: notes.append("pyramid: " + window.pyramid.result_label.text()) if t else None)
    with qtbot.waitSignal(c.outcomeReady, timeout=30000, check_params_cb=lambda o: o.disabled_levels == (6,)):
        c.set_level_enabled(6, False)
        assert window.seg.busy_text() == "Re-running the heads with level(s) 6 off ..."
    qtbot.waitUntil(lambda: notes[-1:] == [""], timeout=5000)
    assert notes == ["Re-running the heads with level(s) 6 off ...",
                     "pyramid: Re-running the heads with level(s) 6 off ...", ""]
    assert window.seg.busy_text() == "" and "level(s) 6 off" in window.pyramid.result_label.text()
