"""Downloading one file over HTTP(S): resumable, checked, atomic, cancellable.

:func:`download` is a generator: it yields :class:`DownloadProgress` records (bytes done /
total) and returns the final path, so the CLI drives it with a tqdm bar and the app in a
worker with a progress bar and a Cancel button. The standard library (urllib) is enough.

- The bytes go to ``<name>.part`` next to the target; only a complete file whose size and
  SHA-256 (full digest or the published prefix) check is moved to the target name
  (``os.replace`` after fsync), so nothing partial is ever left under the final name.
- A dropped connection, a timeout or a 5xx answer is retried (``retries`` times), each time
  resuming with an HTTP ``Range`` request; an interrupted or cancelled download keeps its
  ``.part`` file and the next call resumes it. ``If-Range`` with the first answer's ETag /
  Last-Modified (kept in ``<name>.part.json``) makes a server whose file changed send the
  whole new file instead of a mismatched tail.
- A refused connection, an unknown host or a 4xx answer fails at once with a
  :class:`DownloadError` of one line that names the URL and where to put the file by hand.
- A file that fails its check is deleted (it is not the published file) and refused.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from core.atomic import atomic_write_text, fsync_dir
from core.errors import Cancelled, StudioError

CancelFlag = Callable[[], bool] | threading.Event | None
R = TypeVar("R")
CHUNK = 256 * 1024
USER_AGENT = "PSPNet-Studio (python urllib)"


class DownloadError(StudioError):
    """A download failed (no network, a server error) or gave a file that is not the published one."""


@dataclass(frozen=True)
class DownloadProgress:
    """One step of a download. ``done`` counts the bytes of the file on disk so far
    (resumed ones included); ``total`` is the file's size when known."""

    url: str
    target: Path
    done: int
    total: int | None
    resumed_from: int = 0  # bytes that were already on disk when this attempt started
    stage: str = "download"  # "download", "verify" (checking the complete file), "done"
    attempt: int = 1
    index: int = 0  # callers fetching several files number them (zoo entries with two files)
    count: int = 1
    name: str = ""  # what is being fetched, for display

    @property
    def fraction(self) -> float | None:
        return None if not self.total else min(1.0, self.done / self.total)


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _state_path(target: Path) -> Path:
    return target.with_name(target.name + ".part.json")


def check_digest(digest_hex: str, sha256: str | None, where: str) -> None:
    """Compare a SHA-256 hex digest with a full digest or a published prefix."""
    if not sha256:
        return
    want = sha256.lower()
    if not digest_hex.startswith(want):
        kind = "SHA-256" if len(want) == 64 else "SHA-256 prefix"
        raise DownloadError(f"{where}: not the published file: its SHA-256 is {digest_hex[:max(len(want), 16)]}..., "
                            f"the published {kind} is {want}")


def sha256_of(path: Path, *, cancel: CancelFlag = None) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * CHUNK):
            h.update(chunk)
            _check_cancel(cancel)
    return h.hexdigest()


