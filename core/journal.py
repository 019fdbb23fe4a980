"""A per-mask crash journal: one record per completed edit, written and fsynced by a writer
thread, replayed after a crash.

The journal sits next to the mask (``masks/.<stem>.journal``) and is cleared once the mask has
been saved. Each record holds the new content of the box an edit changed (zlib-compressed)::

    header  b"PSJ1" | payload length (u32 LE) | CRC32 of the payload (u32 LE)
    payload seq (u64) H W y0 y1 x0 x1 (u32) label (i32) kind (u8) | zlib(box content)

Records hold absolute content, not differences, so replaying them in order onto the saved mask
gives the edited mask, and replaying onto a mask that already holds some of them is harmless.

Reading is defensive: a record cut short by a crash, or damaged, is skipped with a note
(:attr:`StrokeJournal.note`) and the intact records after it are still found (the reader looks
for the next record header whose checksum holds). A record's content is never decompressed
beyond the size of its own box, and a record for a mask of another size is refused before
anything is decompressed, so a forged journal (a zlib bomb) fails fast and small.

Writing never blocks the editing thread on the disk: :meth:`StrokeJournal.record` queues the
edit and returns; a writer thread appends the queued records in order, in one write and one
fsync per batch. A stroke is therefore on disk (fsynced) about one fsync after it was made
(a few milliseconds on an SSD, up to ~100 ms on a slow disk or while an earlier batch is being
written), unless the disk refuses: then :attr:`StrokeJournal.status` says so (``ok`` False, with
the reason), ``on_status`` listeners are told, the records stay queued in memory and the writer
retries (at once on the next edit or :meth:`flush`, else after 0.25 s, doubling up to 10 s).
:meth:`flush` waits until what was queued is on disk, or until the disk refused it.
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import struct
import threading
import time
import weakref
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from core.errors import MaskError
from core.labels import Listeners

log = logging.getLogger(__name__)

MAGIC = b"PSJ1"
_HEAD = struct.Struct("<4sII")
_META = struct.Struct("<QIIIIIIiB")
_KINDS = ("stroke", "fill", "polygon", "accept", "assign", "undo", "redo", "recover")
_CHUNK = 1 << 20  # bytes per os.write call
MAX_MASK_PIXELS = 178_956_970  # the image reader's own cap (core.data.io.MAX_PIXELS)
# the largest payload a record can have: its metadata and zlib's worst case for the largest mask
MAX_RECORD = _META.size + MAX_MASK_PIXELS + MAX_MASK_PIXELS // 1000 + 1024
_IDLE_S = 5.0  # the writer thread ends after this long without work (a new edit starts it again)
_RETRY_MIN_S, _RETRY_MAX_S = 0.25, 10.0


@dataclass(frozen=True)
class JournalRecord:
    seq: int
    shape: tuple[int, int]
    region: tuple[int, int, int, int]  # y0, y1, x0, x1
    content: np.ndarray
    label: int
    kind: str


@dataclass(frozen=True)
class JournalStatus:
    """Whether a journal protects the edits against a crash (what the GUI shows)."""

    path: Path
    ok: bool = True  # False while the disk refuses the journal's writes
    reason: str = ""  # why not, naming the file ("" when ok)
    pending: int = 0  # edits queued, not yet on disk (lost if the program died now)
    durable: int | None = None  # the revision of the newest edit known to be on disk
    failing_since: float | None = None  # time.time() of the first refused write

    @property
    def protected(self) -> bool:
        """Every edit made so far is on disk."""
        return self.ok and self.pending == 0


def journal_path(mask_path: str | Path) -> Path:
    """Where the journal of a mask file lives: ``.<stem>.journal`` in the same folder."""
    mask_path = Path(mask_path)
    return mask_path.with_name(f".{mask_path.stem}.journal")


def set_aside(path: str | Path, tag: str = "discarded", *, copy: bool = False) -> Path | None:
    """Move (or with ``copy``, copy) a journal to ``<name>.<tag>``, or ``<name>.<tag>.2``, ``.3``
    ... when that exists: set-asides never overwrite each other. Returns the new path, None when
    there was nothing to set aside."""
    path = Path(path)
    if not path.exists():
        return None
    for n in range(1, 100_000):
        dst = path.with_name(f"{path.name}.{tag}" + (f".{n}" if n > 1 else ""))
        if dst.exists():
            continue
        try:
            if copy:
                from core.atomic import atomic_write_bytes

                atomic_write_bytes(dst, path.read_bytes())  # no partial copy under that name
                if dst.exists():
                    return dst
                continue
            try:
                os.link(path, dst)  # fails if dst appeared meanwhile: never overwrites
            except FileExistsError:
                continue
            except OSError as exc:  # no hard links on this file system
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK,
                                     errno.ENOSYS, errno.EACCES):
                    raise
                if dst.exists():
                    continue
                os.rename(path, dst)
                return dst
            os.unlink(path)
            return dst
        except FileNotFoundError:
            return None
    raise MaskError(f"{path}: too many set-aside copies of this journal; remove old ones")  # pragma: no cover


def encode_record(seq: int, shape: tuple[int, int], region: tuple[int, int, int, int], content: np.ndarray | None,
                  label: int = -1, kind: str = "stroke", packed: bytes | None = None) -> bytes:
    """One record; ``packed`` (the zlib stream of ``content``) saves compressing it again."""
    y0, y1, x0, x1 = (int(v) for v in region)
    if packed is None:
        content = np.ascontiguousarray(content, np.uint8)
        if content.shape != (y1 - y0, x1 - x0):
            raise ValueError(f"record content {content.shape} does not fit region {region}")
        packed = zlib.compress(memoryview(content), 1)
    code = _KINDS.index(kind) if kind in _KINDS else 255
    payload = _META.pack(int(seq), int(shape[0]), int(shape[1]), y0, y1, x0, x1, int(label), code) + packed
    return _HEAD.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def _implausible(seq: int, h: int, w: int, y0: int, y1: int, x0: int, x1: int, label: int, code: int) -> str:
    if not (1 <= h and 1 <= w and h * w <= MAX_MASK_PIXELS):
        return f"a {h}x{w} mask is not a mask this program makes"
    if not (0 <= y0 <= y1 <= h and 0 <= x0 <= x1 <= w):
        return f"region {(y0, y1, x0, x1)} outside a {h}x{w} mask"
    if not (-1 <= label <= 255) or not (code < len(_KINDS) or code == 255):
        return "label or kind out of range"
    return ""


class _WrongShape(Exception):
    def __init__(self, shape: tuple[int, int]) -> None:
        super().__init__(shape)
        self.shape = shape


def _decode_payload(payload: bytes | memoryview, shape: tuple[int, int] | None = None) -> JournalRecord:
    """One record's payload; ValueError when it is nonsense, _WrongShape when it is for a mask of
    another size than ``shape``. Decompresses at most the record's box (plus one byte)."""
    if len(payload) < _META.size:
        raise ValueError("record shorter than its header")
    seq, h, w, y0, y1, x0, x1, label, code = _META.unpack_from(payload)
    why = _implausible(seq, h, w, y0, y1, x0, x1, label, code)
    if why:
        raise ValueError(why)
    if shape is not None and (h, w) != tuple(shape):
        raise _WrongShape((h, w))
    size = (y1 - y0) * (x1 - x0)
    d = zlib.decompressobj()
    raw = d.decompress(memoryview(payload)[_META.size:], size + 1)  # never more than the box (+1 to tell)
    if len(raw) != size or not d.eof:
        raise ValueError("content size does not match its region")
    content = np.frombuffer(raw, np.uint8).reshape(y1 - y0, x1 - x0)
    kind = _KINDS[code] if code < len(_KINDS) else "unknown"
    return JournalRecord(seq, (h, w), (y0, y1, x0, x1), content, label, kind)


