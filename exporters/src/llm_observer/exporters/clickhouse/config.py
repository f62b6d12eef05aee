"""Configuration of the ClickHouse storage exporter."""

from __future__ import annotations

from pydantic import Field, field_validator

from llm_observer.kernel.component import ComponentConfig


class ClickHouseExporterConfig(ComponentConfig):
    """Where spans are stored and for how long.

    ``endpoint`` is ``chdb://PATH`` for the embedded engine (a relative path is under the collector's data
    dir) or ``http(s)://HOST:PORT`` for a ClickHouse server.
    """

    endpoint: str = "chdb://clickhouse"
    database: str = Field(default="otel", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    username: str | None = None
    password: str | None = None
    ttl_days: int = Field(default=90, gt=0)
    create_schema: bool = True
    timeout_seconds: float = Field(default=10.0, gt=0)

    @field_validator("endpoint")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value.startswith("chdb://"):
            if not value.removeprefix("chdb://"):
                raise ValueError("chdb:// needs a path, e.g. chdb://clickhouse")
            return value
        if value.startswith(("http://", "https://")):
            return value
        raise ValueError(f"expected chdb://PATH or http(s)://HOST:PORT, got {value!r}")
