"""What both OTLP transports share: authenticate, parse, validate, make durable, answer.

Spans that are invalid on their own (bad ids, or a time the storage behind the receiver cannot hold or no
longer keeps), and log records with such times, are removed from the request and reported through
``partial_success``; the rest are kept. The (possibly filtered) request bytes go to the WAL unchanged
otherwise, so the collector never re-encodes what it does not have to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
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

from llm_observer.kernel.component import (
    SIGNAL_LOGS,
    SIGNAL_METRICS,
    SIGNAL_NAMES,
    SIGNAL_TRACES,
    Authenticate,
    Ingest,
    IngestMeta,
)
from llm_observer.kernel.errors import Backpressure, PermanentError
from llm_observer.kernel.limits import UNLIMITED, TimeLimits
from llm_observer.kernel.otlp_codec import (
    drop_invalid_log_records,
    drop_invalid_spans,
    json_body_to_dict,
)
from llm_observer.kernel.telemetry import Telemetry

REQUEST_TYPES: dict[int, type[Message]] = {
    SIGNAL_TRACES: ExportTraceServiceRequest,
    SIGNAL_METRICS: ExportMetricsServiceRequest,
    SIGNAL_LOGS: ExportLogsServiceRequest,
}
RESPONSE_TYPES: dict[int, type[Message]] = {
    SIGNAL_TRACES: ExportTraceServiceResponse,
    SIGNAL_METRICS: ExportMetricsServiceResponse,
    SIGNAL_LOGS: ExportLogsServiceResponse,
}


@dataclass(frozen=True, slots=True)
class Parsed:
    message: Message
    raw: bytes | None  # the protobuf bytes as received, when there were any


def parse_protobuf(signal: int, body: bytes) -> Parsed:
    try:
        message = REQUEST_TYPES[signal].FromString(body)
    except (DecodeError, RuntimeError) as exc:
        raise PermanentError(f"malformed protobuf {SIGNAL_NAMES[signal]} request: {exc}") from exc
    return Parsed(message, body)


def parse_json(signal: int, body: bytes) -> Parsed:
    try:
        data = json_body_to_dict(body)
        if not isinstance(data, dict):
            raise ValueError(f"the top level must be a JSON object, not {type(data).__name__}")
        message = json_format.ParseDict(data, REQUEST_TYPES[signal](), ignore_unknown_fields=True)
    except (ValueError, TypeError, json_format.ParseError) as exc:
        raise PermanentError(f"malformed JSON {SIGNAL_NAMES[signal]} request: {exc}") from exc
    except RecursionError as exc:
        raise PermanentError(f"malformed JSON {SIGNAL_NAMES[signal]} request: nested too deeply") from exc
    except SystemError as exc:
        # upb reports a string it cannot encode (an unpaired UTF-16 surrogate such as "\ud800", which JSON
        # allows) as a SystemError wrapping the UnicodeEncodeError; anything else is not the input's fault.
        if not isinstance(exc.__cause__ or exc.__context__, UnicodeError):
            raise
        raise PermanentError(
            f"malformed JSON {SIGNAL_NAMES[signal]} request: a string is not valid Unicode "
            f"(an unpaired surrogate escape)"
        ) from exc
    return Parsed(message, None)


def _count_items(signal: int, message: Any) -> int:
    if signal == SIGNAL_METRICS:
        total = 0
        for rm in message.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    if kind is not None:
                        total += len(getattr(metric, kind).data_points)
        return total
    return sum(len(sl.log_records) for rl in message.resource_logs for sl in rl.scope_logs)


class IngestCore:
    """The transport-independent part of an OTLP receiver."""

    def __init__(
        self,
        component_id: str,
        ingest: Ingest,
        telemetry: Telemetry,
        authenticate: Authenticate | None,
        limits: TimeLimits = UNLIMITED,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.component_id = component_id
        self.ingest = ingest
        self.telemetry = telemetry
        self.authenticate = authenticate
        self.limits = limits
        self.clock = clock  # the current time in Unix nanoseconds: retention is measured from it

    def meta_for(self, authorization: str | None) -> IngestMeta | None:
        """Raises ``AuthError`` when auth is on and the header is missing or wrong."""
        return self.authenticate(authorization) if self.authenticate is not None else None

    async def export(self, signal: int, parsed: Parsed, meta: IngestMeta | None) -> Message:
        """Make the request durable; returns the OTLP response message (with partial success if any)."""
        t = self.telemetry
        response = RESPONSE_TYPES[signal]()
        if signal != SIGNAL_TRACES:
            message = parsed.message
            items = _count_items(signal, message)
            t.items_received.labels(self.component_id, SIGNAL_NAMES[signal]).inc(items)
            refused = 0
            if signal == SIGNAL_LOGS:
                assert isinstance(message, ExportLogsServiceRequest)
                _, refused, problem = drop_invalid_log_records(message, self.limits)
                if refused:
                    t.events.labels(self.component_id, "log_records_refused").inc(refused)
                    response.partial_success.rejected_log_records = refused  # type: ignore[attr-defined]
                    response.partial_success.error_message = (  # type: ignore[attr-defined]
                        f"{refused} invalid log record(s) rejected; first: {problem}"
                    )
            if refused and refused == items:
                return response
            raw = parsed.raw if not refused else None
            await self._append(signal, raw if raw is not None else message.SerializeToString(), meta, 0)
            return response
        request = parsed.message
        assert isinstance(request, ExportTraceServiceRequest)
        dropped = drop_invalid_spans(request, self.limits, self.clock(), parsed.raw)
        kept, rejected = dropped.kept, dropped.count
        t.received.labels(self.component_id).inc(kept + rejected)
        if rejected:
            for reason, count in dropped.refused.items():
                t.refused.labels(self.component_id, reason).inc(count)
            response.partial_success.rejected_spans = rejected  # type: ignore[attr-defined]
            response.partial_success.error_message = (  # type: ignore[attr-defined]
                f"{rejected} invalid span(s) rejected; first: {dropped.first}"
            )
        if kept:
            payload = parsed.raw if parsed.raw is not None and not rejected else request.SerializeToString()
            await self._append(signal, payload, meta, kept)
            t.accepted.labels(self.component_id).inc(kept)
        return response

    async def _append(self, signal: int, payload: bytes, meta: IngestMeta | None, spans: int) -> None:
        try:
            await self.ingest(signal, payload, meta)
        except Backpressure as exc:
            if spans:
                self.telemetry.refused.labels(self.component_id, exc.reason).inc(spans)
            raise
