"""Where the span store is: the settings the ClickHouse exporter writes with and the query service reads with."""

from __future__ import annotations

from pydantic import Field, field_validator

from llm_observer.kernel.component import ComponentConfig


class ClickHouseSettings(ComponentConfig):
    """``endpoint`` is ``chdb://PATH`` for the embedded engine (a relative path is under the data dir) or
    ``http(s)://HOST:PORT`` for a ClickHouse server."""

    endpoint: str = "chdb://clickhouse"
    database: str = Field(default="otel", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    username: str | None = None
    password: str | None = None
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
