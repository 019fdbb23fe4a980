"""The inference copy of a PSPNet (core.optimize_for_inference): BatchNorm folded, main head split by
input group, ReLU / residual sums fused into oneDNN convolutions. Every output and every internal
must equal the unfolded model's up to float rounding, and the original must stay as it was."""

from __future__ import annotations

import copy
import itertools
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import core
from core.config import ModelConfig
from core.model import PSPNet
from core.model import fused as fused_mod
from core.model.derived import cached_bytes
from core.model.fold import ChannelShift
from core.model.inference import InferencePSPNet, fold_batchnorm, optimize_for_inference

TINY = dict(base_width=8, head_channels=16, aux_channels=8, num_classes=5)
REL = 2e-5  # max |difference| / max |reference| allowed: float32 rounding in a different order


def random_model(seed: int = 0, **kw) -> PSPNet:
    """A tiny PSPNet with random BatchNorm statistics and affine parameters (folding is trivial
    for a fresh model: mean 0, variance 1, weight 1, bias 0)."""
    torch.manual_seed(seed)
    model = PSPNet(ModelConfig(**{**TINY, **kw}))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.3, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
            elif isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


def assert_close(ref: torch.Tensor, got: torch.Tensor, what: str) -> None:
    assert got.shape == ref.shape, f"{what}: shape {tuple(got.shape)} != {tuple(ref.shape)}"
    scale = float(ref.abs().max())
    diff = float((got - ref).abs().max())
    assert diff <= REL * max(scale, 1e-6), f"{what}: max |diff| {diff:.3g} of max |ref| {scale:.3g}"


def assert_same_output(ref, got, what: str = "") -> None:
    assert_close(ref.main, got.main, f"{what} main")
    if ref.aux is None:
        assert got.aux is None
    else:
        assert_close(ref.aux, got.aux, f"{what} aux")
    if ref.internals is None:
        assert got.internals is None
        return
    a, b = ref.internals, got.internals
    assert_close(a.layer3, b.layer3, f"{what} layer3")
    assert_close(a.layer4, b.layer4, f"{what} layer4")
    assert [lv.bin for lv in a.levels] == [lv.bin for lv in b.levels]
    for la, lb in zip(a.levels, b.levels):
        assert la.enabled == lb.enabled, f"{what} level {la.bin} enabled"
        for name in ("pooled", "reduced", "upsampled"):
            assert_close(getattr(la, name), getattr(lb, name), f"{what} level {la.bin} {name}")


