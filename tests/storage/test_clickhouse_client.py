"""The server path (``ServerClient``, clickhouse-connect) without a ClickHouse server.

No ClickHouse server can be installed on these machines. clickhouse-connect drives the HTTP transport and its
embedded chDB backend through one client facade (the same ``insert_arrow``, ``query``, ``command``, settings
handling and error classes), so ``ServerClient`` runs here on that backend against the real engine; the HTTP
request that the facade would send for the exporter's insert is checked separately.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver._backend.httpcommon import plan_raw_insert_request
from clickhouse_connect.driver._backend.models import QueryRuntime
from clickhouse_connect.driver.query import arrow_buffer

from llm_observer.exporters.clickhouse import dedup_token
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.errors import ConfigError, PermanentError, RetryableError
from llm_observer.storage.clickhouse import schema
from llm_observer.storage.clickhouse.arrow import to_arrow
from llm_observer.storage.clickhouse.client import ServerClient, classify, open_client
from llm_observer.storage.clickhouse.migrate import current_ttl_days, ensure_schema
from tests.support import add_span

NOW = time.time_ns() - 60_000_000_000


def _batch(origin: str, spans: int = 10) -> SpanBatch:
    batch = SpanBatch(origin=origin)
    resource = {"service.name": "svc", "llm_observer.organization.id": "acme"}
    for n in range(spans):
        add_span(
            batch,
            {"gen_ai.usage.input_tokens": 10 + n, "gen_ai.request.model": "gpt-4o"},
            resource=resource,
            trace_id=bytes([n % 3]) * 16,
            span_id=n.to_bytes(8, "big"),
            start=NOW + n,
            end=NOW + n + 1000,
            scope_name="scope",
            scope_version="1",
        )
    return batch


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerClient]:
    logging.getLogger("clickhouse_connect").setLevel(logging.ERROR)  # timeouts mean nothing to chDB
    client = ServerClient(f"chdb://{tmp_path / 'engine'}", None, None, timeout_seconds=5.0)
    yield client
    client.close()


def _settings(batch: SpanBatch) -> dict[str, object]:
    return {
        "insert_deduplication_token": dedup_token(batch),
        "deduplicate_blocks_in_dependent_materialized_views": 1,
    }


def test_clickhouse_client_server_client_migrates_inserts_and_deduplicates(server: ServerClient) -> None:
    assert ensure_schema(server, "otel", 90) == [m.version for m in schema.migrations("otel", 90)]
    assert ensure_schema(server, "otel", 30) == []
    assert current_ttl_days(server, "otel") == 30

    batch = _batch("traces:3-4")
    table = to_arrow(batch)
    for _ in range(2):
        server.insert_arrow("`otel`.otel_traces", schema.INSERT_COLUMNS, table, _settings(batch))
    rows = server.rows(
        "SELECT count() AS n, sum(InputTokens) AS tokens, any(OrganizationId) AS org FROM otel.otel_traces "
        "WHERE GenAiRequestModel = {model:String}",
        {"model": "gpt-4o"},
    )
    assert rows == [{"n": 10, "tokens": sum(range(10, 20)), "org": "acme"}]
    assert server.rows("SELECT count() AS n FROM otel.otel_traces_trace_id_ts") == [{"n": 3}]
    arrow = server.arrow("SELECT SpanId FROM otel.otel_traces ORDER BY SpanId")
    assert arrow.column("SpanId").to_pylist() == [n.to_bytes(8, "big").hex() for n in range(10)]


def test_clickhouse_client_server_client_maps_errors(server: ServerClient) -> None:
    with pytest.raises(PermanentError):
        server.command("SELECT * FROM otel.no_such_table")
    with pytest.raises(PermanentError):
        server.rows("SELEKT 1")


def test_clickhouse_client_error_codes_split_permanent_from_retryable() -> None:
    assert isinstance(classify("Code: 252. DB::Exception: Too many parts (300).", "insert"), RetryableError)
    assert isinstance(classify("Code: 241. DB::Exception: Memory limit exceeded", "insert"), RetryableError)
    assert isinstance(classify("Code: 60. DB::Exception: Unknown table", "insert"), PermanentError)
    assert isinstance(classify("Code: 27. DB::Exception: Cannot parse input", "insert"), PermanentError)


def test_clickhouse_client_server_insert_request_carries_statement_and_token() -> None:
    batch = _batch("traces:8-9", spans=3)
    names, body = arrow_buffer(to_arrow(batch))
    plan = plan_raw_insert_request(
        "`otel`.otel_traces",
        names,
        body,
        "Arrow",
        "lz4",  # the client compresses inserts by default: the statement then travels as a URL parameter
        QueryRuntime(database=None, settings={k: str(v) for k, v in _settings(batch).items()}),
        None,
    )
    columns = ", ".join(f"`{name}`" for name in schema.INSERT_COLUMNS)
    assert plan.params["query"] == f"INSERT INTO `otel`.otel_traces ({columns}) FORMAT Arrow"
    assert plan.params["insert_deduplication_token"] == dedup_token(batch)
    assert plan.params["deduplicate_blocks_in_dependent_materialized_views"] == "1"
    assert dedup_token(batch) == f"traces:8-9/3/{'00' * 16}{'00' * 8}/{'02' * 16}0000000000000002"


def test_clickhouse_client_open_refuses_unknown_scheme(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        open_client("tcp://localhost:9000", tmp_path)
    assert [path for path, _ in info.value.problems] == ["endpoint"]


def test_clickhouse_client_unreachable_server_is_retryable(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RetryableError):
        open_client(f"http://127.0.0.1:{port}", tmp_path, timeout_seconds=2.0)
