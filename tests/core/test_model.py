"""The model's architecture: shapes for every variant, internals, head-only re-run, the loss."""

from __future__ import annotations

import pytest
import torch

from core.config import ModelConfig
from core.loss import pspnet_loss
from core.model import PSPNet
from core.model.backbone import block_dilations

TINY = dict(base_width=8, head_channels=16, aux_channels=8, num_classes=5)


def tiny(**kw) -> PSPNet:
    torch.manual_seed(0)
    return PSPNet(ModelConfig(**{**TINY, **kw})).eval()


def feature_size(n: int, stride: int) -> int:
    """Spatial size after the stem (conv s2 + maxpool s2) and the strided layers."""
    for _ in range({8: 3, 16: 4}[stride]):
        n = (n - 1) // 2 + 1
    return n


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
@pytest.mark.parametrize("stem", ["plain", "deep"])
def test_every_depth_and_stem_gives_logits_at_input_size(depth, stem):
    model = tiny(depth=depth, stem=stem, base_width=4)
    x = torch.randn(1, 3, 37, 45)
    with torch.no_grad():
        out = model(x, internals=True)
    assert out.main.shape == (1, 5, 37, 45)
    assert out.aux.shape == (1, 5, 37, 45)
    c3, c4 = model.cfg.layer_channels[2:]
    assert out.internals.layer3.shape == (1, c3, feature_size(37, 8), feature_size(45, 8))
    assert out.internals.layer4.shape[1] == c4
    expected_c4 = 4 * 8 * (4 if depth >= 50 else 1)
    assert c4 == expected_c4


@pytest.mark.parametrize("stride", [8, 16])
@pytest.mark.parametrize("pattern", ["all", "halved_first"])
def test_output_stride_and_dilation_pattern(stride, pattern):
    model = tiny(output_stride=stride, dilation=pattern, depth=50)
    x = torch.randn(2, 3, 64, 50)
    with torch.no_grad():
        out = model(x, internals=True)
    assert out.internals.layer4.shape[-2:] == (feature_size(64, stride), feature_size(50, stride))
    assert out.main.shape == (2, 5, 64, 50)
    layer4_first = model.backbone.layer4[0].conv2
    layer4_second = model.backbone.layer4[1].conv2
    full = 4 if stride == 8 else 2
    assert layer4_second.dilation == (full, full)
    assert layer4_first.dilation == ((full // 2,) * 2 if pattern == "halved_first" else (full, full))
    assert layer4_first.stride == (1, 1)


def test_basic_block_dilation_of_second_conv():
    cfg = ModelConfig(depth=18, dilation="halved_first", basic_dilate_conv2=True)
    assert block_dilations(cfg, 3, 0) == (1, 2)  # CSAIL: first conv halved, second full
    assert block_dilations(cfg, 4, 1) == (4, 4)
    cfg = ModelConfig(depth=18, dilation="halved_first", basic_dilate_conv2=False)
    assert block_dilations(cfg, 4, 1) == (4, 1)  # mmseg: second conv undilated
    assert block_dilations(ModelConfig(depth=50), 2, 0) == (1, 1)


@pytest.mark.parametrize("size", [(1, 1), (7, 3), (65, 65), (33, 97), (128, 96)])
def test_any_input_size(size):
    model = tiny()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.main.shape[-2:] == size and out.aux.shape[-2:] == size
    assert torch.isfinite(out.main).all()


def test_internals_per_level_shapes():
    model = tiny(depth=50)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 97, 81), internals=True)
    c4 = model.cfg.layer_channels[3]
    h, w = out.internals.layer4.shape[-2:]
    assert [lvl.bin for lvl in out.internals.levels] == [1, 2, 3, 6]
    for lvl in out.internals.levels:
        assert lvl.pooled.shape == (1, c4, lvl.bin, lvl.bin)
        assert lvl.reduced.shape == (1, c4 // 4, lvl.bin, lvl.bin)
        assert lvl.upsampled.shape == (1, c4 // 4, h, w)
        assert lvl.enabled
    # the pooled grid is the average of the features (adaptive average pooling)
    assert torch.allclose(out.internals.levels[0].pooled[0, :, 0, 0], out.internals.layer4[0].mean((1, 2)), atol=1e-5)


def test_no_internals_costs_nothing_extra():
    model = tiny()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 40, 40))
    assert out.internals is None


