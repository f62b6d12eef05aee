"""The OTLP receiver: OTLP/gRPC and OTLP/HTTP (protobuf and JSON, gzip) for traces, metrics and logs.

Answers follow the OTLP spec so that every OpenTelemetry SDK does the right thing: a request is
acknowledged only once it is durable; over a limit the answer is RESOURCE_EXHAUSTED with a ``RetryInfo``
detail (gRPC) or 429 with ``Retry-After`` (HTTP), which exporters retry; malformed data is
INVALID_ARGUMENT / 400, which they do not.
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2, json_format
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from pydantic import Field, field_validator

from llm_observer.collector.receivers.asgi import Receive, Send, read_body, respond
from llm_observer.collector.receivers.ingest_core import (
    IngestCore,
    Parsed,
    parse_json,
    parse_protobuf,
)
from llm_observer.kernel.component import (
    SIGNAL_LOGS,
    SIGNAL_METRICS,
    SIGNAL_TRACES,
    Authenticate,
    ComponentConfig,
    CreateContext,
    Factory,
    Receiver,
)
from llm_observer.kernel.endpoints import Endpoint
from llm_observer.kernel.errors import AuthError, Backpressure, PermanentError
from llm_observer.kernel.servers import AsgiServer, grpc_listen, serve_asgi

logger = logging.getLogger(__name__)

_GRPC_SERVICES = {
    "opentelemetry.proto.collector.trace.v1.TraceService": SIGNAL_TRACES,
    "opentelemetry.proto.collector.metrics.v1.MetricsService": SIGNAL_METRICS,
    "opentelemetry.proto.collector.logs.v1.LogsService": SIGNAL_LOGS,
}
_HTTP_PATHS = {"/v1/traces": SIGNAL_TRACES, "/v1/metrics": SIGNAL_METRICS, "/v1/logs": SIGNAL_LOGS}
_MIB = 1 << 20


class GrpcProtocolConfig(ComponentConfig):
    enabled: bool = True
    endpoint: Endpoint = "127.0.0.1:4317"
    max_recv_msg_size_mib: float = Field(16, gt=0)


class HttpProtocolConfig(ComponentConfig):
    enabled: bool = True
    endpoint: Endpoint = "127.0.0.1:4318"
    max_request_body_size_mib: float = Field(16, gt=0)


class ProtocolsConfig(ComponentConfig):
    grpc: GrpcProtocolConfig = GrpcProtocolConfig()
    http: HttpProtocolConfig = HttpProtocolConfig()

    @field_validator("grpc", "http", mode="before")
    @classmethod
    def _null_means_defaults(cls, value: Any) -> Any:
        # As in the OpenTelemetry Collector, `grpc:` with no value enables the protocol with defaults.
        return {} if value is None else value


class OtlpReceiverConfig(ComponentConfig):
    protocols: ProtocolsConfig = ProtocolsConfig()


def _retry_info_trailer(message: str, code: int, retry_after: float) -> tuple[tuple[str, bytes], ...]:
    detail = any_pb2.Any()
    seconds = max(0.0, retry_after)
    detail.Pack(
        error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=int(seconds), nanos=int((seconds % 1) * 1e9))
        )
    )
    status = status_pb2.Status(code=code, message=message, details=[detail])
    return (("grpc-status-details-bin", status.SerializeToString()),)


class GrpcServer:
    """OTLP/gRPC on raw request bytes: the request is parsed once, by us, and stored as received."""

    def __init__(self, core: IngestCore, config: GrpcProtocolConfig) -> None:
        self.core = core
        self.config = config
        self._server: grpc.aio.Server | None = None
        self.port = 0

    def _handler(self, signal: int) -> grpc.RpcMethodHandler[bytes, bytes]:
        core = self.core

        async def export(body: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            metadata = dict(context.invocation_metadata() or ())
            try:
                meta = core.meta_for(_str(metadata.get("authorization")))
                parsed = parse_protobuf(signal, body)
                response = await core.export(signal, parsed, meta)
            except AuthError as exc:
                code = (
                    grpc.StatusCode.UNAUTHENTICATED
                    if exc.status == 401
                    else grpc.StatusCode.PERMISSION_DENIED
                )
                await context.abort(code, str(exc))
            except PermanentError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            except Backpressure as exc:
                retry_after = exc.retry_after or 1.0
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    str(exc),
                    trailing_metadata=_retry_info_trailer(str(exc), code_pb2.RESOURCE_EXHAUSTED, retry_after),
                )
            return response.SerializeToString()

        return grpc.unary_unary_rpc_method_handler(export)

    async def start(self) -> None:
        size = int(self.config.max_recv_msg_size_mib * _MIB)
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", size),
                ("grpc.max_send_message_length", 4 * _MIB),
                ("grpc.so_reuseport", 0),
            ]
        )
        for service, signal in _GRPC_SERVICES.items():
            server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(service, {"Export": self._handler(signal)}),)
            )
        self.port = grpc_listen(server, self.config.endpoint, "receivers.otlp.protocols.grpc.endpoint")
        await server.start()
        self._server = server
        logger.info("OTLP/gRPC receiver listening on %s (port %d)", self.config.endpoint, self.port)

    async def shutdown(self, grace: float = 5.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class HttpApp:
    """OTLP/HTTP as a bare ASGI app: no framework on the hot path."""

    def __init__(self, core: IngestCore, config: HttpProtocolConfig) -> None:
        self.core = core
        self.max_body = int(config.max_request_body_size_mib * _MIB)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"].rstrip("/") or "/"
        if path == "/health" and scope["method"] in ("GET", "HEAD"):
            # The same checks as the query service's /health: 503 with the reasons while data is not moving.
            report = self.core.telemetry.health.report()
            document = json.dumps(report.document()).encode()
            await respond(send, 200 if report.healthy else 503, document, "application/json")
            return
        signal = _HTTP_PATHS.get(path)
        if signal is None:
            await _error(
                send, 404, f"no OTLP endpoint at {path}; use /v1/traces, /v1/metrics or /v1/logs", False
            )
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        is_json = content_type == "application/json"
        if scope["method"] != "POST":
            await _error(send, 405, "use POST", is_json, {"allow": "POST"})
            return
        if content_type not in ("application/x-protobuf", "application/json", "application/protobuf"):
            await _error(
                send,
                415,
                f"unsupported content type {content_type!r}; use application/x-protobuf or application/json",
                False,
            )
            return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await _error(
                send, 413, f"body of {declared} bytes is over the {self.max_body}-byte limit", is_json
            )
            return
        body = await read_body(receive, self.max_body)
        if body is None:
            await _error(send, 413, f"body is over the {self.max_body}-byte limit", is_json)
            return
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding == "gzip":
            try:
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                body = inflater.decompress(body, self.max_body + 1)
                if len(body) > self.max_body or inflater.unconsumed_tail:
                    await _error(
                        send, 413, f"decompressed body is over the {self.max_body}-byte limit", is_json
                    )
                    return
                if not inflater.eof or inflater.unused_data:
                    await _error(send, 400, "gzip body is truncated or has trailing bytes", is_json)
                    return
            except zlib.error as exc:
                await _error(send, 400, f"body is not valid gzip: {exc}", is_json)
                return
        elif encoding not in ("", "identity"):
            await _error(send, 415, f"unsupported content encoding {encoding!r}; use gzip or none", is_json)
            return
        try:
            meta = self.core.meta_for(headers.get("authorization"))
            parsed: Parsed = parse_json(signal, body) if is_json else parse_protobuf(signal, body)
            response = await self.core.export(signal, parsed, meta)
        except AuthError as exc:
            await _error(send, exc.status, str(exc), is_json, code=16 if exc.status == 401 else 7)
            return
        except PermanentError as exc:
            await _error(send, 400, str(exc), is_json)
            return
        except Backpressure as exc:
            retry_after = str(max(1, math.ceil(exc.retry_after or 1.0)))
            await _error(send, 429, str(exc), is_json, {"retry-after": retry_after}, code=8)
            return
        await respond(send, 200, *_encode(response, is_json))


def _encode(message: Message, is_json: bool) -> tuple[bytes, str]:
    if is_json:
        return json_format.MessageToJson(message, indent=None).encode(), "application/json"
    return message.SerializeToString(), "application/x-protobuf"


async def _error(
    send: Send, status: int, message: str, is_json: bool, extra: dict[str, str] | None = None, code: int = 3
) -> None:
    """An OTLP error body: a ``google.rpc.Status`` in the request's encoding."""
    if status >= 500 or status == 429:
        code = code if code != 3 else 14
    body, content_type = _encode(status_pb2.Status(code=code, message=message), is_json)
    await respond(send, status, body, content_type, extra)


