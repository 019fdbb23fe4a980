"""Predictor: single scale, multi-scale + flip, sliding window, internals, rerun_heads, cancel."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.classes import ClassTable
from core.config import ModelConfig
from core.errors import Cancelled
from core.infer import MULTI_SCALES, Prediction, Predictor
from core.model import PSPNet

K = 5


def tiny(**kw) -> PSPNet:
    torch.manual_seed(0)
    cfg = dict(depth=18, base_width=8, num_classes=K, head_channels=32, aux_channels=16)
    cfg.update(kw)
    model = PSPNet(ModelConfig(**cfg))
    # non-trivial BatchNorm statistics, so that eval mode differs from train mode
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> PSPNet:
    return tiny()


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def direct(model: PSPNet, img: np.ndarray, **kw) -> tuple[np.ndarray, np.ndarray]:
    """Softmax of the model run on the whole image, by hand."""
    x = model.normalize(torch.from_numpy(img).permute(2, 0, 1)[None].float())
    with torch.no_grad():
        out = model(x, **kw)
    return out.main.softmax(1)[0].numpy(), out.aux.softmax(1)[0].numpy()


@pytest.mark.parametrize("size", [(1, 1), (17, 23), (37, 8)])
def test_single_scale_shapes_and_values(model, size):
    img = image(*size)
    p = Predictor(model).predict(img)
    h, w = size
    assert p.labels.shape == (h, w) and p.labels.dtype == np.uint8
    assert p.probs.shape == (K, h, w) and p.probs.dtype == np.float32
    assert p.aux_probs.shape == (K, h, w)
    assert p.confidence.shape == p.entropy.shape == (h, w)
    main, aux = direct(model, img)
    np.testing.assert_allclose(p.probs, main, atol=1e-5)
    np.testing.assert_allclose(p.aux_probs, aux, atol=1e-5)
    np.testing.assert_array_equal(p.labels, p.probs.argmax(0))
    np.testing.assert_array_equal(p.aux_labels, aux.argmax(0))
    np.testing.assert_allclose(p.confidence, p.probs.max(0))
    np.testing.assert_allclose(p.entropy, -(p.probs * np.log(p.probs)).sum(0), rtol=1e-4, atol=1e-6)
    assert p.internals is None and p.disabled_levels == ()


def test_eval_mode_is_used_and_the_training_flag_restored():
    model = tiny()
    model.train()
    img = image(24, 24)
    p = Predictor(model).predict(img)
    assert model.training  # restored
    model.eval()
    main, _ = direct(model, img)
    np.testing.assert_allclose(p.probs, main, atol=1e-5)  # BN used its running statistics


def test_sliding_window_on_an_image_of_the_crop_size_equals_single_scale(model):
    img = image(32, 32, seed=1)
    steps = []
    windowed = Predictor(model, crop=32).predict(img, progress=steps.append)
    whole = Predictor(model).predict(img)
    np.testing.assert_array_equal(windowed.probs, whole.probs)
    assert steps == [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1.0]  # one window: a step per backbone stage


def test_sliding_window_pads_with_the_mean_and_averages_overlaps(model):
    """20x50 with crop 32, stride ceil(32 * 2/3) = 22: height padded 6 + 6 with the mean (zero after
    normalisation), windows at x = 0 and x = 50 - 32 = 18, averaged on the overlap 18..32."""
    img = image(20, 50, seed=2)
    steps = []
    p = Predictor(model, crop=32).predict(img, progress=steps.append)
    assert steps == [0.5, 1.0]
    x = model.normalize(torch.from_numpy(img).permute(2, 0, 1)[None].float())
    x = F.pad(x, (0, 0, 6, 6))
    with torch.no_grad():
        a = model(x[..., 0:32]).main.softmax(1)[0]
        b = model(x[..., 18:50]).main.softmax(1)[0]
    acc = torch.zeros(K, 32, 50)
    cnt = torch.zeros(1, 32, 50)
    acc[..., 0:32] += a
    acc[..., 18:50] += b
    cnt[..., 0:32] += 1
    cnt[..., 18:50] += 1
    expected = (acc / cnt)[:, 6:26].numpy()
    np.testing.assert_allclose(p.probs, expected, atol=1e-5)
    np.testing.assert_allclose(p.probs.sum(0), 1.0, atol=1e-5)


def test_multi_scale_averages_scales_resized_back(model):
    img = image(30, 41, seed=3)
    both = Predictor(model, scales=(0.5, 1.0)).predict(img)
    half = Predictor(model, scales=(0.5,)).predict(img)
    one = Predictor(model).predict(img)
    np.testing.assert_allclose(both.probs, (half.probs + one.probs) / 2, atol=1e-6)
    # the 0.5 scale by hand: resize the image, run, resize the probabilities back
    x = model.normalize(torch.from_numpy(img).permute(2, 0, 1)[None].float())
    x = F.interpolate(x, size=(15, 20), mode="bilinear", align_corners=False)  # round(30/2), round(41/2)
    with torch.no_grad():
        prob = model(x).main.softmax(1)
    prob = F.interpolate(prob, size=(30, 41), mode="bilinear", align_corners=False)[0].numpy()
    np.testing.assert_allclose(half.probs, prob, atol=1e-5)
    assert both.scales == (0.5, 1.0)


def test_flip_makes_the_prediction_mirror_equivariant(model):
    """With flip, predicting the mirrored image gives the mirrored result (any model), at any scale."""
    img = image(26, 35, seed=4)
    pred = Predictor(model, scales=(0.75, 1.0), flip=True)
    p = pred.predict(img)
    q = pred.predict(np.ascontiguousarray(img[:, ::-1]))
    np.testing.assert_allclose(q.probs, p.probs[:, :, ::-1], atol=1e-5)
    np.testing.assert_allclose(q.aux_probs, p.aux_probs[:, :, ::-1], atol=1e-5)
    # without flip the (random, asymmetric) model is not equivariant: the test above can fail
    plain = Predictor(model)
    assert np.abs(plain.predict(img[:, ::-1].copy()).probs - plain.predict(img).probs[:, :, ::-1]).max() > 1e-3


def test_flip_of_a_constant_image_is_symmetric_and_the_mean_of_both_passes(model):
    img = np.full((20, 27, 3), (90, 160, 40), np.uint8)
    flipped = Predictor(model, flip=True).predict(img)
    plain = Predictor(model).predict(img)
    np.testing.assert_allclose(flipped.probs, flipped.probs[:, :, ::-1], atol=1e-6)
    np.testing.assert_allclose(flipped.probs, (plain.probs + plain.probs[:, :, ::-1]) / 2, atol=1e-6)


def test_multi_scale_flip_and_window_progress_is_monotone_and_complete(model):
    img = image(40, 40, seed=5)
    steps = []
    p = Predictor(model, scales=MULTI_SCALES, flip=True, crop=48).predict(img, progress=steps.append)
    assert p.probs.shape == (K, 40, 40)
    np.testing.assert_allclose(p.probs.sum(0), 1.0, atol=1e-5)
    # scaled sizes 20, 30, 40, 50, 60, 70: windows 1, 1, 1, 4, 4, 4 per pass, times two for flip
    assert len(steps) == 2 * (3 + 3 * 4)
    assert all(0 < a < b for a, b in zip(steps, steps[1:])) and steps[-1] == 1.0


def test_cancel_raises_cancelled_at_a_step():
    model = tiny()
    model.train()
    img = image(40, 40)
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2  # let two windows through

    steps = []
    with pytest.raises(Cancelled):
        Predictor(model, crop=24).predict(img, cancel=cancel, progress=steps.append)
    assert steps == [0.25, 0.5]
    assert model.training  # restored even on cancel
    event = threading.Event()
    event.set()
    gen = Predictor(model).predict_steps(img, cancel=event)
    with pytest.raises(Cancelled):
        next(gen)


def test_rerun_heads_matches_a_full_prediction(model):
    img = image(33, 29, seed=6)
    pred = Predictor(model)
    p = pred.predict(img, internals=True)
    assert p.internals is not None and p.internals.layer4.device.type == "cpu"
    assert [lv.bin for lv in p.internals.levels] == [1, 2, 3, 6]
    same = pred.rerun_heads(p, ())
    np.testing.assert_allclose(same.probs, p.probs, atol=1e-6)
    np.testing.assert_allclose(same.aux_probs, p.aux_probs, atol=1e-6)
    off = pred.rerun_heads(p, (6, 1))
    full = pred.predict(img, disabled_levels=(1, 6))
    assert off.disabled_levels == full.disabled_levels == (1, 6)
    np.testing.assert_allclose(off.probs, full.probs, atol=1e-6)
    assert np.abs(off.probs - p.probs).max() > 1e-3  # switching levels off did change something
    assert [lv.enabled for lv in off.internals.levels] == [False, True, True, False]
    mean_fill = pred.rerun_heads(p, (1, 6), fill="mean")
    assert np.abs(mean_fill.probs - off.probs).max() > 1e-4


def test_internals_and_rerun_are_refused_when_not_single_pass(model):
    img = image(20, 20)
    with pytest.raises(ValueError, match="single-pass"):
        Predictor(model, flip=True).predict(img, internals=True)
    with pytest.raises(ValueError, match="single-pass"):
        Predictor(model, crop=16).predict(img, internals=True)
    no_internals = Predictor(model, scales=(0.5, 1.0)).predict(img)
    with pytest.raises(ValueError, match="internals=True"):
        Predictor(model).rerun_heads(no_internals, ())


def test_bad_arguments_are_refused(model):
    pred = Predictor(model)
    with pytest.raises(ValueError, match=r"HxWx3 uint8.*\(8, 8\)"):
        pred.predict(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="float32"):
        pred.predict(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"bin\(s\) \[4\]"):
        pred.predict(image(8, 8), disabled_levels=(4,))
    with pytest.raises(ValueError, match="scales"):
        Predictor(model, scales=(0.0,))
    with pytest.raises(ValueError, match="3 classes"):
        Predictor(model, classes=ClassTable.default(3))


def test_models_without_aux_head_or_pyramid():
    bare = tiny(aux=False, use_ppm=False)
    p = Predictor(bare).predict(image(16, 16), internals=True)
    assert p.aux_probs is None and p.aux_labels is None
    assert p.internals.levels == []
    with pytest.raises(ValueError, match="no pyramid"):
        Predictor(bare).predict(image(16, 16), disabled_levels=(1,))
    assert isinstance(Predictor(bare).rerun_heads(p, ()), Prediction)


def test_from_loaded_takes_the_class_table(model):
    class Loaded:  # the two attributes Predictor.from_loaded reads of core.weights.LoadedModel
        def __init__(self):
            self.model = model
            self.classes = ClassTable.from_names(list("abcde"))

    pred = Predictor.from_loaded(Loaded(), flip=True)
    assert pred.classes.names == tuple("abcde") and pred.flip


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_autocast_matches_cpu():
    model = tiny()
    img = image(40, 52)
    cpu = Predictor(model).predict(img)
    gpu = Predictor(tiny(), device="cuda").predict(img, internals=True)
    assert gpu.internals.layer4.device.type == "cpu" and gpu.internals.layer4.dtype == torch.float32
    assert np.abs(gpu.probs - cpu.probs).max() < 0.05  # bf16 / fp16 autocast
    assert (gpu.labels == cpu.labels).mean() > 0.95


def test_a_single_pass_reports_progress_per_backbone_stage_and_can_be_cancelled_inside(model):
    steps = Predictor(model).predict_steps(image(64, 48))
    fractions = []
    try:
        while True:
            fractions.append(next(steps))
    except StopIteration as stop:
        pred = stop.value
    assert len(fractions) == 6  # after the stem and layer1..4, then the window done
    assert fractions == sorted(fractions) and 0 < fractions[0] < 1 and fractions[-1] == 1.0
    assert np.array_equal(pred.labels, Predictor(model).predict(image(64, 48)).labels)

    calls = {"n": 0}

    def cancel_after_two_checks() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    steps = Predictor(model).predict_steps(image(64, 48), cancel=cancel_after_two_checks)
    seen = []
    with pytest.raises(Cancelled):
        for f in steps:
            seen.append(f)
    assert 0 < len(seen) < 6  # stopped in the middle of the backbone, not after the window
