"""One writer per project, with real processes: a second opener gets ProjectLockedError naming the
holder, or a read-only project whose every write refuses and which never touches the writer's
journals; a killed holder's lock is taken over; a lock naming a live pid that does not hold the
OS lock (pid reuse), or one from another computer, is handled as documented; the two-writers
stroke-loss scenario cannot happen; the CLI says so in one line."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.classes import ClassTable
from core.data.io import read_mask
from core.errors import ProjectLockedError, ReadOnlyProjectError, StudioError
from core.labels import LabelMask
from core import project_lock
from core.project import LOCK_FILE, Project
from core.project_lock import LockHolder, ProjectLock, lock_holder
from child_process import read_line as _line, spawn

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ClassTable.from_names(["sky", "tree", "road"])
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")


def _project(tmp_path: Path, n: int = 2, shape=(40, 60)) -> Path:
    p = Project.create(tmp_path / "proj", CLASSES, name="locks")
    rng = np.random.default_rng(0)
    srcs = []
    for i in range(n):
        src = tmp_path / "src" / f"img{i}.png"
        src.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(src), rng.integers(0, 255, (*shape, 3), dtype=np.uint8))
        srcs.append(src)
    p.add_images(srcs)
    p.close()
    return p.root


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _spawn(tmp_path: Path, code: str, *args: str, name: str = "child.py") -> subprocess.Popen:
    return spawn(tmp_path, code, *args, name=name)


_HOLDER = """
    import sys, time
    from core.project import Project
    p = Project.open(sys.argv[1])
    m = p.load_mask("img0")
    m.paint((5, 5), 1, radius=3)  # an unsaved stroke: in the journal only
    assert p.flush_journals(30)
    print("ready", flush=True)
    sys.stdin.readline()  # hold the project until told (or killed)
    p.close()
    print("closed", flush=True)
