"""Predictor: protocols, windows, scales, mirror, internals on any pass, level re-runs, progress,
cancel, previews, the model left alone, memory (what a Prediction holds, refusal, running out)."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.classes import ClassTable
from core.config import ModelConfig
from core.errors import Cancelled, StudioError
from core.inference import (MULTI_SCALES, Prediction, PredictionOutOfMemory, PredictionTooLarge, Predictor, Preview,
                            TestProtocol)
from core.inference.forward import Network
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


def clear(p: np.ndarray, margin: float = 1e-3) -> np.ndarray:
    top2 = np.sort(p, axis=0)[-2:]
    return (top2[1] - top2[0]) > margin


@pytest.mark.parametrize("size", [(1, 1), (17, 23), (37, 8)])
def test_single_scale_native_shapes_and_values(model, size):
    img = image(*size)
    p = Predictor(model).predict(img)  # no protocol: the image at its own size, whole, one scale
    h, w = size
    assert p.labels.shape == (h, w) and p.labels.dtype == np.uint8
    assert p.work_probs.shape == (K, h, w) and p.work_probs.dtype == np.float16
    assert p.probs.shape == (K, h, w) and p.aux_probs.shape == (K, h, w)
    assert p.confidence.shape == p.entropy.shape == (h, w) and p.confidence.dtype == np.float32
    main, aux = direct(model, img)
    np.testing.assert_allclose(np.asarray(p.probs), main, atol=1e-3)  # float16 at the working resolution
    np.testing.assert_allclose(np.asarray(p.aux_probs), aux, atol=1e-3)
    ok = clear(main, 1e-6)
    np.testing.assert_array_equal(p.labels[ok], main.argmax(0)[ok])
    np.testing.assert_array_equal(p.aux_labels[clear(aux, 1e-6)], aux.argmax(0)[clear(aux, 1e-6)])
    np.testing.assert_allclose(p.confidence, main.max(0), atol=1e-3)
    np.testing.assert_allclose(p.entropy, -(main * np.log(main)).sum(0), atol=2e-3)
    assert p.internals is None and p.disabled_levels == () and p.working_size == (h, w)


def test_the_model_is_never_moved_or_switched_to_eval():
    model = tiny()
    model.train()
    img = image(24, 24)
    pred = Predictor(model)
    assert pred.copied and pred.model is not model and not pred.model.training
    p = pred.predict(img)
    assert model.training  # never touched
    model.eval()
    main, _ = direct(model, img)
    np.testing.assert_allclose(np.asarray(p.probs), main, atol=1e-3)  # BN used its running statistics
    same = Predictor(model, device="cpu")
    assert not same.copied and same.model is model


def test_sliding_window_on_an_image_of_the_crop_size_equals_whole(model):
    img = image(32, 32, seed=1)
    steps = []
    windowed = Predictor(model, crop=32)
    got = windowed.predict(img, progress=steps.append)
    whole = Predictor(model).predict(img)
    np.testing.assert_array_equal(got.labels, whole.labels)
    np.testing.assert_array_equal(windowed.photo_probs(img), Predictor(model).photo_probs(img))
    assert steps == [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1.0]  # one window: a step per backbone stage


def test_sliding_window_pads_with_the_mean_and_averages_overlaps(model):
    """20x50 with crop 32, stride ceil(32 * 2/3) = 22: height padded 6 + 6 with the mean (zero after
    normalisation), windows at x = 0 and x = 50 - 32 = 18, averaged on the overlap 18..32."""
    img = image(20, 50, seed=2)
    steps = []
    pred = Predictor(model, crop=32)
    p = pred.predict(img, progress=steps.append)
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
    np.testing.assert_allclose(pred.photo_probs(img), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(p.probs), expected, atol=1e-3)
    np.testing.assert_allclose(np.asarray(p.probs).sum(0), 1.0, atol=3e-3)


def test_multi_scale_averages_scales_resized_back(model):
    img = image(30, 41, seed=3)
    both = Predictor(model, scales=(0.5, 1.0)).photo_probs(img)
    half = Predictor(model, scales=(0.5,)).photo_probs(img)
    one = Predictor(model).photo_probs(img)
    np.testing.assert_allclose(both, (half + one) / 2, atol=1e-6)
    # the 0.5 scale by hand: long side round(0.5 * 41) = 20, short round(20 / 41 * 30) = 15 (semseg's
    # arithmetic); the float image resized with OpenCV, run, the probabilities resized back the same way
    small = cv2.resize(img.astype(np.float32), (20, 15), interpolation=cv2.INTER_LINEAR)
    x = model.normalize(torch.from_numpy(small).permute(2, 0, 1)[None])
    with torch.no_grad():
        prob = model(x).main.softmax(1)[0].numpy().transpose(1, 2, 0)
    back = cv2.resize(prob, (41, 30), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
    np.testing.assert_allclose(half, back, atol=1e-5)
    p = Predictor(model, scales=(0.5, 1.0)).predict(img)
    assert p.scales == (0.5, 1.0) and p.working_size == (30, 41)


def test_flip_makes_the_prediction_mirror_equivariant(model):
    """With flip, predicting the mirrored image gives the mirrored result (any model), at any scale."""
    img = image(26, 35, seed=4)
    pred = Predictor(model, scales=(0.75, 1.0), flip=True)
    p = pred.photo_probs(img)
    q = pred.photo_probs(np.ascontiguousarray(img[:, ::-1]))
    np.testing.assert_allclose(q, p[:, :, ::-1], atol=1e-5)
    qa = pred.photo_probs(np.ascontiguousarray(img[:, ::-1]), "aux")
    np.testing.assert_allclose(qa, pred.photo_probs(img, "aux")[:, :, ::-1], atol=1e-5)
    # without flip the (random, asymmetric) model is not equivariant: the test above can fail
    plain = Predictor(model)
    assert np.abs(plain.photo_probs(img[:, ::-1].copy()) - plain.photo_probs(img)[:, :, ::-1]).max() > 1e-3


def test_flip_of_a_constant_image_is_symmetric_and_the_mean_of_both_passes(model):
    img = np.full((20, 27, 3), (90, 160, 40), np.uint8)
    flipped = Predictor(model, flip=True).photo_probs(img)
    plain = Predictor(model).photo_probs(img)
    np.testing.assert_allclose(flipped, flipped[:, :, ::-1], atol=1e-6)
    np.testing.assert_allclose(flipped, (plain + plain[:, :, ::-1]) / 2, atol=1e-6)


def test_multi_scale_flip_and_window_progress_is_monotone_and_complete(model):
    img = image(40, 40, seed=5)
    steps = []
    p = Predictor(model, scales=MULTI_SCALES, flip=True, crop=48).predict(img, progress=steps.append)
    assert p.labels.shape == (40, 40)
    np.testing.assert_allclose(p.work_probs.astype(np.float32).sum(0), 1.0, atol=3e-3)
    # semseg pads every scaled image to at least 48: sizes 20, 30, 40 -> one window; 50, 60, 70 -> 2x2;
    # each window also mirrored
    assert len(steps) == 2 * (3 + 3 * 4)
    assert all(0 < a < b for a, b in zip(steps, steps[1:])) and steps[-1] == 1.0


def test_cancel_raises_cancelled_at_a_step():
    model = tiny()
    img = image(40, 40)
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2  # let two windows through

    steps = []
    with pytest.raises(Cancelled):
        Predictor(model, crop=24).predict(img, cancel=cancel, progress=steps.append)
    assert steps == [0.25, 0.5]
    event = threading.Event()
    event.set()
    gen = Predictor(model).predict_steps(img, cancel=event)
    with pytest.raises(Cancelled):
        next(gen)


def test_internals_and_level_reruns_on_a_windowed_mirrored_pass(model):
    """Any protocol gives the inspector's internals (the window nearest the centre) and head-only
    re-runs that equal a full prediction with those levels off."""
    img = image(33, 45, seed=6)
    protocol = TestProtocol.semseg("ade20k", base_size=56, crop=33)  # 41 x 56: padded, two windows, mirrored
    pred = Predictor(model, protocol=protocol)
    p = pred.predict(img, internals=True)
    assert p.internals is not None and p.internals.layer4.device.type == "cpu"
    assert [lv.bin for lv in p.internals.levels] == [1, 2, 3, 6]
    y0, y1, x0, x1 = p.internals_box
    assert 0 <= y0 < y1 <= 33 and 0 <= x0 < x1 <= 45 and (x1 - x0) < 45  # one of two windows
    same = pred.rerun_heads(p, (), exact=True)
    np.testing.assert_array_equal(same.labels, p.labels)
    off = pred.rerun_heads(p, (6, 1), exact=True)
    full = pred.predict(img, disabled_levels=(1, 6))
    assert off.disabled_levels == full.disabled_levels == (1, 6)
    assert (off.labels != full.labels).mean() < 1e-3  # exact up to float ties
    np.testing.assert_allclose(off.work_probs.astype(np.float32), full.work_probs.astype(np.float32), atol=2e-3)
    assert (off.labels != p.labels).any()  # switching levels off did change something
    assert [lv.enabled for lv in off.internals.levels] == [False, True, True, False]
    mean_fill = pred.rerun_heads(p, (1, 6), fill="mean", exact=True)
    assert np.abs(mean_fill.work_probs.astype(np.float32) - off.work_probs.astype(np.float32)).max() > 1e-3
    # the fast switch (read at the output resolution, here a 6 x 7 grid): the prediction where switching
    # changes nothing there, mostly the exact switched labels
    fast = pred.rerun_heads(p, (6, 1))
    assert (fast.labels == off.labels).mean() > 0.8 and (fast.labels != p.labels).any()
    np.testing.assert_array_equal(pred.rerun_heads(p, ()).labels, p.labels)
    with pytest.raises(ValueError, match="internals=True"):
        pred.rerun_heads(pred.predict(img), ())


def test_a_preview_comes_after_the_unmirrored_windows_and_is_their_prediction(model):
    img = image(35, 47, seed=7)
    protocol = TestProtocol.semseg("ade20k", base_size=60, crop=33)
    items = list(_drain(Predictor(model, protocol=protocol).predict_steps(img, preview=True)))
    previews = [v for v in items[:-1] if isinstance(v, Preview)]
    assert len(previews) == 1
    at = next(i for i, v in enumerate(items) if v is previews[0])
    # 45 x 60 at 33 px windows: 2 x 3 windows, and their mirror images; the preview comes after the six
    assert at == 6 and float(previews[0]) == items[at - 1] == 0.5
    unmirrored = Predictor(model, protocol=protocol.replace(flip=False)).predict(img)
    np.testing.assert_array_equal(previews[0].prediction.labels, unmirrored.labels)
    early = previews[0].prediction
    assert early.is_preview and early.aux_labels is None  # the overlay first: the main head's labels
    np.testing.assert_allclose(early.work_probs.astype(np.float32), unmirrored.work_probs.astype(np.float32),
                               atol=1e-3)  # its maps, made on first use
    final = items[-1]
    np.testing.assert_array_equal(final.labels, Predictor(model, protocol=protocol).predict(img).labels)
    seen = []
    Predictor(model, protocol=protocol).predict(img, preview=seen.append)
    assert len(seen) == 1 and isinstance(seen[0], Prediction)
    # nothing to preview when a single pass is all there is
    assert not any(isinstance(v, Preview) for v in _drain(Predictor(model).predict_steps(img, preview=True)))


def _drain(gen):
    while True:
        try:
            yield next(gen)
        except StopIteration as stop:
            yield stop.value
            return


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
    with pytest.raises(ValueError, match="crop"):
        Predictor(model, crop=0)
    with pytest.raises(ValueError, match="3 classes"):
        Predictor(model, classes=ClassTable.default(3))


def test_models_without_aux_head_or_pyramid():
    bare = tiny(aux=False, use_ppm=False)
    p = Predictor(bare).predict(image(16, 16), internals=True)
    assert p.aux_probs is None and p.aux_labels is None and p.work_aux_probs is None
    assert p.internals.levels == []
    with pytest.raises(ValueError, match="no pyramid"):
        Predictor(bare).predict(image(16, 16), disabled_levels=(1,))
    no_aux = Predictor(tiny(), aux=False).predict(image(16, 16))
    assert no_aux.aux_labels is None and no_aux.aux_probs is None


def test_from_loaded_takes_the_class_table_and_the_protocol(model):
    class Loaded:  # what Predictor.from_loaded reads of core.weights.LoadedModel
        def __init__(self):
            self.model = model
            self.classes = ClassTable.from_names(list("abcde"))
            self.protocol = TestProtocol.semseg("voc")

    pred = Predictor.from_loaded(Loaded(), crop=None)
    assert pred.classes.names == tuple("abcde") and pred.flip and pred.base_size == 512 and pred.crop is None
    assert "overridden: crop" in pred.protocol.source


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_autocast_matches_cpu():
    model = tiny()
    img = image(40, 52)
    cpu = Predictor(model).predict(img)
    gpu = Predictor(tiny(), device="cuda").predict(img, internals=True)
    assert gpu.internals.layer4.device.type == "cpu" and gpu.internals.layer4.dtype == torch.float32
    assert np.abs(gpu.work_probs.astype(np.float32) - cpu.work_probs.astype(np.float32)).max() < 0.05
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


# --- what a Prediction holds ---------------------------------------------------------------------


def test_a_prediction_holds_full_size_labels_and_working_resolution_maps(model):
    """The memory model: uint8 labels (both heads) at the photo's size, float16 probabilities of
    both heads and float32 confidence / entropy at the working resolution; the photo-sized
    confidence / entropy (float32) made when read and not kept; the inspector's features when asked."""
    H, W = 300, 400
    img = image(H, W, seed=8)
    protocol = TestProtocol.semseg("ade20k", base_size=64, crop=41)
    p = Predictor(model, protocol=protocol).predict(img)
    h, w = p.working_size
    assert (h, w) == (48, 64)
    assert p.work_probs.shape == p.work_aux_probs.shape == (K, h, w)
    expected = 2 * H * W + 2 * K * h * w * 2 + 2 * h * w * 4
    assert p.memory_bytes() == expected
    assert p.confidence.shape == (H, W) and p.entropy.dtype == np.float32
    assert p.memory_bytes() == expected  # read, not kept
    q = Predictor(model, protocol=protocol).predict(img, internals=True)
    inner = q.internals
    assert inner.layer4.dtype == torch.float32 and inner.layer3.dtype == inner.levels[0].upsampled.dtype == torch.float16
    feats = inner.layer4.numel() * 4 + sum(t.numel() * 2 for t in [inner.layer3] +
                                           [x for lv in inner.levels for x in (lv.pooled, lv.reduced, lv.upsampled)])
    assert q.memory_bytes() == expected + feats + q.switch_source.nbytes
    assert "MiB" in repr(q)


