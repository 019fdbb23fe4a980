"""One writer per project: the lock file ``<project>/.project.lock``.

The file names its holder (pid, host, when, which command) so that a second opener can say who
has the project. Whether the holder still runs is decided by the operating system, not by the
file: the holder keeps an exclusive ``flock`` on it for as long as it has the project open, and
the kernel drops that lock when the process ends, however it ends (SIGKILL, power loss of the
process, a crash). So:

- the lock is held (flock refused): the project is open elsewhere -> :class:`ProjectLockedError`,
  whatever the pid in the file (pid reuse cannot fool it);
- the lock is free but the file names a holder on this computer: that process has gone without
  releasing it (killed); the lock is taken over (logged);
- the lock is free but the file names another computer (a shared network folder, where flock may
  not reach across hosts): whether it still runs cannot be told from here, so it is refused unless
  the caller says ``take_over=True`` (the user confirmed that program is gone);
- where the file system has no flock at all, the pid (with the process's start time on Linux,
  which pid reuse changes) decides on this computer, and another computer's lock is refused.

A holder releases by deleting the file (under its lock); an opener that locked a file which was
deleted meanwhile notices (the inode changed) and starts again. On Windows, ``msvcrt.locking``
stands in for flock and the file is emptied instead of deleted.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from core.errors import ProjectLockedError, ReadOnlyProjectError

log = logging.getLogger(__name__)

LOCK_FILE = ".project.lock"
_WINDOWS = sys.platform == "win32"
_WIN_LOCK_OFFSET = 1 << 30  # Windows byte-range locks are mandatory: lock a byte far past the content
_BUSY_RETRY_S = 0.2  # a reader peeking at the lock (shared flock) holds it for microseconds
# the locks this process holds, by lock file: never opened a second time here (on NFS, flock is a
# POSIX lock, which closing any descriptor of the file in the holding process would drop)
_HELD: dict[str, "ProjectLock"] = {}

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) a project's lock, as its lock file says."""

    pid: int
    host: str
    time: str  # when it was taken (ISO 8601, UTC)
    program: str = ""  # e.g. "main.py finetune"
    boot: str = ""  # Linux boot id of the holder's computer ("" where unknown)
    start: int | None = None  # the holder's process start time (Linux clock ticks since boot)
    token: str = ""

    @property
    def this_computer(self) -> bool:
        mine = _boot_id()
        if self.boot and mine:
            return self.boot == mine  # survives a renamed host
        return self.host == _host()

    def describe(self) -> str:
        where = "on this computer" if self.this_computer else f"on the computer {self.host!r}"
        what = f"{self.program}, " if self.program else ""
        return f"{what}pid {self.pid} {where}, since {self.time}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def parse(cls, text: str) -> "LockHolder | None":
        """The holder a lock file names; None when it is empty (released) or unreadable."""
        if not text.strip():
            return None
        try:
            d = json.loads(text)
            return cls(int(d["pid"]), str(d["host"]), str(d.get("time", "")), str(d.get("program", "")),
                       str(d.get("boot", "")), None if d.get("start") is None else int(d["start"]),
                       str(d.get("token", "")))
        except (ValueError, KeyError, TypeError):
            return None  # half written, or not ours: whether it is held is the OS lock's to say