"""


def test_a_second_process_is_refused_and_its_read_only_project_writes_nothing(tmp_path):
    root = _project(tmp_path)
    holder = _spawn(tmp_path, _HOLDER, str(root))
    try:
        assert _line(holder) == "ready"
        before = _files(root)
        with pytest.raises(ProjectLockedError) as info:
            Project.open(root)
        err = info.value
        assert isinstance(err, StudioError) and err.root == root and err.live is True
        assert err.holder.pid == holder.pid and f"pid {holder.pid}" in str(err) and "read-only" in str(err)
        assert "\n" not in str(err)
        assert Project.lock_holder(root).pid == holder.pid

        reader = Project.open(root, read_only=True)
        assert reader.read_only and f"pid {holder.pid}" in reader.read_only_reason
        assert [e.name for e in reader.images()] == ["img0", "img1"]
        assert (reader.saved_mask("img0") == 255).all()
        assert reader.recoverable() == []  # the holder's journal is its live one, not a leftover
        fresh = LabelMask.empty((40, 60), 3)
        fresh.paint((1, 1), 2)
        writes = [lambda: reader.load_mask("img0"), lambda: reader.save_mask("img0", fresh),
                  lambda: reader.recover("img0"), lambda: reader.discard_journal("img0"),
                  lambda: reader.update_settings(a=1), lambda: reader.save(), lambda: reader.write_split("train", []),
                  lambda: reader.add_images([tmp_path / "src" / "img0.png"]),
                  lambda: reader.add_checkpoint(tmp_path / "nothing.pth"), lambda: reader.restore("0001")]
        for write in writes:
            with pytest.raises(ReadOnlyProjectError, match="cannot .*open for writing in another program"):
                write()
        assert _files(root) == before  # nothing moved, read or deleted: the journal is the holder's
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert _line(holder) == "closed"
        holder.wait(30)
    assert not (root / LOCK_FILE).exists()  # released on close
    assert lock_holder(root) == (None, False)
    with Project.open(root) as p:  # now it opens for writing, and the holder's edits are offered
        assert p.recoverable() == ["img0"] and p.recover("img0").mask.pick(5, 5) == 1


def test_a_killed_holders_lock_is_taken_over(tmp_path):
    root = _project(tmp_path)
    holder = _spawn(tmp_path, _HOLDER, str(root))
    try:
        assert _line(holder) == "ready"
        with pytest.raises(ProjectLockedError):
            Project.open(root)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(30)
    finally:
        holder.stdin.close()
    left = LockHolder.parse((root / LOCK_FILE).read_text())
    assert left.pid == holder.pid  # the file still names the dead holder ...
    assert lock_holder(root) == (None, False)  # ... but nobody holds the lock
    p = Project.open(root)  # taken over
    assert LockHolder.parse((root / LOCK_FILE).read_text()).pid == os.getpid()
    assert p.recoverable() == ["img0"]  # and the killed session's stroke comes back
    assert p.recover("img0").mask.pick(5, 5) == 1
    p.close()


def test_a_lock_naming_a_live_pid_that_holds_nothing_is_taken_over(tmp_path):
    """pid reuse: the file names a running process (pid 1, or this very test), but the OS lock,
    which its holder would hold for as long as it runs, is free: the holder has gone."""
    root = _project(tmp_path)
    for pid in (1, os.getpid()):
        stale = LockHolder(pid, project_lock._host(), "2020-01-01T00:00:00+00:00", "old", project_lock._boot_id(),
                           None, "stale-token")
        (root / LOCK_FILE).write_text(stale.to_json())
        with Project.open(root) as p:
            assert LockHolder.parse((root / LOCK_FILE).read_text()).token == p._project_lock.holder.token


def test_without_os_locks_the_pid_and_its_start_time_decide(tmp_path, monkeypatch):
    """On a file system without flock the lock file alone decides: a live pid with its own start
    time holds it; the same pid with another start time (reused) or a dead pid does not."""
    root = _project(tmp_path)
    monkeypatch.setattr(project_lock, "_os_lock", lambda fd, shared=False: None)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = project_lock._start_time(sleeper.pid)
        live = LockHolder(sleeper.pid, project_lock._host(), "t", "sleeper", project_lock._boot_id(), start, "tok")
        (root / LOCK_FILE).write_text(live.to_json())
        with pytest.raises(ProjectLockedError, match=f"pid {sleeper.pid}") as info:
            Project.open(root)
        assert info.value.live is True
        if start is not None:  # Linux: a reused pid has another start time
            (root / LOCK_FILE).write_text(LockHolder(sleeper.pid, live.host, "t", "old", live.boot, start - 1,
                                                     "tok").to_json())
            with Project.open(root) as p:
                assert p._project_lock.holder.pid == os.getpid()
            assert not (root / LOCK_FILE).exists()
        sleeper.kill()
        sleeper.wait(30)
        (root / LOCK_FILE).write_text(live.to_json())  # its process is gone
        with Project.open(root) as p:
            assert not p.read_only
            with pytest.raises(ProjectLockedError):  # and the file alone keeps others out
                ProjectLock.acquire(root)
    finally:
        sleeper.kill()
        sleeper.wait(30)


def test_a_lock_from_another_computer_is_refused_unless_taken_over(tmp_path):
    root = _project(tmp_path)
    other = LockHolder(4242, "elsewhere.example", "2026-01-01T10:00:00+00:00", "main.py gui", "another-boot-id",
                       123, "their-token")
    (root / LOCK_FILE).write_text(other.to_json())
    with pytest.raises(ProjectLockedError, match="cannot be told from here") as info:
        Project.open(root)
    assert info.value.live is None and "elsewhere.example" in str(info.value) and LOCK_FILE in str(info.value)
    assert Project.lock_holder(root) == other
    assert Project.open(root, read_only=True).read_only
    with Project.open(root, take_over=True) as p:  # the user confirmed that program is gone
        assert not p.read_only
    assert not (root / LOCK_FILE).exists()


def test_the_lock_is_released_when_the_project_object_goes_away(tmp_path):
    root = _project(tmp_path)
    p = Project.open(root)
    m = p.load_mask("img1")
    m.paint((3, 3), 2)
    del p, m
    gc.collect()
    assert lock_holder(root) == (None, False) and not (root / LOCK_FILE).exists()
    with Project.open(root) as q:  # the journal was written out before the lock went
        assert q.recoverable() == ["img1"]


_WRITER = """
    import sys, time
    import numpy as np
    from core.project import Project
    p = Project.open(sys.argv[1])
    m = p.load_mask("img0")
    print("open", flush=True)
    rng = np.random.default_rng(11)
    for i in range(40):
        y, x = rng.integers(0, 40), rng.integers(0, 60)
        m.paint((int(y), int(x)), int(rng.integers(0, 3)), radius=2)
        p.save_mask("img0", m)
        time.sleep(0.02)
    sys.stdin.readline()  # keep the project open until the other program has tried
    p.close()
    print("done", flush=True)
