"""The three OTLP export services as data: their gRPC methods, HTTP paths, message types, and how a
response reports a partially rejected request; and the OTLP/JSON encoding, which differs from protobuf's
JSON mapping in one way that matters: trace and span ids are hex, not base64."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from llm_observer.kernel.otlp_codec import json_body_to_dict

SignalName = Literal["traces", "logs", "metrics"]


@dataclass(frozen=True, slots=True)
class OtlpSignal:
    """One OTLP export service."""

    name: SignalName
    grpc_method: str
    request_type: type[Message]
    response_type: type[Message]
    rejected_field: str  # the count in ``partial_success``
    item: str  # what that count counts, for messages and self-metrics


TRACES = OtlpSignal(
    "traces",
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
    "rejected_spans",
    "spans",
)
LOGS = OtlpSignal(
    "logs",
    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
    "rejected_log_records",
    "log_records",
)
METRICS = OtlpSignal(
    "metrics",
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
    "rejected_data_points",
    "data_points",
)


def rejected(signal: OtlpSignal, response: Message) -> tuple[int, str]:
    """(items the backend rejected, its message) from an export response's ``partial_success``."""
    partial: Any = getattr(response, "partial_success")  # noqa: B009 - the field of every response type
    return int(getattr(partial, signal.rejected_field)), str(partial.error_message)


# --- OTLP/JSON (out: ``kernel.otlp_codec.to_otlp_json``) ------------------------------------------------


def from_json(body: bytes, message_type: type[Message]) -> Message:
    """An OTLP/JSON body (an export response, or a ``google.rpc.Status``) as a message of ``message_type``;
    unknown fields are ignored, as OTLP asks of receivers."""
    message = message_type()
    json_format.ParseDict(json_body_to_dict(body), message, ignore_unknown_fields=True)
    return message
