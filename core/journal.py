"""A per-mask crash journal: one fsynced record per completed edit, replayed after a crash.

The journal sits next to the mask (``masks/.<stem>.journal``) and is cleared once the mask has
been saved. Each record holds the new content of the box an edit changed (zlib-compressed)::

    header  b"PSJ1" | payload length (u32 LE) | CRC32 of the payload (u32 LE)
    payload seq (u64) H W y0 y1 x0 x1 (u32) label (i32) kind (u8) | zlib(box content)

Records hold absolute content, not differences, so replaying them in order onto the saved mask
gives the edited mask, and replaying onto a mask that already holds some of them is harmless.
A record cut short by a crash (or damaged) ends the replay: everything before it is applied,
the rest is ignored and :attr:`StrokeJournal.note` says so. At most the edit being written when
the process died is lost.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from core.errors import MaskError

log = logging.getLogger(__name__)

MAGIC = b"PSJ1"
_HEAD = struct.Struct("<4sII")
_META = struct.Struct("<QIIIIIIiB")
_KINDS = ("stroke", "fill", "polygon", "accept", "assign", "undo", "redo", "recover")
_CHUNK = 1 << 20  # bytes per os.write call
MAX_RECORD = 1 << 31  # a length field above this is damage, not a record


@dataclass(frozen=True)
class JournalRecord:
    seq: int
    shape: tuple[int, int]
    region: tuple[int, int, int, int]  # y0, y1, x0, x1
    content: np.ndarray
    label: int
    kind: str


def journal_path(mask_path: str | Path) -> Path:
    """Where the journal of a mask file lives: ``.<stem>.journal`` in the same folder."""
    mask_path = Path(mask_path)
    return mask_path.with_name(f".{mask_path.stem}.journal")


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


def _decode_payload(payload: bytes) -> JournalRecord:
    seq, h, w, y0, y1, x0, x1, label, code = _META.unpack_from(payload)
    if not (0 <= y0 <= y1 <= h and 0 <= x0 <= x1 <= w):
        raise ValueError(f"region {(y0, y1, x0, x1)} outside a {h}x{w} mask")
    raw = zlib.decompress(payload[_META.size:])
    if len(raw) != (y1 - y0) * (x1 - x0):
        raise ValueError("content size does not match its region")
    content = np.frombuffer(raw, np.uint8).reshape(y1 - y0, x1 - x0)
    kind = _KINDS[code] if code < len(_KINDS) else "unknown"
    return JournalRecord(seq, (h, w), (y0, y1, x0, x1), content, label, kind)


def scan(data: bytes) -> tuple[list[tuple[int, int]], str]:
    """(offset, length) of each complete, intact record, and a note on what follows them ("" if
    nothing does)."""
    spans: list[tuple[int, int]] = []
    pos, n = 0, len(data)
    while pos < n:
        if n - pos < _HEAD.size:
            return spans, f"a torn record header ({n - pos} bytes) at the end"
        magic, length, crc = _HEAD.unpack_from(data, pos)
        if magic != MAGIC or length < _META.size or length > MAX_RECORD:
            return spans, f"{n - pos} bytes of damaged data at offset {pos}"
        end = pos + _HEAD.size + length
        if end > n:
            return spans, f"a torn record at offset {pos} ({n - pos} of {_HEAD.size + length} bytes written)"
        if zlib.crc32(data[pos + _HEAD.size:end]) != crc:
            return spans, f"a record with a bad checksum at offset {pos} (and {n - end} bytes after it)"
        spans.append((pos, end - pos))
        pos = end
    return spans, ""


class StrokeJournal:
    """Append-only journal of one mask's edits (see the module docstring)."""

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.note = ""  # what the last read found after the complete records, "" when clean
        self.error = ""  # the last failed append through record(), "" after a good one
        self._checked = False  # whether a torn tail from an earlier session was cut off
        self._lock = threading.Lock()
        self._session: list[tuple[int, bytes]] = []  # (seq, record) appended by this object
        self._cleared_upto: int | None = None

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
            log.warning("%s (%d complete records kept)", self.note, len(spans))
        return data, spans

    def records(self) -> Iterator[JournalRecord]:
        """The complete records in order (a torn or damaged tail is skipped, see :attr:`note`)."""
        data, spans = self._read()
        for i, (off, length) in enumerate(spans):
            try:
                yield _decode_payload(data[off + _HEAD.size:off + length])
            except (ValueError, zlib.error, struct.error) as exc:  # intact CRC but nonsense: stop here
                self.note = f"{self.path}: ignored record {i} and after: {exc}"
                log.warning("%s", self.note)
                return

    def __len__(self) -> int:
        return len(self._read()[1])

    def exists(self) -> bool:
        """Whether the journal holds at least one complete record."""
        try:
            if self.path.stat().st_size < _HEAD.size:
                return False
        except OSError:
            return False
        return len(self) > 0

    def replay(self, mask: np.ndarray) -> tuple[np.ndarray, int]:
        """Apply the complete records to a copy of ``mask``; returns (mask, number applied)."""
        out = np.array(mask, np.uint8, copy=True)
        n = 0
        for rec in self.records():
            if rec.shape != out.shape:
                raise MaskError(f"{self.path}: the journal is for a {rec.shape[1]}x{rec.shape[0]} mask, "
                                f"not {out.shape[1]}x{out.shape[0]}")
            y0, y1, x0, x1 = rec.region
            out[y0:y1, x0:x1] = rec.content
            n += 1
        return out, n

    # ---- writing ------------------------------------------------------------------------------
    def _drop_torn_tail(self) -> None:
        """Cut a torn or damaged tail off, or records appended after it would be unreachable."""
        data, spans = self._read()
        valid = spans[-1][0] + spans[-1][1] if spans else 0
        if len(data) > valid:
            os.truncate(self.path, valid)

    def append(self, seq: int, shape: tuple[int, int], region: tuple[int, int, int, int], content: np.ndarray | None,
               label: int = -1, kind: str = "stroke", packed: bytes | None = None) -> None:
        """Append one record and fsync it. Raises OSError when the disk refuses (the file is then
        cut back to what it was). The file is opened per record: no descriptor stays open."""
        record = encode_record(seq, shape, region, content, label, kind, packed)
        with self._lock:
            if self._cleared_upto is not None and seq <= self._cleared_upto:
                return  # already in the saved mask
            if not self._checked:
                self._drop_torn_tail()
                self._checked = True
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), 0o644)
            try:
                start = os.fstat(fd).st_size
                try:
                    view = memoryview(record)
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
            self._session.append((seq, record))

    def record(self, edit: Any) -> None:
        """Append a :class:`core.labels.Edit` (the ``on_commit`` listener).

        A disk that refuses the write must not make the edit itself fail: the error is kept in
        :attr:`error` (and logged) for the GUI to show, and the next edit tries again."""
        try:
            self.append(edit.revision, edit.shape, tuple(edit.region), None, edit.label, edit.kind,
                        packed=edit.after_packed())
        except OSError as exc:
            self.error = f"{self.path}: cannot journal the last edit: {exc.strerror or exc}"
            log.warning("%s", self.error)
        else:
            self.error = ""

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
        after it (edits made while the save ran) are kept, everything else goes. None: remove all.
        """
        with self._lock:
            keep = [] if saved_revision is None else [r for s, r in self._session if s > saved_revision]
            self._cleared_upto = saved_revision
            if keep:
                from core.atomic import atomic_write_bytes

                atomic_write_bytes(self.path, b"".join(keep))
            else:
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
            self._session = [(s, r) for s, r in self._session if saved_revision is not None and s > saved_revision]
