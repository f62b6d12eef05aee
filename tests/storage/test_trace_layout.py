"""``otel_traces`` keeps the spans of a trace together: its sort key puts ``TraceId`` after the service and the
minute, so reading one trace reads one granule, where the key it had before (span name before the second)
scattered a trace's spans over a granule per span name. Stores made with that older key keep it, and are still
read right."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from llm_observer.kernel.batch import SpanBatch
from llm_observer.storage.clickhouse import schema
from llm_observer.storage.clickhouse.client import ClickHouseClient
from llm_observer.storage.clickhouse.reads import Tenant, TraceStore, _Sql, _where
from tests.support import add_span
from tests.support.span_store import span_store

SECOND = 10**9
ACME = Tenant(organization_id="acme", project_ids=None)
RESOURCE = {"service.name": "shop", "llm_observer.organization.id": "acme", "llm_observer.project.id": "web"}
NAMES = ("handle request", "chat gpt-4o", "execute_tool search", "chat gpt-4o-mini")
TRACES = 10_000  # each span name alone fills more than one 8,192-row granule
START = (time.time_ns() // (60 * SECOND) - 5) * 60 * SECOND  # a whole minute, five minutes ago
TRACE_KEYED = (
    "ORDER BY (OrganizationId, ProjectId, ServiceName, toStartOfMinute(Timestamp), TraceId, Timestamp)"
)
BY_SPAN_NAME = "ORDER BY (OrganizationId, ProjectId, ServiceName, SpanName, toDateTime(Timestamp), Timestamp)"


def _trace_id(n: int) -> str:
    return (n + 1).to_bytes(16, "big").hex()


def _migrations_with(order_by: str) -> tuple[schema.Migration, ...]:
    first, *rest = schema.migrations("otel", 30)
    assert TRACE_KEYED in first.statements[0], "otel_traces' sort key changed: update this test"
    traces = first.statements[0].replace(TRACE_KEYED, order_by)
    return (schema.Migration(1, first.description, (traces, *first.statements[1:])), *rest)


@pytest.fixture(scope="module", params=["trace-keyed", "by span name"])
def stored(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClickHouseClient]:
    """A store whose ``otel_traces`` has the given key, holding ``TRACES`` traces of four spans, one per span
    name, all in the same minute, inserted at once (one part)."""
    order_by = TRACE_KEYED if request.param == "trace-keyed" else BY_SPAN_NAME
    batch = SpanBatch()
    for n in range(TRACES):
        start = START + n * 1000
        for k, name in enumerate(NAMES):
            trace_id = bytes.fromhex(_trace_id(n))
            add_span(
                batch, resource=RESOURCE, trace_id=trace_id, name=name, start=start + k, end=start + k + 500
            )
    with span_store(tmp_path_factory.mktemp("layout"), batch, _migrations_with(order_by)) as client:
        yield client


def _granules_read(client: ClickHouseClient, trace_id: str) -> int:
    """How many granules of ``otel_traces`` the span query of ``get_traces`` reads for ``trace_id`` (the same
    conditions: its id, the tenant, and the trace's time as the lookup table gives it)."""
    bounds = client.rows(
        "SELECT toUnixTimestamp64Nano(min(Start)) AS first, toUnixTimestamp64Nano(max(End)) AS last "
        f"FROM otel.{schema.TRACE_ID_TS_TABLE} WHERE TraceId = {{id:String}}",
        {"id": trace_id},
    )[0]
    sql = _Sql()
    where = [
        f"TraceId IN {sql.values([trace_id], 'String')}",
        *sql.tenant(ACME),
        *sql.time(int(bounds["first"]), int(bounds["last"]) + 1),
    ]
    plan = client.rows(
        f"EXPLAIN indexes = 1 SELECT SpanId FROM otel.{schema.TRACES_TABLE} WHERE {_where(where)}", sql.params
    )
    summary = next(
        row["explain"] for row in plan if "Parts:" in row["explain"] and "Granules:" in row["explain"]
    )
    return int(summary.rsplit("Granules:", 1)[1])


@pytest.mark.parametrize("n", [17, 4_321, 9_998])
def test_trace_layout_granules_one_trace_reads(stored: ClickHouseClient, n: int) -> None:
    key = stored.rows(
        f"SELECT sorting_key FROM system.tables WHERE database = 'otel' AND name = '{schema.TRACES_TABLE}'"
    )[0]["sorting_key"]
    granules = _granules_read(stored, _trace_id(n))
    if "TraceId" in key:
        assert granules == 1
    else:
        assert granules == len(NAMES)


@pytest.mark.parametrize("n", [0, 5_000, TRACES - 1])
def test_trace_layout_either_key_reads_every_span(stored: ClickHouseClient, n: int) -> None:
    spans = TraceStore(stored, "otel").get_trace(ACME, _trace_id(n))
    assert [span.name for span in spans] == list(NAMES)
    assert [span.start_ns for span in spans] == [START + n * 1000 + k for k in range(len(NAMES))]
