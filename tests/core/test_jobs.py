"""core's jobs (core/jobs/) and their rule (core/generators.py): fine-tuning a project with one
set of defaults and one history record, the before/after comparison, ranking, the constants."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import core
from core.generators import Progress, as_progress, check_cancel, relay, run_to_end

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project_root(tmp_path_factory) -> Path:
    """A demo project of 96x128 scenes (all with masks) as the app and the CLI see it."""
    root = tmp_path_factory.mktemp("jobs") / "project"
    core.write_demo_project(root, n_train=5, n_val=1, size=(96, 128), seed=3)
    return root


def tiny_loaded(classes: core.ClassTable, seed: int = 0) -> core.LoadedModel:
    torch.manual_seed(seed)
    model = core.build_model(core.ModelConfig(depth=18, base_width=4, num_classes=len(classes), head_channels=16,
                                              aux_channels=8)).eval()
    return core.as_loaded(model, classes, {"source": "test"}, sources=[Path("/nowhere/start.safetensors")])


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def copy_project(src: Path, dst: Path) -> core.Project:
    import shutil

    shutil.copytree(src, dst)
    return core.Project.open(dst)


# ------------------------------------------------------------------------------------------- the rule
def test_progress_and_the_cancel_rule():
    assert as_progress(0.5) == Progress(fraction=0.5) and as_progress("x") == Progress(message="x")
    rec = core.TrainProgress(3, 4, 0, 1.0, 1.0, None, 0.1, 1.0, 1.0)
    assert isinstance(rec, Progress) and rec.fraction == 0.75 and rec.message == ""
    with pytest.raises(TypeError, match="not a core.Progress"):
        as_progress(object())

    def job(n, *, cancel=None):
        for i in range(n):
            check_cancel(cancel, "job cancelled", partial=i)
            yield i / n
        return "done"

    assert run_to_end(relay(job(3))) == "done"
    assert [p.fraction for p in relay(job(2))] == [0.0, 0.5]
    flag = threading.Event()
    gen = job(5, cancel=flag)
    next(gen)
    flag.set()
    with pytest.raises(core.Cancelled, match="job cancelled") as info:
        next(gen)
    assert info.value.partial == 1


# ---------------------------------------------------------------------------------- fine-tuning a project
def test_finetune_defaults_suit_the_project(project_root):
    project = core.Project.open(project_root)
    cfg, notes = core.finetune_config(project, tiny_loaded(project.classes).model)
    assert cfg.crop == 128  # the images' longest side, not the paper's 473
    assert cfg.freeze_backbone and cfg.cache_features and notes == []
    assert (cfg.steps, cfg.lr, cfg.val_every) == (150, 0.02, 30)
    cfg, notes = core.finetune_config(project, tiny_loaded(project.classes).model,
                                      {"freeze_backbone": False, "cache_features": True, "steps": 7, "crop": 64})
    assert not cfg.cache_features and "frozen backbone" in notes[0] and (cfg.steps, cfg.crop, cfg.val_every) == (7, 64, 1)


def test_finetuning_sees_the_images_at_the_scale_the_model_is_tested_at(project_root, tmp_path, monkeypatch):
    """A model tested at a long side of 64 (as semseg's ADE20K models at 512) fine-tunes on the
    project's 96x128 images resized to 48x64, masks by nearest neighbour; its protocol is kept."""
    from core.jobs import finetune_project as fp

    project = copy_project(project_root, tmp_path / "scaled")
    start = tiny_loaded(project.classes)
    start.model.test_protocol = core.TestProtocol(base_size=64, crop=48, source="test")
    cfg, _ = core.finetune_config(project, start.model)
    assert cfg.crop == 64  # covers the images as the protocol sizes them, not their 128 pixels
    seen = []
    real = fp.finetune

    def spy(model, dataset, cfg, **kw):
        seen.append([dataset[i] for i in range(len(dataset))])
        return (yield from real(model, dataset, cfg, **kw))

    monkeypatch.setattr(fp, "finetune", spy)
    records = []
    out = run_to_end(core.finetune_project(start, project, {"steps": 2, "batch": 2}, record=False), records.append)
    raw = core.open_dataset(project.root, "all", layout="ours")
    for (image, mask), i in zip(seen[0], range(len(raw))):
        big_image, big_mask = raw[i]
        assert image.shape == (48, 64, 3) and mask.shape == (48, 64)
        assert np.array_equal(mask, big_mask[::2, ::2])  # nearest neighbour on the 2x grid: the labels as they were
    assert any("long side 64" in getattr(r, "message", "") for r in records)
    assert out.loaded.model.test_protocol == start.model.test_protocol
    # a model that runs photos at their own size trains on them as they are
    start.model.test_protocol = core.TestProtocol.native()
    seen.clear()
    run_to_end(core.finetune_project(start, project, {"steps": 1, "batch": 2}, record=False))
    assert seen[0][0][1].shape == (96, 128)


def test_finetune_project_records_the_same_history_from_the_app_and_the_command_line(project_root, tmp_path):
    results = {}
    for origin in ("app", "command line"):
        project = copy_project(project_root, tmp_path / origin.replace(" ", "-"))
        start = tiny_loaded(project.classes)
        before = state(start.model)
        records = []
        out = run_to_end(core.finetune_project(start, project, {"steps": 3, "batch": 2, "crop": 64}, origin=origin),
                         records.append)
        assert all(torch.equal(v, before[k]) for k, v in state(start.model).items())  # the start is untouched
        assert [r.step for r in records if isinstance(r, core.TrainProgress) and r.val is None] == [1, 2, 3]
        history = project.checkpoints()
        assert [e.id for e in history] == ["0001", "0002"]  # the starting model first, so it can be restored
        assert history[0].note == "starting model: start.safetensors" and history[1].parent == "0001"
        assert out.entry == history[1] and out.loaded.sources == [history[1].path]
        assert project.current_checkpoint.id == "0002"
        saved = core.load_model(history[1].path)
        assert all(torch.equal(v, state(out.loaded.model)[k].cpu()) for k, v in state(saved.model).items())
        results[origin] = history[1].metrics
    app, cli = results["app"], results["command line"]
    assert set(app) == set(cli) and app["origin"] == "app" and cli["origin"] == "command line"
    assert app["steps"] == 3 and app["crop"] == 64 and app["val_miou"] is not None


def test_a_cancelled_finetune_records_nothing_and_hands_over_its_steps(project_root, tmp_path):
    project = copy_project(project_root, tmp_path / "p")
    flag = threading.Event()
    gen = core.finetune_project(tiny_loaded(project.classes), project, {"steps": 50, "batch": 2, "crop": 64},
                                cancel=flag)
    for rec in gen:
        if isinstance(rec, core.TrainProgress) and rec.step == 2:
            flag.set()
            break
    with pytest.raises(core.Cancelled) as info:
        next(gen)
    partial = info.value.partial
    assert isinstance(partial, core.ProjectFinetune) and partial.steps_done == 2 and partial.entry is None
    assert partial.metrics["cancelled"] is True and project.checkpoints() == []


def test_finetune_project_needs_labels(project_root, tmp_path):
    project = core.Project.create(tmp_path / "empty", core.Project.open(project_root).classes)
    project.add_images(sorted((project_root / "images").glob("*.png"))[:2])
    with pytest.raises(core.TrainingError, match="labelled pixel"):
        run_to_end(core.finetune_project(tiny_loaded(project.classes), project, {"steps": 2}))
    assert project.checkpoints() == []


# ------------------------------------------------------------------------------ comparison and ranking
def test_compare_models_measures_agreement_with_the_masks(project_root):
    project = core.Project.open(project_root)
    a, b = tiny_loaded(project.classes, 0), tiny_loaded(project.classes, 1)
    rows = run_to_end(core.compare_models(a.model, b.model, project, "cpu"))
    assert sorted(r.name for r in rows) == sorted(project.names())
    ds = core.open_dataset(project_root, "all", layout="ours")
    image, mask = ds[0]
    sel = mask != core.IGNORE
    pred = core.Predictors.on(b.model, "cpu").predictor.predict(image).labels
    row = next(r for r in rows if r.name == ds.name(0))
    assert row.labelled == int(sel.sum()) and row.after == pytest.approx(float((pred[sel] == mask[sel]).mean()))
    same = run_to_end(core.compare_models(a.model, a.model, project, "cpu"))
    assert all(r.gain == 0 for r in same)
    before, after, n = core.agreement_summary(rows)
    assert n == len(rows) and 0 <= before <= 1 and "->" in core.agreement_text(rows)


def test_score_images_yields_each_score_as_it_is_done(project_root):
    project = core.Project.open(project_root)
    model = tiny_loaded(project.classes).model
    paths = [project.image_path(n) for n in project.names()[:3]]
    items = [(10 + i, p, None) for i, p in enumerate(paths)] + [(99, project_root / "missing.png", None)]
    recs = []
    scores = run_to_end(core.score_images(model, "cpu", items, project.classes), recs.append)
    assert [r.index for r in recs] == [10, 11, 12] and recs[-1].fraction == pytest.approx(0.75)
    pred = core.Predictors.on(model, "cpu").predictor.predict(core.read_image(paths[1]))
    umap = core.uncertainty_map(pred.probs, pred.aux_probs, entropy=pred.entropy)
    assert scores[11] == pytest.approx(core.image_score(umap), rel=1e-5) and 99 not in scores
    assert core.ranked_indices([0.1, None, 0.5]) == [2, 0, 1]


# ------------------------------------------------------------------------------------- the constants
def test_constants_are_defined_once():
    """255 as the ignore label, the image extensions and the mask states are written only in
    core/constants.py; everything else imports them."""
    offenders = []
    for p in list((ROOT / "core").rglob("*.py")) + list((ROOT / "app").rglob("*.py")):
        if p.name == "constants.py":
            continue
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if node.value.value == 255 and any("IGNORE" in n for n in names):
                    offenders.append(f"{p.relative_to(ROOT)}: {names} = 255")
            if isinstance(node, ast.Constant) and node.value in ("unreadable mask",):
                offenders.append(f"{p.relative_to(ROOT)}: the mask state {node.value!r}")
            if isinstance(node, ast.Tuple | ast.Set) and {".jpg", ".png"} <= {
                    e.value for e in node.elts if isinstance(e, ast.Constant)}:
                offenders.append(f"{p.relative_to(ROOT)}: a list of image extensions")
    assert not offenders, offenders
    from core.data import io
    from core import labels, loss

    assert io.IGNORE is labels.IGNORE is loss.IGNORE_INDEX is core.IGNORE
    assert io.IMAGE_EXTENSIONS is core.IMAGE_EXTENSIONS


def test_models_are_placed_explicitly_and_copied(project_root):
    classes = core.Project.open(project_root).classes
    loaded = tiny_loaded(classes)
    loaded.model.test_protocol = core.TestProtocol(base_size=64, crop=48, source="test")  # what load_model sets
    predictors = run_to_end(core.place_model_job(loaded, "cpu"))
    assert predictors.predictor.model is loaded.model and predictors.model is loaded.model
    assert predictors.protocol == loaded.model.test_protocol == predictors.default  # the checkpoint's own protocol
    assert isinstance(predictors.module, core.InferencePSPNet) and predictors.module is not loaded.model
    assert predictors.for_image((4000, 3000)) is predictors.predictor  # one predictor: the protocol scales photos
    image = np.random.default_rng(0).integers(0, 255, (61, 83, 3), np.uint8)
    plain = core.Predictor(loaded.model, protocol=predictors.protocol).predict(image)
    fast = predictors.predictor.predict(image)
    assert np.array_equal(plain.labels, fast.labels)  # the inference copy gives the model's labels
    assert np.allclose(np.asarray(plain.work_probs, np.float32), np.asarray(fast.work_probs, np.float32), atol=2e-3)
    other = predictors.with_protocol(core.TestProtocol(base_size=48, crop=33))
    assert other.module is predictors.module and other.protocol.crop == 33 and other.default == predictors.default
    assert predictors.with_protocol(None).protocol == predictors.default
    copy = run_to_end(core.copy_loaded_job(loaded))
    assert copy.model is not loaded.model and copy.sources == loaded.sources and copy.classes is loaded.classes
    assert all(torch.equal(v, state(loaded.model)[k]) for k, v in state(copy.model).items())
    assert all(not np.shares_memory(a.detach().numpy(), b.detach().numpy())
               for a, b in zip(copy.model.parameters(), loaded.model.parameters()))
