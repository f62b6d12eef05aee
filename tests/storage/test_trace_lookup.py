"""The trace-id lookup table keeps a partition a week, not a day: a lookup by id probes every part, so fewer
partitions make it cheaper, and every trace is still found by id whatever week it began in."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from llm_observer.kernel.batch import SpanBatch
from llm_observer.storage.clickhouse import schema
from llm_observer.storage.clickhouse.client import ClickHouseClient
from llm_observer.storage.clickhouse.reads import Tenant, TraceStore
from tests.support import add_span
from tests.support.span_store import span_store

DAY = 86400 * 10**9
ACME = Tenant(organization_id="acme", project_ids=None)
RESOURCE = {"service.name": "shop", "llm_observer.organization.id": "acme", "llm_observer.project.id": "web"}
NOW = time.time_ns()
DAYS = 20  # a trace a day for the last 20 days: three or four weeks


def _trace_id(day: int) -> str:
    return (day + 1).to_bytes(16, "big").hex()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseClient]:
    batch = SpanBatch()
    for day in range(DAYS):
        start = NOW - day * DAY
        trace = bytes.fromhex(_trace_id(day))
        add_span(batch, resource=RESOURCE, trace_id=trace, name="handle", start=start, end=start + 10**9)
        add_span(batch, resource=RESOURCE, trace_id=trace, start=start + 5, end=start + 10**8)
    with span_store(tmp_path_factory.mktemp("lookup"), batch) as client:
        yield client


def test_trace_lookup_partitions_by_week(client: ClickHouseClient) -> None:
    spans = client.rows(
        "SELECT uniqExact(toMonday(Timestamp)) AS weeks, uniqExact(toDate(Timestamp)) AS days "
        f"FROM otel.{schema.TRACES_TABLE}"
    )[0]
    partitions = client.rows(
        "SELECT DISTINCT partition FROM system.parts "
        f"WHERE active AND database = 'otel' AND table = '{schema.TRACE_ID_TS_TABLE}'"
    )
    assert len(partitions) == int(spans["weeks"]) < int(spans["days"]) == DAYS


@pytest.mark.parametrize("day", [0, 6, 7, DAYS - 1])
def test_trace_lookup_finds_a_trace_of_any_week(client: ClickHouseClient, day: int) -> None:
    spans = TraceStore(client, "otel").get_trace(ACME, _trace_id(day))
    assert [span.name for span in spans] == ["handle", "chat gpt-4o"]
    assert spans[0].start_ns == NOW - day * DAY