def _intact_at(data: bytes, pos: int) -> tuple[int | None, str, int]:
    """(end of the intact record at ``pos`` or None, what is wrong, bytes checksummed)."""
    n = len(data)
    if n - pos < _HEAD.size:
        return None, "header", 0
    magic, length, crc = _HEAD.unpack_from(data, pos)
    if magic != MAGIC or length < _META.size or length > MAX_RECORD:
        return None, "damaged", 0
    end = pos + _HEAD.size + length
    if end > n:
        return None, "torn", 0
    if _implausible(*_META.unpack_from(data, pos + _HEAD.size)):
        return None, "damaged", 0
    if zlib.crc32(memoryview(data)[pos + _HEAD.size:end]) != crc:
        return None, "checksum", length
    return end, "", length


def scan(data: bytes) -> tuple[list[tuple[int, int]], str]:
    """(offset, length) of each intact record, and a note on what was skipped ("" if nothing).

    After damage the reader looks for the next record whose header and checksum hold (a false
    match needs the 4-byte magic, sane fields and a matching CRC32), so one bad record hides
    nothing after it. The bytes checksummed while looking are bounded (a few times the file),
    so a file crafted to make the search slow gives up instead."""
    spans: list[tuple[int, int]] = []
    notes: list[str] = []
    pos, n = 0, len(data)
    budget, spent = 4 * n + (64 << 20), 0
    while pos < n:
        end, why, _cost = _intact_at(data, pos)
        if end is not None:
            spans.append((pos, end - pos))
            pos = end
            continue
        found, cand = None, data.find(MAGIC, pos + 1)
        while cand != -1 and spent <= budget:
            e, _w, cost = _intact_at(data, cand)
            spent += cost
            if e is not None:
                found = cand
                break
            cand = data.find(MAGIC, cand + 1)
        stop = found if found is not None else n
        if why == "header":
            problem = f"a torn record header ({n - pos} bytes) at the end"
        elif why == "torn" and found is None:
            length = _HEAD.unpack_from(data, pos)[1]
            problem = f"a torn record at offset {pos} ({n - pos} of {_HEAD.size + length} bytes written)"
        elif why == "checksum":
            problem = f"a record with a bad checksum at offset {pos}"
            if found is None and stop > pos + _HEAD.size:
                tail = n - (pos + _HEAD.size + _HEAD.unpack_from(data, pos)[1])
                problem += f" (and {max(tail, 0)} bytes after it)"
        else:
            problem = f"{stop - pos} bytes of damaged data at offset {pos}"
        if found is not None:
            notes.append(f"{problem}; the intact records after it were kept")
        elif cand != -1 and spent > budget:
            notes.append(f"{problem}; gave up looking for intact records after it")
        else:
            notes.append(problem)
        if found is None:
            break
        pos = found
    return spans, "; ".join(notes)


