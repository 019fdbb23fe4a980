"""Projects with their own classes: the built-in tables, a project's table extended without
invalidating a mask, the ids the masks use, a model's classifiers rebuilt for a project's table
(trained rows kept by name), and fine-tuning refused for a model of another table."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import core
from core.generators import run_to_end


@pytest.fixture()
def project(tmp_path) -> core.Project:
    root = tmp_path / "scenes"
    core.write_demo_project(root, n_train=3, n_val=1, size=(48, 64), seed=1)
    return core.Project.open(root)


def tiny(classes: core.ClassTable, seed: int = 0) -> core.LoadedModel:
    torch.manual_seed(seed)
    model = core.build_model(core.ModelConfig(depth=18, base_width=4, num_classes=len(classes), head_channels=16,
                                              aux_channels=8)).eval()
    return core.as_loaded(model, classes, {"source": "test"})


def test_builtin_tables_are_listed_with_their_sizes():
    tables = core.builtin_class_tables()
    assert [(k, len(t)) for k, _title, t in tables] == [("ade20k", 150), ("voc", 21), ("cityscapes", 19)]
    assert [title for _k, title, _t in tables] == ["ADE20K", "PASCAL VOC", "Cityscapes"]
    ade = tables[0][2]
    assert ade.names[:3] == ("wall", "building", "sky")


def test_classes_differ_compares_names_in_order_not_colours():
    a = core.ClassTable.from_names(["sky", "road", "car"])
    recoloured = core.ClassTable(a.names, ((1, 2, 3),) * 3)
    assert not core.classes_differ(a, recoloured)
    assert core.classes_differ(a, core.ClassTable.from_names(["road", "sky", "car"]))
    assert core.classes_differ(a, core.ClassTable.from_names(["sky", "road", "car", "boat"]))
    assert not core.classes_differ(a, None)
    text = core.describe_difference(a, core.ClassTable.from_names(["sky", "road", "car", "boat"]))
    assert "1 class(es) more" in text and "boat" in text


def test_extending_the_table_keeps_every_mask_valid(project):
    root = project.root
    old = project.classes
    name = project.names()[0]
    mask = project.load_mask(name)  # open while the table changes
    before = {n: project.saved_mask(n).copy() for n in project.names()}
    bigger = core.ClassTable(old.names[:2] + ("open water",) + old.names[3:] + ("kite", "flag"),
                             old.colors + ((10, 20, 30), (40, 50, 60)), old.name)
    project.update_classes(bigger)
    assert project.classes == bigger
    on_disk = json.loads((root / "classes.json").read_text())
    assert [c["name"] for c in on_disk["classes"]] == list(bigger.names)
    # the masks mean what they meant: the same ids, and they read under the new table
    for n, data in before.items():
        np.testing.assert_array_equal(core.read_mask(project.mask_path(n), bigger), data)
    # the open mask takes the new ids at once, and saves with them
    kite = len(old)
    mask.paint([(5.0, 5.0)], kite, 2.0)
    project.save_mask(name, mask)
    assert core.read_mask(project.mask_path(name), bigger)[5, 5] == kite
    # a project opened again (another program) reads the new table
    project.close()
    again = core.Project.open(root, read_only=True)
    assert again.classes == bigger


def test_removing_classes_is_refused_and_changes_nothing(project):
    path = project.root / "classes.json"
    raw = path.read_bytes()
    smaller = core.ClassTable.from_names(project.classes.names[:4])
    with pytest.raises(core.ClassTableError, match="cannot be removed") as info:
        project.update_classes(smaller)
    assert info.value.path == path
    assert path.read_bytes() == raw and len(project.classes) == 10


def test_a_read_only_project_refuses_a_new_table(project):
    ro = core.Project.open(project.root, read_only=True)
    with pytest.raises(core.ReadOnlyProjectError):
        ro.update_classes(core.ClassTable.from_names(list(project.classes.names) + ["x"]))


def test_a_refused_write_keeps_the_old_table(project, monkeypatch):
    import core.atomic

    path = project.root / "classes.json"
    raw = path.read_bytes()

    def full_disk(target, *a, **k):
        raise core.WriteError(f"{target}: No space left on device", target, 28)

    monkeypatch.setattr(core.atomic, "atomic_save", full_disk)
    with pytest.raises(core.WriteError, match="No space"):
        project.update_classes(core.ClassTable.from_names(list(project.classes.names) + ["x"]))
    assert path.read_bytes() == raw and len(project.classes) == 10


def test_highest_mask_id(tmp_path, project):
    assert run_to_end(core.highest_mask_id(project.root)) == max(
        int(np.max(np.where(project.saved_mask(n) == 255, 0, project.saved_mask(n)))) for n in project.names())
    empty = tmp_path / "empty"
    (empty / "masks").mkdir(parents=True)
    assert run_to_end(core.highest_mask_id(empty)) == -1
    m = np.full((8, 8), 255, np.uint8)
    m[0, 0] = 41
    core.write_mask(empty / "masks" / "a.png", m, core.ClassTable.default(50))
    (empty / "masks" / "broken.png").write_bytes(b"not a png")
    assert run_to_end(core.highest_mask_id(empty)) == 41


def test_adapt_model_keeps_the_rows_of_known_classes_and_starts_the_others_new():
    src = core.ClassTable.from_names(["sky", "road", "car", "boat"])
    loaded = tiny(src)
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    target = core.ClassTable.from_names(["car", "kite", "sky"])
    new, kept = core.adapt_model(loaded, target)
    assert kept == ["car", "sky"]
    assert new.classes == target and new.model.cfg.num_classes == 3 and new.config.num_classes == 3
    for head in ("head", "aux_head"):
        w_old = before[f"{head}.classifier.weight"]
        b_old = before[f"{head}.classifier.bias"]
        w = getattr(new.model, head).classifier.weight.detach()
        b = getattr(new.model, head).classifier.bias.detach()
        assert w.shape[0] == 3
        torch.testing.assert_close(w[0], w_old[2]) and torch.testing.assert_close(b[2], b_old[0])
        torch.testing.assert_close(w[2], w_old[0])
        assert not any(torch.equal(w[1], w_old[j]) for j in range(4))
    # the given model is untouched; the backbone is the same weights (a copy)
    assert all(torch.equal(v, before[k]) for k, v in loaded.model.state_dict().items())
    assert torch.equal(new.model.state_dict()["backbone.conv1.weight"], before["backbone.conv1.weight"])
    assert new.model.state_dict()["backbone.conv1.weight"].data_ptr() != \
        loaded.model.state_dict()["backbone.conv1.weight"].data_ptr()
    # it predicts the new table's ids: for the kept classes the same logits as before
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a = loaded.model(x).main
        b = new.model(x).main
    assert b.shape[1] == 3
    torch.testing.assert_close(b[:, 0], a[:, 2])
    torch.testing.assert_close(b[:, 2], a[:, 0])


def test_adapt_model_job_records_the_model_as_the_projects_current(project):
    loaded = tiny(core.ClassTable.from_names(["sky", "road", "nothing like it"]))
    out = run_to_end(core.adapt_model_job(loaded, project))
    assert out.kept == ["sky", "road"]
    entry = project.current_checkpoint
    assert entry is not None and entry == out.entry and out.loaded.sources == [entry.path]
    assert "classifiers rebuilt for 10 classes" in entry.note
    back = project.load_checkpoint(entry)
    assert back.classes.names == project.classes.names and back.model.cfg.num_classes == 10
    # now it fine-tunes on the project (its classes are the project's)
    res = run_to_end(core.finetune_project(out.loaded, project, {"steps": 1, "batch": 2, "crop": 32}))
    assert res.steps_done == 1


def test_finetune_refuses_a_model_of_another_table(project):
    other = tiny(core.ClassTable.from_names([f"c{i}" for i in range(10)]))  # same count, other classes
    with pytest.raises(core.StudioError, match="give the model the project's classes first"):
        run_to_end(core.finetune_project(other, project, {"steps": 1}))
    more = tiny(core.ClassTable.from_names(list(project.classes.names) + ["extra"]))
    with pytest.raises(core.StudioError, match="predicts 11 classes"):
        run_to_end(core.finetune_project(more, project, {"steps": 1}))
    assert project.checkpoints() == []


def test_a_missing_table_is_chosen_and_a_plain_image_folder_becomes_a_project(tmp_path, project):
    # a data set folder without classes.json: opening it names the missing file
    root = tmp_path / "photos"
    (root / "images").mkdir(parents=True)
    shutil.copy(project.image_path(project.names()[0]), root / "images" / "a.png")
    with pytest.raises(core.ClassTableError, match="class table is missing"):
        core.Project.open(root)
    table = core.builtin_class_tables()[1][2]
    made = core.Project.open(root, classes=table)
    made.save()
    assert (root / "project.json").is_file() and core.ClassTable.load(root / "classes.json") == table
    made.close()
    assert core.Project.open(root, read_only=True).classes == table
