"""The OTLP exporters: ``otlp`` (OTLP/gRPC) and ``otlphttp`` (OTLP/HTTP, protobuf or JSON), named and
configured as the OpenTelemetry Collector's.

They forward what the pipeline produced — spans with every derived attribute (cost, normalised
``gen_ai.*``, tenant) — and OTLP logs and metrics as they were received, to any OTLP backend: another
llm-observer collector, an OpenTelemetry Collector, Jaeger, Tempo.
"""

from __future__ import annotations

from llm_observer.exporters.otlp.config import OtlpGrpcExporterConfig, OtlpHttpExporterConfig, TlsConfig
from llm_observer.exporters.otlp.exporter import OtlpExporter
from llm_observer.exporters.otlp.transport import GrpcTransport, HttpTransport, Transport
from llm_observer.kernel.component import CreateContext, Factory

SIGNALS = ("traces", "logs", "metrics")
"""What the exporters take: spans (``send``), and the OTLP logs and metrics receivers accepted
(``send_logs`` / ``send_metrics``)."""


def create_grpc(ctx: CreateContext, config: OtlpGrpcExporterConfig) -> OtlpExporter:
    return OtlpExporter(ctx, GrpcTransport(config, ctx.component_id), config.max_request_bytes)


def create_http(ctx: CreateContext, config: OtlpHttpExporterConfig) -> OtlpExporter:
    return OtlpExporter(ctx, HttpTransport(config, ctx.component_id), config.max_request_bytes)


grpc_factory: Factory[OtlpGrpcExporterConfig, OtlpExporter] = Factory(
    "otlp", OtlpGrpcExporterConfig, create_grpc, signal=SIGNALS, push_metrics=True
)
http_factory: Factory[OtlpHttpExporterConfig, OtlpExporter] = Factory(
    "otlphttp", OtlpHttpExporterConfig, create_http, signal=SIGNALS, push_metrics=True
)

__all__ = [
    "GrpcTransport",
    "HttpTransport",
    "OtlpExporter",
    "OtlpGrpcExporterConfig",
    "OtlpHttpExporterConfig",
    "TlsConfig",
    "Transport",
    "create_grpc",
    "create_http",
    "grpc_factory",
    "http_factory",
]
