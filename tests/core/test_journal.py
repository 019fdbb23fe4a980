"""StrokeJournal: records replay exactly; a torn or damaged record is skipped with a note and the
intact records after it are kept; decompression is bounded by the record's box; set-asides never
overwrite each other; the writer thread keeps the disk off the editing thread, in order, and
reports a disk that refuses; a process killed (SIGKILL) loses only what was not yet on disk."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from core.errors import MaskError
from core.journal import MAGIC, StrokeJournal, encode_record, journal_path, scan, set_aside
from core.labels import LabelMask

ROOT = Path(__file__).resolve().parents[2]


def _edits(m: LabelMask, rng: np.random.Generator, n: int) -> None:
    h, w = m.shape
    for _ in range(n):
        if rng.random() < 0.7:
            a = rng.uniform(0, [h, w])
            m.paint_stroke([tuple(a), tuple(a + rng.normal(0, 8, 2))], int(rng.integers(0, 3)), radius=2)
        else:
            m.fill(int(rng.integers(h)), int(rng.integers(w)), int(rng.integers(0, 3)))


def test_journal_path_is_hidden_next_to_the_mask(tmp_path):
    assert journal_path(tmp_path / "masks" / "cat_01.png") == tmp_path / "masks" / ".cat_01.journal"


def test_attached_journal_replays_strokes_fills_undo_and_redo(tmp_path):
    rng = np.random.default_rng(1)
    start = rng.choice(np.array([0, 1, 255], np.uint8), size=(30, 40))
    m = LabelMask(start, 3)
    j = StrokeJournal(tmp_path / ".a.journal")
    j.attach(m)
    commits = []
    m.on_commit.connect(commits.append)
    _edits(m, rng, 12)
    m.undo()
    m.undo()
    m.redo()
    m.polygon([(0, 0), (0, 20), (20, 0)], 2)
    assert j.flush(10)
    replayed, n = StrokeJournal(j.path).replay(start)
    assert n == len(commits) == m.undo_count + 4  # the steps kept + 2 undos + 1 redo; the redo re-added one
    np.testing.assert_array_equal(replayed, m.data)
    kinds = [r.kind for r in StrokeJournal(j.path).records()]
    assert kinds[-4:] == ["undo", "undo", "redo", "polygon"]


def test_torn_tail_at_any_offset_keeps_the_complete_records(tmp_path):
    base = np.full((10, 10), 255, np.uint8)
    recs = [encode_record(i + 1, (10, 10), (i, i + 1, 0, 10), np.full((1, 10), i % 3, np.uint8)) for i in range(4)]
    full = b"".join(recs)
    path = tmp_path / ".m.journal"
    expected_3 = base.copy()
    for i in range(3):
        expected_3[i] = i % 3
    last_start = len(full) - len(recs[-1])
    for cut in range(last_start, len(full)):
        path.write_bytes(full[:cut])
        j = StrokeJournal(path)
        out, n = j.replay(base)
        assert n == 3, cut
        np.testing.assert_array_equal(out, expected_3)
        assert (j.note != "") == (cut > last_start)
    path.write_bytes(full)
    j = StrokeJournal(path)
    assert j.replay(base)[1] == 4 and j.note == ""


def test_a_damaged_record_is_skipped_and_the_intact_ones_after_it_are_kept(tmp_path):
    base = np.full((4, 4), 255, np.uint8)
    recs = [encode_record(i + 1, (4, 4), (i, i + 1, 0, 4), np.full((1, 4), 1, np.uint8)) for i in range(3)]
    path = tmp_path / ".m.journal"
    bad = bytearray(b"".join(recs))
    bad[len(recs[0]) + 20] ^= 0xFF  # flip a byte inside the second record's payload
    path.write_bytes(bytes(bad))
    j = StrokeJournal(path)
    out, n = j.replay(base)
    assert n == 2 and "bad checksum" in j.note and "records after it were kept" in j.note and str(path) in j.note
    assert (out[0] == 1).all() and (out[1] == 255).all() and (out[2] == 1).all()
    # the first record damaged: everything after it still comes back
    first = bytearray(b"".join(recs))
    first[13] ^= 0x01
    path.write_bytes(bytes(first))
    assert StrokeJournal(path).replay(base)[1] == 2
    # random bytes before, between and after the records
    rng = np.random.default_rng(0)
    junk = [rng.integers(0, 256, k, dtype=np.uint8).tobytes() for k in (37, 5, 300)]
    path.write_bytes(junk[0] + recs[0] + junk[1] + recs[1] + recs[2] + junk[2])
    j = StrokeJournal(path)
    out, n = j.replay(base)
    assert n == 3 and "damaged data" in j.note
    assert (out[:3] == 1).all() and (out[3] == 255).all()
    path.write_bytes(b"".join(recs) + b"garbage!" * 3)
    j = StrokeJournal(path)
    assert j.replay(base)[1] == 3 and "damaged data" in j.note
    # a record whose checksum holds but whose content is nonsense is skipped too
    nonsense = bytearray(encode_record(9, (4, 4), (3, 4, 0, 4), np.full((1, 4), 2, np.uint8)))
    payload = bytes(nonsense[12:-3]) + b"\x00\x00\x00"  # a broken zlib stream, CRC recomputed
    import struct
    import zlib as z

    nonsense = MAGIC + struct.pack("<II", len(payload), z.crc32(payload)) + payload
    path.write_bytes(recs[0] + nonsense + recs[2])
    j = StrokeJournal(path)
    assert j.replay(base)[1] == 2 and "record 1" in j.note


def test_decompression_is_bounded_by_the_records_own_box(tmp_path):
    """A zlib bomb (a tiny record inflating to 200 MB) fails at its box's size, fast and small."""
    import struct
    import tracemalloc
    import zlib as z

    bomb = z.compress(b"\x00" * (200 << 20), 9)  # ~200 kB
    meta = struct.Struct("<QIIIIIIiB")

    def forged(seq: int, shape, region) -> bytes:
        payload = meta.pack(seq, *shape, *region, 1, 0) + bomb
        return MAGIC + struct.pack("<II", len(payload), z.crc32(payload)) + payload

    good = encode_record(7, (100, 100), (0, 1, 0, 100), np.zeros((1, 100), np.uint8))
    path = tmp_path / ".m.journal"
    # 5 bombs of a 100x100 box, one claiming a 60000x60000 mask, one for a mask of another size
    path.write_bytes(b"".join(forged(i, (100, 100), (0, 100, 0, 100)) for i in range(5))
                     + forged(8, (60000, 60000), (0, 60000, 0, 60000)) + good)
    tracemalloc.start()
    try:
        j = StrokeJournal(path)
        out, n = j.replay(np.full((100, 100), 255, np.uint8))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == 1 and (out[0] == 0).all() and (out[1:] == 255).all()
    assert "content size does not match" in j.note
    assert peak < 8 << 20, f"replaying a 1 MB journal of zlib bombs allocated {peak / 1e6:.0f} MB"
    # a bomb for a mask of another size is refused before it is decompressed
    path.write_bytes(forged(1, (2000, 3000), (0, 2000, 0, 3000)))
    tracemalloc.start()
    try:
        with pytest.raises(MaskError, match="3000x2000 mask, not 100x100"):
            StrokeJournal(path).replay(np.zeros((100, 100), np.uint8))
        assert tracemalloc.get_traced_memory()[1] < 8 << 20
    finally:
        tracemalloc.stop()


