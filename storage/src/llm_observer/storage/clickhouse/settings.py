"""Where the span store is: the settings the ClickHouse exporter writes with and the query service reads with."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from llm_observer.kernel.component import ComponentConfig

# A name ClickHouse accepts unquoted in ``ON CLUSTER`` and in ``remote_servers``; no macros, no quoting.
CLUSTER_NAME = r"^[A-Za-z_][A-Za-z0-9_-]*$"


class ClickHouseTls(ComponentConfig):
    """TLS to a ClickHouse server (``https://`` endpoints), in the Collector's ``tls`` spelling."""

    # A PEM bundle of the authorities to trust instead of the system's.
    ca_file: Path | None = None
    # Accept any certificate: for a test server only.
    insecure_skip_verify: bool = False


class ClickHouseSettings(ComponentConfig):
    """``endpoint`` is ``chdb://PATH`` for the embedded engine (a relative path is under the data dir) or
    ``http(s)://HOST:PORT`` for a ClickHouse server (``https`` turns TLS on; ``tls`` tunes it).

    ``cluster`` names a cluster of the server's ``remote_servers``: the schema is then created ``ON CLUSTER``
    as replicated local tables with a ``Distributed`` table over them under the public names (see
    ``storage.clickhouse.cluster``).
    """

    endpoint: str = "chdb://clickhouse"
    database: str = Field(default="otel", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    username: str | None = None
    password: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)
    cluster: str | None = Field(default=None, pattern=CLUSTER_NAME, max_length=128)
    tls: ClickHouseTls | None = None

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

    @model_validator(mode="after")
    def _server_only_options(self) -> ClickHouseSettings:
        # Options chDB cannot honour are refused rather than ignored: a config that asks for a cluster or TLS
        # and silently gets neither would be a surprise in production.
        if self.cluster is not None and not self.endpoint.startswith(("http://", "https://")):
            raise ValueError("cluster needs a ClickHouse server endpoint (http(s)://HOST:PORT), not chdb://")
        if self.tls is not None and not self.endpoint.startswith("https://"):
            raise ValueError("tls applies to an https:// endpoint only")
        return self
