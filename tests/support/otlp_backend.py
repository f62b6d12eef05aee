"""A recording OTLP backend on loopback: the three export services over gRPC and over HTTP, answering what
a test scripts (UNAVAILABLE with ``RetryInfo``, 503 with ``Retry-After``, 400, a partial success...) and
keeping every request it took, with its headers, decoded.

``async with otlp_backend() as backend:`` → ``backend.grpc_port`` / ``backend.http_port``;
``backend.script.extend([Answer(...), ...])`` is what the next requests get (then plain success);
``backend.received`` holds ``Received(signal, request, headers, gzip)`` for each request answered with
success, ``backend.answered`` every request whatever the answer.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2, json_format
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from llm_observer.exporters.otlp.wire import LOGS, METRICS, TRACES, OtlpSignal
from llm_observer.kernel.otlp_codec import json_body_to_dict
from llm_observer.kernel.servers import AsgiServer, grpc_listen, serve_asgi

_BY_PATH = {"/v1/traces": TRACES, "/v1/logs": LOGS, "/v1/metrics": METRICS}


@dataclass(frozen=True, slots=True)
class Answer:
    """One scripted answer. gRPC: ``grpc_code`` (None: OK); HTTP: ``http_status``. ``retry_after`` becomes a
    ``RetryInfo`` detail or a ``Retry-After`` header (``retry_after_header`` sends that text as is);
    ``rejected`` answers success with that many items in ``partial_success``."""

    grpc_code: grpc.StatusCode | None = None
    http_status: int = 200
    retry_after: float | None = None
    retry_after_header: str | None = None
    message: str = "scripted"
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class Received:
    signal: str
    request: Message
    headers: dict[str, str]
    gzip: bool


@dataclass
class OtlpBackend:
    script: list[Answer] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    answered: list[Received] = field(default_factory=list)
    grpc_port: int = 0
    http_port: int = 0

    def spans(self) -> list[Any]:
        """Every span of every trace request taken, in order."""
        return [
            span
            for got in self.received
            if got.signal == "traces"
            for rs in got.request.resource_spans  # type: ignore[attr-defined]
            for ss in rs.scope_spans
            for span in ss.spans
        ]

    def _next(self) -> Answer:
        return self.script.pop(0) if self.script else Answer()

    def _response(self, signal: OtlpSignal, answer: Answer) -> Message:
        response = signal.response_type()
        if answer.rejected:
            partial: Any = response.partial_success  # type: ignore[attr-defined]
            setattr(partial, signal.rejected_field, answer.rejected)
            partial.error_message = answer.message
        return response

    # --- gRPC ---

    def _grpc_handler(self, signal: OtlpSignal) -> grpc.RpcMethodHandler[bytes, bytes]:
        async def export(body: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            headers = {key: str(value) for key, value in (context.invocation_metadata() or ())}
            got = Received(
                signal.name,
                signal.request_type.FromString(body),
                headers,
                headers.get("grpc-encoding") == "gzip",
            )
            self.answered.append(got)
            answer = self._next()
            if answer.grpc_code is not None:
                trailers: tuple[tuple[str, bytes], ...] = ()
                if answer.retry_after is not None:
                    detail = any_pb2.Any()
                    seconds = answer.retry_after
                    detail.Pack(
                        error_details_pb2.RetryInfo(
                            retry_delay=duration_pb2.Duration(
                                seconds=int(seconds), nanos=int((seconds % 1) * 1e9)
                            )
                        )
                    )
                    status = status_pb2.Status(code=answer.grpc_code.value[0], message=answer.message)
                    status.details.append(detail)
                    trailers = (("grpc-status-details-bin", status.SerializeToString()),)
                await context.abort(answer.grpc_code, answer.message, trailing_metadata=trailers)
            self.received.append(got)
            return self._response(signal, answer).SerializeToString()

        return grpc.unary_unary_rpc_method_handler(export)

    # --- HTTP ---

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {key.decode().lower(): value.decode() for key, value in scope["headers"]}
        signal = _BY_PATH.get(scope["path"])
        if signal is None:
            await _reply(send, 404, {}, b"")
            return
        zipped = headers.get("content-encoding") == "gzip"
        if zipped:
            body = gzip.decompress(body)
        is_json = "json" in headers.get("content-type", "")
        request = signal.request_type()
        if is_json:
            json_format.ParseDict(json_body_to_dict(body), request)
        else:
            request.ParseFromString(body)
        got = Received(signal.name, request, headers, zipped)
        self.answered.append(got)
        answer = self._next()
        content_type = "application/json" if is_json else "application/x-protobuf"
        if answer.http_status != 200:
            extra: dict[str, str] = {}
            if answer.retry_after_header is not None:
                extra["retry-after"] = answer.retry_after_header
            elif answer.retry_after is not None:
                extra["retry-after"] = str(int(answer.retry_after))
            status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=answer.message)
            payload = (
                json.dumps(json_format.MessageToDict(status)).encode()
                if is_json
                else status.SerializeToString()
            )
            await _reply(send, answer.http_status, {"content-type": content_type, **extra}, payload)
            return
        self.received.append(got)
        response = self._response(signal, answer)
        payload = (
            json.dumps(json_format.MessageToDict(response)).encode()
            if is_json
            else response.SerializeToString()
        )
        await _reply(send, 200, {"content-type": content_type}, payload)


async def _reply(send: Any, status: int, headers: dict[str, str], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (k.encode(), v.encode()) for k, v in {**headers, "content-length": str(len(body))}.items()
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def otlp_backend() -> AsyncIterator[OtlpBackend]:
    """A started recording backend on two free loopback ports, stopped on exit."""
    backend = OtlpBackend()
    server = grpc.aio.server()
    for signal in (TRACES, LOGS, METRICS):
        service, _, _ = signal.grpc_method.strip("/").rpartition("/")
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, {"Export": backend._grpc_handler(signal)}),)
        )
    backend.grpc_port = grpc_listen(server, "127.0.0.1:0", "test.otlp_backend.grpc")
    await server.start()
    http: AsgiServer | None = None
    try:
        http = await serve_asgi(backend, "127.0.0.1:0", "test.otlp_backend.http")
        backend.http_port = http.port
        yield backend
    finally:
        if http is not None:
            await http.stop()
        await server.stop(None)