def test_the_stored_grid_keeps_150_classes_of_a_4000x3000_photo_in_bounds():
    from core.inference.compose import STORE_BYTES, store_grid

    semseg = TestProtocol.semseg("ade20k")
    work = semseg.scaled_size(3000, 4000)
    assert work == (384, 512) and store_grid(work, 150) == work  # 150 x 384 x 512 x 2 = 59 MB a head
    held = 2 * 3000 * 4000 + 2 * 150 * 384 * 512 * 2 + 2 * 384 * 512 * 4 + 2 * 3000 * 4000 * 4
    assert held < 300e6  # labels, both heads' maps, confidence and entropy at the photo's size
    big = store_grid((3000, 4000), 150)  # native: the stored maps are coarser
    assert 150 * big[0] * big[1] * 2 <= STORE_BYTES and abs(big[0] / big[1] - 0.75) < 0.01


def test_photo_sized_probabilities_are_read_from_the_working_map(model):
    img = image(50, 70, seed=9)
    p = Predictor(model, protocol=TestProtocol.semseg("ade20k", base_size=35, crop=None, flip=False)).predict(img)
    work = torch.from_numpy(p.work_probs.astype(np.float32))[None]
    full = F.interpolate(work, size=(50, 70), mode="bilinear", align_corners=False)[0].numpy()
    np.testing.assert_allclose(p.probs[3], full[3], atol=1e-5)  # (torch computes coordinates in float32)
    np.testing.assert_allclose(p.probs[:, 17, 41], full[:, 17, 41], atol=1e-5)
    np.testing.assert_allclose(p.probs[2, 5:9, 60:], full[2, 5:9, 60:], atol=1e-5)
    assert float(p.probs[1, 0, 0]) == pytest.approx(full[1, 0, 0], abs=1e-5)
    np.testing.assert_allclose(np.asarray(p.probs), full, atol=1e-5)
    assert p.top_k(17, 41, 2) == [(int(c), pytest.approx(float(full[c, 17, 41]), abs=1e-5))
                                  for c in np.argsort(-full[:, 17, 41], kind="stable")[:2]]
    import core

    assert core.top_k_at(p, 17, 41, 2) == p.top_k(17, 41, 2)
    assert [c for c, _ in core.top_k_at(p.probs, 17, 41, 2)] == [c for c, _ in p.top_k(17, 41, 2)]
    np.testing.assert_allclose(p.class_probability(4, full=False), p.work_probs[4].astype(np.float32))
    with pytest.raises(IndexError):
        p.probs[0, 50, 0]


