"""The one way every component listens: an ASGI app under uvicorn, or a ``grpc.aio`` server, in the running
event loop. A port that cannot be bound is a ``ConfigError`` naming the config key, never a dead process;
``check_listeners`` finds every such port before anything starts (``PortsUnavailable``).

The ASGI servers speak HTTP/1.1. A client that opens with the HTTP/2 preface (a gRPC exporter pointed at an
HTTP port) has its request answered with the gRPC status UNIMPLEMENTED, whose message names the fix (an
OTLP exporter does not retry it, so the application neither hangs nor loses data silently), and is
disconnected; the server logs what happened and how to fix it (at most once a minute per server) instead
of uvicorn's anonymous "Invalid HTTP request received." for each attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
import time
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import uvicorn
from pydantic import BaseModel
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from llm_observer.kernel.endpoints import check_endpoint, parse_endpoint
from llm_observer.kernel.errors import ConfigError

logger = logging.getLogger(__name__)

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Enough of the preface to tell it from any HTTP/1.x request line.
_PREFACE_HEAD = HTTP2_PREFACE[:14]
_HTTP2_LOG_INTERVAL = 60.0
_GOAWAY_HTTP_1_1_REQUIRED = 0xD
_H2_HEADERS, _H2_SETTINGS, _H2_GOAWAY = 0x1, 0x4, 0x7
_H2_END_STREAM, _H2_END_HEADERS, _H2_ACK = 0x1, 0x4, 0x1
_HTTP2_REQUEST_WAIT = 5.0
_HTTP2_MAX_BUFFER = 1 << 16


class PortsUnavailable(ConfigError):
    """Listen addresses that cannot be bound: every one, each as ``(config key, message)``."""


def listen_endpoints(config: BaseModel, prefix: str) -> list[tuple[str, str]]:
    """Every ``(yaml.path, host:port)`` a component config listens on: its ``Endpoint`` fields, skipping
    sections that say ``enabled: false`` and endpoints left unset."""
    found: list[tuple[str, str]] = []
    if getattr(config, "enabled", True) is False:
        return found
    for name, info in type(config).model_fields.items():
        value = getattr(config, name, None)
        path = f"{prefix}.{name}"
        if isinstance(value, BaseModel):
            found.extend(listen_endpoints(value, path))
        elif isinstance(value, str) and _is_endpoint(info.annotation, info.metadata):
            found.append((path, value))
    return found


def _is_endpoint(annotation: Any, metadata: Iterable[Any] = ()) -> bool:
    if any(getattr(item, "func", None) is check_endpoint for item in metadata):
        return True
    if typing.get_origin(annotation) is typing.Annotated:
        _, *extras = typing.get_args(annotation)
        return _is_endpoint(None, extras)
    return any(_is_endpoint(arg) for arg in typing.get_args(annotation))


def check_listeners(listeners: Sequence[tuple[str, str]]) -> None:
    """Raise ``PortsUnavailable`` naming every ``(config key, endpoint)`` that cannot be listened on: ports
    another process holds, and ports configured twice. Port 0 (pick one) always passes."""
    problems: list[tuple[str, str]] = []
    taken: dict[int, list[tuple[str, str]]] = {}
    for key, endpoint in listeners:
        try:
            host, port = parse_endpoint(endpoint)
        except ValueError as exc:
            problems.append((key, str(exc)))
            continue
        if port == 0:
            continue
        clash = next((other for other, other_host in taken.get(port, []) if _overlap(host, other_host)), None)
        if clash is not None:
            problems.append((key, f"{endpoint} is also configured for {clash}"))
            continue
        taken.setdefault(port, []).append((key, host))
        try:
            bind(endpoint, key).close()
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise PortsUnavailable(problems)


def _overlap(host: str, other: str) -> bool:
    wildcard = ("0.0.0.0", "::", "")
    return host == other or host in wildcard or other in wildcard


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process owner."""

    def install_signal_handlers(self) -> None:  # older uvicorn
        return None

    def capture_signals(self) -> Any:  # newer uvicorn
        return contextlib.nullcontext()


