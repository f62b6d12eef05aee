"""The collector's own metrics: every component reports the same counters, served on the Prometheus
endpoint beside the GenAI metrics. Labels are component ids and reasons only, so cardinality stays bounded.

One label scheme throughout: ``component`` is a receiver's id and ``exporter`` an exporter's or connector's
id, exactly as the config spells them (``otlp``, ``clickhouse``, ``qdrant/prompts``); what a pipeline's
delivery worker reports also carries ``pipeline``, the pipeline's name (``traces``), since one exporter
may serve several pipelines."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from llm_observer.kernel.cpu import CpuCollector
from llm_observer.kernel.health import Health
from llm_observer.kernel.memory import MemoryCollector, MemoryPart


class Telemetry:
    """Owns one Prometheus registry; components get a ``ComponentMetrics`` view of it. ``health`` holds the
    checks every ``/health`` endpoint of the process answers from."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.health = Health()
        # Parts of the process's memory that components can measure (``llm_observer_memory_bytes{part}``).
        self.memory_parts: dict[str, MemoryPart] = {}
        self.registry.register(MemoryCollector(self.memory_parts))
        self.registry.register(CpuCollector())  # llm_observer_cpu_seconds_total{thread}
        r = self.registry
        self.received = Counter(
            "llm_observer_spans_received", "Spans received by a receiver.", ["component"], registry=r
        )
        self.accepted = Counter(
            "llm_observer_spans_accepted", "Spans made durable and acknowledged.", ["component"], registry=r
        )
        self.refused = Counter(
            "llm_observer_spans_refused", "Spans refused, by reason.", ["component", "reason"], registry=r
        )
        self.exported = Counter(
            "llm_observer_spans_exported",
            "Spans delivered by an exporter.",
            ["pipeline", "exporter"],
            registry=r,
        )
        self.failed = Counter(
            "llm_observer_spans_failed",
            "Spans an exporter gave up on (permanent errors), by reason.",
            ["pipeline", "exporter", "reason"],
            registry=r,
        )
        self.quarantined = Counter(
            "llm_observer_spans_quarantined",
            "Spans an exporter can never store as they are, kept in the dead-letter store for an operator "
            "(llm-observer deadletter), by reason and organization.",
            ["pipeline", "exporter", "reason", "organization"],
            registry=r,
        )
        self.replayed = Counter(
            "llm_observer_spans_replayed",
            "Spans replayed from the dead-letter store and delivered.",
            ["pipeline", "exporter"],
            registry=r,
        )
        self.deadletter_entries = Gauge(
            "llm_observer_deadletter_entries",
            "Quarantined sets waiting in the dead-letter store.",
            registry=r,
        )
        self.lag_dropped_records = Counter(
            "llm_observer_wal_records_dropped",
            "WAL records an exporter skipped because its lag went over its sending_queue bound "
            "(on_overflow: drop).",
            ["pipeline", "exporter", "reason"],
            registry=r,
        )
        self.lag_dropped_bytes = Counter(
            "llm_observer_wal_bytes_dropped",
            "WAL bytes an exporter skipped because its lag went over its sending_queue bound.",
            ["pipeline", "exporter", "reason"],
            registry=r,
        )
        self.worker_failures = Counter(
            "llm_observer_worker_failures",
            "Unexpected errors in a pipeline's delivery worker (worker: the exporter's id) or processing stage "
            "(worker: stage), each restarting it after a backoff.",
            ["pipeline", "worker", "error"],
            registry=r,
        )
        self.export_retries = Counter(
            "llm_observer_export_retries",
            "Retryable export failures, retried.",
            ["pipeline", "exporter"],
            registry=r,
        )
        self.events = Counter(
            "llm_observer_component_events",
            "Countable things components notice (e.g. cost: unknown_model), instead of log lines.",
            ["component", "event"],
            registry=r,
        )
        self.items_received = Counter(
            "llm_observer_items_received",
            "Metric data points and log records received (spans are counted separately).",
            ["component", "signal"],
            registry=r,
        )
        self.discarded = Counter(
            "llm_observer_items_discarded",
            "Requests acknowledged and not kept, by signal and reason (no_pipeline: no pipeline consumes it).",
            ["signal", "reason"],
            registry=r,
        )
        self.wal_lag_records = Gauge(
            "llm_observer_wal_lag_records",
            "WAL records not yet delivered by an exporter.",
            ["pipeline", "exporter"],
            registry=r,
        )
        self.wal_lag_bytes = Gauge(
            "llm_observer_wal_lag_bytes",
            "WAL bytes not yet delivered by an exporter.",
            ["pipeline", "exporter"],
            registry=r,
        )
        self.wal_size_bytes = Gauge("llm_observer_wal_size_bytes", "Bytes held in WAL segments.", registry=r)
        self.wal_sync_seconds = Histogram(
            "llm_observer_wal_sync_seconds",
            "Time to write and fsync one WAL group commit.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.export_seconds = Histogram(
            "llm_observer_export_seconds",
            "Time one exporter send took.",
            ["pipeline", "exporter"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )

    def component(self, component_id: str) -> ComponentMetrics:
        return ComponentMetrics(self, component_id)


@dataclass(frozen=True, slots=True)
class ComponentMetrics:
    """The counters of one component."""

    telemetry: Telemetry
    component_id: str

    def event(self, event: str, count: int = 1) -> None:
        """Count something noticed (``unknown_model``, ``redacted``...) instead of logging it."""
        self.telemetry.events.labels(self.component_id, event).inc(count)
