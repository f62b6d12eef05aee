"""How an OTLP request reaches its backend: over one reused gRPC channel, or one reused HTTP client.

A transport has one job — send one serialized export request of a signal, return the backend's response,
or raise ``RetryableError`` / ``PermanentError`` as the OTLP specification classifies its answer
(``answers.py``) — so that splitting, resuming and counting live once, in the exporter.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
from pathlib import Path
from typing import Protocol

import grpc
import httpx
from google.protobuf.message import DecodeError, Message

from llm_observer.exporters.otlp.answers import grpc_error, http_error
from llm_observer.exporters.otlp.config import OtlpGrpcExporterConfig, OtlpHttpExporterConfig, TlsConfig
from llm_observer.exporters.otlp.wire import OtlpSignal, from_json
from llm_observer.kernel.errors import PermanentError, RetryableError
from llm_observer.kernel.otlp_codec import to_otlp_json

_MIB = 1 << 20
# Bodies smaller than this are encoded on the event loop; bigger ones in a worker thread.
_INLINE_BYTES = 64 * 1024


class Transport(Protocol):
    """Sends export requests to one backend."""

    @property
    def endpoint(self) -> str:
        """Where requests go, for messages."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def export(self, signal: OtlpSignal, body: bytes) -> Message:
        """Send one serialized export request; the response, or ``RetryableError`` / ``PermanentError``."""
        ...


def _read(path: str | None) -> bytes | None:
    return Path(path).expanduser().read_bytes() if path else None


class GrpcTransport:
    """OTLP/gRPC over one ``grpc.aio`` channel, opened at ``start`` and reused by every send."""

    def __init__(self, config: OtlpGrpcExporterConfig, component_id: str) -> None:
        self.config = config
        self._where = f"exporter {component_id} ({config.endpoint})"
        self._channel: grpc.aio.Channel | None = None
        self._calls: dict[str, grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = {}
        self._metadata = tuple((key.lower(), value) for key, value in config.headers.items())
        self._compression = (
            grpc.Compression.Gzip if config.compression == "gzip" else grpc.Compression.NoCompression
        )

    @property
    def endpoint(self) -> str:
        return self.config.endpoint

    async def start(self) -> None:
        if self._channel is not None:
            return
        config = self.config
        options: list[tuple[str, object]] = [
            ("grpc.max_send_message_length", config.max_request_bytes + _MIB),
            ("grpc.max_receive_message_length", 4 * _MIB),
        ]
        if config.plaintext:
            channel = grpc.aio.insecure_channel(config.target, options=options)
        else:
            credentials = await asyncio.to_thread(_grpc_credentials, config.tls)
            if config.tls.server_name_override:
                options.append(("grpc.ssl_target_name_override", config.tls.server_name_override))
            channel = grpc.aio.secure_channel(config.target, credentials, options=options)
        self._channel = channel
        self._calls = {}

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        self._calls = {}
        if channel is not None:
            await channel.close(None)

    async def export(self, signal: OtlpSignal, body: bytes) -> Message:
        channel = self._channel
        if channel is None:
            raise RetryableError(f"{self._where}: the exporter is not started")
        call = self._calls.get(signal.name)
        if call is None:
            # No serializers: the request is already bytes, and the response is parsed below.
            call = self._calls[signal.name] = channel.unary_unary(
                signal.grpc_method, request_serializer=None, response_deserializer=None
            )
        try:
            raw = await call(
                body, timeout=self.config.timeout, metadata=self._metadata, compression=self._compression
            )
        except grpc.aio.AioRpcError as exc:
            raise grpc_error(exc, self._where) from exc
        try:
            return signal.response_type.FromString(raw)
        except DecodeError:
            # The backend took the request (status OK); an unreadable response cannot undo that.
            return signal.response_type()


def _grpc_credentials(tls: TlsConfig) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca_file),
        private_key=_read(tls.key_file),
        certificate_chain=_read(tls.cert_file),
    )


def _ssl_context(tls: TlsConfig) -> ssl.SSLContext | bool:
    if tls.insecure_skip_verify and tls.cert_file is None:
        return False
    context = ssl.create_default_context(cafile=tls.ca_file)
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.cert_file is not None:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


class HttpTransport:
    """OTLP/HTTP (protobuf or JSON bodies) through one ``httpx.AsyncClient`` opened at ``start``."""

    def __init__(self, config: OtlpHttpExporterConfig, component_id: str) -> None:
        self.config = config
        self._component_id = component_id
        self._client: httpx.AsyncClient | None = None
        json = config.encoding == "json"
        self._headers = {
            **config.headers,
            "Content-Type": "application/json" if json else "application/x-protobuf",
        }
        if config.compression == "gzip":
            self._headers["Content-Encoding"] = "gzip"

    @property
    def endpoint(self) -> str:
        return self.config.endpoint or self.config.traces_endpoint or ""

    async def start(self) -> None:
        if self._client is not None:
            return
        verify = await asyncio.to_thread(_ssl_context, self.config.tls)
        self._client = httpx.AsyncClient(verify=verify, timeout=self.config.timeout, headers=self._headers)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _encode(self, signal: OtlpSignal, body: bytes) -> bytes:
        if self.config.encoding == "json":
            body = to_otlp_json(signal.request_type.FromString(body))
        if self.config.compression == "gzip":
            body = gzip.compress(body, compresslevel=6)
        return body

    async def export(self, signal: OtlpSignal, body: bytes) -> Message:
        url = self.config.url(signal.name)
        where = f"exporter {self._component_id} ({url})"
        client = self._client
        if client is None:
            raise RetryableError(f"{where}: the exporter is not started")
        if url is None:
            raise PermanentError(
                f"exporter {self._component_id} has no URL for {signal.name}: set endpoint or "
                f"{signal.name}_endpoint",
                "no_endpoint",
            )
        if len(body) > _INLINE_BYTES:
            payload = await asyncio.to_thread(self._encode, signal, body)
        else:
            payload = self._encode(signal, body)
        try:
            response = await client.post(url, content=payload)
        except httpx.TimeoutException as exc:
            raise RetryableError(f"{where}: no answer within {self.config.timeout:g}s") from exc
        except httpx.TransportError as exc:
            raise RetryableError(f"{where}: {type(exc).__name__}: {exc}") from exc
        content = response.content
        if not response.is_success:
            raise http_error(response.status_code, response.headers, content, where)
        if not content:
            return signal.response_type()
        try:
            if "json" in response.headers.get("content-type", ""):
                return from_json(content, signal.response_type)
            return signal.response_type.FromString(content)
        except (DecodeError, ValueError):
            return signal.response_type()