def bind(endpoint: str, key: str) -> socket.socket:
    """A TCP socket bound to ``endpoint`` (``host:port``, port 0 picks one); ``key`` names it in errors."""
    try:
        host, port = parse_endpoint(endpoint)
    except ValueError as exc:
        raise ConfigError([(key, str(exc))]) from exc
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this: without it a keep-alive client waits ~40 ms (Nagle + delayed ACK) for
    # every response that uvicorn writes in two parts.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        problem = f"cannot listen on {endpoint}: {exc.strerror or exc}"
        if exc.errno == errno.EADDRINUSE:
            raise PortsUnavailable([(key, f"{problem} (another process holds the port)")]) from exc
        raise ConfigError([(key, problem)]) from exc
    sock.set_inheritable(True)
    return sock


@dataclass(slots=True)
class AsgiServer:
    """A running ASGI server; ``stop`` is idempotent."""

    server: QuietServer
    task: asyncio.Task[None]
    port: int
    http2_refusals: _Http2Refusals

    async def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        if self.task.done():
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self.task)
        except TimeoutError:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


@dataclass(slots=True)
class _Http2Refusals:
    """Counts HTTP/2 connections refused by one server and logs them at most once a minute."""

    key: str
    endpoint: str
    hint: str
    count: int = 0
    _logged_at: float = field(default=-_HTTP2_LOG_INTERVAL * 2)
    _unlogged: int = 0

    def refused(self, client: str) -> None:
        self.count += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at < _HTTP2_LOG_INTERVAL:
            return
        logger.warning(
            "An HTTP/2 (gRPC) client at %s connected to %s (%s), which speaks HTTP/1.1 only; its requests "
            "were refused (%d connection(s) since the last report). %s",
            client,
            self.endpoint,
            self.key,
            self._unlogged,
            self.hint,
        )
        self._logged_at = now
        self._unlogged = 0

    def message(self) -> str:
        return f"{self.endpoint} speaks HTTP/1.1 only. {self.hint}"


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", stream) + payload


def _hpack_int(value: int) -> bytes:
    """An HPACK integer with a 7-bit prefix (RFC 7541 §5.1)."""
    if value < 127:
        return bytes((value,))
    out, value = bytearray((127,)), value - 127
    while value >= 128:
        out.append((value % 128) | 128)
        value //= 128
    out.append(value)
    return bytes(out)


def _hpack_literal(name: str, value: str) -> bytes:
    """A header as a literal without indexing, new name, no Huffman coding (RFC 7541 §6.2.2)."""
    raw_name, raw_value = name.encode(), value.encode()
    return b"\x00" + _hpack_int(len(raw_name)) + raw_name + _hpack_int(len(raw_value)) + raw_value


def _grpc_refusal(stream: int, message: str) -> bytes:
    """A trailers-only gRPC answer UNIMPLEMENTED (12) with ``message`` on ``stream``: gRPC clients and OTLP
    exporters report it at once and do not retry."""
    encoded = "".join(c if " " <= c <= "~" and c != "%" else f"%{ord(c):02X}" for c in message)
    block = b"".join(
        _hpack_literal(name, value)
        for name, value in (
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", "12"),
            ("grpc-message", encoded),
        )
    )
    return _frame(_H2_HEADERS, _H2_END_STREAM | _H2_END_HEADERS, stream, block)


class _Http2Refusal:
    """One HTTP/2 connection on an HTTP/1.1 port: answer its settings, refuse its first request with the
    hint (as a gRPC status), then GOAWAY and close. A client that sends no request within a few seconds is
    sent the GOAWAY alone."""

    def __init__(self, transport: asyncio.Transport, refusals: _Http2Refusals) -> None:
        self.transport = transport
        self.refusals = refusals
        self.buffer = b""
        self.preface_seen = False
        self.done = False
        transport.write(_frame(_H2_SETTINGS, 0, 0))
        self._timer = asyncio.get_running_loop().call_later(_HTTP2_REQUEST_WAIT, self.finish, 0)

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        self.buffer += data
        if not self.preface_seen:
            if len(self.buffer) < len(HTTP2_PREFACE):
                return
            self.preface_seen, self.buffer = True, self.buffer[len(HTTP2_PREFACE) :]
        while len(self.buffer) >= 9 and not self.done:
            length = int.from_bytes(self.buffer[:3], "big")
            kind, flags = self.buffer[3], self.buffer[4]
            stream = int.from_bytes(self.buffer[5:9], "big") & 0x7FFFFFFF
            if kind == _H2_HEADERS:
                self.transport.write(_grpc_refusal(stream, self.refusals.message()))
                self.finish(stream)
                return
            if len(self.buffer) < 9 + length:
                return
            if kind == _H2_SETTINGS and not flags & _H2_ACK:
                self.transport.write(_frame(_H2_SETTINGS, _H2_ACK, 0))
            self.buffer = self.buffer[9 + length :]
        if len(self.buffer) > _HTTP2_MAX_BUFFER:
            self.finish(0)

    def finish(self, last_stream: int) -> None:
        if self.done:
            return
        self.done = True
        self._timer.cancel()
        code = 0 if last_stream else _GOAWAY_HTTP_1_1_REQUIRED
        debug = self.refusals.message().encode()[:1024]
        self.transport.write(_frame(_H2_GOAWAY, 0, 0, struct.pack(">II", last_stream, code) + debug))
        self.transport.close()


