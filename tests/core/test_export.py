"""ONNX export: exact adaptive pooling, onnxruntime agreement at odd sizes, fixed and dynamic."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

import core.export as E
from core.classes import ClassTable
from core.cli import main
from core.config import ModelConfig
from core.export import ExactAdaptivePool2d, ExportError, compare_logits, export_onnx, replace_adaptive_pooling
from core.model import PSPNet
from core.weights.ours import save_checkpoint

K = 5


def tiny(**kw) -> PSPNet:
    torch.manual_seed(0)
    cfg = dict(depth=18, base_width=8, num_classes=K, head_channels=32, aux_channels=16, bins=(1, 2, 3, 6))
    cfg.update(kw)
    model = PSPNet(ModelConfig(**cfg))
    with torch.no_grad():  # non-trivial BatchNorm statistics (eval mode must be what is exported)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("mode,ref", [("avg", nn.AdaptiveAvgPool2d), ("max", nn.AdaptiveMaxPool2d)])
def test_exact_pool_equals_torch_adaptive_pooling(mode, ref):
    gen = torch.Generator().manual_seed(0)
    for bins in (1, 2, 3, 6):
        # divisible, non-divisible, smaller than the grid (overlapping cells), 1 x 1
        for h, w in ((12, 12), (9, 7), (5, 13), (2, 4), (1, 1), (61, 60)):
            x = torch.randn(2, 3, h, w, generator=gen)
            got, want = ExactAdaptivePool2d(bins, mode)(x), ref(bins)(x)
            assert got.shape == want.shape == (2, 3, bins, bins)
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_replace_adaptive_pooling_swaps_every_branch_and_keeps_outputs():
    model = tiny(pooling="max")
    x = torch.randn(1, 3, 65, 50)
    with torch.no_grad():
        before = model(x)
    assert replace_adaptive_pooling(model) == 4
    assert not any(isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) for m in model.modules())
    with torch.no_grad():
        after = model(x)
    torch.testing.assert_close(after.main, before.main, rtol=0, atol=1e-5)


def test_compare_logits_tolerance_and_ties():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(1, 4, 6, 5)).astype(np.float32) * 10
    assert compare_logits(ref, ref + 1e-5, (6, 5)).ok
    bad = ref.copy()
    bad[0, :, 0, 0] = bad[0, ::-1, 0, 0]  # a different argmax at one pixel, far from a tie
    res = compare_logits(ref, bad, (6, 5))
    assert not res.ok and res.argmax_equal < 1.0 and "MISMATCH" in res.summary()
    tied = ref.copy()
    tied[0, 0, 1, 1], tied[0, 1, 1, 1] = 50.0, 50.001  # top-2 within the tolerance: either argmax is fine
    flipped = tied.copy()
    flipped[0, 0, 1, 1], flipped[0, 1, 1, 1] = 50.001, 50.0
    res = compare_logits(tied, flipped, (6, 5))
    assert res.ok and res.argmax_equal < 1.0 and res.argmax_ties
    assert not compare_logits(ref, ref[:, :3], (6, 5)).ok  # shape mismatch


def test_check_requires_onnxruntime(monkeypatch, tmp_path):
    monkeypatch.setattr(E, "_onnxruntime", lambda: None)
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="onnxruntime is not installed"):
        export_onnx(tiny(), out, size=(33, 33), check=True)
    assert not out.exists()


def test_export_without_onnx_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError, as when it is not installed
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match=r'needs the onnx package.*pip install -e "\.\[onnx\]"'):
        export_onnx(tiny(), out, size=(33, 33), exporter="torchscript")
    assert list(tmp_path.iterdir()) == []


def test_export_command_without_onnx_fails_in_one_line(monkeypatch, tmp_path, capsys):
    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(ckpt, tiny(), ClassTable.from_names([f"c{i}" for i in range(K)], "tiny"))
    monkeypatch.setitem(sys.modules, "onnx", None)
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", str(ckpt), "--out", str(out), "--size", "33", "33"]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"error: ONNX export needs the onnx package, which is not installed: "
                                         f"{E.INSTALL_HINT}"]
    assert captured.out == "" and not out.exists()


def test_export_without_onnxruntime_skips_the_check(monkeypatch, tmp_path):
    monkeypatch.setattr(E, "_onnxruntime", lambda: None)
    report = export_onnx(tiny(aux=False), tmp_path / "m.onnx", size=(40, 36), exporter="torchscript")
    assert report.check_skipped == "onnxruntime is not installed" and report.checks == []
    assert report.outputs == ("main",) and (tmp_path / "m.onnx").stat().st_size > 0
    assert "check skipped" in report.summary()


def test_fixed_size_avg_export_agrees_with_torch_at_an_odd_size(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    model = tiny()
    classes = ClassTable.from_names([f"c{i}" for i in range(K)], "tiny")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    report = export_onnx(model, tmp_path / "avg.onnx", size=(65, 50), classes=classes, strict=True,
                         exporter="torchscript")
    assert report.pools_replaced == 4 and report.ok and len(report.checks) == 2  # main and aux
    for c in report.checks:
        assert c.rel_diff <= 1e-4 and c.argmax_equal == 1.0 and c.size == (65, 50)
    # the caller's model is untouched (still adaptive pooling, same weights)
    assert isinstance(model.ppm.branches[2].pool, nn.AdaptiveAvgPool2d)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    # the file: input name and shape, outputs, metadata
    proto = onnx.load(str(tmp_path / "avg.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert ModelConfig.from_dict(json.loads(meta["pspnet_config"])) == model.cfg
    assert ClassTable.from_dict(json.loads(meta["classes"])).names == classes.names
    session = ort.InferenceSession(str(tmp_path / "avg.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["main", "aux"]
    # a batch of two made by hand (the batch is free): the graph normalises (input is RGB 0..255)
    img = np.zeros((2, 3, 65, 50), np.float32)
    img[0, :, ::2, ::3] = 255
    img[1] = np.linspace(0, 255, 65 * 50, dtype=np.float32).reshape(65, 50)
    main = session.run(["main"], {"image": img})[0]
    with torch.no_grad():
        ref = model(model.normalize(torch.from_numpy(img))).main.numpy()
    assert np.abs(main - ref).max() <= 1e-4 * np.abs(ref).max()


def test_dynamic_max_pooling_export_is_exact_at_two_sizes(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = tiny(pooling="max", aux=False)
    report = export_onnx(model, tmp_path / "dyn.onnx", size=(65, 50), dynamic=True, strict=True)
    assert report.exporter == "dynamo" and report.dynamic
    assert [c.size for c in report.checks] == [(65, 50), (82, 59)]
    assert all(c.ok and c.argmax_equal == 1.0 for c in report.checks)
    # a size of its own: a different feature size, so different pooling regions
    other = E.check_onnx(tmp_path / "dyn.onnx", model, (97, 70))
    assert other[0].ok, other[0].summary()
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "dyn.onnx"), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    assert shape[1] == 3 and all(isinstance(d, str) for d in (shape[0], shape[2], shape[3])), shape
    x = torch.rand(3, 3, 40, 44, generator=torch.Generator().manual_seed(1)) * 255  # a batch of 3
    got = session.run(["main"], {"image": x.numpy()})[0]
    with torch.no_grad():
        ref = model(model.normalize(x)).main.numpy()
    assert compare_logits(ref, got, (40, 44)).ok
    # and a wrong model is caught
    wrong = E.check_onnx(tmp_path / "dyn.onnx", tiny(pooling="avg", aux=False), (65, 50))
    assert not wrong[0].ok


def test_dynamic_needs_the_dynamo_exporter(tmp_path):
    with pytest.raises(ExportError, match="dynamo"):
        export_onnx(tiny(), tmp_path / "x.onnx", dynamic=True, exporter="torchscript")
    with pytest.raises(ValueError, match="exporter"):
        export_onnx(tiny(), tmp_path / "x.onnx", exporter="nope")
    assert not (tmp_path / "x.onnx").exists()