def test_resyncing_a_crafted_file_gives_up_instead_of_running_for_ever(tmp_path):
    """Thousands of fake headers that each claim a record running to the end of the file: the
    search for intact records is bounded (a few times the file's size is checksummed)."""
    import struct

    meta = struct.Struct("<QIIIIIIiB").pack(1, 10, 10, 0, 1, 0, 1, 0, 0)
    n = 1 << 21
    fake = bytearray()
    while len(fake) < n - 64:
        fake += MAGIC + struct.pack("<II", n - len(fake) - 12, 0) + meta
    data = bytes(fake) + bytes(n - len(fake))
    spans, note = scan(data)
    assert spans == [] and "gave up" in note


def test_set_asides_never_overwrite_each_other(tmp_path):
    path = tmp_path / ".m.journal"
    kept = []
    for i in range(3):
        path.write_bytes(f"session {i}".encode())
        kept.append(set_aside(path))
        assert not path.exists()
    assert [p.name for p in kept] == [".m.journal.discarded", ".m.journal.discarded.2", ".m.journal.discarded.3"]
    assert [p.read_bytes() for p in kept] == [b"session 0", b"session 1", b"session 2"]
    path.write_bytes(b"damaged")
    copy = set_aside(path, "damaged", copy=True)
    assert copy.name == ".m.journal.damaged" and copy.read_bytes() == b"damaged" and path.read_bytes() == b"damaged"
    assert set_aside(tmp_path / "missing") is None


def test_replay_refuses_a_journal_of_another_size(tmp_path):
    path = tmp_path / ".m.journal"
    path.write_bytes(encode_record(1, (5, 6), (0, 1, 0, 1), np.zeros((1, 1), np.uint8)))
    with pytest.raises(MaskError, match="6x5 mask, not 4x4"):
        StrokeJournal(path).replay(np.zeros((4, 4), np.uint8))