def _guarded_protocol(refusals: _Http2Refusals) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol behind a check of each connection's first bytes for the HTTP/2 preface."""

    class Http1Only(asyncio.Protocol):
        def __init__(self, **kwargs: Any) -> None:
            self.inner: asyncio.Protocol = AutoHTTPProtocol(**kwargs)
            self.transport: asyncio.Transport | None = None
            self.head = b""
            self.checked = False
            self.http2: _Http2Refusal | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            self.inner.connection_made(transport)

        def data_received(self, data: bytes) -> None:
            if self.http2 is not None:
                self.http2.feed(data)
                return
            if self.checked:
                self.inner.data_received(data)
                return
            head = self.head + data
            if _PREFACE_HEAD.startswith(head[: len(_PREFACE_HEAD)]):
                if len(head) < len(_PREFACE_HEAD):
                    self.head = head
                    return
                self._refuse(head)
                return
            self.checked, self.head = True, b""
            self.inner.data_received(head)

        def _refuse(self, head: bytes) -> None:
            assert self.transport is not None
            self.checked, self.head = True, b""
            peer = self.transport.get_extra_info("peername")
            client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "unknown"
            refusals.refused(client)
            self.http2 = _Http2Refusal(self.transport, refusals)
            self.http2.feed(head)

        def eof_received(self) -> bool | None:
            if self.http2 is not None:
                self.http2.finish(0)
                return None
            if self.head:
                self.checked, head, self.head = True, self.head, b""
                self.inner.data_received(head)
            return self.inner.eof_received()

        def connection_lost(self, exc: Exception | None) -> None:
            if self.http2 is not None:
                self.http2.done = True
                self.http2._timer.cancel()
            self.inner.connection_lost(exc)

        def pause_writing(self) -> None:
            self.inner.pause_writing()

        def resume_writing(self) -> None:
            self.inner.resume_writing()

    return Http1Only


async def serve_asgi(app: Any, endpoint: str, key: str, http2_hint: str | None = None) -> AsgiServer:
    """Serve an ASGI app on ``endpoint`` in the running loop; returns once it listens.

    ``http2_hint`` is what the log line (and the GOAWAY sent) tells an HTTP/2 client to do instead."""
    sock = bind(endpoint, key)
    refusals = _Http2Refusals(key, endpoint, http2_hint or "Use HTTP/1.1 on this port.")
    config = uvicorn.Config(
        app,
        http=_guarded_protocol(refusals),
        ws="none",
        log_level="warning",
        lifespan="off",
        access_log=False,
        server_header=False,
        interface="asgi3",
        timeout_graceful_shutdown=2,
    )
    server = QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=key)
    while not server.started:
        if task.done():
            sock.close()
            failure = task.exception()
            raise ConfigError([(key, f"cannot serve on {endpoint}: {failure or 'server exited'}")])
        await asyncio.sleep(0.01)
    return AsgiServer(server, task, int(sock.getsockname()[1]), refusals)


def grpc_listen(server: grpc.aio.Server, endpoint: str, key: str) -> int:
    """Add an insecure port for ``endpoint`` to ``server``; returns the bound port."""
    try:
        host, port = parse_endpoint(endpoint)
    except ValueError as exc:
        raise ConfigError([(key, str(exc))]) from exc
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ConfigError([(key, f"cannot listen on {endpoint}: {exc}")]) from exc
    if bound == 0:
        raise ConfigError([(key, f"cannot listen on {endpoint}")])
    return bound
