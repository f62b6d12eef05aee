"""The ClickHouse storage exporter (entry point ``clickhouse``).

Spans go to the contrib exporter's ``otel_traces`` table, with typed GenAI columns beside the OTel ones,
in chDB (``chdb://PATH``, in-process, the default) or a ClickHouse server (``http(s)://HOST:PORT``).
"""

from __future__ import annotations

from llm_observer.exporters.clickhouse.config import ClickHouseExporterConfig
from llm_observer.exporters.clickhouse.exporter import ClickHouseExporter, create, dedup_token
from llm_observer.kernel.component import Factory

factory: Factory[ClickHouseExporterConfig, ClickHouseExporter] = Factory(
    "clickhouse", ClickHouseExporterConfig, create
)

__all__ = ["ClickHouseExporter", "ClickHouseExporterConfig", "create", "dedup_token", "factory"]
