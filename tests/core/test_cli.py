"""The command line end to end: in-process through core.cli.main, and as real subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from core.cli import build_parser, main
from core.commands import train as train_cmd
from core.data.io import read_image, read_mask
from core.data.synthetic import SYNTHETIC_CLASSES
from core.errors import CheckpointError
from core.infer import Predictor
from core.weights import load_model

REPO = Path(__file__).resolve().parents[2]
TINY = ["--backbone", "resnet18", "--width", "8", "--head-channels", "32", "--aux-channels", "16"]
FAST = ["--batch", "2", "--crop", "48", "-q"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def demo(work) -> Path:
    root = work / "demo"
    assert main(["demo", str(root), "--train", "4", "--val", "2", "--size", "64", "64", "--seed", "3"]) == 0
    return root


@pytest.fixture(scope="module")
def ckpt(work, demo) -> Path:
    out = work / "tiny.safetensors"
    rc = main(["train", "--data", str(demo), "--out", str(out), *TINY, "--steps", "2", *FAST,
               "--save-config", str(work / "used.toml"), "--checkpoint-every", "2"])
    assert rc == 0
    return out


# --------------------------------------------------------------------------------------------- parser


def test_help_lists_every_subcommand():
    r = run_cli("--help")
    assert r.returncode == 0, r.stderr
    for name in ("gui", "demo", "train", "finetune", "eval", "predict", "convert", "export"):
        assert f"    {name} " in r.stdout or f"    {name}\n" in r.stdout, name


def test_demo_writes_the_data_set(demo):
    assert sorted(p.name for p in (demo / "images").iterdir()) == [f"scene_{i:04d}.png" for i in range(6)]
    assert (demo / "val.txt").read_text().split() == ["scene_0004", "scene_0005"]
    assert read_image(demo / "images" / "scene_0000.png").shape == (64, 64, 3)


def test_settings_precedence_defaults_file_then_options(tmp_path):
    cfg_file = tmp_path / "s.toml"
    cfg_file.write_text('batch = 3\n[train]\nsteps = 5\nlr = 0.5\n[model]\ndepth = 34\nbase_width = 4\nbins = [1, 3]\n')
    args = build_parser().parse_args(["train", "--data", "d", "--out", str(tmp_path / "o.safetensors"),
                                      "--config", str(cfg_file), "--steps", "7", "--no-flip", "--width", "16",
                                      "--no-aux", "--checkpoint-every", "2"])
    file_model, file_train = train_cmd._read_settings(args.config)
    tc = train_cmd.train_config(args, file_train)
    assert (tc.steps, tc.batch, tc.lr, tc.flip, tc.crop) == (7, 3, 0.5, False, 473)  # option > file > default
    assert tc.checkpoint_dir == str(tmp_path / "o_checkpoints")
    mc = train_cmd.model_config(args, file_model, num_classes=4)
    assert (mc.depth, mc.base_width, mc.bins, mc.aux, mc.num_classes, mc.pooling) == (34, 16, (1, 3), False, 4, "avg")
    cfg_file.write_text("[train]\nstepz = 5\n")
    with pytest.raises(ValueError, match="stepz"):
        train_cmd.train_config(args, train_cmd._read_settings(str(cfg_file))[1])


@pytest.fixture
def sigint():
    """Set SIGINT's handler for one test and put back the one pytest was started with: SIG_IGN
    when pytest runs as a background job of a script (`nohup pytest &`), Python's default else."""
    before = signal.getsignal(signal.SIGINT)
    yield lambda handler: signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_cancels_first_and_interrupts_second(sigint):
    sigint(signal.default_int_handler)  # a terminal's foreground job
    cancel = threading.Event()
    with train_cmd._ctrl_c_cancels(cancel, main=False):
        os.kill(os.getpid(), signal.SIGINT)
        assert cancel.is_set()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_stays_ignored_where_it_was_ignored(sigint):
    sigint(signal.SIG_IGN)  # a background job of a script: the terminal's Ctrl-C is not for it
    cancel = threading.Event()
    with train_cmd._ctrl_c_cancels(cancel, main=False):
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)  # delivered and ignored: no KeyboardInterrupt, no cancel
        assert not cancel.is_set()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


# --------------------------------------------------------------------------------------------- train / eval


