"""Damaged project files explain themselves and change nothing; a lost class table is replaced by
choosing one, keeping the masks; checkpoints are loaded (safely) before they are trusted; history
paths stay inside the project; a mask must be a PNG; a failed save leaves memory as it was."""

from __future__ import annotations

import errno
import json
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.classes import ClassTable
from core.data.io import write_mask
from core.errors import (CheckpointError, ClassTableError, DatasetError, ProjectFileError, StudioError,
                         WriteError)
from core.project import LOCK_FILE, CheckpointEntry, Project, UnreadableMaskError

CLASSES = ClassTable.from_names(["sky", "tree", "road"])


def _files(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _checkpoint(path: Path, classes: ClassTable = CLASSES, seed: int = 0) -> Path:
    import torch

    import core
    from core.config import ModelConfig
    from core.model import PSPNet

    torch.manual_seed(seed)
    cfg = ModelConfig(depth=18, base_width=8, num_classes=len(classes), head_channels=32, aux_channels=16,
                      stem="deep")
    core.save_checkpoint(path, PSPNet(cfg), classes)
    return path


@pytest.fixture
def root(tmp_path) -> Path:
    """A closed project: two images, one mask, one model in the history."""
    p = Project.create(tmp_path / "proj", CLASSES, name="files")
    rng = np.random.default_rng(0)
    for i in range(2):
        src = tmp_path / "src" / f"img{i}.png"
        src.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(src), rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
        p.add_images([src])
    mask = np.full((24, 32), 255, np.uint8)
    mask[:10] = 2
    write_mask(p.mask_path("img0"), mask, CLASSES)
    p.add_checkpoint(_checkpoint(tmp_path / "m.safetensors"), {"miou": 0.5}, "first")
    p.close()
    return p.root


def _edit(root: Path, change) -> None:
    meta = json.loads((root / "project.json").read_text())
    change(meta)
    (root / "project.json").write_text(json.dumps(meta))


DAMAGE = {
    "version is a string": (lambda m: m.update(version="x"), "version"),
    "version is true": (lambda m: m.update(version=True), "version"),
    "history entry without file": (lambda m: m["history"][0].pop("file"), "history[0].file"),
    "history entry without id": (lambda m: m["history"][0].pop("id"), "history[0].id"),
    "history is null": (lambda m: m.update(history=None), "history"),
    "history is a string": (lambda m: m.update(history="0001"), "history"),
    "history entry is a number": (lambda m: m["history"].append(7), "history[1]"),
    "settings is a string": (lambda m: m.update(settings="fast"), "settings"),
    "metrics is a string": (lambda m: m["history"][0].update(metrics="good"), "history[0].metrics"),
    "note is a list": (lambda m: m["history"][0].update(note=["x"]), "history[0].note"),
    "parent is a number": (lambda m: m["history"][0].update(parent=3), "history[0].parent"),
    "current model unknown": (lambda m: m.update(current_model="0007"), "current_model"),
    "duplicate ids": (lambda m: m["history"].append(dict(m["history"][0])), "history[1].id"),
    "file outside the project": (lambda m: m["history"][0].update(file="../../outside.safetensors"), "history[0].file"),
    "absolute file": (lambda m: m["history"][0].update(file="/etc/passwd"), "history[0].file"),
    "windows drive file": (lambda m: m["history"][0].update(file="C:\\\\x.pth"), "history[0].file"),
    "classes path escapes": (lambda m: m.update(classes="../classes.json"), "classes"),
    "classes is a number": (lambda m: m.update(classes=5), "classes"),
    "name is a number": (lambda m: m.update(name=3), "name"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_each_damage_of_project_json_is_one_error_naming_the_file_and_the_field(root, case):
    change, fieldname = DAMAGE[case]
    _edit(root, change)
    before = _files(root)
    for read_only in (False, True):
        with pytest.raises(ProjectFileError) as info:
            Project.open(root, read_only=read_only)
        err = info.value
        assert isinstance(err, DatasetError) and isinstance(err, StudioError)
        assert err.path == root / "project.json" and err.field == fieldname
        assert str(root / "project.json") in str(err) and f'"{fieldname}"' in str(err)
    assert _files(root) == before  # nothing written, no lock left behind
    assert not (root / LOCK_FILE).exists()


def test_project_json_that_is_not_an_object_or_not_json(root):
    (root / "project.json").write_text("[1, 2]")
    with pytest.raises(ProjectFileError, match="holds a list, not a project"):
        Project.open(root)
    (root / "project.json").write_bytes(b"\xff\xfe garbage")
    with pytest.raises(ProjectFileError, match="not a readable project file"):
        Project.open(root)


CLASS_DAMAGE = {
    "missing": (None, ""),
    "not json": ("{nope", ""),
    "not an object": ("[]", ""),
    "classes missing": ('{"name": "x"}', "classes"),
    "classes a string": ('{"classes": "sky"}', "classes"),
    "no classes": ('{"classes": []}', "classes"),
    "class without name": ('{"classes": [{"color": [1, 2, 3]}]}', "classes[0].name"),
    "colour of two values": ('{"classes": [{"name": "a", "color": [1, 2, 3]}, {"name": "b", "color": [1, 2]}]}',
                             "classes[1].color"),
    "colour out of range": ('{"classes": [{"name": "a", "color": [1, 2, 300]}]}', "classes[0].color"),
}


@pytest.mark.parametrize("case", sorted(CLASS_DAMAGE))
def test_a_lost_or_damaged_class_table_is_replaced_by_choosing_one_and_the_masks_stay(root, case):
    text, fieldname = CLASS_DAMAGE[case]
    cfile = root / "classes.json"
    if text is None:
        cfile.unlink()
    else:
        cfile.write_text(text)
    before = _files(root)
    with pytest.raises(ClassTableError) as info:
        Project.open(root)
    assert info.value.path == cfile and info.value.field == fieldname and str(cfile) in str(info.value)
    assert "choose a class table" in str(info.value)
    assert _files(root) == before
    # read-only with a chosen table: usable, nothing written
    reader = Project.open(root, read_only=True, classes=CLASSES)
    assert reader.classes == CLASSES and (reader.saved_mask("img0")[:10] == 2).all()
    assert _files(root) == before
    # for writing: the table is saved, the damaged file kept as a copy, the masks untouched
    masks = {k: v for k, v in before.items() if k.startswith("masks")}
    with Project.open(root, classes=CLASSES) as p:
        assert p.classes == CLASSES and p.mask_state("img0") == "mask"
    assert ClassTable.load(cfile) == CLASSES
    assert {k: v for k, v in _files(root).items() if k.startswith("masks")} == masks
    if text is not None:
        assert (root / "classes.json.damaged").read_text() == text
    with Project.open(root) as p:  # and it opens on its own again
        assert p.classes == CLASSES


def test_a_chosen_class_table_does_not_replace_a_good_one(root):
    with pytest.raises(DatasetError, match="has its own class table"):
        Project.open(root, classes=ClassTable.from_names(["a", "b", "c"]))
    with Project.open(root, classes=CLASSES) as p:  # the same table is fine
        assert p.classes == CLASSES


def test_reading_a_project_writes_nothing(root):
    before = _files(root)
    for read_only in (True, False):
        p = Project.open(root, read_only=read_only)
        p.images(), p.checkpoints(), p.current_checkpoint, p.settings, p.names()
        p.mask_state("img0"), p.saved_mask("img0"), p.recoverable(), p.blocked_reason("img0")
        p.load_checkpoint("0001")
        assert (root / LOCK_FILE).exists() != read_only
        p.close()
        assert _files(root) == before


# ---- check before trusting --------------------------------------------------------------------

class _Payload:
    """Unpickling this runs os.system: a checkpoint that must never be loaded with pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_add_checkpoint_refuses_what_does_not_load_safely(root, tmp_path):
    evil = tmp_path / "evil.pth"
    marker = tmp_path / "payload-ran"
    evil.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}, protocol=2))
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(_checkpoint(tmp_path / "whole.safetensors").read_bytes()[:5000])
    other = _checkpoint(tmp_path / "other.safetensors", ClassTable.from_names(["a", "b"]))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"weights v1")
    p = Project.open(root)
    before = _files(root)
    for bad, why in ((evil, "evil.pth"), (truncated, "cut.safetensors"), (other, "predicts 2 classes"),
                     (junk, "junk.pth")):
        with pytest.raises(CheckpointError, match=why) as info:
            p.add_checkpoint(bad, {"miou": 1.0})
        assert "not added" in str(info.value)
        assert [e.id for e in p.checkpoints()] == ["0001"] and p.current_checkpoint.id == "0001"
        assert _files(root) == before  # nothing copied, project.json as it was
    assert not marker.exists()  # the pickle's code never ran
    p.close()


def test_restore_refuses_a_checkpoint_damaged_after_it_joined(root):
    p = Project.open(root)
    e2 = p.add_checkpoint(_checkpoint(root.parent / "m2.safetensors", seed=1), note="second")
    first = p.checkpoints()[0]
    first.path.write_bytes(first.path.read_bytes()[:3000])  # damaged on disk later
    meta = (root / "project.json").read_bytes()
    with pytest.raises(CheckpointError, match="model 0001 of the history cannot be used"):
        p.restore(first)
    assert p.current_checkpoint == e2 and (root / "project.json").read_bytes() == meta
    p.close()


def test_history_paths_stay_inside_the_project(root, tmp_path):
    outside = _checkpoint(tmp_path / "outside.safetensors")
    _edit(root, lambda m: m["history"][0].update(file="../../outside.safetensors"))
    with pytest.raises(ProjectFileError, match="inside the project"):
        Project.open(root)
    _edit(root, lambda m: m["history"][0].update(file="model-0001.safetensors"))
    with Project.open(root) as p:  # an entry forged in code cannot redirect loading: the history's is used
        sneaky = CheckpointEntry("0001", "../../outside.safetensors", outside)
        loaded = p.load_checkpoint(sneaky)
        assert [Path(s) for s in loaded.sources] == [p.checkpoints_dir / "model-0001.safetensors"]
        entry, loaded = p.restore_model(sneaky)
        assert entry.path == p.checkpoints_dir / "model-0001.safetensors"


def test_a_mask_must_be_a_png(root):
    """A JPEG saved as a mask .png (a grey one would even read as ids) is refused: its image opens
    read-only and the file is never overwritten."""
    from core.labels import LabelMask

    grey = np.zeros((24, 32), np.uint8)
    grey[:5] = 1
    ok, jpeg = cv2.imencode(".jpg", grey)
    mpath = root / "masks" / "img1.png"
    mpath.write_bytes(jpeg.tobytes())
    p = Project.open(root)
    assert {e.name: e.state for e in p.images()}["img1"] == "unreadable mask"
    with pytest.raises(UnreadableMaskError, match="a JPEG file, not a PNG"):
        p.load_mask("img1")
    fresh = LabelMask.empty((24, 32), 3)
    fresh.paint((2, 2), 1)
    with pytest.raises(UnreadableMaskError, match="not overwritten"):
        p.save_mask("img1", fresh)
    assert mpath.read_bytes() == jpeg.tobytes()
    p.close()
    with Project.open(root) as q:  # a new session that never loaded it refuses too
        with pytest.raises(UnreadableMaskError):
            q.save_mask("img1", fresh)
    assert mpath.read_bytes() == jpeg.tobytes()


# ---- failed saves leave memory as it was (in-process; test_full_disk.py does it for real) ----

def test_failed_saves_raise_write_errors_naming_the_file_and_change_nothing(root, monkeypatch):
    import core.atomic as atomic

    new_model = _checkpoint(root.parent / "n.safetensors")
    p = Project.open(root)
    settings, history, current = p.settings, p.checkpoints(), p.current_checkpoint
    before = _files(root)
    real = atomic.atomic_write

    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "atomic_write", full)
    cases = [(lambda: p.update_settings(crop=512), "project.json"), (lambda: p.save(), "project.json"),
             (lambda: p.write_split("train", ["img0"]), "train.txt"),
             (lambda: p.add_checkpoint(new_model), "model-0002"),
             (lambda: p.classes.save(root / "classes.json"), "classes.json"),
             (lambda: p.add_images([p.image_path("img0").with_name("img0.png")]), None)]
    for call, name in cases:
        try:
            call()
        except WriteError as exc:
            assert isinstance(exc, StudioError) and isinstance(exc, OSError) and exc.errno == errno.ENOSPC
            assert name is None or name in str(exc)
            assert "No space left on device" in str(exc) and "unchanged" in str(exc)
        else:
            assert name is None  # add_images of an image already in the project copies nothing
        assert p.settings == settings and p.checkpoints() == history and p.current_checkpoint == current
    monkeypatch.setattr(atomic, "atomic_write", real)
    assert _files(root) == {k: v for k, v in before.items()}
    p.close()
