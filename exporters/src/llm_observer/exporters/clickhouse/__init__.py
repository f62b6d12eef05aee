"""The ClickHouse storage exporter (entry point ``clickhouse``).

Spans go to the contrib exporter's ``otel_traces`` table, with typed GenAI columns beside the OTel ones
(OTLP logs and metrics to ``otel_logs`` and ``otel_metrics_*``),
in chDB (``chdb://PATH``, in-process, the default) or a ClickHouse server (``http(s)://HOST:PORT``).
"""

from __future__ import annotations

from llm_observer.exporters.clickhouse.config import ClickHouseExporterConfig
from llm_observer.exporters.clickhouse.exporter import ClickHouseExporter, create, dedup_token
from llm_observer.kernel.component import Factory
from llm_observer.kernel.limits import NANOS_PER_DAY, NANOS_PER_SECOND, TimeLimits

# ``DateTime64(9)`` holds times up to 2262, but the partition key, the sort key and the retention are
# computed as ``DateTime`` (seconds in a UInt32), and the retention as ``toDateTime(Timestamp) + ttl_days``:
# past 2106-02-07T06:28:15Z these wrap round, and the store files the span under a wrong day or drops it as
# expired the moment it arrives.
_LATEST_DATETIME_NS = 0xFFFF_FFFF * NANOS_PER_SECOND


def time_limits(config: ClickHouseExporterConfig) -> TimeLimits:
    """The span times the store keeps: started within the last ``ttl_days``, and early enough that the
    retention's end is still a ``DateTime``."""
    return TimeLimits(
        latest_unix_nano=_LATEST_DATETIME_NS - config.ttl_days * NANOS_PER_DAY,
        retention_seconds=config.ttl_days * 86_400,
    )


factory: Factory[ClickHouseExporterConfig, ClickHouseExporter] = Factory(
    "clickhouse",
    ClickHouseExporterConfig,
    create,
    time_limits=time_limits,
    # Spans into otel_traces; OTLP logs and pushed metrics into otel_logs and otel_metrics_* (signals.py).
    signal=("traces", "logs", "metrics"),
    push_metrics=True,
)

__all__ = [
    "ClickHouseExporter",
    "ClickHouseExporterConfig",
    "create",
    "dedup_token",
    "factory",
    "time_limits",
]
