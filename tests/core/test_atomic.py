"""Atomic writes: the old file survives a failure midway; the new file gets the usual mode."""

from __future__ import annotations

import os
import stat

import pytest

from core.atomic import atomic_write, atomic_write_bytes


def test_new_file_gets_umask_mode_and_replacement_keeps_mode(tmp_path):
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"one")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    os.chmod(target, 0o640)
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_failure_midway_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")

    def fail(f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]
