"""Configuration of the ClickHouse storage exporter."""

from __future__ import annotations

from pydantic import Field

from llm_observer.storage.clickhouse.settings import ClickHouseSettings


class ClickHouseExporterConfig(ClickHouseSettings):
    """Where spans are stored (the storage settings the query service also reads) and for how long."""

    ttl_days: int = Field(default=90, gt=0)
    create_schema: bool = True