"""

_INTRUDER = """
    import sys
    import numpy as np
    from core.errors import ProjectLockedError, ReadOnlyProjectError
    from core.labels import LabelMask
    from core.project import Project
    refused = 0
    for i in range(20):
        try:
            p = Project.open(sys.argv[1])
        except ProjectLockedError:
            refused += 1
            p = Project.open(sys.argv[1], read_only=True)
        mine = LabelMask(p.saved_mask("img0"), 3)
        mine.paint((20, 30), 0, radius=10)  # its own stroke, which would overwrite the writer's
        try:
            p.save_mask("img0", mine)
            print("SAVED", flush=True)
        except ReadOnlyProjectError:
            pass
    print("refused", refused, flush=True)
"""


def test_two_writers_cannot_lose_each_others_strokes(tmp_path):
    """The issue's scenario: P1 paints and saves in a loop while P2 opens the same project and
    saves its own strokes; before, half of P1's strokes were lost silently. Now P2 can only
    read: every one of P1's 40 saved strokes is in the final mask, and P2 was told."""
    root = _project(tmp_path)
    writer = _spawn(tmp_path, _WRITER, str(root), name="writer.py")
    try:
        assert _line(writer) == "open"
        intruder = _spawn(tmp_path, _INTRUDER, str(root), name="intruder.py")
        out, err = intruder.communicate(timeout=120)
        assert "SAVED" not in out and intruder.returncode == 0, err
        refused = int(out.split()[-1])
        writer.stdin.write("\n")
        writer.stdin.flush()
        assert _line(writer) == "done"
        writer.wait(30)
    finally:
        writer.kill()
    assert refused == 20
    expected = LabelMask.empty((40, 60), 3)
    rng = np.random.default_rng(11)
    for _i in range(40):
        y, x = rng.integers(0, 40), rng.integers(0, 60)
        expected.paint((int(y), int(x)), int(rng.integers(0, 3)), radius=2)
    np.testing.assert_array_equal(read_mask(root / "masks" / "img0.png", CLASSES), expected.data)
    assert not list((root / "masks").glob(".img0.journal*"))  # nothing set aside by the intruder


# ---- the command line ------------------------------------------------------------------------

def _tiny_checkpoint(path: Path, classes: ClassTable) -> Path:
    import core
    from core.config import ModelConfig
    from core.model import PSPNet

    cfg = ModelConfig(depth=18, base_width=8, num_classes=len(classes), head_channels=32, aux_channels=16,
                      stem="deep")
    core.save_checkpoint(path, PSPNet(cfg), classes)
    return path


_SLEEPER = """
    import sys
    from core.project import Project
    p = Project.open(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()
"""


def test_the_cli_says_in_one_line_that_the_project_is_locked(tmp_path, capsys):
    from core.cli import main
    from core.data.synthetic import SYNTHETIC_CLASSES, write_demo_project

    demo = write_demo_project(tmp_path / "demo", n_train=2, n_val=1, size=(48, 48))
    ckpt = _tiny_checkpoint(tmp_path / "tiny.safetensors", SYNTHETIC_CLASSES)
    holder = _spawn(tmp_path, _SLEEPER, str(demo))
    try:
        assert _line(holder) == "ready"
        before = _files(demo)
        capsys.readouterr()
        rc = main(["finetune", "--project", str(demo), "--model", str(ckpt), "--add-to-project", "--steps", "1",
                   "--batch", "2", "--crop", "32", "-q"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 1 and len(err) == 1 and err[0].startswith("error: ")
        assert "open for writing in another program" in err[0] and f"pid {holder.pid}" in err[0]
        assert main(["demo", str(demo), "--train", "2", "--val", "1", "--size", "48", "48"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"pid {holder.pid}" in err[0]
        assert _files(demo) == before
        # reading the project (no --add-to-project) is fine while another program writes it
        out = tmp_path / "ft.safetensors"
        assert main(["finetune", "--project", str(demo), "--model", str(ckpt), "--out", str(out), "--steps", "1",
                     "--batch", "2", "--crop", "32", "-q"]) == 0
        assert out.is_file() and _files(demo) == before
    finally:
        holder.kill()
        holder.wait(30)
    assert main(["finetune", "--project", str(demo), "--model", str(ckpt), "--add-to-project", "--steps", "1",
                 "--batch", "2", "--crop", "32", "-q"]) == 0
    assert not (demo / LOCK_FILE).exists()  # the command released it
    history = json.loads((demo / "project.json").read_text())["history"]
    # the starting model joins the history first (so it can be restored), then the fine-tuned one
    assert len(history) == 2 and history[0]["note"].startswith("starting model")
