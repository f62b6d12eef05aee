"""Configuration of the OTLP exporters, with the keys of the OpenTelemetry Collector's ``otlp`` and
``otlphttp`` exporters, so that a block copied from a Collector config works here unchanged.

Durations may be written as the Collector writes them (``5s``, ``500ms``, ``1m30s``) or as a number of
seconds. Retry and queueing are the collector's delivery keys (``retry_on_failure``, ``sending_queue``),
which every exporter accepts beside its own.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, field_validator, model_validator

from llm_observer.kernel.component import ComponentConfig
from llm_observer.kernel.endpoints import parse_endpoint

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(value: Any) -> Any:
    """Seconds from a number or a Go duration string (``1m30s``); anything else is left to pydantic."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration: write seconds (5) or a duration like 5s, 500ms, 1m")
    return total


Seconds = Annotated[float, BeforeValidator(parse_duration)]
"""A duration in seconds, written as a number or as ``5s`` / ``500ms`` / ``1m``."""


class TlsConfig(ComponentConfig):
    """The Collector's ``tls`` block. Files are PEM. ``insecure`` turns TLS off (gRPC only: for HTTP the
    URL's scheme decides); ``insecure_skip_verify`` keeps TLS but does not check the server's certificate
    (HTTP only: grpcio cannot skip verification — give ``ca_file`` instead)."""

    insecure: bool = False
    insecure_skip_verify: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name_override: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (a client certificate needs its key)")
        return self


class _OtlpCommon(ComponentConfig):
    headers: dict[str, str] = Field(
        default_factory=dict, description="added to every request (gRPC metadata, HTTP headers)"
    )
    tls: TlsConfig = TlsConfig()
    compression: Literal["gzip", "none"] = "gzip"
    timeout: Seconds = Field(5.0, gt=0, description="per request")
    max_request_size_mib: float = Field(
        4.0, gt=0, description="batches whose OTLP encoding is bigger are sent as several requests"
    )

    @field_validator("compression", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return "none" if value in ("", None) else value

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_size_mib * (1 << 20))


class OtlpGrpcExporterConfig(_OtlpCommon):
    """The ``otlp`` exporter: OTLP/gRPC to ``endpoint`` (``host:port``; an ``http://`` prefix means
    plaintext, ``https://`` TLS; without a scheme ``tls.insecure`` decides)."""

    endpoint: str = "127.0.0.1:4317"

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        target = value.split("://", 1)[1] if "://" in value else value
        if "://" in value and not value.startswith(("http://", "https://")):
            raise ValueError(f"endpoint {value!r}: the scheme may be http:// or https:// only")
        parse_endpoint(target.rstrip("/"))
        return value

    @model_validator(mode="after")
    def _no_skip_verify(self) -> OtlpGrpcExporterConfig:
        if self.tls.insecure_skip_verify and not self.plaintext:
            raise ValueError(
                "tls.insecure_skip_verify is not available over gRPC (grpcio always verifies): give "
                "tls.ca_file with the server's CA, or use the otlphttp exporter"
            )
        return self

    @property
    def target(self) -> str:
        """``host:port`` for the channel."""
        return (self.endpoint.split("://", 1)[1] if "://" in self.endpoint else self.endpoint).rstrip("/")

    @property
    def plaintext(self) -> bool:
        if self.endpoint.startswith("http://"):
            return True
        if self.endpoint.startswith("https://"):
            return False
        return self.tls.insecure


_SIGNAL_PATHS = {"traces": "/v1/traces", "logs": "/v1/logs", "metrics": "/v1/metrics"}


def _check_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} must be an http:// or https:// URL")
    return value


class OtlpHttpExporterConfig(_OtlpCommon):
    """The ``otlphttp`` exporter: OTLP/HTTP to ``endpoint`` (a base URL: ``/v1/traces``, ``/v1/logs`` and
    ``/v1/metrics`` are appended) unless ``traces_endpoint`` / ``logs_endpoint`` / ``metrics_endpoint``
    give a signal's full URL."""

    endpoint: str | None = "http://127.0.0.1:4318"
    traces_endpoint: str | None = None
    logs_endpoint: str | None = None
    metrics_endpoint: str | None = None
    encoding: Literal["proto", "json"] = "proto"

    @field_validator("endpoint", "traces_endpoint", "logs_endpoint", "metrics_endpoint")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return _check_url(value)

    @model_validator(mode="after")
    def _every_signal_has_a_url(self) -> OtlpHttpExporterConfig:
        if self.endpoint is None and self.traces_endpoint is None:
            raise ValueError("give endpoint (a base URL) or traces_endpoint")
        return self

    def url(self, signal: Literal["traces", "logs", "metrics"]) -> str | None:
        """The URL a signal is posted to (None: neither its own URL nor a base URL is set)."""
        own: str | None = getattr(self, f"{signal}_endpoint")
        if own is not None:
            return own
        if self.endpoint is None:
            return None
        return self.endpoint.rstrip("/") + _SIGNAL_PATHS[signal]