def test_appending_after_a_torn_tail_drops_the_tail_first(tmp_path):
    path = tmp_path / ".m.journal"
    good = encode_record(1, (3, 3), (0, 1, 0, 3), np.zeros((1, 3), np.uint8))
    torn = encode_record(2, (3, 3), (1, 2, 0, 3), np.ones((1, 3), np.uint8))[:-5]
    path.write_bytes(good + torn)
    j = StrokeJournal(path)
    j.append(3, (3, 3), (2, 3, 0, 3), np.full((1, 3), 2, np.uint8))
    out, n = StrokeJournal(path).replay(np.full((3, 3), 255, np.uint8))
    assert n == 2
    np.testing.assert_array_equal(out, [[0, 0, 0], [255, 255, 255], [2, 2, 2]])


def test_clear_keeps_only_edits_made_after_the_saved_revision(tmp_path):
    m = LabelMask.empty((8, 8), 2)
    j = StrokeJournal(tmp_path / ".m.journal")
    j.attach(m)
    m.paint((1, 1), 0, radius=0)
    data, rev = m.snapshot()  # an autosave takes its snapshot ...
    m.paint((5, 5), 1, radius=0)  # ... the user paints on while it writes
    assert j.flush(10)
    j.clear(rev)
    recs = list(StrokeJournal(j.path).records())
    assert [r.region for r in recs] == [(5, 6, 5, 6)]
    out, _n = StrokeJournal(j.path).replay(data)
    np.testing.assert_array_equal(out, m.data)
    j.record(type("Late", (), {"revision": rev, "shape": (8, 8), "region": (0, 1, 0, 1), "label": 0,
                               "kind": "stroke", "after_packed": lambda self: b""})())
    assert len(StrokeJournal(j.path)) == 1  # a record the saved mask already holds is not added
    j.clear()
    assert not j.path.exists() and not StrokeJournal(j.path).exists()
    m.paint((2, 2), 1, radius=0)  # journalling goes on after a clear
    assert j.flush(10)
    assert len(StrokeJournal(j.path)) == 1


def test_a_full_disk_leaves_no_partial_record_is_reported_and_retried(tmp_path, monkeypatch):
    m = LabelMask.empty((20, 20), 2)
    j = StrokeJournal(tmp_path / ".m.journal")
    j.attach(m)
    seen = []
    j.on_status.connect(seen.append)
    m.paint((3, 3), 1, radius=2)
    assert j.flush(10) and j.status.protected
    size = j.path.stat().st_size
    real_write = os.write

    def full_disk(fd, data):
        real_write(fd, bytes(data)[:7])  # part of the record reaches the file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    m.paint((10, 10), 1, radius=2)  # the edit itself succeeds
    assert m.pick(10, 10) == 1
    assert not j.flush(10)  # it does not wait on a disk that refuses
    status = j.status
    assert not status.ok and status.pending == 1 and "No space left" in status.reason and str(j.path) in status.reason
    assert "No space left" in j.error and status.failing_since is not None
    assert [s.ok for s in seen] == [False] and seen[0].reason == status.reason  # told once, not per retry
    with pytest.raises(OSError):
        j.append(99, (20, 20), (0, 1, 0, 1), np.zeros((1, 1), np.uint8))
    assert j.status.pending == 1  # the record that append() could not write is not kept
    assert j.path.stat().st_size == size  # the partial bytes were cut off again
    monkeypatch.setattr(os, "write", real_write)
    m.paint((15, 15), 0, radius=1)  # the next edit retries at once
    assert j.flush(10)
    assert j.error == "" and j.status.protected and [s.ok for s in seen] == [False, True]
    # the edit made while the disk was full was kept in memory and written once it could be
    assert [r.seq for r in StrokeJournal(j.path).records()] == [1, 2, 3]
    np.testing.assert_array_equal(StrokeJournal(j.path).replay(np.full((20, 20), 255, np.uint8))[0], m.data)