class OtlpReceiver:
    """Both transports, sharing one ``IngestCore``."""

    def __init__(self, ctx: CreateContext, config: OtlpReceiverConfig) -> None:
        if ctx.ingest is None:
            raise ValueError("the OTLP receiver needs an ingest")
        authenticate: Authenticate | None = ctx.extras.get("authenticate")
        self.core = IngestCore(ctx.component_id, ctx.ingest, ctx.telemetry, authenticate, ctx.time_limits)
        self.config = config
        self.grpc: GrpcServer | None = None
        self.http_port = 0
        self._http: AsgiServer | None = None

    async def start(self) -> None:
        protocols = self.config.protocols
        if protocols.grpc.enabled and self.grpc is None:
            self.grpc = GrpcServer(self.core, protocols.grpc)
            await self.grpc.start()
        if protocols.http.enabled and self._http is None:
            self._http = await serve_asgi(
                HttpApp(self.core, protocols.http),
                protocols.http.endpoint,
                "receivers.otlp.protocols.http.endpoint",
                _http2_hint(protocols.grpc),
            )
            self.http_port = self._http.port
            logger.info("OTLP/HTTP receiver listening on %s", protocols.http.endpoint)

    async def shutdown(self) -> None:
        if self.grpc is not None:
            await self.grpc.shutdown()
            self.grpc = None
        if self._http is not None:
            await self._http.stop()
            self._http = None


def _http2_hint(grpc_config: GrpcProtocolConfig) -> str:
    """What to tell a gRPC exporter that was pointed at the OTLP/HTTP port."""
    target = (
        f"send OTLP/gRPC to {grpc_config.endpoint} (receivers.otlp.protocols.grpc.endpoint)"
        if grpc_config.enabled
        else "enable receivers.otlp.protocols.grpc for OTLP/gRPC"
    )
    return (
        f"This is the OTLP/HTTP port: {target}, or keep this endpoint and set "
        "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf in the application."
    )


def _create(ctx: CreateContext, config: OtlpReceiverConfig) -> Receiver:
    return OtlpReceiver(ctx, config)


factory = Factory("otlp", OtlpReceiverConfig, _create)
