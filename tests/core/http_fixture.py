"""A real HTTP server on 127.0.0.1 (http.server in a thread) for the download tests.

Each route serves bytes and can misbehave on purpose: drop the connection part-way (a given
number of times), answer an error status (a given number of times, or always), ignore Range
requests, change its ETag (a new version of the file), or hold its answer part-way until
released (so that a test can click Cancel while a download is surely under way). The download
tests in core and the model zoo dialog's tests in the app share it. Every request is logged with its
Range / If-Range headers so the tests can check what the client asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator


@dataclass
class Route:
    data: bytes
    etag: str = '"v1"'
    ranges: bool = True  # honour Range requests
    drop_after: int | None = None  # bytes of the body sent before the connection is dropped ...
    drops: int = 0  # ... on this many requests
    status: int | None = None  # answer this error status ...
    failures: int = -1  # ... on this many requests (-1: always)
    hold_after: int | None = None  # bytes of the file sent before waiting for ``release`` (a download surely
    release: threading.Event = field(default_factory=threading.Event)  # under way, e.g. for a Cancel click)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Server:
    url: str
    routes: dict[str, Route] = field(default_factory=dict)
    log: list[tuple[str, str | None, str | None]] = field(default_factory=list)

    def add(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.url + path

    def requests(self, path: str) -> list[tuple[str | None, str | None]]:
        return [(r, ir) for p, r, ir in self.log if p == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        state: Server = self.server.state  # type: ignore[attr-defined]
        state.log.append((self.path, self.headers.get("Range"), self.headers.get("If-Range")))
        route = state.routes.get(self.path)
        if route is None:
            return self._error(404, "Not Found")
        if route.status is not None and route.failures != 0:
            if route.failures > 0:
                route.failures -= 1
            return self._error(route.status, "Simulated failure")
        data, start = route.data, 0
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if wanted and route.ranges and (if_range is None or if_range == route.etag):
            m = re.fullmatch(r"bytes=(\d+)-", wanted)
            start = int(m.group(1)) if m else 0
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", route.etag)
        self.send_header("Accept-Ranges", "bytes" if route.ranges else "none")
        self.end_headers()
        if route.drop_after is not None and route.drops > 0:
            route.drops -= 1
            self.wfile.write(body[:route.drop_after])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        try:
            if route.hold_after is not None and start < route.hold_after:
                first = route.hold_after - start
                self.wfile.write(body[:first])
                self.wfile.flush()
                route.release.wait(30)
                body = body[first:]
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a cancelled download)
            pass

    def _error(self, code: int, reason: str) -> None:
        body = f"{code} {reason}\n".encode()
        self.send_response(code, reason)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def start_server() -> tuple[Server, ThreadingHTTPServer, threading.Thread]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    state = Server(f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return state, httpd, thread


@contextlib.contextmanager
def serving() -> Iterator[Server]:
    """A running server for a ``with`` block (a test's fixture); shut down after it, holds released."""
    state, httpd, thread = start_server()
    try:
        yield state
    finally:
        for route in state.routes.values():
            route.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def refused_url(path: str = "/file.bin") -> str:
    """A URL on 127.0.0.1 where nothing listens: the connection is refused, as offline."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}{path}"
