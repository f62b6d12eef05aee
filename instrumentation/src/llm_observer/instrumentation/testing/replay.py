"""A real local HTTP server that replays recorded provider responses, for tests and benchmarks.

Usage::

    routes = [Route("POST", "/v1/chat/completions", json={...})]
    with ReplayServer(routes) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="test")
        client.chat.completions.create(...)
        assert server.requests[0].body["model"] == "gpt-4o-mini"

Contract:

- The server is a :class:`http.server.ThreadingHTTPServer` bound to ``127.0.0.1`` on a free port (or
  ``port=`` when a test needs a well-known one), serving in
  a daemon thread between ``start()``/``__enter__`` and ``stop()``/``__exit__``. ``url`` is
  ``http://127.0.0.1:<port>`` (no trailing slash). HTTP/1.1 with keep-alive, so SDK connection pools behave
  as they do against real providers.
- Routes are tried in the order given; the first whose method and path match and that is not used up
  answers. ``path`` is matched against the request path without its query string; a path ending in ``*``
  matches by prefix. A route with ``repeat=False`` answers once and is then skipped, so queueing
  ``Route(..., status=429, repeat=False)`` before a ``200`` route replays "rate limited, then fine".
  Requests no route matches get ``404`` with a JSON error body.
- A route answers with exactly one of: ``sse`` (server-sent events: each string is one raw event such as
  ``"data: {...}"`` or ``"event: x\\ndata: {...}"``, sent as its own HTTP chunk followed by a blank line),
  ``chunks`` (raw byte chunks sent as HTTP chunks, for NDJSON or AWS event streams), ``json`` (serialised
  with ``Content-Length``) or ``body`` (raw bytes). Streaming answers use chunked transfer encoding.
- Every request is recorded in ``requests`` (in arrival order, thread-safe append) as a
  :class:`RecordedRequest` with the method, path, query, lower-cased headers, raw body and ``body`` parsed
  as JSON when it is JSON (else the raw bytes).
- :func:`load_recording` reads a recording file (``tests/instrumentation/recordings/*.json``): an object
  with a ``routes`` list whose items have the :class:`Route` field names; ``chunks`` may be given as
  strings (UTF-8) or as ``chunks_b64``, ``body`` as a string or ``body_b64``.
"""

from __future__ import annotations

import base64
import json as jsonlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

__all__ = ["RecordedRequest", "ReplayServer", "Route", "load_recording"]


@dataclass(frozen=True, slots=True)
class Route:
    """One canned answer: see the module docstring for matching and body rules."""

    method: str
    path: str
    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    sse: Sequence[str] | None = None
    chunks: Sequence[bytes] | None = None
    repeat: bool = True

    def matches(self, method: str, path: str) -> bool:
        """Whether this route answers ``method`` on ``path`` (path without query)."""
        if method != self.method.upper():
            return False
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return path == self.path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Route:
        """Build a route from one item of a recording file's ``routes`` list."""
        chunks: list[bytes] | None = None
        if "chunks_b64" in data:
            chunks = [base64.b64decode(item) for item in data["chunks_b64"]]
        elif data.get("chunks") is not None:
            chunks = [item.encode() if isinstance(item, str) else bytes(item) for item in data["chunks"]]
        body = data.get("body", b"")
        if "body_b64" in data:
            body = base64.b64decode(data["body_b64"])
        elif isinstance(body, str):
            body = body.encode()
        return cls(
            method=str(data["method"]),
            path=str(data["path"]),
            status=int(data.get("status", 200)),
            json=data.get("json"),
            body=body,
            headers=dict(data.get("headers", {})),
            sse=list(data["sse"]) if data.get("sse") is not None else None,
            chunks=chunks,
            repeat=bool(data.get("repeat", True)),
        )


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    raw: bytes
    body: Any


def load_recording(path: str | Path) -> list[Route]:
    """Read a recording file (see the module docstring) into routes."""
    data = jsonlib.loads(Path(path).read_text(encoding="utf-8"))
    return [Route.from_dict(item) for item in data["routes"]]


class ReplayServer:
    """A local HTTP server replaying :class:`Route` answers; a context manager (see module docstring)."""

    def __init__(self, routes: Iterable[Route] = (), port: int = 0) -> None:
        self._port = port
        self._routes: list[Route] = list(routes)
        self._used: set[int] = set()
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` of the running server."""
        if self._server is None:
            raise RuntimeError("ReplayServer is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        """The port the running server listens on."""
        if self._server is None:
            raise RuntimeError("ReplayServer is not running")
        return int(self._server.server_address[1])

    def add(self, *routes: Route) -> None:
        """Append routes (tried after the existing ones)."""
        with self._lock:
            self._routes.extend(routes)

    def set_routes(self, routes: Iterable[Route]) -> None:
        """Replace all routes and forget which one-shot routes were used."""
        with self._lock:
            self._routes = list(routes)
            self._used.clear()

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self.requests.clear()

    def start(self) -> None:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        if self._server is not None:
            return
        server = _QuietServer(("127.0.0.1", self._port), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        # A short poll interval keeps stop() fast (shutdown waits for the serving loop to look).
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="replay-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _record(self, request: RecordedRequest) -> Route | None:
        with self._lock:
            self.requests.append(request)
            for index, route in enumerate(self._routes):
                if index in self._used or not route.matches(request.method, request.path):
                    continue
                if not route.repeat:
                    self._used.add(index)
                return route
        return None


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hang up mid-stream on purpose (streams cut short); that is not a server error.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _make_handler(replay: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive response.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            # The test output should not carry a line per request.
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not length and self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                raw = self._read_chunked()
            parts = urlsplit(self.path)
            headers = {key.lower(): value for key, value in self.headers.items()}
            body: Any = raw
            if raw:
                try:
                    body = jsonlib.loads(raw)
                except ValueError:
                    body = raw
            route = replay._record(RecordedRequest(self.command, parts.path, parts.query, headers, raw, body))
            if route is None:
                self._send_json(404, {"error": {"message": f"no route for {self.command} {parts.path}"}}, {})
            elif route.sse is not None:
                events = [(event + "\n\n").encode() for event in route.sse]
                self._send_chunked(route, "text/event-stream", events)
            elif route.chunks is not None:
                self._send_chunked(route, "application/octet-stream", route.chunks)
            elif route.json is not None:
                self._send_json(route.status, route.json, route.headers)
            else:
                self._send_bytes(route.status, route.body, route.headers, "application/octet-stream")

        def _read_chunked(self) -> bytes:
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()

        def _send_json(self, status: int, payload: Any, headers: Mapping[str, str]) -> None:
            self._send_bytes(status, jsonlib.dumps(payload).encode(), headers, "application/json")

        def _send_bytes(
            self, status: int, data: bytes, headers: Mapping[str, str], content_type: str
        ) -> None:
            self.send_response(status)
            self._send_headers(headers, content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_chunked(self, route: Route, content_type: str, chunks: Iterable[bytes]) -> None:
            self.send_response(route.status)
            self._send_headers(route.headers, content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for chunk in chunks:
                    if chunk:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                # The client stopped reading early (a stream cut short): nothing left to answer.
                self.close_connection = True

        def _send_headers(self, headers: Mapping[str, str], content_type: str) -> None:
            lowered = {key.lower() for key in headers}
            if "content-type" not in lowered:
                self.send_header("Content-Type", content_type)
            for key, value in headers.items():
                self.send_header(key, value)

        do_GET = _serve
        do_POST = _serve
        do_PUT = _serve
        do_DELETE = _serve
        do_PATCH = _serve

    return _Handler