class StrokeJournal:
    """Append-only journal of one mask's edits (see the module docstring)."""

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.note = ""  # what the last read skipped, "" when it found only intact records
        self.on_status = Listeners()  # called with a JournalStatus when ok / reason change (writer thread)
        self._io = threading.Lock()  # held while the file is written or rewritten
        self._cond = threading.Condition(threading.Lock())  # guards everything below
        self._queue: list[tuple[int, bytes | Callable[[], bytes]]] = []  # (seq, record or its encoder)
        self._session: list[tuple[int, bytes]] = []  # (seq, record) on disk, appended by this object
        self._cleared_upto: int | None = None
        self._checked = False  # whether a torn tail from an earlier session was cut off
        self._thread: threading.Thread | None = None
        self._closing = False
        self._reason = ""
        self._failing_since: float | None = None
        self._durable: int | None = None
        self._attempts = 0  # write attempts finished (good or refused)
        self._begun = 0  # write attempts begun; flush() only trusts an answer to one begun after it
        self._answered = 0  # the number (in begun order) of the last attempt that finished
        self._asked = 0  # new edits and flush() calls: each one cuts a retry wait short

    # ---- reading ------------------------------------------------------------------------------
    def _read(self) -> tuple[bytes, list[tuple[int, int]]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            self.note = ""
            return b"", []
        except OSError as exc:
            raise MaskError(f"{self.path}: cannot read the edit journal: {exc.strerror or exc}") from exc
        spans, note = scan(data)
        self.note = f"{self.path}: ignored {note}" if note else ""
        if note:
            log.warning("%s (%d intact records kept)", self.note, len(spans))
        return data, spans

    def records(self, shape: tuple[int, int] | None = None) -> Iterator[JournalRecord]:
        """The intact records in order; damaged ones are skipped (see :attr:`note`). With
        ``shape``, a record for a mask of another size is a MaskError (found before anything of
        it is decompressed)."""
        data, spans = self._read()
        view = memoryview(data)
        skipped = []
        for i, (off, length) in enumerate(spans):
            try:
                yield _decode_payload(view[off + _HEAD.size:off + length], shape)
            except _WrongShape as exc:
                h, w = exc.shape
                raise MaskError(f"{self.path}: the journal is for a {w}x{h} mask, not {shape[1]}x{shape[0]}") from None
            except (ValueError, zlib.error, struct.error) as exc:  # intact checksum but nonsense: skip it
                skipped.append(f"record {i} ({exc})")
        if skipped:
            extra = f"{self.path}: ignored {', '.join(skipped)}"
            self.note = f"{self.note}; {extra.split(': ', 1)[1]}" if self.note else extra
            log.warning("%s", extra)

    def __len__(self) -> int:
        return len(self._read()[1])

    def exists(self) -> bool:
        """Whether the journal file holds at least one intact record."""
        try:
            if self.path.stat().st_size < _HEAD.size:
                return False
        except OSError:
            return False
        return len(self) > 0

    def replay(self, mask: np.ndarray) -> tuple[np.ndarray, int]:
        """Apply the intact records to a copy of ``mask``; returns (mask, number applied)."""
        out = np.array(mask, np.uint8, copy=True)
        n = 0
        for rec in self.records(shape=out.shape):
            y0, y1, x0, x1 = rec.region
            out[y0:y1, x0:x1] = rec.content
            n += 1
        return out, n

    # ---- status -------------------------------------------------------------------------------
    @property
    def status(self) -> JournalStatus:
        with self._cond:
            return self._status_locked()

    def _status_locked(self) -> JournalStatus:
        return JournalStatus(self.path, not self._reason, self._reason, len(self._queue), self._durable,
                             self._failing_since)

    @property
    def error(self) -> str:
        """Why the journal cannot be written now ("" when it can)."""
        return self._reason

    def _emit(self, status: JournalStatus) -> None:
        for cb in list(self.on_status._callbacks):
            try:
                cb(status)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop the journal
                log.exception("%s: a journal status listener failed", self.path)

    # ---- writing ------------------------------------------------------------------------------
    def _drop_torn_tail(self) -> None:
        """Cut a torn or damaged tail off, or records appended after it would be unreachable."""
        data, spans = self._read()
        valid = spans[-1][0] + spans[-1][1] if spans else 0
        if len(data) > valid:
            os.truncate(self.path, valid)

    def _write_file(self, data: bytes) -> None:
        """Append ``data`` and fsync; on failure the file is cut back to what it was."""
        if not self._checked:
            self._drop_torn_tail()
            self._checked = True
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), 0o644)
        try:
            start = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view[:_CHUNK])
                    view = view[written:]
                if self.fsync:
                    os.fsync(fd)
            except BaseException:
                try:  # leave no partial record behind for the next append to follow
                    os.ftruncate(fd, start)
                except OSError:
                    self._checked = False  # the next append cuts the tail instead
                raise
        finally:
            os.close(fd)

    def _encoded(self, item: bytes | Callable[[], bytes]) -> bytes:
        if isinstance(item, bytes):
            return item
        try:
            return item()
        except Exception:  # noqa: BLE001 - a bad edit object must not jam the queue behind it
            log.exception("%s: an edit could not be encoded for the journal; it is not journalled", self.path)
            return b""

    def _write_pending(self) -> None:
        """Write what is queued (one write, one fsync), in order. Raises OSError when refused
        (then everything stays queued)."""
        with self._io:
            with self._cond:
                batch = list(self._queue)
                if not batch:
                    return
                self._begun += 1
                attempt = self._begun
            blobs = [self._encoded(item) for _seq, item in batch]
            with self._cond:  # encoded once: a retry writes the same bytes
                self._queue[:len(batch)] = list(zip((s for s, _ in batch), blobs))
            try:
                self._write_file(b"".join(blobs))
            except OSError as exc:
                self._refused(exc, attempt)
                raise
            with self._cond:
                del self._queue[:len(batch)]
                self._session.extend((s, b) for (s, _), b in zip(batch, blobs) if b)
                self._durable = batch[-1][0]
                self._attempts += 1
                self._answered = attempt
                recovered = bool(self._reason)
                self._reason, self._failing_since = "", None
                status = self._status_locked()
            if recovered:  # listeners hear it before flush() returns
                log.warning("%s: the edit journal works again", self.path)
                self._emit(status)
            with self._cond:
                self._cond.notify_all()

    def _refused(self, exc: OSError, attempt: int) -> None:
        reason = f"{self.path}: cannot write the edit journal: {exc.strerror or exc}"
        with self._cond:
            changed = reason != self._reason
            self._reason = reason
            if self._failing_since is None:
                self._failing_since = time.time()
            self._attempts += 1
            self._answered = attempt
            status = self._status_locked()
        if changed:  # listeners hear it before flush() returns
            log.warning("%s (the edits are kept in memory and written when the disk takes them)", reason)
            self._emit(status)
        with self._cond:
            self._cond.notify_all()

    def _ensure_thread(self) -> None:  # with self._cond held
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"journal {self.path.name}", daemon=True)
            _active.add(self)
            self._thread.start()

    def _run(self) -> None:
        delay = _RETRY_MIN_S
        while True:
            with self._cond:
                if not self._queue and not self._closing:
                    self._cond.wait_for(lambda: self._queue or self._closing, _IDLE_S)
                if not self._queue:
                    self._thread = None
                    self._cond.notify_all()
                    return
                asked = self._asked
            try:
                self._write_pending()
            except OSError:
                with self._cond:
                    if self._closing:  # close() does not wait on a disk that refuses
                        self._thread = None
                        self._cond.notify_all()
                        return
                    # a new edit, flush() or close() (even one made during the attempt) retries at once
                    self._cond.wait_for(lambda: self._asked != asked or self._closing, delay)
                delay = min(2 * delay, _RETRY_MAX_S)
            else:
                delay = _RETRY_MIN_S

    def record(self, edit: Any) -> None:
        """Queue a :class:`core.labels.Edit` (the ``on_commit`` listener); returns at once. The
        writer thread compresses (if the edit has not yet) and writes it; a disk that refuses
        does not make the edit fail: see :attr:`status`."""
        seq = int(edit.revision)

        def encode(e: Any = edit) -> bytes:
            return encode_record(e.revision, e.shape, tuple(e.region), None, e.label, e.kind, packed=e.after_packed())

        with self._cond:
            if self._cleared_upto is not None and seq <= self._cleared_upto:
                return  # already in the saved mask
            self._queue.append((seq, encode))
            self._closing = False
            self._asked += 1
            self._ensure_thread()
            self._cond.notify_all()

    def append(self, seq: int, shape: tuple[int, int], region: tuple[int, int, int, int], content: np.ndarray | None,
               label: int = -1, kind: str = "stroke", packed: bytes | None = None) -> None:
        """Write one record now, on this thread, after anything queued (same order). Raises
        OSError when the disk refuses (the file is then cut back and the record dropped)."""
        record = encode_record(seq, shape, region, content, label, kind, packed)
        with self._cond:
            if self._cleared_upto is not None and seq <= self._cleared_upto:
                return
            self._queue.append((seq, record))
        try:
            self._write_pending()
        except OSError:
            with self._cond:
                for i in range(len(self._queue) - 1, -1, -1):
                    if self._queue[i][1] is record:
                        del self._queue[i]
                        break
            raise

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued edit is on disk: True; False when the disk refused the next
        attempt (which this starts at once) or ``timeout`` passed. Never waits on a refusing disk."""
        with self._cond:
            if not self._queue:
                return True
            # an attempt already under way may have read the disk's old answer: wait for a new one
            start = self._begun
            self._asked += 1
            self._ensure_thread()
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._queue or (self._reason and self._answered > start), timeout)
            return not self._queue

    def close(self, timeout: float | None = 5.0) -> bool:
        """Write what is queued (waiting at most ``timeout``) and stop the writer thread; True
        when nothing is left unwritten. A later edit starts it again."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._cond:
            self._closing = False
            left = len(self._queue)
        if left:
            log.warning("%s: %d edit(s) could not be journalled before closing", self.path, left)
        return not left

    def attach(self, label_mask: Any) -> None:
        """Journal every completed edit of a :class:`core.labels.LabelMask`."""
        label_mask.on_commit.connect(self.record)

    def detach(self, label_mask: Any) -> None:
        try:
            label_mask.on_commit.disconnect(self.record)
        except ValueError:
            pass

    def clear(self, saved_revision: int | None = None) -> None:
        """Forget what the saved mask holds.

        ``saved_revision``: the revision of the content that was saved; this session's records
        after it (edits made while the save ran, written or still queued) are kept, everything
        else goes. None: remove all. A disk that refuses the rewrite leaves the file as it was
        (replaying it onto the saved mask still gives the right result)."""
        with self._io:
            with self._cond:
                self._cleared_upto = saved_revision
                if saved_revision is None:
                    self._queue.clear()
                else:
                    self._queue[:] = [q for q in self._queue if q[0] > saved_revision]
                keep = [] if saved_revision is None else [(s, r) for s, r in self._session if s > saved_revision]
            try:
                if keep:
                    from core.atomic import atomic_write_bytes

                    atomic_write_bytes(self.path, b"".join(r for _, r in keep))
                else:
                    try:
                        os.unlink(self.path)
                    except FileNotFoundError:
                        pass
            except OSError as exc:
                log.warning("%s: could not trim the journal after a save (%s); it is kept as it is, which is "
                            "harmless", self.path, exc.strerror or exc)
            else:
                self._session = keep
                self._checked = True
            with self._cond:
                recovered = bool(self._reason) and not self._queue
                if recovered:  # nothing is left unprotected
                    self._reason, self._failing_since = "", None
                status = self._status_locked()
                self._cond.notify_all()
        if recovered:
            self._emit(status)


_active: "weakref.WeakSet[StrokeJournal]" = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """The writer threads are daemons: write what they still hold before the interpreter goes."""
    for journal in list(_active):
        try:
            journal.close(timeout=5.0)
        except Exception:  # noqa: BLE001 - exiting
            pass


__all__ = ["StrokeJournal", "JournalRecord", "JournalStatus", "journal_path", "set_aside", "encode_record", "scan",
           "MAGIC", "MAX_RECORD"]