def test_reading_every_class_at_the_size_of_a_big_photo_is_refused_with_alternatives(model, monkeypatch):
    import core.inference.prediction as prediction

    p = Predictor(model).predict(image(20, 30))
    monkeypatch.setattr(prediction, "FULL_PROBS_LIMIT", 1000)
    with pytest.raises(StudioError, match="class_probability"):
        np.asarray(p.probs)
    assert p.probs[1].shape == (20, 30)  # one class at a time still works


# --- memory: refusal before the work, running out during it ---------------------------------------


def test_a_photo_too_large_for_the_memory_at_hand_is_refused_before_any_work(model):
    calls = []
    pred = Predictor(model, memory_limit=200_000)
    hook = model.backbone.conv1.register_forward_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(PredictionTooLarge, match=r"a 90x60 image needs about .* but only 0\.?\d* ?MB are available"):
            pred.predict(image(60, 90))
        assert calls == []
        Predictor(model, memory_limit=10**10).predict(image(60, 90))
        assert calls
    finally:
        hook.remove()


def test_the_estimate_follows_the_protocol_the_photo_and_the_classes():
    cfg = ModelConfig(depth=50, num_classes=150)
    model = PSPNet(cfg).eval()
    semseg = Predictor(model, protocol=TestProtocol.semseg("ade20k"))
    native = Predictor(model, protocol=TestProtocol.semseg("ade20k", base_size=None))
    whole = Predictor(model)  # native, whole image
    photo = (3000, 4000)
    e = semseg.estimate(photo)
    assert 0.3e9 < e.total < 2e9  # the 2 GB target of issue 10
    assert {"network activations", "pass maps", "photo-sized results"} <= set(e.parts)
    assert semseg.estimate((1500, 2000)).total < e.total  # the photo-sized items shrink
    assert native.estimate(photo).total > e.total
    assert whole.estimate(photo).total > 10 * e.total  # ResNet-50 on 12 megapixels at once
    with pytest.raises(PredictionTooLarge, match="--base-size"):
        Predictor(model, memory_limit=4 * 2**30).check_memory(photo)
    semseg_few = Predictor(PSPNet(ModelConfig(depth=50, num_classes=19)).eval(),
                           protocol=TestProtocol.semseg("ade20k"))
    assert semseg_few.estimate(photo).total < e.total


