"""A full disk for real, for every save path: in a child process whose file size limit
(RLIMIT_FSIZE) is cut to a few bytes, and, where this machine lets a user mount one, on a small
tmpfs filled to the last page (ENOSPC). Each save raises a StudioError (a WriteError, also an
OSError) that names the file; the file on disk is unchanged; the project in memory is as it
was; the crash journal reports that it cannot write (with the reason) and recovers when the
disk has room again, having lost no edit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE / tmpfs are POSIX")

_CHILD = textwrap.dedent(r'''
    import errno, json, os, resource, sys
    from pathlib import Path
    import cv2
    import numpy as np
    import core
    from core.classes import ClassTable
    from core.config import ModelConfig
    from core.errors import StudioError, WriteError
    from core.journal import StrokeJournal
    from core.model import PSPNet
    from core.project import Project

    base, mode = Path(sys.argv[1]), sys.argv[2]
    classes = ClassTable.from_names(["sky", "tree", "road"])
    model = PSPNet(ModelConfig(depth=18, base_width=8, num_classes=3, head_channels=32, aux_channels=16, stem="deep"))
    rng = np.random.default_rng(0)
    src = base / "src"
    src.mkdir(parents=True, exist_ok=True)
    for i in range(2):
        cv2.imwrite(str(src / f"img{i}.png"), rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    core.save_checkpoint(src / "a.safetensors", model, classes)
    p = Project.create(base / "proj", classes)
    p.add_images([src / "img0.png", src / "img1.png"])
    first = p.add_checkpoint(src / "a.safetensors", {"miou": 0.1}, "first")
    p.add_checkpoint(src / "a.safetensors", {"miou": 0.2}, "second")
    mask = p.load_mask("img0")
    mask.paint((3, 3), 1, radius=2)
    p.save_mask("img0", mask)
    assert p.flush_journals(30)
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    filler = base / "filler"

    def full():
        if mode == "fsize":
            resource.setrlimit(resource.RLIMIT_FSIZE, (8, hard))
        else:  # fill the tmpfs to the last page
            with open(filler, "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                except OSError:
                    pass
                try:
                    while True:
                        f.write(b"\0" * 512)
                except OSError:
                    pass

    def room():
        if mode == "fsize":
            resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        else:
            filler.unlink()

    def state():
        return (p.settings, p.checkpoints(), p.current_checkpoint, mask.dirty, mask.data.tobytes())

    def files():
        return {str(q.relative_to(p.root)): q.read_bytes() for q in sorted(p.root.rglob("*"))
                if q.is_file() and ".journal" not in q.name}

    cases = {
        "update_settings": lambda: p.update_settings(crop=512, note="x" * 100),
        "save": p.save,
        "write_split": lambda: p.write_split("train", ["img0", "img1"] * 20),
        "ClassTable.save": lambda: p.classes.save(p.root / "classes.json"),
        "save_checkpoint": lambda: core.save_checkpoint(p.checkpoints_dir / "model-0001.safetensors", model, classes),
        "add_checkpoint(file)": lambda: p.add_checkpoint(src / "a.safetensors"),
        "add_checkpoint(model)": lambda: p.add_checkpoint((model, classes)),
        "restore": lambda: p.restore(first),
        "add_images": lambda: p.add_images([src / "img0.png"]),
        "save_mask": lambda: p.save_mask("img0", mask),
    }
    out = {}
    mask.paint((15, 20), 2, radius=3)  # unsaved: what save_mask tries to write
    assert p.flush_journals(30)
    for name, call in cases.items():
        before_state, before_files = state(), files()
        full()
        try:
            call()
            result = {"error": None}
        except Exception as exc:
            result = {"error": type(exc).__name__, "message": str(exc), "studio": isinstance(exc, StudioError),
                      "write": isinstance(exc, WriteError), "oserror": isinstance(exc, OSError)}
        finally:
            room()
        result["memory_same"] = state() == before_state
        result["disk_same"] = files() == before_files
        out[name] = result

    # the crash journal: refused, reported, kept in memory, written once there is room
    p.save_mask("img0", mask)  # a fresh journal file (on a tmpfs, an existing one may have room in its page)
    assert not p.journal_path("img0").exists()
    seen = []
    p.on_journal_status.connect(lambda name, status: seen.append((name, status.ok, status.reason)))
    full()
    mask.paint((20, 5), 0, radius=2)
    flushed = p.flush_journals(10)
    problems = {n: (s.reason, s.pending) for n, s in p.journal_problems().items()}
    room()
    mask.paint((10, 28), 1, radius=1)
    recovered = p.flush_journals(30)
    replayed, n = StrokeJournal(p.journal_path("img0")).replay(p.saved_mask("img0"))
    out["journal"] = {"flushed_while_full": flushed, "problems": problems, "seen": seen,
                      "recovered": recovered, "problems_after": list(p.journal_problems()),
                      "replay_matches": bool((replayed == mask.data).all()), "records": n}
    p.save_mask("img0", mask)  # and saving works again
    out["saved_after"] = not mask.dirty
    p.close()
    print("RESULT " + json.dumps(out), flush=True)
''')

_EXPECT_FILE = {"update_settings": "project.json", "save": "project.json", "write_split": "train.txt",
                "ClassTable.save": "classes.json", "save_checkpoint": "model-0001.safetensors",
                "add_checkpoint(file)": "a.safetensors", "add_checkpoint(model)": "model-0003.safetensors",
                "restore": "project.json", "add_images": "img0", "save_mask": "img0.png"}


def _run(tmp_path: Path, mode: str, wrap: list[str] | None = None, base: Path | None = None) -> dict:
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    base = base or tmp_path / "disk"
    cmd = [sys.executable, str(script), str(base), mode]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run((wrap or []) + cmd, capture_output=True, text=True, timeout=300, env=env)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def _check(out: dict, reason: str) -> None:
    for name, want in _EXPECT_FILE.items():
        r = out[name]
        assert r["error"] is not None, f"{name}: the save did not fail"
        assert r["studio"] and r["write"] and r["oserror"], f"{name}: {r['error']}: {r['message']}"
        assert want in r["message"] and reason in r["message"], f"{name}: {r['message']}"
        assert r["memory_same"], f"{name}: the project in memory changed"
        assert r["disk_same"], f"{name}: a file on disk changed"
    j = out["journal"]
    assert j["flushed_while_full"] is False
    (jreason, pending), = j["problems"].values()
    assert ".img0.journal" in jreason and reason in jreason and pending == 1
    assert j["seen"][0][1] is False and j["seen"][-1][1] is True  # told it failed, then that it works
    assert j["recovered"] and j["problems_after"] == [] and j["replay_matches"] and j["records"] == 2
    assert out["saved_after"]


def test_every_save_path_under_a_file_size_limit(tmp_path):
    _check(_run(tmp_path, "fsize"), "File too large")


def _can_mount_tmpfs(tmp_path: Path) -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    r = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {probe}"],
                       capture_output=True, timeout=30)
    return r.returncode == 0


def test_every_save_path_on_a_full_tmpfs(tmp_path):
    if not _can_mount_tmpfs(tmp_path):
        pytest.skip("cannot mount a tmpfs here (needs user namespaces)")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    inner = f"mount -t tmpfs -o size=4m tmpfs {mnt} && exec \"$@\""
    out = _run(tmp_path, "fill", wrap=["unshare", "-rm", "sh", "-c", inner, "sh"], base=mnt)
    _check(out, "No space left on device")