VARIANTS = {
    "resnet18 plain stem": dict(depth=18, stem="plain"),
    "resnet50 deep stem": dict(depth=50, base_width=4),
    "resnet34 os16 halved_first, align_corners False": dict(depth=34, base_width=4, output_stride=16,
                                                           dilation="halved_first", align_corners=False),
    "bins 1,3 max pooling, 7 reduction channels": dict(depth=18, bins=(1, 3), pooling="max", reduction_channels=7),
    "no reduction": dict(depth=18, reduction=False),
    "no pyramid": dict(depth=18, use_ppm=False),
    "no aux head": dict(depth=18, aux=False),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_output_and_internal_equals_the_unfolded_model(variant):
    model = random_model(**VARIANTS[variant])
    net = optimize_for_inference(model)
    bins = model.bins
    # every subset of levels off (capped), both fills, with and without internals
    subsets = [()] + [tuple(c) for r in range(1, len(bins) + 1) for c in itertools.combinations(bins, r)][:6]
    x = torch.randn(2, 3, 41, 29)
    with torch.no_grad():
        for disabled, fill, internals in itertools.product(subsets, ("zeros", "mean"), (False, True)):
            kw = dict(internals=internals, disabled_levels=disabled, fill=fill)
            assert_same_output(model(x, **kw), net(x, **kw), f"{variant} {disabled} {fill} {internals}")


@pytest.mark.parametrize("size", [(9, 13), (17, 17), (64, 48), (75, 33)])
def test_odd_sizes_and_feature_maps_smaller_than_the_bins(size):
    """9x13 gives a 2x2 layer4 under 3x3 and 6x6 pyramid grids (the upsampling then shrinks)."""
    model = random_model(depth=18)
    net = optimize_for_inference(model)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        assert_same_output(model(x, internals=True), net(x, internals=True), str(size))
        assert_same_output(model(x, disabled_levels=(2, 6)), net(x, disabled_levels=(2, 6)), str(size))


@pytest.mark.parametrize("options", [dict(), dict(split_head=False), dict(fuse=False),
                                     dict(split_head=False, fuse=False)])
def test_each_optimisation_alone_keeps_the_outputs(options):
    model = random_model(depth=50, base_width=4)
    net = optimize_for_inference(model, **options)
    x = torch.randn(1, 3, 50, 38)
    with torch.no_grad():
        assert_same_output(model(x, internals=True, disabled_levels=(3,), fill="mean"),
                           net(x, internals=True, disabled_levels=(3,), fill="mean"), str(options))


def test_fold_batchnorm_alone_leaves_no_batchnorm_and_keeps_the_outputs():
    model = random_model(depth=50, base_width=4)
    net = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert isinstance(net.head.bn, ChannelShift) and net.head.conv.bias is None  # the heads stay bias-free
    assert isinstance(net.aux_head.bn, ChannelShift) and net.aux_head.conv.bias is None
    assert isinstance(net.backbone.layer1[0].bn1, nn.Identity) and net.backbone.layer1[0].conv1.bias is not None
    assert isinstance(net.backbone.layer1[0].downsample[1], nn.Identity)
    x = torch.randn(1, 3, 33, 47)
    with torch.no_grad():
        assert_same_output(model(x, internals=True), net(x, internals=True))


def test_the_original_model_is_untouched():
    model = random_model(depth=50, base_width=4).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    types = [type(m) for m in model.modules()]
    grads = [p.requires_grad for p in model.parameters()]
    net = optimize_for_inference(model, aux=False)
    assert model.training and all(m.training for m in model.modules())
    assert [type(m) for m in model.modules()] == types
    assert [p.requires_grad for p in model.parameters()] == grads
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.aux_head is not None and model.cfg.aux  # aux=False dropped the copy's head only
    own = {t.data_ptr() for t in itertools.chain(model.parameters(), model.buffers())}
    assert not own & {t.data_ptr() for t in itertools.chain(net.parameters(), net.buffers())}
    # a model in training mode is folded with its running statistics, not batch statistics
    x = torch.randn(2, 3, 31, 27)
    with torch.no_grad():
        ref = copy.deepcopy(model).eval()(x)
        assert_close(ref.main, net(x).main, "main of a model that was in training mode")


def test_the_module_tree_and_the_stage_by_stage_path_of_a_predictor():
    """The Predictor runs backbone.stem, layer1..4 one by one, then forward_heads on layer3/4."""
    model = random_model(depth=50, base_width=4)
    net = optimize_for_inference(model)
    assert isinstance(net, PSPNet) and isinstance(net, InferencePSPNet)
    assert net.bins == model.bins and net.cfg == model.cfg
    names = {n for n, _ in model.named_modules()}
    assert names <= {n for n, _ in net.named_modules()}
    img = torch.rand(1, 3, 45, 39) * 255
    with torch.inference_mode():
        assert torch.equal(net.normalize(img), model.normalize(img))
        x = net.normalize(img)
        t = x
        feats = []
        b = net.backbone
        for stage in (b.stem, b.layer1, b.layer2, b.layer3, b.layer4):
            t = stage(t)
            feats.append(t)
        got = net.forward_heads(feats[3], feats[4], x.shape[-2:], internals=True, disabled_levels=(1,))
        ref = model(x, internals=True, disabled_levels=(1,))
        assert_same_output(ref, got)
        # the head-only re-run on the original's cached features
        stages = model.backbone(x)
        assert_same_output(model.forward_heads(stages.layer3, stages.layer4, (45, 39), internals=True, fill="mean",
                                               disabled_levels=(2, 6)),
                           net.forward_heads(stages.layer3, stages.layer4, (45, 39), internals=True, fill="mean",
                                             disabled_levels=(2, 6)))
        small = model.upsample(ref.main, (20, 17))
        assert torch.equal(net.upsample(ref.main, (20, 17)), small)


def test_splitting_the_main_head_by_input_group_stays_exact():
    """What core.inspect.LevelSwitch computes from the head (bias-free conv on weight slices of the
    concatenation, summed, then head.bn, ReLU, classifier) is the inference copy's main output."""
    model = random_model(depth=18)
    net = optimize_for_inference(model)
    x = torch.randn(1, 3, 49, 41)
    with torch.no_grad():
        out = net(x, internals=True)
        inner = out.internals
        conv, head = net.head.conv, net.head
        groups = [inner.layer4] + [lv.upsampled for lv in inner.levels]
        acc, start = 0, 0
        for g in groups:
            n = g.shape[1]
            acc = acc + F.conv2d(g, conv.weight[:, start:start + n], None, conv.stride, conv.padding, conv.dilation)
            start += n
        logits = head.classifier(head.dropout(head.relu(head.bn(acc))))
        assert_close(out.main, net.upsample(logits, x.shape[-2:]), "LevelSwitch-style main")
        assert_close(model(x).main, net.upsample(head(torch.cat(groups, 1)), x.shape[-2:]), "head on the concatenation")


def test_without_the_aux_head():
    model = random_model(depth=18)
    net = optimize_for_inference(model, aux=False)
    assert net.aux_head is None and net.cfg.aux is False
    x = torch.randn(1, 3, 35, 35)
    with torch.no_grad():
        out = net(x, internals=True)
        ref = model(x, internals=True)
    assert out.aux is None
    assert_close(ref.main, out.main, "main")
    assert_close(ref.internals.layer3, out.internals.layer3, "layer3")  # the inspector still gets layer3


def test_inference_only():
    net = optimize_for_inference(random_model(depth=18))
    assert not net.training
    assert not any(p.requires_grad for p in net.parameters())
    with pytest.raises(RuntimeError, match="inference copy"):
        net.train()
    net.train(False)  # what a caller restoring eval mode does
    net.eval()
    with pytest.raises(TypeError, match="PSPNet"):
        optimize_for_inference(nn.Conv2d(3, 3, 1))


def test_unknown_levels_are_refused_as_by_the_model():
    model = random_model(depth=18)
    net = optimize_for_inference(model)
    x = torch.randn(1, 3, 20, 20)
    for m in (model, net):
        with pytest.raises(ValueError, match=r"no pyramid level with bin\(s\) \[4\]"):
            m(x, disabled_levels=(4,))
    flat = optimize_for_inference(random_model(depth=18, use_ppm=False))
    with pytest.raises(ValueError, match="no pyramid pooling module"):
        flat(x, disabled_levels=(1,))


def test_the_plain_path_runs_where_fusion_does_not_apply(monkeypatch):
    """Autograd, another dtype, or no oneDNN: the same values through the unfused forward."""
    model = random_model(depth=50, base_width=4)
    net = optimize_for_inference(model)
    x = torch.randn(1, 3, 37, 29)
    with torch.no_grad():
        ref = model(x, internals=True)
    xg = x.clone().requires_grad_(True)  # gradients with respect to the input (a saliency map)
    out = net(xg, internals=True)
    out.main.sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0
    with torch.no_grad():
        assert_same_output(ref, net(x.clone(), internals=True))
    assert_close(ref.main, out.main.detach(), "main with autograd")
    monkeypatch.setattr(fused_mod, "fusion_available", lambda: False)
    with torch.no_grad():
        assert_same_output(ref, net(x, internals=True), "without oneDNN")
    double = copy.deepcopy(net).double()  # the split head's buffers follow the dtype
    with torch.no_grad():
        got = double(x.double())
    assert got.main.dtype == torch.float64
    assert_close(ref.main.double(), got.main, "float64 copy")


def test_fusion_is_used_on_the_cpu():
    if not fused_mod.fusion_available():
        pytest.skip("oneDNN fused convolutions are not available in this torch build")
    net = optimize_for_inference(random_model(depth=50, base_width=4))
    kinds = {type(m).__name__ for m in net.modules()}
    assert {"FusedBottleneck", "FusedResNet", "FusedSegHead"} <= kinds
    assert fused_mod.use_fusion(torch.zeros(1))
    with torch.enable_grad():
        assert not fused_mod.use_fusion(torch.zeros(1, requires_grad=True))
    assert not fused_mod.use_fusion(torch.zeros(1, dtype=torch.float64))


def test_derived_weights_follow_changes_and_copies():
    """oneDNN's packed weights and the split head's regrouped weight are caches: a weight changed
    in place, a replaced parameter or a copy of the module must not run with stale ones."""
    model = random_model(depth=50, base_width=4)
    net = optimize_for_inference(model)
    plain = optimize_for_inference(model, pack_weights=False)  # packs nothing; the same computation
    x = torch.randn(1, 3, 33, 41)
    with torch.no_grad():
        first = net(x).main  # packs and regroups
        plain(x)
        branches = net.head.conv.weight[:, net.cfg.layer_channels[3]:]
        assert cached_bytes(plain) == branches.numel() * 4  # the head's branch weights, regrouped
        assert cached_bytes(net) > cached_bytes(plain)  # + every conv weight packed
        twin = copy.deepcopy(net)
        assert torch.equal(twin(x).main, first)
        for m in (net, plain):
            for conv in (m.backbone.conv1, m.backbone.layer2[0].conv3, m.backbone.layer4[1].conv2):
                conv.weight.mul_(1.5)
            m.head.conv.weight[:, -3:].mul_(0.5)  # the last pyramid branch's share of the head
            m.backbone.layer1[0].conv1.weight = nn.Parameter(m.backbone.layer1[0].conv1.weight * 0.5)
        changed = net(x).main
        assert torch.equal(twin(x).main, first)  # the copy kept its own weights
        assert_close(plain(x).main, changed, "after the weights changed")
        assert not torch.allclose(changed, first)


def test_concurrent_calls_give_the_same_result():
    model = random_model(depth=18)
    net = optimize_for_inference(model)
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        ref = net(x, internals=True).main
    results, errors = [], []

    def run():
        try:
            with torch.inference_mode():
                for _ in range(3):
                    results.append(net(x, internals=True, disabled_levels=(2,)).main)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with torch.no_grad():
        expected = model(x, disabled_levels=(2,)).main
    assert len(results) == 9 and all(torch.equal(r, results[0]) for r in results)
    assert_close(expected, results[0], "threaded")
    assert not torch.equal(ref, results[0])  # the level switch did change the output


def test_an_inference_copy_exports_to_onnx(tmp_path):
    """Tracing and exporting see the plain operations, not oneDNN's private fused ones."""
    pytest.importorskip("onnx")
    net = optimize_for_inference(random_model(depth=18))
    report = core.export_onnx(net, tmp_path / "net.onnx", size=(40, 48), exporter="torchscript")
    assert report.path.is_file()
    assert report.ok and (report.checks or report.check_skipped)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_on_cuda_the_copy_stays_on_the_device():
    model = random_model(depth=18).cuda()
    net = optimize_for_inference(model)
    assert all(t.is_cuda for t in itertools.chain(net.parameters(), net.buffers()))
    x = torch.randn(1, 3, 45, 37, device="cuda")
    with torch.no_grad():
        ref, got = model(x, internals=True), net(x, internals=True)
    assert_same_output(ref, got)


def test_exported_from_core():
    assert core.optimize_for_inference is optimize_for_inference
    assert core.InferencePSPNet is InferencePSPNet
