"""OTLP logs and metrics as they move from the WAL to the exporters that store or forward them.

Spans are decoded into columns (``SpanBatch``) because processors work on them. Logs and metrics are not
processed: an exporter receives the OTLP requests as they were received (``Export{Logs,Metrics}ServiceRequest``
protobuf bytes), each with the tenant its receiver knew, and decodes only what it needs. Forwarding them
(OTLP, Kafka) therefore costs no decoding at all.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from llm_observer.kernel.batch import IngestMeta
from llm_observer.kernel.component import SIGNAL_LOGS, SIGNAL_METRICS, Component
from llm_observer.kernel.tenancy import project_for
from llm_observer.semconv.attributes import DEFAULT_ORGANIZATION, ORGANIZATION_ID, PROJECT_ID


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """One OTLP request of a WAL range: its WAL position, the receiver's tenant, the protobuf bytes."""

    lsn: int
    payload: bytes
    meta: IngestMeta | None = None


@dataclass(slots=True)
class SignalBatch:
    """The OTLP log or metric requests of one WAL range, in WAL order.

    ``origin`` names the range (e.g. ``logs:17-42``): replaying the same range gives the same records, so
    exporters may use it as an idempotency key."""

    signal: int  # SIGNAL_LOGS or SIGNAL_METRICS
    records: list[SignalRecord] = field(default_factory=list)
    origin: str = ""

    def __len__(self) -> int:
        return len(self.records)


@runtime_checkable
class LogsExporter(Component, Protocol):
    async def send_logs(self, batch: SignalBatch) -> None:
        """Deliver every record of the batch, or raise ``RetryableError`` / ``PermanentError``."""
        ...


@runtime_checkable
class MetricsPushExporter(Component, Protocol):
    """An exporter that is sent OTLP metrics (storage, forwarding), unlike ``MetricsExporter``, which is
    scraped."""

    async def send_metrics(self, batch: SignalBatch) -> None:
        """Deliver every record of the batch, or raise ``RetryableError`` / ``PermanentError``."""
        ...


SignalRequest = ExportLogsServiceRequest | ExportMetricsServiceRequest

_DATA_POINT_FIELDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


def parse_request(signal: int, payload: bytes) -> SignalRequest:
    """The OTLP request a record holds (``DecodeError`` when the bytes are not one)."""
    if signal == SIGNAL_LOGS:
        return ExportLogsServiceRequest.FromString(payload)
    if signal == SIGNAL_METRICS:
        return ExportMetricsServiceRequest.FromString(payload)
    raise ValueError(f"not a logs or metrics signal: {signal}")


def split_request(signal: int, payload: bytes) -> list[bytes]:
    """The request as one request per log record (logs) or per data point (metrics), each with its
    resource, scope and (metrics) metric description, in the order they appear.

    How a refused request is narrowed down to the records that cause the refusal: sending each alone
    shows which ones can never be stored."""
    request = parse_request(signal, payload)
    out: list[bytes] = []
    if isinstance(request, ExportLogsServiceRequest):
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    one = ExportLogsServiceRequest()
                    rl = one.resource_logs.add()
                    rl.resource.CopyFrom(resource_logs.resource)
                    rl.schema_url = resource_logs.schema_url
                    sl = rl.scope_logs.add()
                    sl.scope.CopyFrom(scope_logs.scope)
                    sl.schema_url = scope_logs.schema_url
                    sl.log_records.append(record)
                    out.append(one.SerializeToString())
        return out
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind not in _DATA_POINT_FIELDS:
                    continue
                for point in getattr(metric, kind).data_points:
                    single = ExportMetricsServiceRequest()
                    rm = single.resource_metrics.add()
                    rm.resource.CopyFrom(resource_metrics.resource)
                    rm.schema_url = resource_metrics.schema_url
                    sm = rm.scope_metrics.add()
                    sm.scope.CopyFrom(scope_metrics.scope)
                    sm.schema_url = scope_metrics.schema_url
                    copy = sm.metrics.add()
                    copy.CopyFrom(metric)
                    points = getattr(copy, kind).data_points
                    del points[:]
                    points.append(point)
                    out.append(single.SerializeToString())
    return out


def stamp_tenant(resource: MutableMapping[str, Any], meta: IngestMeta | None) -> None:
    """Give one resource's attributes the tenant of the request's ingest key, as ``enforce_tenancy`` does
    for spans: the key's organization always, and a project the key may write to."""
    if meta is None:
        return
    if meta.organization_id:
        resource[ORGANIZATION_ID] = meta.organization_id
    project = project_for(meta, resource.get(PROJECT_ID))
    if project is not None:
        resource[PROJECT_ID] = project


def organization_of_record(record: SignalRecord, signal: int) -> str:
    """The organization a record's data is stored under: the ingest key's, else its first resource's,
    else ``default``."""
    if record.meta is not None and record.meta.organization_id:
        return record.meta.organization_id
    try:
        request = parse_request(signal, record.payload)
    except Exception:
        return DEFAULT_ORGANIZATION
    resources = (
        request.resource_logs if isinstance(request, ExportLogsServiceRequest) else request.resource_metrics
    )
    for resource in resources:
        for kv in resource.resource.attributes:
            if kv.key == ORGANIZATION_ID and kv.value.string_value.strip():
                return kv.value.string_value.strip()
    return DEFAULT_ORGANIZATION


__all__ = [
    "SIGNAL_LOGS",
    "SIGNAL_METRICS",
    "LogsExporter",
    "MetricsPushExporter",
    "SignalBatch",
    "SignalRecord",
    "SignalRequest",
    "organization_of_record",
    "parse_request",
    "split_request",
    "stamp_tenant",
]
