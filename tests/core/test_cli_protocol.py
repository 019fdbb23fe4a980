"""predict / eval on the command line: the model's protocol by default, the same overrides on
both, the source's metric convention, and a prediction that fails says so and the rest go on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import core
from core.cli import main
from core.data.io import read_image, read_mask
from core.inference import Predictor, TestProtocol
from core.inference.forward import Network
from core.metrics import ConfusionMatrix

PROTOCOL = TestProtocol.semseg("ade20k", base_size=48, crop=33, source="tests")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return core.write_demo_project(tmp_path_factory.mktemp("cli-protocol") / "demo", n_train=3, n_val=2,
                                   size=(40, 56), seed=1)


@pytest.fixture(scope="module")
def ckpt(demo, tmp_path_factory) -> Path:
    classes = core.ClassTable.load(demo / "classes.json")
    torch.manual_seed(0)
    model = core.build_model(core.ModelConfig(depth=18, base_width=8, num_classes=len(classes), head_channels=16,
                                              aux_channels=8)).eval()
    with torch.no_grad():
        model.head.classifier.weight.mul_(20)
    path = tmp_path_factory.mktemp("models") / "tiny.safetensors"
    core.save_checkpoint(path, model, classes, {"source": "tests"}, protocol=PROTOCOL)
    return path


def test_predict_uses_the_model_protocol_and_the_overrides(ckpt, demo, tmp_path, capsys):
    loaded = core.load_model(ckpt)
    image = read_image(demo / "images" / "scene_0001.png")
    out = tmp_path / "default"
    assert main(["predict", "--model", str(ckpt), str(demo / "images" / "scene_0001.png"), "--out", str(out),
                 "--probs"]) == 0
    err = capsys.readouterr().err
    assert "test protocol: semseg procedure: long side 48, 33 px windows at stride 22" in err and "flip" in err
    want = Predictor.from_loaded(loaded).predict(image)
    np.testing.assert_array_equal(read_mask(out / "scene_0001.png", loaded.classes), want.labels)
    probs = np.load(out / "scene_0001_probs.npy")
    assert probs.shape == (len(loaded.classes), 34, 48)  # the working resolution (40 x 56 -> 34 x 48)
    out2 = tmp_path / "overridden"
    assert main(["predict", "--model", str(ckpt), str(demo / "images" / "scene_0001.png"), "--out", str(out2),
                 "--base-size", "native", "--crop", "none", "--no-flip", "--scales", "1", "0.5", "-q"]) == 0
    other = Predictor.from_loaded(loaded, base_size=None, crop=None, flip=False, scales=(1.0, 0.5)).predict(image)
    np.testing.assert_array_equal(read_mask(out2 / "scene_0001.png", loaded.classes), other.labels)
    assert not np.array_equal(other.labels, want.labels)  # the overrides did change the procedure


@pytest.mark.parametrize("args, message", [
    (["--crop", "0"], "--crop must be a positive number of pixels or none"),
    (["--base-size", "big"], "--base-size must be a positive number of pixels or native"),
    (["--ms", "--scales", "1"], "either --ms or --scales"),
    (["--stride-ratio", "2"], "--stride-ratio must be in"),
])
def test_bad_protocol_options_are_one_line_errors(ckpt, demo, tmp_path, capsys, args, message):
    for cmd in (["predict", "--model", str(ckpt), str(demo / "images"), "--out", str(tmp_path / "o")],
                ["eval", "--model", str(ckpt), "--data", str(demo)]):
        assert main(cmd + args) != 0
        assert message in capsys.readouterr().err


def test_eval_reports_its_protocol_and_follows_the_source_metric_convention(ckpt, demo, tmp_path, capsys):
    conf = tmp_path / "conf.npy"
    assert main(["eval", "--model", str(ckpt), "--data", str(demo), "--split", "all", "--json",
                 "--save-confusion", str(conf)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"] == PROTOCOL.to_dict() and out["mean_over"] == "all"
    cm = ConfusionMatrix.load(conf)
    assert out["miou"] == pytest.approx(cm.compute("all").miou)
    assert out["absent"] and cm.compute("all").miou < cm.compute("present").miou  # absent classes count 0
    loaded = core.load_model(ckpt)
    pred = Predictor.from_loaded(loaded, aux=False)
    data = core.open_dataset(demo, "all")
    mine = ConfusionMatrix(len(loaded.classes))
    for i in range(len(data)):
        image, mask = data[i]
        mine.update(pred.predict(image).labels, mask)
    np.testing.assert_array_equal(mine.matrix, cm.matrix)
    assert main(["eval", "--model", str(ckpt), "--data", str(demo), "--split", "all", "--json", "--no-flip",
                 "--crop", "none"]) == 0
    flipped_off = json.loads(capsys.readouterr().out)
    assert flipped_off["protocol"]["flip"] is False and flipped_off["protocol"]["crop"] is None


def test_a_prediction_that_runs_out_of_memory_is_one_line_and_the_rest_go_on(ckpt, demo, tmp_path, capsys,
                                                                                monkeypatch):
    real = Network.heads
    calls = {"n": 0}

    def failing(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise MemoryError("cannot allocate 1.2 GiB")
        return real(self, *a, **kw)

    monkeypatch.setattr(Network, "heads", failing)
    out = tmp_path / "pred"
    images = sorted((demo / "images").glob("*.png"))
    assert main(["predict", "--model", str(ckpt), str(demo / "images"), "--out", str(out), "-q"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 2 and "ran out of memory predicting a 56x40 image" in err[0] and images[0].name in err[0]
    assert f"1 of {len(images)}" in err[1]
    assert not (out / images[0].name).exists() and all((out / p.name).exists() for p in images[1:])


def test_a_photo_too_large_for_the_memory_is_refused_before_the_work(ckpt, demo, tmp_path, capsys, monkeypatch):
    import core.inference.predictor as predictor

    monkeypatch.setattr(predictor, "available_memory", lambda device="cpu": 100_000)
    ran = []
    monkeypatch.setattr(Network, "stages", lambda self, x: ran.append(1) or iter(()))
    assert main(["predict", "--model", str(ckpt), str(demo / "images" / "scene_0001.png"), "--out",
                 str(tmp_path / "p"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "a 56x40 image needs about" in err and "are available" in err and ran == []
