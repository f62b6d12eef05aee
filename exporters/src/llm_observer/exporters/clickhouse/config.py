"""Configuration of the ClickHouse storage exporter."""

from __future__ import annotations

from pydantic import Field

from llm_observer.storage.clickhouse.settings import ClickHouseSettings


class ClickHouseExporterConfig(ClickHouseSettings):
    """Where spans are stored (the storage settings the query service also reads) and for how long."""

    # The table's TTL and partition keys are 32-bit second counts, which end in 2106: a retention longer than
    # about 27 years would expire spans of today on arrival.
    ttl_days: int = Field(default=90, gt=0, le=10_000)
    create_schema: bool = True
