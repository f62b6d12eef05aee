"""The ClickHouse storage exporter against a real chDB store in a temporary directory."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pydantic
import pytest

from llm_observer.exporters.clickhouse import ClickHouseExporter, ClickHouseExporterConfig, factory
from llm_observer.kernel.batch import Event, Link, SpanBatch
from llm_observer.kernel.component import Component, CreateContext, Exporter
from llm_observer.kernel.errors import ConfigError, PermanentError, RetryableError
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.storage.clickhouse import schema
from llm_observer.storage.clickhouse.client import ClickHouseClient, open_client
from llm_observer.storage.clickhouse.migrate import ensure_schema
from tests.support import add_span

NOW = time.time_ns() - 3_600_000_000_000  # an hour ago: well inside any retention
DAY = 86_400_000_000_000
TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
OTHER_TRACE = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")


def _context(data_dir: Path) -> CreateContext:
    return CreateContext("clickhouse", data_dir, Telemetry(), logging.getLogger("test"))


def _exporter(data_dir: Path, **config: Any) -> ClickHouseExporter:
    return factory.create(_context(data_dir), ClickHouseExporterConfig(**config))


@pytest.fixture
async def exporter(tmp_path: Path) -> AsyncIterator[ClickHouseExporter]:
    exp = _exporter(tmp_path)
    await exp.start()
    yield exp
    await exp.shutdown()


def _client(exp: ClickHouseExporter) -> ClickHouseClient:
    assert exp.client is not None
    return exp.client


def _add(
    batch: SpanBatch,
    *,
    span_id: bytes,
    trace_id: bytes = TRACE,
    parent: bytes = b"",
    start: int = NOW,
    status: int = 0,
    **fields: Any,
) -> None:
    """One span as the OpenAI instrumentation sends it; ``fields`` go to ``add_span``."""
    add_span(
        batch,
        span_id=span_id,
        trace_id=trace_id,
        parent_span_id=parent,
        start=start,
        status_code=status,
        scope_name="llm_observer.instrumentation.openai",
        scope_version="0.1.0",
        **fields,
    )


def _count(exp: ClickHouseExporter, table: str = schema.TRACES_TABLE) -> int:
    return int(_client(exp).rows(f"SELECT count() AS n FROM otel.{table}")[0]["n"])


async def test_clickhouse_stores_every_column_exactly(exporter: ClickHouseExporter) -> None:
    resource = {"service.name": "support-bot", "service.version": "1.2.0", "llm_observer.project.id": "p1"}
    batch = SpanBatch(origin="traces:1-3")
    _add(
        batch,
        span_id=bytes.fromhex("00f067aa0ba902b7"),
        name="invoke_agent support",
        kind=1,
        start=NOW,
        end=NOW + 2_000_000_000,
        attributes={"gen_ai.operation.name": "invoke_agent"},
        resource=resource,
    )
    _add(
        batch,
        span_id=bytes.fromhex("53995c3f42cd8ad8"),
        parent=bytes.fromhex("00f067aa0ba902b7"),
        start=NOW + 10,
        end=NOW + 1_000_000_010,
        status=2,
        status_message="rate limited",
        attributes={
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.request.temperature": 0.7,
            "gen_ai.request.stream": True,
            "gen_ai.response.finish_reasons": ["stop", "length"],
            "gen_ai.tool.definitions": {"name": "search", "strict": False, "n": 2},
            "blob": b"\x00\x01\xfe",
            "note": 'héllo "quoted"',
            "negative": -3,
        },
        resource=resource,
        events=[
            Event(NOW + 20, "gen_ai.choice", {"index": 0, "finish_reason": "stop"}),
            Event(NOW + 30, "exception", {"exception.type": "RateLimitError"}),
        ],
        links=[Link(OTHER_TRACE, bytes.fromhex("b7ad6b7169203331"), "vendor=x", {"link.kind": "follows"})],
    )
    _add(
        batch,
        span_id=bytes.fromhex("d75597dee50b0cac"),
        parent=bytes.fromhex("00f067aa0ba902b7"),
        name="execute_tool search",
        kind=9,  # not an OTLP kind: stored as Unspecified, not refused
        start=NOW + 100,
        end=NOW + 50,  # ends before it starts: no duration rather than a huge one
        status=1,
        resource={"service.name": "tools", "host.name": "h1"},
    )
    await exporter.send(batch)

    rows = _client(exporter).rows(
        """
        SELECT toUnixTimestamp64Nano(Timestamp) AS ts, TraceId, SpanId, ParentSpanId, TraceState, SpanName,
               SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration,
               StatusCode, StatusMessage, arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS ev_ts,
               Events.Name AS ev_name, Events.Attributes AS ev_attrs, Links.TraceId AS ln_trace,
               Links.SpanId AS ln_span, Links.TraceState AS ln_state, Links.Attributes AS ln_attrs
        FROM otel.otel_traces ORDER BY Timestamp
        """
    )
    common = {"TraceId": TRACE.hex(), "TraceState": "", "ScopeName": "llm_observer.instrumentation.openai"}
    common["ScopeVersion"] = "0.1.0"
    stored_resource = {
        "service.name": "support-bot",
        "service.version": "1.2.0",
        "llm_observer.project.id": "p1",
    }
    assert rows == [
        {
            **common,
            "ts": NOW,
            "SpanId": "00f067aa0ba902b7",
            "ParentSpanId": "",
            "SpanName": "invoke_agent support",
            "SpanKind": "Internal",
            "ServiceName": "support-bot",
            "ResourceAttributes": stored_resource,
            "SpanAttributes": {"gen_ai.operation.name": "invoke_agent"},
            "Duration": 2_000_000_000,
            "StatusCode": "Unset",
            "StatusMessage": "",
            "ev_ts": [],
            "ev_name": [],
            "ev_attrs": [],
            "ln_trace": [],
            "ln_span": [],
            "ln_state": [],
            "ln_attrs": [],
        },
        {
            **common,
            "ts": NOW + 10,
            "SpanId": "53995c3f42cd8ad8",
            "ParentSpanId": "00f067aa0ba902b7",
            "SpanName": "chat gpt-4o",
            "SpanKind": "Client",
            "ServiceName": "support-bot",
            "ResourceAttributes": stored_resource,
            "SpanAttributes": {
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": "1200",
                "gen_ai.request.temperature": "0.7",
                "gen_ai.request.stream": "true",
                "gen_ai.response.finish_reasons": '["stop","length"]',
                "gen_ai.tool.definitions": '{"name":"search","strict":false,"n":2}',
                "blob": "AAH+",
                "note": 'héllo "quoted"',
                "negative": "-3",
            },
            "Duration": 1_000_000_000,
            "StatusCode": "Error",
            "StatusMessage": "rate limited",
            "ev_ts": [NOW + 20, NOW + 30],
            "ev_name": ["gen_ai.choice", "exception"],
            "ev_attrs": [{"index": "0", "finish_reason": "stop"}, {"exception.type": "RateLimitError"}],
            "ln_trace": [OTHER_TRACE.hex()],
            "ln_span": ["b7ad6b7169203331"],
            "ln_state": ["vendor=x"],
            "ln_attrs": [{"link.kind": "follows"}],
        },
        {
            **common,
            "ts": NOW + 100,
            "SpanId": "d75597dee50b0cac",
            "ParentSpanId": "00f067aa0ba902b7",
            "SpanName": "execute_tool search",
            "SpanKind": "Unspecified",
            "ServiceName": "tools",
            "ResourceAttributes": {"service.name": "tools", "host.name": "h1"},
            "SpanAttributes": {},
            "Duration": 0,
            "StatusCode": "Ok",
            "StatusMessage": "",
            "ev_ts": [],
            "ev_name": [],
            "ev_attrs": [],
            "ln_trace": [],
            "ln_span": [],
            "ln_state": [],
            "ln_attrs": [],
        },
    ]
    lookup = _client(exporter).rows(
        "SELECT TraceId, toUnixTimestamp64Nano(Start) AS s, toUnixTimestamp64Nano(End) AS e "
        "FROM otel.otel_traces_trace_id_ts"
    )
    assert lookup == [{"TraceId": TRACE.hex(), "s": NOW, "e": NOW + 100}]


async def test_clickhouse_genai_columns_derive_from_attributes(exporter: ClickHouseExporter) -> None:
    batch = SpanBatch(origin="traces:7-7")
    tenant = {
        "service.name": "app",
        "llm_observer.organization.id": "acme",
        "llm_observer.project.id": "search",
    }
    _add(
        batch,
        span_id=b"\x01" * 8,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.response.model": "claude-sonnet-4-5-20250929",
            "gen_ai.usage.input_tokens": 1500,
            "gen_ai.usage.output_tokens": 320,
            "gen_ai.usage.cache_read.input_tokens": 1000,
            "gen_ai.usage.cache_creation.input_tokens": 200,
            "gen_ai.usage.reasoning.output_tokens": 64,
            "llm_observer.cost.usd": 0.012345,
            "user.id": "u-42",
            "gen_ai.conversation.id": "conv-9",
            "session.id": "sess-ignored",
        },
        resource=tenant,
    )
    _add(
        batch,
        span_id=b"\x02" * 8,
        attributes={
            "gen_ai.usage.cache_write.input_tokens": 77,
            "session.id": "sess-1",
            "llm_observer.project.id": "from-span",
            "llm_observer.team.id": "t-1",
        },
        resource=tenant,
    )
    _add(batch, span_id=b"\x03" * 8, attributes={"gen_ai.usage.input_tokens": "not a number"})
    await exporter.send(batch)

    rows = _client(exporter).rows(
        "SELECT GenAiOperation, GenAiProvider, GenAiRequestModel, GenAiResponseModel, InputTokens, OutputTokens, "
        "CacheReadTokens, CacheWriteTokens, ReasoningTokens, CostUsd, OrganizationId, ProjectId, TeamId, "
        "UserId, ConversationId FROM otel.otel_traces ORDER BY SpanId"
    )
    assert rows == [
        {
            "GenAiOperation": "chat",
            "GenAiProvider": "anthropic",
            "GenAiRequestModel": "claude-sonnet-4-5",
            "GenAiResponseModel": "claude-sonnet-4-5-20250929",
            "InputTokens": 1500,
            "OutputTokens": 320,
            "CacheReadTokens": 1000,
            "CacheWriteTokens": 200,
            "ReasoningTokens": 64,
            "CostUsd": 0.012345,
            "OrganizationId": "acme",
            "ProjectId": "search",
            "TeamId": "",
            "UserId": "u-42",
            "ConversationId": "conv-9",
        },
        {
            "GenAiOperation": "",
            "GenAiProvider": "",
            "GenAiRequestModel": "",
            "GenAiResponseModel": "",
            "InputTokens": 0,
            "OutputTokens": 0,
            "CacheReadTokens": 0,
            "CacheWriteTokens": 77,
            "ReasoningTokens": 0,
            "CostUsd": 0,
            "OrganizationId": "acme",
            "ProjectId": "from-span",
            "TeamId": "t-1",
            "UserId": "",
            "ConversationId": "sess-1",
        },
        {
            "GenAiOperation": "",
            "GenAiProvider": "",
            "GenAiRequestModel": "",
            "GenAiResponseModel": "",
            "InputTokens": 0,
            "OutputTokens": 0,
            "CacheReadTokens": 0,
            "CacheWriteTokens": 0,
            "ReasoningTokens": 0,
            "CostUsd": 0,
            "OrganizationId": "default",
            "ProjectId": "default",
            "TeamId": "",
            "UserId": "",
            "ConversationId": "",
        },
    ]


def _two_day_batch(origin: str) -> SpanBatch:
    """Spans of two traces over two days, so the insert writes two partitions."""
    batch = SpanBatch(origin=origin)
    for n in range(50):
        _add(
            batch,
            trace_id=TRACE if n % 2 else OTHER_TRACE,
            span_id=n.to_bytes(8, "big"),
            start=NOW - (DAY if n < 25 else 0) + n,
        )
    return batch


async def test_clickhouse_replayed_origin_is_stored_once(exporter: ClickHouseExporter) -> None:
    await exporter.send(_two_day_batch("traces:10-19"))
    await exporter.send(_two_day_batch("traces:10-19"))
    # A later range is stored, even when it repeats an earlier batch's spans.
    await exporter.send(_two_day_batch("traces:20-29"))
    assert _count(exporter) == 100
    lookup = _client(exporter).rows(
        f"SELECT TraceId, count() AS n FROM otel.{schema.TRACE_ID_TS_TABLE} GROUP BY TraceId ORDER BY TraceId"
    )
    # The view aggregates each stored insert: one lookup row per trace per stored insert, two, not three.
    assert lookup == [{"TraceId": TRACE.hex(), "n": 2}, {"TraceId": OTHER_TRACE.hex(), "n": 2}]


async def test_clickhouse_same_origin_with_other_spans_is_stored(exporter: ClickHouseExporter) -> None:
    # A WAL that starts numbering again (a new data dir) must not make new spans look like a replay.
    first = SpanBatch(origin="traces:1-1")
    _add(first, span_id=b"\x01" * 8)
    second = SpanBatch(origin="traces:1-1")
    _add(second, span_id=b"\x02" * 8)
    await exporter.send(first)
    await exporter.send(second)
    assert _count(exporter) == 2


async def test_clickhouse_empty_batch_is_a_no_op(exporter: ClickHouseExporter) -> None:
    await exporter.send(SpanBatch(origin="traces:5-5"))
    assert _count(exporter) == 0


async def test_clickhouse_migrations_apply_once_across_restarts(tmp_path: Path) -> None:
    for _ in range(2):
        exp = _exporter(tmp_path)
        await exp.start()
        await exp.start()  # idempotent
        versions = _client(exp).rows(f"SELECT version FROM otel.{schema.MIGRATIONS_TABLE} ORDER BY version")
        assert versions == [{"version": m.version} for m in schema.migrations("otel", 90)]
        assert ensure_schema(_client(exp), "otel", 90) == []
        await exp.shutdown()
        await exp.shutdown()


async def test_clickhouse_new_migration_applies_on_an_existing_store(exporter: ClickHouseExporter) -> None:
    client = _client(exporter)
    later = (
        *schema.migrations("otel", 90),
        schema.Migration(
            99,
            "an index on the response model",
            ("ALTER TABLE otel.otel_traces ADD INDEX idx_rm GenAiResponseModel TYPE set(64) GRANULARITY 4",),
        ),
    )
    assert ensure_schema(client, "otel", 90, later) == [99]
    assert ensure_schema(client, "otel", 90, later) == []
    indexes = client.rows(
        "SELECT name FROM system.data_skipping_indices WHERE database = 'otel' AND name = 'idx_rm'"
    )
    assert indexes == [{"name": "idx_rm"}]


def _ttl(exp: ClickHouseExporter, table: str) -> str:
    rows = _client(exp).rows(
        "SELECT engine_full FROM system.tables WHERE database = 'otel' AND name = {t:String}", {"t": table}
    )
    return str(rows[0]["engine_full"])


async def test_clickhouse_ttl_change_is_applied_on_start(tmp_path: Path) -> None:
    first = _exporter(tmp_path, ttl_days=90)
    await first.start()
    assert "toIntervalDay(90)" in _ttl(first, schema.TRACES_TABLE)
    await first.shutdown()

    second = _exporter(tmp_path, ttl_days=7)
    await second.start()
    try:
        assert "toIntervalDay(7)" in _ttl(second, schema.TRACES_TABLE)
        assert "toIntervalDay(7)" in _ttl(second, schema.TRACE_ID_TS_TABLE)
        # Spans older than the new retention are not kept; younger ones are.
        batch = SpanBatch(origin="traces:1-2")
        _add(batch, span_id=b"\x01" * 8, start=NOW - 30 * DAY)
        _add(batch, span_id=b"\x02" * 8, start=NOW)
        await second.send(batch)
        assert _count(second) == 1
    finally:
        await second.shutdown()


async def test_clickhouse_store_survives_reopening(tmp_path: Path) -> None:
    first = _exporter(tmp_path, endpoint="chdb://store")
    await first.start()
    batch = SpanBatch(origin="traces:1-1")
    _add(batch, span_id=b"\x07" * 8, attributes={"gen_ai.usage.input_tokens": 5})
    await first.send(batch)
    await first.shutdown()

    second = _exporter(tmp_path, endpoint="chdb://store")
    await second.start()
    try:
        rows = _client(second).rows("SELECT SpanId, InputTokens FROM otel.otel_traces")
        assert rows == [{"SpanId": "07" * 8, "InputTokens": 5}]
        await second.send(batch)  # the replay is still recognised after the reopen
        assert _count(second) == 1
    finally:
        await second.shutdown()
    assert (tmp_path / "store").is_dir()


async def test_clickhouse_absolute_endpoint_is_used_as_is(tmp_path: Path) -> None:
    exp = _exporter(tmp_path / "data", endpoint=f"chdb://{tmp_path / 'elsewhere'}")
    await exp.start()
    await exp.shutdown()
    assert (tmp_path / "elsewhere").is_dir()
    assert not (tmp_path / "data").exists()


def test_clickhouse_config_rejects_unknown_endpoint_scheme() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        ClickHouseExporterConfig(endpoint="clickhouse://localhost:9000")
    assert [error["loc"] for error in info.value.errors()] == [("endpoint",)]
    with pytest.raises(pydantic.ValidationError):
        ClickHouseExporterConfig(ttl_days=0)
    with pytest.raises(pydantic.ValidationError):
        ClickHouseExporterConfig(database="otel; DROP TABLE x")
    with pytest.raises(pydantic.ValidationError):
        ClickHouseExporterConfig(unknown_key=1)  # type: ignore[call-arg]


async def test_clickhouse_unopenable_endpoint_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    exp = _exporter(tmp_path, endpoint="chdb://file/store")
    with pytest.raises(ConfigError) as info:
        await exp.start()
    assert [path for path, _ in info.value.problems] == ["endpoint"]
    await exp.shutdown()


async def test_clickhouse_send_before_start_is_retryable(tmp_path: Path) -> None:
    exp = _exporter(tmp_path)
    batch = SpanBatch()
    _add(batch, span_id=b"\x01" * 8)
    with pytest.raises(RetryableError):
        await exp.send(batch)


async def test_clickhouse_unstorable_time_is_a_permanent_error(exporter: ClickHouseExporter) -> None:
    batch = SpanBatch(origin="traces:1-1")
    _add(batch, span_id=b"\x01" * 8, start=2**64 - 1)
    with pytest.raises(PermanentError):
        await exporter.send(batch)


async def test_clickhouse_missing_table_is_a_permanent_error(tmp_path: Path) -> None:
    exp = _exporter(tmp_path, create_schema=False)
    await exp.start()
    try:
        assert _client(exp).rows("SELECT name FROM system.databases WHERE name = 'otel'") == []
        batch = SpanBatch()
        _add(batch, span_id=b"\x01" * 8)
        with pytest.raises(PermanentError):
            await exp.send(batch)
    finally:
        await exp.shutdown()


async def test_clickhouse_conformance_create_start_shutdown_twice(tmp_path: Path) -> None:
    config = factory.config_model()
    assert factory.type_name == "clickhouse"
    for _ in range(2):
        component: Exporter = factory.create(_context(tmp_path), config)
        assert isinstance(component, Component)
        await component.shutdown()  # safe before start
        await component.start()
        await component.start()
        await component.shutdown()
        await component.shutdown()


async def test_clickhouse_shutdown_waits_for_sends_under_way(tmp_path: Path) -> None:
    exp = _exporter(tmp_path)
    await exp.start()
    batches = []
    for n in range(2):
        batch = SpanBatch(origin=f"traces:{n}-{n}")
        for i in range(1000):
            _add(batch, span_id=(n * 10_000 + i).to_bytes(8, "big"), attributes={"note": "x" * 200})
        batches.append(batch)
    sending = asyncio.create_task(exp.send(batches[0]))
    cancelled = asyncio.create_task(exp.send(batches[1]))
    await asyncio.sleep(0)  # both sends hand their batch to a worker thread
    cancelled.cancel()
    await exp.shutdown()
    assert sending.done() and sending.exception() is None
    assert cancelled.cancelled()

    reopened = _exporter(tmp_path)
    await reopened.start()
    try:
        # The cancelled send's insert still completed; its retry is recognised as a replay.
        await reopened.send(batches[1])
        assert _count(reopened) == 2000
    finally:
        await reopened.shutdown()


def test_clickhouse_chdb_client_is_shared_until_the_last_close(tmp_path: Path) -> None:
    first = open_client("chdb://store", tmp_path)
    second = open_client(f"chdb://{tmp_path / 'store'}", tmp_path)  # the same path, spelled otherwise
    assert first is second
    first.close()
    assert second.rows("SELECT 1 AS one") == [{"one": 1}]
    second.close()
    second.close()  # a close too many is harmless
    third = open_client("chdb://store", tmp_path)
    try:
        assert third is not first
        assert third.rows("SELECT 2 AS two") == [{"two": 2}]
    finally:
        third.close()
