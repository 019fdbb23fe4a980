"""Project folder: layout, opening a bare data set, masks saved atomically and journalled,
recovery after a process is killed mid-save, a full disk, unreadable masks never overwritten,
and the model history.

Closing a project and opening it again is what a crash looks like to the next session: close
writes the journals out and keeps them, as a process killed after its strokes reached the disk
leaves them (the tests with real SIGKILLs are here and in test_journal.py)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.classes import ClassTable
from core.data.io import read_mask, write_mask
from core.errors import CheckpointError, DatasetError, ImageReadError, MaskError
from core.journal import StrokeJournal
from core.labels import LabelMask
from core.project import LOCK_FILE, Project, UnreadableMaskError

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ClassTable.from_names(["sky", "tree", "road"])


def _write_png(path: Path, shape=(24, 32), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rng.integers(0, 255, (*shape, 3), dtype=np.uint8))
    return path


def _project(tmp_path: Path, n: int = 2, shape=(24, 32)) -> Project:
    p = Project.create(tmp_path / "proj", CLASSES, name="test")
    srcs = [_write_png(tmp_path / "src" / f"img{i}.png", shape, i) for i in range(n)]
    p.add_images(srcs)
    return p


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- layout -----------------------------------------------------------------------------------

def test_create_writes_the_layout_and_open_reads_it_back(tmp_path):
    p = _project(tmp_path)
    root = p.root
    layout = {"images", "masks", "checkpoints", "classes.json", "project.json"}
    assert {d.name for d in root.iterdir()} == layout | {LOCK_FILE}  # open for writing
    meta = json.loads((root / "project.json").read_text())
    assert meta["name"] == "test" and meta["classes"] == "classes.json" and meta["history"] == []
    assert ClassTable.load(root / "classes.json") == CLASSES
    p.update_settings(crop=np.int64(256), model="tiny")
    assert Project.open(root) is p  # one writer object per project in a program
    p.close()
    p.close()  # two opens, two closes: now it is released
    assert {d.name for d in root.iterdir()} == layout and p.closed
    q = Project.open(root)
    assert q.name == "test" and q.classes == CLASSES and q.created == p.created
    assert q.settings == {"crop": 256, "model": "tiny"}
    assert [e.name for e in q.images()] == ["img0", "img1"]
    assert all(e.state == "no mask" for e in q.images())
    with pytest.raises(DatasetError, match="already a project"):
        Project.create(root, CLASSES)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(DatasetError, match="not an empty folder"):
        Project.create(tmp_path / "full", CLASSES)


def test_one_mask_object_per_open_image_and_stale_temp_files_go(tmp_path):
    p = _project(tmp_path)
    m = p.load_mask("img0")
    m.paint((1, 1), 1)
    assert p.load_mask("img0") is m and m.can_undo  # switching back keeps the history
    p.close_mask("img0")
    assert p.load_mask("img0") is not m
    old = p.masks_dir / ".img0.png.abcd1234.tmp"
    new = p.masks_dir / ".img1.png.efgh5678.tmp"
    old.write_bytes(b"half a png")
    new.write_bytes(b"a save in progress")
    os.utime(old, (time.time() - 3600,) * 2)
    Project.open(p.root, read_only=True)
    assert old.exists()  # a reader removes nothing
    p.close()
    Project.open(p.root)
    assert not old.exists() and new.exists()


def test_open_refuses_what_is_not_a_project(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        Project.open(tmp_path / "nope")
    (tmp_path / "a").mkdir()
    with pytest.raises(DatasetError, match="neither a project"):
        Project.open(tmp_path / "a")
    (tmp_path / "a" / "project.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not a readable project file"):
        Project.open(tmp_path / "a")
    (tmp_path / "a" / "project.json").write_text('{"format": "pspnet-studio-project", "version": 99}')
    with pytest.raises(DatasetError, match="newer than this"):
        Project.open(tmp_path / "a")


def test_bare_demo_data_set_opens_and_gets_project_json_on_first_save(tmp_path):
    from core.data.synthetic import write_demo_project

    root = write_demo_project(tmp_path / "demo", n_train=2, n_val=1, size=(32, 48))
    before = _files(root)
    p = Project.open(root)
    assert not p.has_project_file and not (root / "project.json").exists()
    entries = p.images()
    assert len(entries) == 3 and all(e.state == "mask" for e in entries)
    m = p.load_mask(entries[0].name)
    assert m.shape == (32, 48) and not m.dirty
    assert {k: v for k, v in _files(root).items() if k != LOCK_FILE} == before  # opening and loading wrote nothing
    m.paint((5, 5), 1, radius=2)
    p.save_mask(entries[0].name, m)
    assert (root / "project.json").is_file() and not m.dirty
    np.testing.assert_array_equal(read_mask(entries[0].mask_path, p.classes), m.data)
    from core.data.datasets import open_dataset

    ds = open_dataset(root, "all")  # the engine's reader still reads the folder
    assert len(ds) == 3


def test_add_images_renames_clashes_and_refuses_bad_files_without_copying(tmp_path):
    p = _project(tmp_path, n=1)
    other = _write_png(tmp_path / "other" / "img0.png", seed=5)
    added = p.add_images([other])
    assert [e.name for e in added] == ["img0_2"]
    assert (p.images_dir / "img0_2.png").read_bytes() == other.read_bytes()
    bad = tmp_path / "other" / "broken.png"
    bad.write_bytes(other.read_bytes()[:40])
    good = _write_png(tmp_path / "other" / "fine.png", seed=6)
    before = _files(p.root)
    with pytest.raises(ImageReadError, match="broken.png"):
        p.add_images([good, bad])
    assert _files(p.root) == before


def test_mask_states(tmp_path):
    p = _project(tmp_path, n=3)
    write_mask(p.mask_path("img0"), np.zeros((24, 32), np.uint8), CLASSES)
    p.mask_path("img1").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    write_mask(p.mask_path("img2"), np.zeros((10, 10), np.uint8), CLASSES)  # wrong size
    states = {e.name: e.state for e in p.images()}
    assert states == {"img0": "mask", "img1": "unreadable mask", "img2": "unreadable mask"}


# ---- masks ------------------------------------------------------------------------------------

def test_load_edit_save_round_trip_clears_the_journal(tmp_path):
    p = _project(tmp_path)
    m = p.load_mask("img0")
    assert m.shape == (24, 32) and (m.data == 255).all()
    m.paint_stroke([(3, 3), (3, 20)], 2, radius=1)
    m.fill(20, 30, 0)
    jpath = p.journal_path("img0")
    assert p.flush_journals(10) and p.journal_status("img0").protected
    assert jpath.is_file() and p.recoverable() == []  # open masks are not crash leftovers
    p.save_mask("img0", m)
    assert not jpath.exists() and not m.dirty
    np.testing.assert_array_equal(read_mask(p.mask_path("img0"), CLASSES), m.data)
    assert {e.name: e.state for e in p.images()}["img0"] == "mask"
    p.close()
    np.testing.assert_array_equal(Project.open(p.root).load_mask("img0").data, m.data)


def test_edits_made_while_a_save_runs_stay_dirty_and_journalled(tmp_path, monkeypatch):
    import core.project as project_mod

    p = _project(tmp_path)
    m = p.load_mask("img0")
    m.paint((2, 2), 0, radius=1)
    real = project_mod.write_mask

    def slow_write(path, data, classes):  # the GUI thread paints while the worker writes
        m.paint((20, 20), 1, radius=1)
        real(path, data, classes)

    monkeypatch.setattr(project_mod, "write_mask", slow_write)
    p.save_mask("img0", m)
    monkeypatch.setattr(project_mod, "write_mask", real)
    assert m.dirty
    on_disk = read_mask(p.mask_path("img0"), CLASSES)
    assert on_disk[2, 2] == 0 and on_disk[20, 20] == 255
    p.close()
    q = Project.open(p.root)  # as after a crash now
    assert q.recoverable() == ["img0"]
    np.testing.assert_array_equal(q.recover("img0").mask.data, m.data)


def test_saving_from_a_worker_thread_while_painting(tmp_path):
    import threading

    p = _project(tmp_path, n=1, shape=(120, 160))
    m = p.load_mask("img0")
    stop = threading.Event()
    errors: list[BaseException] = []

    def autosave():
        try:
            while not stop.is_set():
                if m.dirty:
                    p.save_mask("img0", m)
                    read_mask(p.mask_path("img0"), CLASSES, shape=(120, 160))  # always a whole file
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    worker = threading.Thread(target=autosave)
    worker.start()
    rng = np.random.default_rng(0)
    try:
        for _i in range(150):
            a = rng.uniform(0, (120, 160))
            m.paint_stroke([tuple(a), tuple(a + rng.normal(0, 10, 2))], int(rng.integers(0, 3)), radius=3)
            if rng.random() < 0.1:
                m.undo()
    finally:
        stop.set()
        worker.join()
    assert errors == []
    if m.dirty:  # what the worker had not caught up with is in the journal
        assert p.flush_journals(10)
        q = Project.open(p.root, read_only=True)
        replayed, _n = StrokeJournal(p.journal_path("img0")).replay(q.saved_mask("img0"))
        np.testing.assert_array_equal(replayed, m.data)
    p.save_mask("img0", m)
    np.testing.assert_array_equal(read_mask(p.mask_path("img0"), CLASSES), m.data)
    assert not p.journal_path("img0").exists()


def test_unreadable_mask_is_never_overwritten(tmp_path):
    p = _project(tmp_path)
    junk = b"\x89PNG\r\n\x1a\n this is not a mask"
    p.mask_path("img0").write_bytes(junk)
    with pytest.raises(UnreadableMaskError, match="read-only") as info:
        p.load_mask("img0")
    assert info.value.name == "img0" and "img0.png" in info.value.reason
    assert isinstance(info.value, MaskError)
    assert p.blocked_reason("img0")
    fresh = LabelMask.empty((24, 32), 3)
    fresh.paint((1, 1), 1)
    with pytest.raises(UnreadableMaskError, match="not overwritten"):
        p.save_mask("img0", fresh)
    p.close()
    p = Project.open(p.root)
    with pytest.raises(UnreadableMaskError):  # a new Project instance that never loaded it refuses too
        p.save_mask("img0", fresh)
    assert p.mask_path("img0").read_bytes() == junk
    # out-of-range ids are unreadable too
    write_mask(p.mask_path("img1"), np.zeros((24, 32), np.uint8), ClassTable.default(9))
    raw = np.zeros((24, 32), np.uint8)
    raw[0, 0] = 7
    from PIL import Image

    Image.fromarray(raw).save(p.mask_path("img1"))
    with pytest.raises(UnreadableMaskError, match="outside the class table"):
        p.load_mask("img1")


class _FullDisk:
    """A file object that takes half of what is written, then raises ENOSPC."""

    def __init__(self, f, budget: int) -> None:
        self._f, self._budget = f, budget

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) >= self._budget:
            self._f.write(data[:self._budget])
            raise OSError(errno.ENOSPC, "No space left on device")
        self._budget -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_full_disk_leaves_the_old_mask_and_the_journal(tmp_path, monkeypatch, where):
    p = _project(tmp_path)
    m = p.load_mask("img0")
    m.paint((5, 5), 1, radius=2)
    p.save_mask("img0", m)
    old = p.mask_path("img0").read_bytes()
    m.paint((15, 15), 2, radius=3)
    real_fdopen, real_fsync = os.fdopen, os.fsync
    if where == "write":
        monkeypatch.setattr(os, "fdopen", lambda fd, mode: _FullDisk(real_fdopen(fd, mode), 100))
    else:
        def fsync(fd):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(MaskError, match="No space left on device.*unchanged"):
        p.save_mask("img0", m)
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert p.mask_path("img0").read_bytes() == old
    assert m.dirty
    p.close()  # writes out the journal (its fsync failed too while the disk was "full")
    assert sorted(x.name for x in p.masks_dir.iterdir()) == [".img0.journal", "img0.png"]  # no temp file
    q = Project.open(p.root)
    assert q.recoverable() == ["img0"]
    np.testing.assert_array_equal(q.recover("img0").mask.data, m.data)


def test_recover_is_one_undo_step_and_a_declined_journal_is_set_aside(tmp_path):
    p = _project(tmp_path)
    m = p.load_mask("img0")
    m.paint((5, 5), 1, radius=2)
    p.save_mask("img0", m)
    saved = m.data.copy()
    m.paint_stroke([(10, 3), (10, 25)], 2, radius=1)
    m.paint_stroke([(2, 28), (20, 28)], 0, radius=0)
    edited = m.data.copy()
    p.close()  # the process "dies" without saving
    del m

    q = Project.open(p.root)
    assert q.recoverable() == ["img0"]
    result = q.recover("img0")
    assert result.records == 2 and result.note == ""
    np.testing.assert_array_equal(result.mask.data, edited)
    assert result.mask.dirty and result.mask.undo_count == 1
    result.mask.undo()
    np.testing.assert_array_equal(result.mask.data, saved)
    result.mask.redo()
    q.save_mask("img0", result.mask)
    np.testing.assert_array_equal(read_mask(p.mask_path("img0"), CLASSES), edited)

    m2 = q.load_mask("img1")
    m2.paint((3, 3), 1)
    q.close()
    r = Project.open(p.root)
    assert r.recoverable() == ["img1"]
    fresh = r.load_mask("img1")  # not recovering: the old journal is kept aside, not replayed
    assert (fresh.data == 255).all()
    assert (p.masks_dir / ".img1.journal.discarded").is_file() and r.recoverable() == []


def test_journal_older_than_the_mask_is_offered_only_if_it_adds_something(tmp_path):
    p = _project(tmp_path)
    m = p.load_mask("img0")
    m.paint((5, 5), 1)
    jpath = p.journal_path("img0")
    write_mask(p.mask_path("img0"), m.data.copy(), CLASSES)  # saved, but the journal was not cleared
    p.close()
    os.utime(jpath, ns=(1, 1))
    q = Project.open(p.root)
    assert q.recoverable() == []
    q.close()
    # ... unless it holds a stroke the saved mask lacks (painted while that save was writing)
    r = Project.open(p.root)
    m = r.load_mask("img0")
    m.paint((20, 20), 2)
    r.close()
    os.utime(jpath, ns=(1, 1))
    s = Project.open(p.root)
    assert s.recoverable() == ["img0"]
    np.testing.assert_array_equal(s.recover("img0").mask.data, m.data)


_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from core.project import Project

    p = Project.open(sys.argv[1])
    m = p.load_mask("img0")
    rng = np.random.default_rng(3)
    for i in range(100_000):
        a = rng.uniform(0, (300, 400))
        m.paint_stroke([tuple(a), tuple(a + rng.normal(0, 30, 2))], int(rng.integers(0, 3)), radius=6)
        print("stroke", i, p.journal_status("img0").durable or 0, flush=True)  # revision i + 1 is made
        if i % 3 == 2:
            p.save_mask("img0", m)
            print("saved", i, flush=True)
""")