def test_train_saves_the_model_with_provenance(ckpt, demo, work):
    loaded = load_model(ckpt)
    cfg = loaded.config
    assert (cfg.depth, cfg.base_width, cfg.head_channels, cfg.num_classes) == (18, 8, 32, 10)
    assert loaded.classes.names == SYNTHETIC_CLASSES.names
    prov = loaded.provenance
    assert prov["steps_done"] == 2 and prov["cancelled"] is False and prov["train_config"]["steps"] == 2
    assert prov["data"] == str(demo.resolve()) and prov["train_images"] == 4 and prov["val_images"] == 2
    assert prov["command"].startswith("pspnet-studio train --data ") and np.isfinite(prov["final_loss"])
    assert 0.0 <= prov["metrics"]["miou"] <= 1.0
    saved = (work / "used.toml").read_text()
    assert "[model]" in saved and "base_width = 8" in saved and "steps = 2" in saved


def test_resume_takes_architecture_and_settings_from_the_state(ckpt, demo, work, tmp_path):
    state = work / "tiny_checkpoints" / "last.pt"  # --checkpoint-every's default folder: OUT's name + _checkpoints
    assert state.is_file() and (work / "tiny_checkpoints" / "final.safetensors").is_file()
    out = tmp_path / "resumed.safetensors"
    assert main(["train", "--data", str(demo), "--out", str(out), "--resume", str(state), "--steps", "3",
                 "--val-split", "none", "-q"]) == 0
    resumed = load_model(out)
    assert resumed.config == load_model(ckpt).config
    prov = resumed.provenance
    assert prov["steps_done"] == 3 and prov["train_config"]["batch"] == 2 and prov["train_config"]["crop"] == 48
    assert prov["train_config"]["resume"] == str(state)