def _host() -> str:
    try:
        return socket.gethostname()
    except OSError:  # pragma: no cover
        return "?"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> int | None:
    """A process's start time (clock ticks since boot, Linux): a reused pid has another one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the command name may hold spaces
    except (IndexError, ValueError):
        return None


def _program() -> str:
    args = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:2]]
    return " ".join(a for a in args if a)[:80]


def process_alive(holder: LockHolder) -> bool | None:
    """Whether the holder's process still runs: True, False, or None when it cannot be told (it
    is on another computer, or this system cannot check)."""
    if not holder.this_computer:
        return None
    if holder.boot and _boot_id() and holder.boot != _boot_id():
        return False  # this computer has restarted since
    if _WINDOWS:  # pragma: no cover - os.kill(pid, 0) would terminate the process on Windows
        return None
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it runs, as another user
    except OSError:
        return None
    if holder.start is not None:
        now = _start_time(holder.pid)
        if now is not None and now != holder.start:
            return False  # the pid was reused by a newer process
    return True


def _me() -> LockHolder:
    pid = os.getpid()
    return LockHolder(pid, _host(), datetime.now(timezone.utc).isoformat(timespec="seconds"), _program(),
                      _boot_id(), _start_time(pid), uuid.uuid4().hex)


def _os_lock(fd: int, shared: bool = False) -> bool | None:
    """Try to lock without waiting: True (got it), False (someone holds it), None (unsupported)."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            return None  # ENOLCK, EOPNOTSUPP, ENOSYS, EINVAL: this file system cannot lock
        return True
    if _WINDOWS:  # pragma: no cover
        import msvcrt

        try:
            os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            return False if exc.errno in (errno.EACCES, errno.EDEADLOCK) else None
        return True
    return None  # pragma: no cover


def _os_unlock(fd: int) -> None:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        elif _WINDOWS:  # pragma: no cover
            import msvcrt

            os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    except OSError:
        pass