def _expected(start: np.ndarray, n: int) -> np.ndarray:
    m = LabelMask(start, 3)
    rng = np.random.default_rng(3)
    for _i in range(n):
        a = rng.uniform(0, (300, 400))
        m.paint_stroke([tuple(a), tuple(a + rng.normal(0, 30, 2))], int(rng.integers(0, 3)), radius=6)
    return m.data.copy()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
@pytest.mark.parametrize("delay", [0.0, 0.013, 0.031])
def test_killed_mid_save_the_mask_is_old_or_new_and_the_journal_recovers_the_rest(tmp_path, delay):
    p = _project(tmp_path, n=1, shape=(300, 400))
    noise = np.random.default_rng(0).integers(0, 3, (300, 400)).astype(np.uint8)  # big, slow PNGs
    write_mask(p.mask_path("img0"), noise, CLASSES)
    p.close()  # the child is the writer
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    proc = subprocess.Popen([sys.executable, str(script), str(p.root)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    lines: list[str] = []
    try:
        while True:
            line = proc.stdout.readline()
            assert line, "the child ended early"
            lines.append(line.split())
            if sum(x[0] == "saved" for x in lines) >= 3:
                break
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        lines += [x.split() for x in proc.stdout.read().splitlines()]
        proc.stdout.close()
    strokes = sum(x[0] == "stroke" for x in lines)
    durable = max(int(x[2]) for x in lines if x[0] == "stroke")  # strokes 1..durable were on disk
    saves = [int(x[1]) + 1 for x in lines if x[0] == "saved"]
    on_disk = read_mask(p.mask_path("img0"), CLASSES, shape=(300, 400))  # always loads
    candidates = {n: _expected(noise, n) for n in range(saves[-1], strokes + 2)}
    # the file is a complete save: the last acknowledged one or one in flight
    assert any(np.array_equal(on_disk, candidates[n]) for n in (saves[-1], saves[-1] + 3) if n in candidates)
    q = Project.open(p.root)  # the killed child's lock is taken over
    final = q.recover("img0").mask.data if q.recoverable() else on_disk
    lowest = max(durable, saves[-1])
    assert durable >= strokes - 3  # the journal keeps up: the strokes are on disk within moments
    assert any(np.array_equal(final, candidates[n]) for n in range(lowest, strokes + 2)), \
        "recovery must give every stroke that was on disk, in order"
    assert not [x for x in p.masks_dir.iterdir() if x.suffix == ".tmp" and x.stat().st_mtime < time.time() - 120]


# ---- model history ----------------------------------------------------------------------------

def _checkpoint(path: Path, seed: int = 0, classes: ClassTable = CLASSES) -> Path:
    import torch

    import core
    from core.config import ModelConfig
    from core.model import PSPNet

    torch.manual_seed(seed)
    cfg = ModelConfig(depth=18, base_width=8, num_classes=len(classes), head_channels=32, aux_channels=16, stem="deep")
    core.save_checkpoint(path, PSPNet(cfg), classes)
    return path


def test_model_history_add_restore_and_reopen(tmp_path):
    p = _project(tmp_path, n=1)
    src = _checkpoint(tmp_path / "imported.safetensors")
    e1 = p.add_checkpoint(src, {"miou": np.float32(0.25), "per_class": np.array([0.5, 0.0])}, "imported")
    assert e1.id == "0001" and e1.parent is None and e1.path.read_bytes() == src.read_bytes()
    assert e1.path.parent == p.checkpoints_dir and e1.metrics == {"miou": 0.25, "per_class": [0.5, 0.0]}
    e2 = p.add_checkpoint(src, {"miou": 0.4}, "after fine-tuning")
    assert e2.parent == "0001" and p.current_checkpoint.id == "0002"
    assert p.restore(e1) == e1
    assert p.current_checkpoint == e1
    e3 = p.add_checkpoint(src, {}, "branch", make_current=False)
    assert e3.parent == "0001" and p.current_checkpoint.id == "0001"
    p.close()
    q = Project.open(p.root)
    assert [e.id for e in q.checkpoints()] == ["0001", "0002", "0003"]
    assert q.current_checkpoint.id == "0001" and q.checkpoints()[1].note == "after fine-tuning"
    with pytest.raises(CheckpointError, match="no model '0009'"):
        q.restore("0009")
    e2.path.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        q.restore("0002")
    entry, loaded = q.restore_model("0003")
    assert entry.id == "0003" and loaded.classes == CLASSES
    q.close()
    assert Project.open(p.root, read_only=True).current_checkpoint.id == "0003"
    q = Project.open(p.root)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        q.add_checkpoint(tmp_path / "nope.pth", {})


def test_model_history_from_a_model_object(tmp_path):
    import core
    from core.config import ModelConfig
    from core.model import PSPNet

    p = _project(tmp_path, n=1)
    cfg = ModelConfig(depth=18, base_width=8, num_classes=3, head_channels=32, aux_channels=16, stem="deep")
    model = PSPNet(cfg)
    entry = p.add_checkpoint((model, CLASSES), {"miou": 0.1}, "first")
    with pytest.raises(CheckpointError, match="predicts 9 classes but the project has 3"):
        p.add_checkpoint((PSPNet(ModelConfig(depth=18, base_width=8, num_classes=9, head_channels=32,
                                             aux_channels=16, stem="deep")), ClassTable.default(9)))
    assert [e.id for e in p.checkpoints()] == ["0001"]
    assert entry.path.suffix == ".safetensors"
    loaded = core.load_model(entry.path)
    assert loaded.classes == CLASSES and loaded.config.num_classes == 3
    assert loaded.provenance.get("id") == "0001"


def test_a_damaged_journal_gives_back_its_intact_records_and_is_kept_as_a_copy(tmp_path):
    from core.journal import scan

    p = _project(tmp_path)
    m = p.load_mask("img0")
    for i in range(4):
        m.paint((3 + 5 * i, 5), i % 3, radius=1)
    assert p.flush_journals(10)
    jpath = p.journal_path("img0")
    data = bytearray(jpath.read_bytes())
    spans, _ = scan(bytes(data))
    data[spans[1][0] + spans[1][1] - 6] ^= 0xFF  # damage the content of the second of four records
    p.close()
    jpath.write_bytes(bytes(data))
    q = Project.open(p.root)
    assert q.recoverable() == ["img0"]
    result = q.recover("img0")
    assert result.records == 3 and "bad checksum" in result.note and ".img0.journal.damaged" in result.note
    got = result.mask.data
    assert got[3, 5] == 0 and got[8, 5] == 255 and got[13, 5] == 2 and got[18, 5] == 0  # all but the damaged one
    q.save_mask("img0", result.mask)
    assert not jpath.exists()  # applied ...
    assert (p.masks_dir / ".img0.journal.damaged").read_bytes() == bytes(data)  # ... and the original kept
    q.close()
