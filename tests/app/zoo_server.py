"""A real HTTP server on 127.0.0.1 for the model zoo dialog's tests (http.server in a thread).

A route serves bytes, honours ``Range`` (resuming), and can hold its answer part-way: after
``hold_after`` bytes it waits until ``release`` is set, so that a test can click Cancel while a
download is surely under way. ``status`` answers an error instead. Every request is logged with
its Range header.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    data: bytes
    status: int | None = None  # answer this error instead
    hold_after: int | None = None  # bytes sent before waiting for ``release``
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Server:
    url: str
    routes: dict[str, Route] = field(default_factory=dict)
    log: list[tuple[str, str | None]] = field(default_factory=list)

    def add(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.url + path

    def requests(self, path: str) -> list[str | None]:
        return [r for p, r in self.log if p == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        state: Server = self.server.state  # type: ignore[attr-defined]
        state.log.append((self.path, self.headers.get("Range")))
        route = state.routes.get(self.path)
        if route is None or route.status is not None:
            code = 404 if route is None else route.status
            body = f"{code}\n".encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m:
            start = int(m.group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(route.data) - 1}/{len(route.data)}")
        else:
            self.send_response(200)
        body = route.data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        try:
            if route.hold_after is not None and start < route.hold_after:
                first = route.hold_after - start
                self.wfile.write(body[:first])
                self.wfile.flush()
                route.release.wait(30)
                body = body[first:]
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


def start_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    state = Server(f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return state, httpd, thread


def refused_url(path: str = "/model.safetensors") -> str:
    """A URL on 127.0.0.1 where nothing listens: refused, as offline."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}{path}"
