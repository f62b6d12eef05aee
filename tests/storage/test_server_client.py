"""``ServerClient`` (clickhouse-connect over HTTP) against ClickHouse's engine behind ClickHouse's HTTP
protocol: the chDB HTTP server of ``tests.support.chdb_http`` in a subprocess. Migrations, the exporter's
deduplicated inserts and the query service's reads all go through ``http://127.0.0.1:PORT``."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_observer.exporters.clickhouse import ClickHouseExporter, ClickHouseExporterConfig, factory
from llm_observer.kernel.batch import IngestMeta, Provenance, SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.errors import PermanentError, RetryableError
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.storage.clickhouse import schema
from llm_observer.storage.clickhouse.client import ServerClient
from llm_observer.storage.clickhouse.migrate import current_ttl_days
from llm_observer.storage.clickhouse.queries import Tenant, TraceQuery
from llm_observer.storage.clickhouse.reads import TraceStore
from tests.support import add_span
from tests.support.chdb_http import serving

# A server in a subprocess: slow, as the other subprocess tests.
pytestmark = pytest.mark.skipif(
    os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1",
    reason="slow (starts the chDB HTTP server in a subprocess): set LLM_OBSERVER_SLOW_TESTS=1",
)

NOW = time.time_ns() - 60_000_000_000
PASSWORD = "s3cret pass"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logging.getLogger("clickhouse_connect").setLevel(logging.ERROR)
    with serving(tmp_path_factory.mktemp("chdb-http") / "store", user="observer", password=PASSWORD) as url:
        yield url


def _exporter(data_dir: Path, endpoint: str, **config: object) -> ClickHouseExporter:
    ctx = CreateContext("clickhouse", data_dir, Telemetry(), logging.getLogger("test"))
    settings = ClickHouseExporterConfig.model_validate(
        {"endpoint": endpoint, "username": "observer", "password": PASSWORD, **config}
    )
    return factory.create(ctx, settings)


def _batch(origin: str, first: int, spans: int, source: str | None = None) -> SpanBatch:
    batch = SpanBatch(origin=origin)
    for n in range(first, first + spans):
        add_span(
            batch,
            {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10},
            resource={"service.name": "svc", "llm_observer.organization.id": "acme"},
            trace_id=(n // 3 + 1).to_bytes(16, "big"),
            span_id=(n + 1).to_bytes(8, "big"),
            start=NOW + n,
            end=NOW + n + 1_000_000,
        )
    if source is not None:
        batch.provenance.append(Provenance(0, len(batch), IngestMeta(source=source)))
    return batch


async def test_server_client_migrates_inserts_once_and_serves_reads(endpoint: str, tmp_path: Path) -> None:
    exporter = _exporter(tmp_path, endpoint, database="served", ttl_days=30)
    await exporter.start()
    try:
        client = exporter.client
        assert isinstance(client, ServerClient)
        assert current_ttl_days(client, "served") == 30
        versions = client.rows("SELECT version FROM served.llm_observer_schema_migrations ORDER BY version")
        assert [row["version"] for row in versions] == [m.version for m in schema.migrations("served", 30)]

        first = _batch("traces:0-1", 0, 9)
        await exporter.send(first)
        await exporter.send(first)  # a retry of the same WAL range
        # The same Kafka chunk through another WAL range (another collector after a rebalance).
        await exporter.send(_batch("traces:0-1", 100, 6, source="kafka:otlp_spans/0/10-16"))
        await exporter.send(_batch("traces:40-41", 100, 6, source="kafka:otlp_spans/0/10-16"))
        counts = client.rows("SELECT count() AS n, uniqExact(SpanId) AS ids FROM served.otel_traces")
        assert counts == [{"n": 15, "ids": 15}]
        lookup = client.rows("SELECT count() AS n FROM served.otel_traces_trace_id_ts")
        assert lookup == [{"n": 3 + 3}]

        store = TraceStore(client, "served")
        tenant = Tenant("acme", None)
        page = store.search_traces(tenant, TraceQuery(start_ns=NOW - 10**9, end_ns=NOW + 10**12))
        assert len(page.traces) == 6
        trace = store.get_trace(tenant, (1).to_bytes(16, "big").hex())
        assert [span.span_id for span in trace] == [(n + 1).to_bytes(8, "big").hex() for n in range(3)]
        assert store.get_trace(Tenant("other", None), (1).to_bytes(16, "big").hex()) == ()
    finally:
        await exporter.shutdown()


async def test_server_client_cluster_exporter_inserts_with_foreground_distribution(
    endpoint: str, tmp_path: Path
) -> None:
    # The schema of one server, made beforehand (chDB has no cluster); the exporter configured for a cluster
    # sends its inserts with insert_distributed_sync, which a plain MergeTree accepts and ignores.
    plain = _exporter(tmp_path, endpoint, database="clustered")
    await plain.start()
    await plain.shutdown()
    exporter = _exporter(tmp_path, endpoint, database="clustered", cluster="main", create_schema=False)
    await exporter.start()
    try:
        batch = _batch("traces:5-6", 0, 4)
        await exporter.send(batch)
        await exporter.send(batch)
        assert exporter.client is not None
        assert exporter.client.rows("SELECT count() AS n FROM clustered.otel_traces") == [{"n": 4}]
    finally:
        await exporter.shutdown()


def test_server_client_errors_as_clickhouse_sends_them(endpoint: str) -> None:
    client = ServerClient(endpoint, "observer", PASSWORD, timeout_seconds=5.0)
    try:
        assert client.rows("SELECT {text:String} AS t", {"text": "tab\there 'quoted'\n"}) == [
            {"t": "tab\there 'quoted'\n"}
        ]
        with pytest.raises(PermanentError, match="Code: 81"):
            client.rows("SELECT * FROM nowhere.nothing")
    finally:
        client.close()
    with pytest.raises((PermanentError, RetryableError), match=r"516|Authentication failed"):
        ServerClient(endpoint, "observer", "wrong", timeout_seconds=5.0).rows("SELECT 1")
