"""core.inspect: feature summaries, change maps, class shares, top-k readout."""

import numpy as np
import pytest
import torch

from core import inspect as ins


def test_as_chw_accepts_batch_of_one_and_tensors():
    t = torch.arange(24, dtype=torch.float32).view(1, 2, 3, 4)
    a = ins.as_chw(t)
    assert a.shape == (2, 3, 4) and a.dtype == np.float32
    assert a[1, 2, 3] == 23
    with pytest.raises(ValueError, match="batch of 2"):
        ins.as_chw(np.zeros((2, 2, 3, 4)))
    with pytest.raises(ValueError, match=r"\(C, h, w\)"):
        ins.as_chw(np.zeros((3, 4)))


def test_to_uint8_scales_and_handles_constant():
    out = ins.to_uint8(np.array([[-1.0, 0.0, 1.0]]))
    assert out.tolist() == [[0, 128, 255]]
    assert ins.to_uint8(np.full((2, 2), 7.0)).tolist() == [[0, 0], [0, 0]]
    assert ins.to_uint8(np.array([5.0]), lo=0, hi=10).tolist() == [128]


def test_channel_summaries():
    f = np.zeros((4, 2, 2), np.float32)
    f[2] = -3.0
    f[0, 0, 0] = 1.0
    assert ins.channel_map(f, 2).tolist() == [[-3, -3], [-3, -3]]
    with pytest.raises(ValueError, match="4 channels"):
        ins.channel_map(f, 4)
    np.testing.assert_allclose(ins.mean_abs_activation(f), [[1.0, 0.75], [0.75, 0.75]])
    top = ins.top_channels(f, 2)
    assert [c for c, _ in top] == [2, 0]
    assert top[0][1] == pytest.approx(3.0) and top[1][1] == pytest.approx(0.25)


def test_pca_rgb_separates_two_clusters_and_is_flat_for_one_pixel():
    rng = np.random.default_rng(0)
    f = rng.normal(0, 0.01, (16, 8, 8)).astype(np.float32)
    f[:, :, 4:] += rng.normal(0, 1, (16, 1, 1)).astype(np.float32) * 5  # right half: another vector
    rgb = ins.pca_rgb(f)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    left, right = rgb[:, :4, 0].astype(int), rgb[:, 4:, 0].astype(int)
    assert abs(left.mean() - right.mean()) > 200  # the first component splits the halves
    # a basis fitted elsewhere colours a 1x1 grid; without one it is a flat grey
    basis = ins.fit_pca(f)
    one = f[:, :1, 4:5]
    assert ins.pca_rgb(one, basis)[0, 0, 0] == rgb[0, 4, 0]
    assert ins.pca_rgb(one).tolist() == [[[128, 128, 128]]]
    with pytest.raises(ValueError, match="16 channels"):
        ins.pca_rgb(np.zeros((3, 2, 2)), basis)


def test_change_map_ignores_255_and_counts():
    a = np.array([[0, 1, 2], [255, 1, 1]], np.uint8)
    b = np.array([[0, 2, 2], [3, 255, 0]], np.uint8)
    cm = ins.change_map(a, b)
    assert cm.mask.tolist() == [[False, True, False], [False, False, True]]
    assert (cm.changed, cm.total) == (2, 4) and cm.share == 0.5
    with pytest.raises(ValueError, match="shape"):
        ins.change_map(a, b[:, :2])
    assert ins.change_map(np.full((2, 2), 255, np.uint8), np.zeros((2, 2), np.uint8)).share == 0.0


def test_class_shares_and_top_k():
    lab = np.array([[0, 0, 1], [2, 255, 0]], np.uint8)
    np.testing.assert_allclose(ins.class_shares(lab, 4), [0.6, 0.2, 0.2, 0.0])
    assert ins.class_shares(np.full((2, 2), 255, np.uint8), 3).tolist() == [0, 0, 0]
    probs = np.zeros((4, 1, 2), np.float32)
    probs[:, 0, 1] = [0.1, 0.5, 0.15, 0.25]
    assert [c for c, _ in ins.top_k_at(probs, 0, 1)] == [1, 3, 2]
    assert ins.top_k_at(probs, 0, 1, 1)[0][1] == pytest.approx(0.5)