def download(url: str, target: str | Path, *, sha256: str | None = None, size: int | None = None,
             check: Callable[[Path], None] | None = None, cancel: CancelFlag = None, retries: int = 3,
             backoff: float = 1.0, timeout: float = 30.0, hint: str | None = None
             ) -> Generator[DownloadProgress, None, Path]:
    """Fetch ``url`` to ``target``. ``sha256`` (a full digest or a prefix) and ``size`` are
    checked when given; ``check(path)`` is called on the complete ``.part`` file before it is
    moved in place (raise a :class:`StudioError` to refuse it). ``hint`` replaces the default
    "what to do without internet" sentence of the error messages."""
    target = Path(target)
    part, state_file = part_path(target), _state_path(target)
    advice = hint or f"Without internet, download {url} on another machine and put it at {target}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the folder {target.parent}: {exc.strerror or exc}") from None

    state = _read_state(state_file, url)
    if state is None:
        _remove(part, state_file)
        state = {"url": url}
    hasher = hashlib.sha256()
    done = part.stat().st_size if part.exists() else 0
    if size is not None and done > size:
        _remove(part, state_file)
        done, state = 0, {"url": url}
    if done:
        with part.open("rb") as f:
            while chunk := f.read(4 * CHUNK):
                hasher.update(chunk)
    total: int | None = size if size is not None else state.get("total")
    attempt = 0
    while not (total is not None and done == total):
        attempt += 1
        started = done
        yield DownloadProgress(url, target, done, total, started, attempt=attempt)
        try:
            with _open(url, done, state, timeout) as response:
                code = response.status
                if code == 206:
                    start, length = _content_range(response.headers.get("Content-Range", ""))
                    if start != done:  # the server resumed elsewhere: start over with a plain request
                        _remove(part, state_file)
                        done, hasher, state = 0, hashlib.sha256(), {"url": url}
                        continue
                    total = length if length is not None else total
                else:  # 200: the whole file (the server ignored or refused the range: start over)
                    done, hasher = 0, hashlib.sha256()
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else size
                    state = {"url": url, "total": total, "etag": response.headers.get("ETag"),
                             "last_modified": response.headers.get("Last-Modified")}
                    _write_state(state_file, state)
                if size is not None and total is not None and total != size:
                    raise DownloadError(f"could not download {url}: the server sends {total} bytes where the "
                                        f"published file has {size}. {advice}")
                out = _open_part(part, append=bool(done))
                with out:
                    while True:
                        _check_cancel(cancel)
                        chunk = response.read(CHUNK)
                        if not chunk:
                            break
                        _write(out, chunk, part, done)
                        hasher.update(chunk)
                        done += len(chunk)
                        yield DownloadProgress(url, target, done, total, started, attempt=attempt)
                    _write(out, b"", part, done, sync=True)
            if total is None:
                total = done  # no length announced: the server's end of the stream ends the file
            elif done < total:
                raise http.client.IncompleteRead(b"", total - done)
            elif done > total:
                _remove(part, state_file)
                raise DownloadError(f"could not download {url}: the server sent {done} bytes of {total}. {advice}")
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and done:  # nothing left after our offset: the part may be complete, or stale
                total = _content_range(exc.headers.get("Content-Range", ""))[1] if exc.headers else None
                if total is not None and done == total:
                    break
                _remove(part, state_file)
                done, hasher, state, total = 0, hashlib.sha256(), {"url": url}, size
                continue
            if exc.code >= 500 and attempt <= retries:
                time.sleep(backoff * 2 ** (attempt - 1))
                continue
            raise DownloadError(f"could not download {url}: the server answered {exc.code} {exc.reason}. "
                                f"{advice}") from None
        except Cancelled:
            raise
        except DownloadError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError,
                socket.timeout, OSError) as exc:
            reason = _reason(exc)
            transient = done > started or not _is_unreachable(exc)
            if transient and attempt <= retries:
                time.sleep(backoff * 2 ** (attempt - 1))
                continue
            kept = f" ({done} of {total or '?'} bytes kept in {part.name}: the next try resumes)" if done else ""
            raise DownloadError(f"could not download {url} ({reason}){kept}. {advice}") from None

    yield DownloadProgress(url, target, done, total, done, stage="verify", attempt=attempt)
    try:
        if size is not None and done != size:
            raise DownloadError(f"{url}: got {done} bytes, the published file has {size}")
        check_digest(hasher.hexdigest(), sha256, url)
        if check is not None:
            check(part)
    except StudioError as exc:
        _remove(part, state_file)
        text = str(exc)
        raise DownloadError(text if isinstance(exc, DownloadError) else f"{url}: {text}") from None
    os.replace(part, target)
    fsync_dir(target.parent)
    _remove(state_file)
    yield DownloadProgress(url, target, done, total, done, stage="done", attempt=attempt)
    return target


def with_position(progress: DownloadProgress, index: int, count: int, name: str) -> DownloadProgress:
    return replace(progress, index=index, count=count, name=name)


