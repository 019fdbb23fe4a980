"""core.download against a real HTTP server on 127.0.0.1: good file, wrong file, dropped
connection and resume, server errors, no server (the offline message), cancel."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from core.download import DownloadError, download, part_path
from core.errors import Cancelled, StudioError
from core.generators import run_to_end
from http_fixture import Route, refused_url, serving

DATA = os.urandom(1_300_000)  # five 256 KiB chunks and a bit
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture()
def server():
    with serving() as state:
        yield state


def fetch(url, target, **kw):
    records = []
    kw.setdefault("backoff", 0)
    path = run_to_end(download(url, target, **kw), records.append)
    return path, records


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_good_file_arrives_whole_and_checked(server, tmp_path):
    url = server.add("/model.pth", Route(DATA))
    target = tmp_path / "cache" / "model.pth"
    path, records = fetch(url, target, sha256=SHA, size=len(DATA))
    assert path == target and target.read_bytes() == DATA
    assert leftovers(target.parent) == ["model.pth"]  # no .part, no resume record
    done = [r.done for r in records if r.stage == "download"]
    assert done == sorted(done) and done[-1] == len(DATA) and len(done) >= 5
    assert all(r.total in (None, len(DATA)) for r in records) and records[-1].total == len(DATA)
    assert [r.stage for r in records][-2:] == ["verify", "done"]
    assert server.requests("/model.pth") == [(None, None)]


def test_the_published_hash_prefix_is_enough(server, tmp_path):
    url = server.add("/m.pth", Route(DATA))
    path, _ = fetch(url, tmp_path / "m.pth", sha256=SHA[:8])
    assert path.read_bytes() == DATA


def test_a_wrong_file_is_refused_and_nothing_is_left(server, tmp_path):
    url = server.add("/m.pth", Route(DATA[:-1] + b"x"))
    target = tmp_path / "m.pth"
    with pytest.raises(DownloadError, match=r"not the published file.*published SHA-256 prefix is " + SHA[:8]):
        fetch(url, target, sha256=SHA[:8])
    assert leftovers(tmp_path) == []

    # the wrong size is refused before a byte is written
    url = server.add("/short.pth", Route(DATA[:1000]))
    with pytest.raises(DownloadError, match=f"sends 1000 bytes where the published file has {len(DATA)}"):
        fetch(url, target, size=len(DATA))
    assert not target.exists()

    # a file that fails the caller's own check (e.g. not the expected architecture)
    def refuse(p):
        assert p.read_bytes() == DATA  # the check sees the complete file
        raise StudioError(f"{p.name}: reads as a semseg checkpoint, not mmseg")

    url = server.add("/arch.pth", Route(DATA))
    with pytest.raises(DownloadError, match=r"arch\.pth.*not mmseg"):
        fetch(url, target, check=refuse)
    assert leftovers(tmp_path) == []


def test_a_dropped_connection_is_resumed_with_a_range_request(server, tmp_path):
    url = server.add("/m.pth", Route(DATA, drop_after=500_000, drops=1))
    path, records = fetch(url, tmp_path / "m.pth", sha256=SHA, retries=2)
    assert path.read_bytes() == DATA
    assert server.requests("/m.pth") == [(None, None), ("bytes=500000-", '"v1"')]
    assert {r.attempt for r in records} == {1, 2}
    assert [r.resumed_from for r in records if r.attempt == 2][0] == 500_000


def test_an_interrupted_download_keeps_its_part_and_the_next_call_resumes(server, tmp_path):
    route = Route(DATA, drop_after=700_000, drops=1)
    url = server.add("/m.pth", route)
    target = tmp_path / "m.pth"
    with pytest.raises(DownloadError) as info:
        fetch(url, target, sha256=SHA, retries=0)
    msg = str(info.value)
    assert "\n" not in msg and url in msg and "700000 of 1300000 bytes kept" in msg and "resumes" in msg
    assert not target.exists() and part_path(target).stat().st_size == 700_000

    path, records = fetch(url, target, sha256=SHA)  # the server is healthy again
    assert path.read_bytes() == DATA and leftovers(tmp_path) == ["m.pth"]
    assert server.requests("/m.pth")[-1] == ("bytes=700000-", '"v1"')
    assert records[0].done == 700_000


def test_a_changed_file_on_the_server_is_fetched_whole_not_spliced(server, tmp_path):
    route = Route(DATA, drop_after=400_000, drops=1)
    url = server.add("/m.pth", route)
    target = tmp_path / "m.pth"
    with pytest.raises(DownloadError):
        fetch(url, target, retries=0)
    new = os.urandom(900_000)
    route.data, route.etag = new, '"v2"'  # a new version: If-Range no longer matches, so a 200 comes back
    path, _ = fetch(url, target, sha256=hashlib.sha256(new).hexdigest())
    assert path.read_bytes() == new
    assert server.requests("/m.pth")[-1] == ("bytes=400000-", '"v1"')


def test_a_server_that_ignores_ranges_is_restarted_from_zero(server, tmp_path):
    route = Route(DATA, drop_after=300_000, drops=1, ranges=False)
    url = server.add("/m.pth", route)
    path, _ = fetch(url, tmp_path / "m.pth", sha256=SHA, retries=1)
    assert path.read_bytes() == DATA


def test_server_errors(server, tmp_path):
    target = tmp_path / "m.pth"
    url = server.add("/busy.pth", Route(DATA, status=500, failures=1))  # one 500, then fine: retried
    path, _ = fetch(url, target, sha256=SHA, retries=2)
    assert path.read_bytes() == DATA and len(server.requests("/busy.pth")) == 2
    target.unlink()

    url = server.add("/down.pth", Route(DATA, status=500))
    with pytest.raises(DownloadError, match=r"answered 500 .*Without internet") as info:
        fetch(url, target, retries=2)
    assert "\n" not in str(info.value) and len(server.requests("/down.pth")) == 3
    assert leftovers(tmp_path) == []

    url = server.url + "/missing.pth"
    with pytest.raises(DownloadError, match="answered 404 Not Found"):
        fetch(url, target, retries=3)
    assert len(server.requests("/missing.pth")) == 1  # a 404 is not retried
    assert leftovers(tmp_path) == []


def test_no_server_gives_the_offline_message_in_one_line(tmp_path):
    url = refused_url()
    target = tmp_path / "cache" / "m.pth"
    with pytest.raises(DownloadError) as info:
        fetch(url, target, retries=3, backoff=30)  # a refused connection is not retried (no 30 s waits)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"could not download {url} (connection refused)" in msg
    assert f"put it at {target}" in msg
    assert not target.exists() and not part_path(target).exists()

    with pytest.raises(DownloadError, match="by hand: see"):
        fetch(url, target, hint="by hand: see the README")


def test_cancel_keeps_the_part_for_a_later_resume(server, tmp_path):
    url = server.add("/m.pth", Route(DATA))
    target = tmp_path / "m.pth"
    flag = threading.Event()
    steps = download(url, target, sha256=SHA, cancel=flag)
    seen = 0
    with pytest.raises(Cancelled):
        for p in steps:
            if p.done > 0:
                seen = p.done
                flag.set()
    assert 0 < seen < len(DATA) and not target.exists()
    assert part_path(target).stat().st_size == seen
    path, _ = fetch(url, target, sha256=SHA)
    assert path.read_bytes() == DATA and server.requests("/m.pth")[-1][0] == f"bytes={seen}-"


def test_a_complete_part_is_checked_without_downloading_again(server, tmp_path):
    url = server.add("/m.pth", Route(DATA))
    target = tmp_path / "m.pth"
    flag = threading.Event()
    with pytest.raises(Cancelled):  # cancelled after the last byte, before the check
        for p in download(url, target, sha256=SHA, cancel=flag):
            if p.done == len(DATA):
                flag.set()
    assert part_path(target).stat().st_size == len(DATA) and not target.exists()
    path, _ = fetch(url, target, sha256=SHA)
    assert path.read_bytes() == DATA and len(server.requests("/m.pth")) == 1  # checked, not fetched again