def test_available_devices_lists_cpu_first():
    import torch

    devs = ins.available_devices()
    assert devs[0] == "cpu"
    assert len(devs) == 1 + (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert ins.device_name("cpu") == "CPU"


def switch_model():
    """A tiny PSPNet whose level switches change some pixels: non-trivial BatchNorm statistics and
    a sharpened classifier."""
    import core

    torch.manual_seed(0)
    model = core.build_model(core.ModelConfig(depth=18, base_width=8, num_classes=5, head_channels=32,
                                              aux_channels=16)).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        model.head.classifier.weight.mul_(10)
    return model


def test_level_switch_equals_rerun_heads_without_the_big_conv():
    import core

    model = switch_model()
    # the working pass in windows and mirrored: 45 x 61 at long side 72 -> 53 x 72, windows of 41
    protocol = core.TestProtocol.semseg("ade20k", base_size=72, crop=41)
    predictor = core.Predictor(model, protocol=protocol)
    image = np.random.default_rng(1).integers(0, 255, (45, 61, 3), dtype=np.uint8)  # odd size: padding matters
    base = predictor.predict(image, internals=True)
    switch = ins.LevelSwitch(model, base)
    switch.prepare()
    calls = []
    model.head.conv.register_forward_hook(lambda *a: calls.append("head.conv"))
    model.aux_head.register_forward_hook(lambda *a: calls.append("aux"))
    model.backbone.layer1.register_forward_hook(lambda *a: calls.append("backbone"))
    exact = {d: switch.rerun(d, exact=True) for d in ((6,), (1, 3), (1, 2, 3, 6), ())}
    fast = {d: switch.rerun(d) for d in ((6,), (1, 3), (1, 2, 3, 6), ())}
    assert calls == []  # neither the backbone, nor the big 3x3 conv, nor the aux head ran
    for disabled, got in fast.items():
        # read at the output resolution (a 7 x 9 grid here): the prediction's labels where nothing changes there
        assert (got.labels == exact[disabled].labels).mean() > 0.8
        assert got.disabled_levels == tuple(sorted(disabled))
    np.testing.assert_array_equal(fast[()].labels, base.labels)
    for disabled, got in exact.items():
        full = predictor.predict(image, disabled_levels=disabled)
        assert (got.labels != full.labels).mean() < 1e-3  # ties aside, the same labels
        np.testing.assert_allclose(got.work_probs.astype(np.float32), full.work_probs.astype(np.float32),
                                   atol=2e-3)  # float16, sums in another order
        assert got.disabled_levels == tuple(sorted(disabled))
        assert got.work_aux_probs is base.work_aux_probs and got.aux_labels is base.aux_labels
        assert [lv.enabled for lv in got.internals.levels] == [b not in disabled for b in (1, 2, 3, 6)]
    assert (fast[(6,)].labels != base.labels).any() and (exact[(6,)].labels != base.labels).any()
    np.testing.assert_array_equal(exact[()].labels, base.labels)
    assert switch.reference.disabled_levels == ()
    with pytest.raises(ValueError, match=r"bin\(s\) \[4\]"):
        switch.rerun([4])
    with pytest.raises(ValueError, match="internals=True"):
        ins.LevelSwitch(model, predictor.predict(image))


def test_an_inference_copys_prediction_keeps_the_switch_parts_so_no_backbone_runs_again():
    """Predicted by an inference copy (split head), a prediction keeps each working window's
    layer4 share of the head and its pyramid grids: preparing the switch runs no backbone and
    no head convolution, and the switches equal those of the plain model's own path."""
    import core

    model = switch_model()
    protocol = core.TestProtocol.semseg("ade20k", base_size=72, crop=41)  # windows, mirrored
    image = np.random.default_rng(1).integers(0, 255, (45, 61, 3), dtype=np.uint8)
    fast_net = core.optimize_for_inference(model)
    plain = core.Predictor(model, protocol=protocol).predict(image, internals=True)
    kept = core.Predictor(model, protocol=protocol, module=fast_net).predict(image, internals=True)
    src = kept.switch_source
    assert plain.switch_source.parts is None
    assert src.parts is not None and [len(pp) for pp in src.parts] == [len(p.windows) for p in src.passes]
    assert src.nbytes > plain.switch_source.nbytes and kept.memory_bytes() > plain.memory_bytes()
    # the prediction made in parts is the prediction
    np.testing.assert_allclose(kept.work_probs.astype(np.float32), plain.work_probs.astype(np.float32), atol=2e-3)
    assert (kept.labels != plain.labels).mean() < 1e-3
    switch = ins.LevelSwitch(model, kept, module=fast_net)
    calls = []
    for m in (fast_net.backbone.layer1, fast_net.head.conv, model.backbone.layer1, model.head.conv):
        m.register_forward_hook(lambda *a: calls.append("ran"))
    switch.prepare()
    assert calls == []  # nothing was run again: the parts came with the prediction
    reference = ins.LevelSwitch(model, plain)  # the plain model: the backbone run again for every window
    for disabled in ((6,), (1, 3), (1, 2, 3, 6)):
        got, want = switch.rerun(disabled, exact=True), reference.rerun(disabled, exact=True)
        assert (got.labels != want.labels).mean() < 1e-3
        np.testing.assert_allclose(got.work_probs.astype(np.float32), want.work_probs.astype(np.float32), atol=2e-3)
        assert (switch.rerun(disabled).labels != reference.rerun(disabled).labels).mean() < 1e-3
