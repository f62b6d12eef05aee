"""In-memory OpenTelemetry providers for instrumentation tests and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class TelemetryCapture:
    """A tracer, meter and logger provider that keep everything in memory.

    Pass ``capture.kwargs`` to ``Instrumentor().instrument(**capture.kwargs)``; read back with
    :meth:`spans`, :meth:`histogram_points` and :meth:`log_records`.
    """

    def __init__(self) -> None:
        self.span_exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.span_exporter))
        self.metric_reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metric_reader])
        self.log_exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.log_exporter))

    @property
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``BaseInstrumentor.instrument``."""
        return {
            "tracer_provider": self.tracer_provider,
            "meter_provider": self.meter_provider,
            "logger_provider": self.logger_provider,
        }

    def spans(self) -> Sequence[ReadableSpan]:
        """The finished spans so far, in end order."""
        return self.span_exporter.get_finished_spans()

    def only_span(self) -> ReadableSpan:
        """The one finished span; an ``AssertionError`` naming the finished spans when there is not
        exactly one."""
        spans = self.spans()
        if len(spans) != 1:
            raise AssertionError([span.name for span in spans])
        return spans[0]

    def clear(self) -> None:
        """Forget the finished spans and log records (metrics are cumulative)."""
        self.span_exporter.clear()
        self.log_exporter.clear()

    def log_records(self) -> list[Any]:
        """The emitted log records (content-capture events)."""
        return [item.log_record for item in self.log_exporter.get_finished_logs()]

    def histogram_points(self, name: str) -> list[HistogramDataPoint]:
        """The data points of the histogram ``name`` (cumulative, one per attribute set)."""
        data = self.metric_reader.get_metrics_data()
        points: list[HistogramDataPoint] = []
        if data is None:
            return points
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        points.extend(p for p in metric.data.data_points if isinstance(p, HistogramDataPoint))
        return points

    def shutdown(self) -> None:
        """Shut the three providers down."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        self.logger_provider.shutdown()