def test_edits_are_written_by_the_writer_thread_in_order_and_never_on_the_callers(tmp_path, monkeypatch):
    """The editing thread never waits for the disk: while fsync hangs, edits go on being made
    (queued, reported as pending); once it returns they are all written in order."""
    import threading

    m = LabelMask.empty((64, 64), 3)
    j = StrokeJournal(tmp_path / ".m.journal")
    j.attach(m)
    gate, entered = threading.Event(), threading.Event()
    real_fsync = os.fsync
    callers = []

    def slow_fsync(fd):
        callers.append(threading.current_thread().name)
        entered.set()
        gate.wait(30)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    commits = []
    m.on_commit.connect(commits.append)
    m.paint((3, 3), 1)
    assert entered.wait(10)  # the writer is stuck in fsync ...
    for i in range(30):  # ... and the edits go on
        m.paint((i + 5, 2 * i), i % 3, radius=2)
    assert len(commits) == 31 and j.status.pending == 31 and j.status.durable is None
    gate.set()
    assert j.flush(30)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert threading.current_thread().name not in callers and all(c.startswith("journal") for c in callers)
    assert len(callers) < 31  # written in batches: one fsync for many edits
    assert j.status.durable == m.revision and j.status.pending == 0
    out, n = StrokeJournal(j.path).replay(np.full((64, 64), 255, np.uint8))
    assert n == 31
    np.testing.assert_array_equal(out, m.data)
    assert j.close(10) and j.status.protected


_CHILD = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from core.journal import StrokeJournal
    from core.labels import LabelMask

    path, mode = sys.argv[1], sys.argv[2]
    m = LabelMask.empty((600, 800), 5)
    j = StrokeJournal(path)
    j.attach(m)
    rng = np.random.default_rng(7)
    for i in range(10_000):
        if mode == "stall" and i == 5:
            j.flush()  # strokes 0..4 on disk
            real = os.write
            def stalled(fd, data):  # write part of the big record, then hang until killed
                real(fd, bytes(data)[:len(data) // 2])
                sys.stdout.write("stalled\\n")
                sys.stdout.flush()
                time.sleep(60)
            os.write = stalled
            m.accept_prediction(rng.integers(0, 5, (600, 800)).astype(np.uint8))  # a ~480 kB record
        a = rng.uniform(0, (600, 800))
        m.paint_stroke([tuple(a), tuple(a + 20)], int(rng.integers(0, 5)), radius=4)
        if mode == "run" and i % 7 == 6:
            assert j.flush(30)
            print("flushed", i + 1, flush=True)
        sys.stdout.write(f"done {i} {j.status.durable or 0}\\n")
        sys.stdout.flush()
""")


def _expected_after(n: int) -> np.ndarray:
    """The mask after the child's first n strokes (same random sequence)."""
    rng = np.random.default_rng(7)
    m = LabelMask.empty((600, 800), 5)
    for _i in range(n):
        a = rng.uniform(0, (600, 800))
        m.paint_stroke([tuple(a), tuple(a + 20)], int(rng.integers(0, 5)), radius=4)
    return m.data.copy()


def _run_child(tmp_path: Path, mode: str, wait_for: str, count: int) -> list[str]:
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / ".m.journal"), mode],
                            stdout=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.startswith(wait_for) and sum(x.startswith(wait_for) for x in lines) >= count:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        lines += [x.strip() for x in proc.stdout.read().splitlines()]  # what it printed before it died
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return lines


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_loses_nothing_that_was_on_disk_and_keeps_the_order(tmp_path):
    """The child paints and prints, after each stroke, the revision its journal had on disk then
    (and, every 7 strokes, waits for it). Killed at any point, the journal replays to exactly the
    first n strokes (in order, nothing skipped), with n at least every stroke known to be on disk."""
    lines = _run_child(tmp_path, "run", "done", 40)
    done = [x.split() for x in lines if x.startswith("done")]
    made = len(done)
    durable = max(int(x[2]) for x in done)
    flushed = max((int(x.split()[1]) for x in lines if x.startswith("flushed")), default=0)
    j = StrokeJournal(tmp_path / ".m.journal")
    out, n = j.replay(np.full((600, 800), 255, np.uint8))
    assert flushed >= 35 and n >= max(durable, flushed)
    assert n <= made + 1  # at most the stroke being made when killed is extra (made, not yet printed)
    np.testing.assert_array_equal(out, _expected_after(n))


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_in_the_middle_of_a_large_record(tmp_path):
    lines = _run_child(tmp_path, "stall", "stalled", 1)
    assert "stalled" in lines and sum(x.startswith("done") for x in lines) >= 5
    path = tmp_path / ".m.journal"
    spans, note = scan(path.read_bytes())
    assert len(spans) == 5 and "torn record" in note  # half of the big record is on disk
    j = StrokeJournal(path)
    out, n = j.replay(np.full((600, 800), 255, np.uint8))
    assert n == 5 and "torn record" in j.note
    np.testing.assert_array_equal(out, _expected_after(5))
    # the next session appends after dropping the torn half
    j.append(100, (600, 800), (0, 1, 0, 1), np.zeros((1, 1), np.uint8))
    assert StrokeJournal(path).replay(out)[1] == 6