def _read_fd(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        chunks.append(b)
        if sum(map(len, chunks)) > 1 << 20:
            break
    return b"".join(chunks).decode("utf-8", "replace")


def _write_fd(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    view = memoryview(text.encode("utf-8"))
    while view:
        view = view[os.write(fd, view):]
    # no fsync: the OS lock is what holds; the text only names the holder (lost in a power cut,
    # when the holder is gone anyway)


def _key(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _locked_error(root: Path, path: Path, holder: LockHolder | None, live: bool | None) -> ProjectLockedError:
    who = holder.describe() if holder is not None else "a program whose lock file does not name it"
    if live is None:
        msg = (f"{root}: the project is locked by {who}, and whether that program still runs cannot be told "
               f"from here; open it read-only, or, if that program no longer runs, take the lock over "
               f"(or delete {path})")
    elif holder is not None and holder.pid == os.getpid() and holder.this_computer:
        msg = f"{root}: the project is already open for writing in this program ({who}); close it first"
    else:
        msg = f"{root}: the project is open for writing in another program ({who}); open it read-only, or close it there first"
    return ProjectLockedError(msg, root, holder, path, live)


class ProjectLock:
    """The held lock of one project folder. Take it with :meth:`acquire`; :meth:`release` once."""

    def __init__(self, root: Path, path: Path, fd: int | None, holder: LockHolder, os_locked: bool) -> None:
        self.root, self.path, self.holder = root, path, holder
        self._fd, self._os_locked = fd, os_locked
        self._pid = os.getpid()
        self._released = False

    @property
    def held(self) -> bool:
        return not self._released

    def _content_is_mine(self) -> bool:
        try:
            found = LockHolder.parse(self.path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return False
        return found is not None and found.token == self.holder.token

    @classmethod
    def acquire(cls, root: str | Path, *, take_over: bool = False) -> "ProjectLock":
        """Take the lock of the project folder ``root``; :class:`ProjectLockedError` when another
        program holds it, :class:`ReadOnlyProjectError` when the folder cannot be written."""
        root = Path(root)
        path = root / LOCK_FILE
        mine = _HELD.get(_key(path))
        if mine is not None and mine.held:
            raise _locked_error(root, path, mine.holder, True)
        me = _me()
        deadline = time.monotonic() + _BUSY_RETRY_S
        for _attempt in range(50):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0),
                             0o644)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise ReadOnlyProjectError(
                    f"{root}: cannot open the project for writing: its lock file {path.name} cannot be made "
                    f"({reason}); open it read-only", root, f"the folder cannot be written ({reason})") from exc
            try:
                got = _os_lock(fd)
                if got is False:
                    if time.monotonic() < deadline:
                        os.close(fd)
                        time.sleep(0.02)
                        continue
                    holder = LockHolder.parse(_read_fd(fd))
                    raise _locked_error(root, path, holder, True)
                if got and not _WINDOWS and not _same_file(fd, path):
                    os.close(fd)  # its holder deleted it while we waited for it: take the new one
                    continue
                previous = LockHolder.parse(_read_fd(fd))
                if previous is not None and previous.token:
                    if got is None:  # no OS locks here: the pid must tell
                        alive = process_alive(previous)
                        if alive is not False and not (alive is None and take_over):
                            raise _locked_error(root, path, previous, alive)
                    elif not previous.this_computer and not take_over:
                        raise _locked_error(root, path, previous, None)
                    log.warning("%s: taking over the lock of %s (that program has gone)", root, previous.describe())
                try:
                    _write_fd(fd, me.to_json())
                except OSError as exc:
                    if got is None:  # the file is the only lock there is: it must be written
                        raise ReadOnlyProjectError(
                            f"{root}: cannot open the project for writing: its lock file cannot be written "
                            f"({exc.strerror or exc}); open it read-only", root, "the lock file cannot be written") from exc
                    log.warning("%s: the lock is held but its file could not be written: %s", path, exc)
                if got is None:
                    os.close(fd)
                    lock = cls._confirm_without_os_lock(root, path, me)
                else:
                    lock = cls(root, path, fd, me, True)
                _HELD[_key(path)] = lock
                return lock
            except BaseException:
                try:
                    os.close(fd)
                except OSError:
                    pass
                raise
        raise ProjectLockedError(f"{root}: the project's lock keeps changing hands; try again", root, None, path)

    @classmethod
    def _confirm_without_os_lock(cls, root: Path, path: Path, me: LockHolder) -> "ProjectLock":
        """Without OS locks two openers could both write the file: the last writer wins, and each
        checks a moment later whose name is in it."""
        time.sleep(0.05)
        try:
            found = LockHolder.parse(path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            found = None
        if found is None or found.token != me.token:
            raise _locked_error(root, path, found, True)
        return cls(root, path, None, me, False)

    def release(self) -> None:
        """Give the project back (idempotent). Only the process that took the lock releases it: a
        forked child that inherited it leaves it alone."""
        if os.getpid() != self._pid or self._released:
            return
        self._released = True
        if _HELD.get(_key(self.path)) is self:
            del _HELD[_key(self.path)]
        fd, self._fd = self._fd, None
        if fd is None:  # no OS lock: the file alone was the lock
            if self._content_is_mine():
                try:
                    self.path.unlink()
                except OSError:
                    pass
            return
        try:
            if _WINDOWS:  # pragma: no cover - an open file cannot be deleted there
                try:
                    os.ftruncate(fd, 0)
                except OSError:
                    pass
            elif _same_file(fd, self.path):
                try:
                    self.path.unlink()
                except OSError:
                    try:
                        os.ftruncate(fd, 0)
                    except OSError:
                        pass
            _os_unlock(fd)
        finally:
            os.close(fd)


def lock_holder(root: str | Path) -> tuple[LockHolder | None, bool | None]:
    """Who holds a project's lock now, without taking it: ``(holder, live)``. ``(None, False)``
    when nobody does; ``live`` is True when that program runs, None when it cannot be told."""
    path = Path(root) / LOCK_FILE
    mine = _HELD.get(_key(path))
    if mine is not None and mine.held and os.getpid() == mine._pid:
        return mine.holder, True
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except OSError:
        return None, False
    try:
        holder = LockHolder.parse(_read_fd(fd))
        if _WINDOWS:  # pragma: no cover - a read-only descriptor cannot take the test lock there
            got = None
        else:
            got = _os_lock(fd, shared=True)
            if got:
                _os_unlock(fd)
        if got is False:
            return holder, True
        if holder is None or not holder.token:
            return None, False
        if got is None:
            alive = process_alive(holder)
            return (holder, alive) if alive is not False else (None, False)
        return (holder, None) if not holder.this_computer else (None, False)
    finally:
        os.close(fd)


__all__ = ["LOCK_FILE", "LockHolder", "ProjectLock", "lock_holder", "process_alive"]