def test_running_out_of_memory_frees_and_says_so(model, monkeypatch):
    pred = Predictor(model, crop=24)
    real = Network.heads
    calls = {"n": 0}

    def failing(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                               "you tried to allocate 123456789 bytes")
        return real(self, *a, **kw)

    monkeypatch.setattr(Network, "heads", failing)
    with pytest.raises(PredictionOutOfMemory, match=r"ran out of memory predicting a 40x40 image .*can't allocate"):
        pred.predict(image(40, 40))
    with pytest.raises(PredictionOutOfMemory):
        calls["n"] = 1
        pred.predict(image(40, 40))

    def broken(self, *a, **kw):
        raise RuntimeError("something else")

    monkeypatch.setattr(Network, "heads", broken)
    with pytest.raises(RuntimeError, match="something else"):  # not a memory problem: not translated
        pred.predict(image(40, 40))
    monkeypatch.setattr(Network, "heads", real)
    assert pred.predict(image(40, 40)).labels.shape == (40, 40)  # usable afterwards


def test_native_size_in_windows_keeps_the_maps_bounded(model):
    """Past ``accumulator_bytes`` a pass is summed on a coarser grid (the windows' values read at
    its points): the labels stay close to the full-size computation and the prediction says so."""
    img = cv2.resize(image(12, 15, seed=10), (120, 90), interpolation=cv2.INTER_CUBIC)  # a smooth photo
    for crop, agree in ((None, 0.97), (33, 0.8)):  # random windows disagree: many near-even pixels
        full = Predictor(model, crop=crop, flip=False)
        bounded = Predictor(model, crop=crop, flip=False, accumulator_bytes=K * 45 * 60 * 4)
        plan = bounded.plan((90, 120))
        assert plan.passes[0].grid == (45, 60) and plan.passes[0].step == (2.0, 2.0)
        a, b = full.predict(img), bounded.predict(img)
        assert b.notes and "coarser grid" in b.notes[0] and not a.notes
        assert (a.labels == b.labels).mean() > agree
        assert np.abs(full.photo_probs(img) - bounded.photo_probs(img)).mean() < 0.05
