"""Atomic file writes: temp file in the same folder, flush, fsync, os.replace.

A failure at any point leaves the previous file untouched and no temp file behind.
:func:`atomic_write` raises the OSError as it comes; :func:`atomic_save` turns it into a
:class:`core.errors.WriteError` that names the file and what it holds (what the user sees)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, IO

from core.errors import WriteError


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a temp file next to ``path``, then atomically put it in place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _mode_for(path))  # mkstemp makes 0600; a saved file gets the usual mode
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def _mode_for(path: Path) -> int:
    """The mode of the file being replaced, else what a plain ``open()`` would give (0666 - umask)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_UMASK


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_error(path: str | Path, exc: OSError, what: str) -> WriteError:
    """The user-facing error for a failed save of ``path`` (``what``: "the project file", ...)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return WriteError(f"{path}: could not save {what}: {reason}; the previous file is unchanged", path, exc.errno)


def atomic_save(path: str | Path, data: bytes | str | Callable[[IO[bytes]], None], *, what: str = "the file") -> None:
    """:func:`atomic_write` of bytes, text (UTF-8) or a writer callable; a failure raises
    :class:`~core.errors.WriteError` naming the file (and nothing on disk changes)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    write = data if callable(data) else (lambda f, b=data: f.write(b))
    try:
        atomic_write(path, write)
    except WriteError:
        raise
    except OSError as exc:
        raise write_error(path, exc, what) from exc