def drive(steps: Generator[DownloadProgress, None, R], *, desc: str = "", quiet: bool = False) -> R:
    """Run a download generator with a tqdm bar per file on stderr; return its result."""
    import sys

    from tqdm import tqdm

    bar = None
    key = None
    try:
        while True:
            try:
                p = next(steps)
            except StopIteration as stop:
                return stop.value
            new_file = (p.index, str(p.target)) != key
            if quiet or (new_file and p.done == 0 and p.total is None):
                continue  # nothing to show before the server has answered (an offline error stays one line)
            if new_file:
                if bar is not None:
                    bar.close()
                key = (p.index, str(p.target))
                label = desc or p.name or p.target.name
                if p.count > 1:
                    label = f"{label} [{p.index + 1}/{p.count}] {p.target.name}"
                bar = tqdm(total=p.total, initial=p.done, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
                           file=sys.stderr, dynamic_ncols=True, leave=True)
            assert bar is not None
            if p.total is not None and bar.total != p.total:
                bar.total = p.total
            bar.update(p.done - bar.n)
            if p.stage == "verify":
                bar.set_postfix_str("checking")
            elif p.stage == "done":
                bar.set_postfix_str("ok")
    finally:
        if bar is not None:
            bar.close()


# --- HTTP details ----------------------------------------------------------------------------------


def _open(url: str, offset: int, state: dict, timeout: float):
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        validator = state.get("etag") or state.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _content_range(value: str) -> tuple[int | None, int | None]:
    """``bytes 100-199/1000`` -> (100, 1000); ``bytes */1000`` -> (None, 1000)."""
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    return start, (int(m.group(2)) if m.group(2) != "*" else None)


def _is_unreachable(exc: BaseException) -> bool:
    """No server to talk to (offline, refused, unknown host): retrying at once will not help."""
    inner = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(inner, (ConnectionRefusedError, socket.gaierror)) or (
        isinstance(inner, OSError) and inner.errno in (101, 113))  # ENETUNREACH, EHOSTUNREACH


def _reason(exc: BaseException) -> str:
    inner = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(inner, ConnectionRefusedError):
        return "connection refused"
    if isinstance(inner, socket.gaierror):
        return f"cannot resolve the host name: {inner.strerror or inner}"
    if isinstance(inner, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(inner, http.client.IncompleteRead):
        return "the connection dropped before the end of the file"
    text = " ".join(str(inner).split()) or type(inner).__name__
    return f"{type(inner).__name__}: {text}" if type(inner).__name__ not in text else text


def _open_part(part: Path, *, append: bool):
    try:
        return part.open("ab" if append else "wb")
    except OSError as exc:
        raise DownloadError(f"cannot write {part}: {exc.strerror or exc}") from None


def _write(out, chunk: bytes, part: Path, done: int, *, sync: bool = False) -> None:
    """Disk errors (a full disk, a removed folder) end the download at once, keeping what was written."""
    try:
        if chunk:
            out.write(chunk)
        if sync:
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        raise DownloadError(f"cannot write {part}: {exc.strerror or exc} ({done} bytes written so far; "
                            "free some space and run the same command again to resume)") from None


def _read_state(path: Path, url: str) -> dict | None:
    """The resume record of a ``.part`` file, or None when absent, unreadable or for another URL."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("url") == url else None


def _write_state(path: Path, state: dict) -> None:
    try:
        atomic_write_text(path, json.dumps(state))
    except OSError:
        pass  # only resuming across runs needs it


def _remove(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _check_cancel(cancel: CancelFlag) -> None:
    if cancel is None:
        return
    if cancel.is_set() if isinstance(cancel, threading.Event) else cancel():
        raise Cancelled("download cancelled")


download_file = download  # the name core/__init__.py exports (``core.download`` is this module)

__all__ = ["download", "download_file", "drive", "DownloadProgress", "DownloadError", "check_digest", "sha256_of", "part_path",
           "with_position", "CancelFlag"]