@pytest.mark.parametrize("kw,n_branch_channels", [
    (dict(bins=(1,)), [16]),  # B1: reduced to C/1
    (dict(pooling="max"), [4] * 4),
    (dict(reduction=False), [16] * 4),  # no reduction: the pooled features themselves
    (dict(bins=(1, 2, 3, 6), reduction_channels=6), [6] * 4),
])
def test_ablations(kw, n_branch_channels):
    model = tiny(depth=18, base_width=2, **kw)  # layer4 has 16 channels
    with torch.no_grad():
        out = model(torch.randn(1, 3, 50, 50), internals=True)
    assert [lvl.reduced.shape[1] for lvl in out.internals.levels] == n_branch_channels
    assert model.head.conv.in_channels == 16 + sum(n_branch_channels)
    if kw.get("pooling") == "max":
        lvl = out.internals.levels[0]
        assert torch.allclose(lvl.pooled[0, :, 0, 0], out.internals.layer4[0].amax((1, 2)))
    if kw.get("reduction") is False:
        assert torch.equal(out.internals.levels[1].reduced, out.internals.levels[1].pooled)


def test_no_pyramid_and_no_aux():
    model = tiny(use_ppm=False, aux=False)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 40, 40), internals=True)
    assert out.aux is None and out.internals.levels == []
    assert model.head.conv.in_channels == model.cfg.layer_channels[3]
    with pytest.raises(ValueError, match="no pyramid"):
        model(torch.randn(1, 3, 40, 40), disabled_levels=(1,))


def test_same_output_record_in_train_and_eval():
    model = tiny()
    x = torch.randn(2, 3, 40, 40)
    model.train()
    out_train = model(x)
    model.eval()
    out_eval = model(x)
    assert type(out_train) is type(out_eval)
    assert out_train.main.shape == out_eval.main.shape and out_train.aux.shape == out_eval.aux.shape


@pytest.mark.parametrize("off", [(), (1,), (6,), (2, 3), (1, 2, 3, 6)])
@pytest.mark.parametrize("fill", ["zeros", "mean"])
def test_head_only_rerun_equals_full_forward(off, fill):
    model = tiny(depth=50)
    x = torch.randn(1, 3, 70, 54)
    with torch.no_grad():
        full = model(x, internals=True, disabled_levels=off, fill=fill)
        base = model(x, internals=True)
        rerun = model.forward_heads(base.internals.layer3, base.internals.layer4, x.shape[-2:],
                                    disabled_levels=off, fill=fill, internals=True)
    assert torch.equal(rerun.main, full.main)
    assert torch.equal(rerun.aux, full.aux)
    for lvl in rerun.internals.levels:
        assert lvl.enabled == (lvl.bin not in off)
        if not lvl.enabled and fill == "zeros":
            assert not lvl.upsampled.any()
    if off and not (fill == "mean" and off == (1,)):  # the 1x1 level's mean is the level itself
        assert not torch.equal(rerun.main, base.main)
    elif off:
        assert torch.equal(rerun.main, base.main)


def test_switching_off_an_unknown_level_is_a_clear_error():
    model = tiny()
    with pytest.raises(ValueError, match=r"bin\(s\) \[4\]"):
        model(torch.randn(1, 3, 30, 30), disabled_levels=(4,))


def test_loss_ignores_255_and_weights_aux():
    model = tiny()
    x = torch.randn(2, 3, 24, 24)
    target = torch.randint(0, 5, (2, 24, 24))
    target[:, :12] = 255
    out = model(x)
    parts = pspnet_loss(out, target, aux_weight=0.4)
    ce = torch.nn.functional.cross_entropy
    assert torch.allclose(parts.main, ce(out.main, target, ignore_index=255))
    assert torch.allclose(parts.aux, ce(out.aux, target, ignore_index=255))
    assert torch.allclose(parts.total, parts.main + 0.4 * parts.aux)
    none = pspnet_loss(out, torch.full_like(target, 255))
    assert none.total.item() == 0.0 and torch.isfinite(none.total)
    none.total.backward()  # no labelled pixel: a zero loss that still backpropagates


def test_normalize_uses_config_mean_and_std():
    model = tiny()
    img = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    x = model.normalize(img)
    expected = (255 - torch.tensor(model.cfg.mean)) / torch.tensor(model.cfg.std)
    assert torch.allclose(x[0, :, 0, 0], expected)


def test_config_validation_and_round_trip(tmp_path):
    from core.config import load_config, save_config

    with pytest.raises(ValueError, match="depth must be"):
        ModelConfig(depth=42)
    with pytest.raises(ValueError, match="output_stride"):
        ModelConfig(output_stride=4)
    cfg = ModelConfig(depth=101, bins=(1, 3), pooling="max", align_corners=False)
    for name in ("cfg.json", "cfg.toml"):
        save_config(cfg, tmp_path / name)
        assert load_config(ModelConfig, tmp_path / name) == cfg
    (tmp_path / "bad.json").write_text('{"depth": 50, "colour": 3}')
    with pytest.raises(ValueError, match="unknown ModelConfig field.*colour"):
        load_config(ModelConfig, tmp_path / "bad.json")