def test_eval_json_matches_the_training_validation(ckpt, demo, capsys):
    capsys.readouterr()
    assert main(["eval", "--model", str(ckpt), "--data", str(demo), "--json", "-q"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)  # exactly one JSON object on stdout
    for key in ("miou", "mean_acc", "pixel_acc", "per_class_iou", "per_class_acc", "class_names", "absent"):
        assert key in data
    assert data["class_names"] == list(SYNTHETIC_CLASSES.names) and len(data["per_class_iou"]) == 10
    assert data["pixels"] == 2 * 64 * 64 and data["images"] == 2
    for i in data["absent"]:
        assert data["per_class_iou"][i] is None
    prov = load_model(ckpt).provenance["metrics"]  # core.train's validation on the same split
    assert data["miou"] == pytest.approx(prov["miou"], abs=1e-9)
    assert data["pixel_acc"] == pytest.approx(prov["pixel_acc"], abs=1e-9)


def test_eval_table_and_confusion_matrix(ckpt, demo, tmp_path, capsys):
    conf = tmp_path / "conf.npy"
    assert main(["eval", "--model", str(ckpt), "--data", str(demo), "--split", "train", "--limit", "1",
                 "--flip", "--save-confusion", str(conf), "-q"]) == 0
    out = capsys.readouterr().out
    assert "mean" in out and "pixel accuracy" in out and "sky" in out and "flip" in out
    m = np.load(conf)
    assert m.shape == (10, 10) and m.sum() == 64 * 64
    assert "over 4096 labelled pixels" in out


def test_eval_refuses_a_model_for_other_classes(ckpt, demo, tmp_path, capsys):
    other = tmp_path / "three.safetensors"
    assert main(["convert", str(ckpt), "--out", str(other), "--num-classes", "3"]) == 0
    capsys.readouterr()
    assert main(["eval", "--model", str(other), "--data", str(demo), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: the model predicts 3 classes but the data set has 10 (a --remap can map the data set's "
                   "classes onto the model's)"]


def test_train_refuses_architecture_options_with_model(ckpt, demo, tmp_path, capsys):
    out = tmp_path / "x.safetensors"
    assert main(["train", "--data", str(demo), "--out", str(out), "--model", str(ckpt), "--width", "4"]) == 1
    assert "--width cannot be combined with --model" in capsys.readouterr().err
    assert not out.exists()


def test_train_from_a_checkpoint_and_finetune_a_project(ckpt, demo, tmp_path, capsys):
    project = tmp_path / "project"
    shutil.copytree(demo, project)
    out = tmp_path / "ft.safetensors"
    rc = main(["finetune", "--project", str(project), "--model", str(ckpt), "--out", str(out), "--steps", "1",
               "--freeze-backbone", "--add-to-project", *FAST])
    assert rc == 0
    tuned = load_model(out)
    assert tuned.provenance["finetune"] is True and tuned.provenance["steps_done"] == 1
    base = load_model(ckpt).model.state_dict()
    state = tuned.model.state_dict()
    assert torch.equal(state["backbone.conv1.weight"], base["backbone.conv1.weight"])  # frozen
    assert not torch.equal(state["head.classifier.weight"], base["head.classifier.weight"])  # trained
    from core.project import Project

    entry = Project.open(project).current_checkpoint
    assert entry is not None and entry.path.is_file()
    assert "added model" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------- predict


def test_predict_writes_masks_overlays_probs_and_reports_bad_files(ckpt, demo, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    trunc = tmp_path / "cut.png"
    trunc.write_bytes((demo / "images" / "scene_0001.png").read_bytes()[:200])
    out = tmp_path / "pred"
    capsys.readouterr()
    rc = main(["predict", "--model", str(ckpt), str(demo / "images"), str(bad), str(trunc), "--out", str(out),
               "--overlay", "--probs", "--aux", "-q"])
    assert rc == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "broken.jpg" in err[0] and "cut.png" in err[1] and "2 of 8" in err[2]
    assert not (out / "broken.png").exists() and not (out / "cut.png").exists()
    loaded = load_model(ckpt)
    image = read_image(demo / "images" / "scene_0002.png")
    mask = read_mask(out / "scene_0002.png", loaded.classes, shape=(64, 64))
    want = Predictor.from_loaded(loaded).predict(image)
    np.testing.assert_array_equal(mask, want.labels)
    np.testing.assert_array_equal(read_mask(out / "scene_0002_aux.png", loaded.classes), want.aux_labels)
    probs = np.load(out / "scene_0002_probs.npy")
    assert probs.dtype == np.float16 and probs.shape == (10, 64, 64)
    np.testing.assert_allclose(probs.astype(np.float32), want.probs, atol=1e-3)
    overlay = read_image(out / "scene_0002_overlay.png").astype(np.float32)
    colours = loaded.classes.palette()[want.labels].astype(np.float32)
    np.testing.assert_allclose(overlay, 0.5 * image + 0.5 * colours, atol=1.0)
    assert len(list(out.glob("scene_*[0-9].png"))) == 6


def test_predict_never_overwrites_its_inputs(ckpt, demo, capsys):
    before = {p.name: p.read_bytes() for p in (demo / "images").iterdir()}
    assert main(["predict", "--model", str(ckpt), str(demo / "images"), "--out", str(demo / "images")]) == 1
    assert "would overwrite an input image" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (demo / "images").iterdir()} == before


def test_bad_image_in_a_subprocess_is_one_line_and_debug_shows_the_traceback(ckpt, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    r = run_cli("predict", "--model", str(ckpt), str(bad), "--out", str(tmp_path / "o"), "-q")
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[0].startswith("error: ") and "bad.png" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli("--debug", "convert", str(tmp_path / "missing.pth"), "--out", str(tmp_path / "m.safetensors"))
    assert r.returncode == 1 and "Traceback" in r.stderr and "CheckpointError" in r.stderr
    assert not (tmp_path / "m.safetensors").exists()


def test_debug_raises_in_process_and_errors_are_one_line_otherwise(tmp_path, capsys):
    missing = str(tmp_path / "none.safetensors")
    for argv in (["--debug", "eval", "--model", missing, "--data", str(tmp_path)],
                 ["eval", "--model", missing, "--data", str(tmp_path), "--debug"]):
        with pytest.raises(Exception):
            main(argv)
    assert main(["convert", missing, "--out", str(tmp_path / "x.safetensors")]) == 1
    assert capsys.readouterr().err == f"error: {missing}: no such file\n"
    with pytest.raises(CheckpointError):
        main(["--debug", "convert", missing, "--out", str(tmp_path / "x.safetensors")])


# --------------------------------------------------------------------------------------------- convert / export


def test_convert_round_trip(ckpt, tmp_path, capsys):
    out = tmp_path / "conv.safetensors"
    assert main(["convert", str(ckpt), "--out", str(out), "--classes", "voc", "--num-classes", "21"]) == 0
    printed = capsys.readouterr().out
    assert "format: pspnet-studio" in printed and "classifiers were replaced" in printed
    a, b = load_model(ckpt), load_model(out)
    assert b.classes.name == "voc" and b.config.num_classes == 21
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert torch.equal(sa["backbone.layer4.1.conv2.weight"], sb["backbone.layer4.1.conv2.weight"])
    assert sb["head.classifier.weight"].shape[0] == 21
    assert b.provenance["converted_from"] == [str(ckpt)]
    same = tmp_path / "same.safetensors"
    assert main(["convert", str(ckpt), "--out", str(same)]) == 0
    sc = load_model(same).model.state_dict()
    assert all(torch.equal(sa[k], sc[k]) for k in sa)


def test_export_cli_checks_with_onnxruntime(ckpt, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "m.onnx"
    rc = main(["export", "--model", str(ckpt), "--out", str(out), "--size", "65", "50", "--check",
               "--exporter", "torchscript"])
    assert rc == 0 and out.stat().st_size > 0
    printed = capsys.readouterr().out
    assert printed.count("check: OK") == 2 and "fixed size 65x50" in printed
