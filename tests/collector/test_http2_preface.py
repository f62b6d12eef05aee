"""A gRPC (HTTP/2) client pointed at the OTLP/HTTP port: refused at once, with one log line naming the fix."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable

import grpc
import httpx
import pytest

from llm_observer.collector.service import Service
from tests.support import trace_request

pytestmark = pytest.mark.asyncio

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _http_port(service: Service) -> int:
    return int(service.receivers["otlp"].http_port)  # type: ignore[attr-defined]


def _read_until_closed(port: int, payload: bytes, deadline: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=deadline) as sock:
        sock.sendall(payload)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big") + payload


def _frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """``(type, flags, stream, payload)`` of each HTTP/2 frame in ``data``."""
    frames = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        frames.append((data[3], data[4], int.from_bytes(data[5:9], "big"), data[9 : 9 + length]))
        data = data[9 + length :]
    return frames


async def test_http2_preface_gets_grpc_refusal_naming_the_fix_and_is_closed(
    start_collector: Callable[..., Awaitable[Service]], caplog: pytest.LogCaptureFixture
) -> None:
    service = await start_collector()
    port = _http_port(service)
    caplog.set_level(logging.WARNING)
    settings = _frame(0x4, 0, 0)
    request = _frame(0x1, 0x4, 1, b"\x83\x86")  # HEADERS on stream 1 (POST, http)
    received = await asyncio.to_thread(_read_until_closed, port, _PREFACE + settings + request, 10.0)
    frames = _frames(received)
    kinds = [kind for kind, _, _, _ in frames]
    assert kinds == [0x4, 0x4, 0x1, 0x7]  # SETTINGS, SETTINGS ACK, HEADERS, GOAWAY
    _, flags, stream, block = frames[2]
    assert (stream, flags & 0x1) == (1, 0x1)  # the request's stream, ended
    assert b"grpc-status\x0212" in block
    assert b"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in block
    assert struct.unpack(">II", frames[3][3][:8]) == (1, 0)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not any("Invalid HTTP request" in line for line in lines)
    hints = [line for line in lines if "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in line]
    assert len(hints) == 1
    assert "receivers.otlp.protocols.grpc.endpoint" in hints[0]
    # The port still serves OTLP/HTTP.
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"http://127.0.0.1:{port}/v1/traces",
            content=trace_request().SerializeToString(),
            headers={"content-type": "application/x-protobuf"},
        )
    assert response.status_code == 200


async def test_http2_grpc_client_fails_fast_with_the_fix_and_is_logged_once(
    start_collector: Callable[..., Awaitable[Service]], caplog: pytest.LogCaptureFixture
) -> None:
    service = await start_collector()
    port = _http_port(service)
    caplog.set_level(logging.WARNING)
    body = trace_request().SerializeToString()

    def export_attempts() -> list[tuple[grpc.StatusCode, str]]:
        outcomes = []
        for _ in range(3):
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                try:
                    channel.unary_unary(_EXPORT)(body, timeout=60)
                except grpc.RpcError as exc:
                    outcomes.append((exc.code(), exc.details() or ""))
        return outcomes

    started = time.monotonic()
    outcomes = await asyncio.to_thread(export_attempts)
    assert [code for code, _ in outcomes] == [grpc.StatusCode.UNIMPLEMENTED] * 3
    assert all("OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in details for _, details in outcomes)
    assert time.monotonic() - started < 30  # answered by the server, not ended by the client's deadline
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not any("Invalid HTTP request" in line for line in lines)
    assert len([line for line in lines if "speaks HTTP/1.1 only" in line]) == 1


async def test_http2_guard_passes_an_http1_request_split_into_single_bytes(
    start_collector: Callable[..., Awaitable[Service]],
) -> None:
    service = await start_collector()
    port = _http_port(service)
    body = trace_request().SerializeToString()
    request = (
        f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body

    def send_bytewise() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for index in range(20):  # the first bytes one by one, as the guard reads them
                sock.sendall(request[index : index + 1])
            sock.sendall(request[20:])
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
            return received

    answer = await asyncio.to_thread(send_bytewise)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
