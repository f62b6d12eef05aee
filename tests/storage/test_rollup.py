"""The model-call aggregates (``storage.clickhouse.rollup``) against the spans they summarise, on real chDB.

Counts, tokens and costs read from the aggregates must equal those read from the spans; latency percentiles
must equal the DDSketch of the same spans computed in one go (merging sketches loses nothing) and lie within
the sketch's accuracy of the exact percentiles.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from llm_observer.kernel.batch import SpanBatch
from llm_observer.storage.clickhouse import rollup, schema
from llm_observer.storage.clickhouse.arrow import to_arrow
from llm_observer.storage.clickhouse.client import ClickHouseClient, open_client
from llm_observer.storage.clickhouse.migrate import ensure_schema
from llm_observer.storage.clickhouse.reads import CallStats, MetricsSummary, SpanFilter, Tenant, TraceStore
from tests.support import add_span

SECOND = 10**9
MINUTE = 60 * SECOND
HOUR = 3600 * SECOND
# Two days ago, on the hour: eight hours of spans from here.
BASE = (time.time_ns() - 48 * HOUR) // HOUR * HOUR
END = BASE + 8 * HOUR
ACME = Tenant(organization_id="acme", project_ids=None)
ACME_WEB = Tenant(organization_id="acme", project_ids=frozenset({"web"}))
GLOBEX = Tenant(organization_id="globex", project_ids=None)
MODELS = (("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4"))
# Ranges whose edges fall inside minutes and hours, on boundaries, and outside the data.
RANGES = (
    (BASE - HOUR, END + HOUR),
    (BASE + 17 * SECOND + 123, END - 7 * MINUTE - 3 * SECOND),
    (BASE + 59 * MINUTE + 59 * SECOND, BASE + 3 * HOUR + 1),
    (BASE + HOUR, BASE + 4 * HOUR),
    (BASE + 30 * MINUTE, BASE + 50 * MINUTE + 30 * SECOND),
)


def _batch(rng: random.Random, count: int, offset: int) -> SpanBatch:
    """``count`` model calls (and a root span per trace of three) spread over the eight hours."""
    batch = SpanBatch()
    for n in range(count):
        org = "acme" if n % 4 else "globex"
        resource = {
            "service.name": f"svc-{n % 3}",
            "llm_observer.organization.id": org,
            "llm_observer.project.id": "web" if n % 5 else "api",
        }
        start = BASE + rng.randrange(8 * HOUR)
        trace = (offset + n // 3 + 1).to_bytes(16, "big")
        if n % 3 == 0:
            add_span(batch, {"user.id": "u0"}, resource=resource, trace_id=trace, name="handle", kind=2,
                     start=start, end=start + 3 * SECOND)  # fmt: skip
        provider, model = MODELS[rng.randrange(len(MODELS))]
        tokens_in, tokens_out = rng.randrange(1, 2000), rng.randrange(1, 500)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat" if n % 7 else "embeddings",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.response.model": model + "-2024" if n % 2 else model,
            "gen_ai.usage.input_tokens": tokens_in,
            "gen_ai.usage.output_tokens": tokens_out,
            "gen_ai.usage.cache_read.input_tokens": tokens_in // 3,
            "llm_observer.cost.usd": (tokens_in * 2.5 + tokens_out * 10) / 1e6,
            "user.id": f"u{n % 11}",
        }
        if n % 4 == 1:
            attributes["llm_observer.team.id"] = "search"
        duration = int(rng.lognormvariate(20.0, 1.0))  # ~0.5 s, from milliseconds to tens of seconds
        add_span(batch, attributes, resource=resource, trace_id=trace, name=f"chat {model}",
                 start=start, end=start + duration, status_code=2 if rng.random() < 0.05 else 1)  # fmt: skip
    return batch


def _fill(client: ClickHouseClient, seed: int = 14, database: str = "otel") -> None:
    rng = random.Random(seed)
    for part in range(4):  # several inserts: several parts and several aggregate rows per slot
        batch = _batch(rng, 1500, part * 10_000 + seed * 1_000_000)
        client.insert_arrow(f"`{database}`.{schema.TRACES_TABLE}", schema.INSERT_COLUMNS, to_arrow(batch))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseClient]:
    client = open_client("chdb://clickhouse", tmp_path_factory.mktemp("rollup"))
    try:
        ensure_schema(client, "otel", ttl_days=30)
        _fill(client)
        yield client
    finally:
        client.close()


def _stores(client: ClickHouseClient, database: str = "otel") -> tuple[TraceStore, TraceStore]:
    """(one reading the aggregates for every range, one reading only the spans)."""
    return (
        TraceStore(client, database, exact_max_calls=0),
        TraceStore(client, database, exact_max_calls=2**62),
    )


def _sketch(
    client: ClickHouseClient, tenant: Tenant, start_ns: int, end_ns: int, column: str, database: str = "otel"
) -> dict[str, Any]:
    """The DDSketch percentiles of the tenant's model calls in the range, per value of ``column`` and in
    total (key ``None``), computed over the spans in one go."""
    projects = (
        "" if tenant.project_ids is None else " AND ProjectId IN ('" + "','".join(tenant.project_ids) + "')"
    )
    rows = client.rows(
        f"SELECT {column} AS key, grouping(key) AS all_keys, {rollup.LATENCY_SKETCH}(Duration) AS q "
        f"FROM `{database}`.{schema.TRACES_TABLE} WHERE OrganizationId = {{org:String}}{projects} "
        "AND Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({hi:Int64}) "
        "AND GenAiRequestModel != '' GROUP BY GROUPING SETS ((key), ())",
        {"org": tenant.organization_id, "lo": start_ns, "hi": end_ns},
    )
    return {None if row["all_keys"] else row["key"]: [v / 1e6 for v in row["q"]] for row in rows}


def _exact_fields(stats: CallStats) -> tuple[int, ...]:
    return (
        stats.request_count,
        stats.error_count,
        stats.input_tokens,
        stats.output_tokens,
        stats.cache_read_tokens,
        stats.cache_write_tokens,
        stats.reasoning_tokens,
    )


def _assert_same_sums(fast: MetricsSummary, slow: MetricsSummary) -> None:
    assert _exact_fields(fast.total) == _exact_fields(slow.total)
    assert fast.total.cost_usd == pytest.approx(slow.total.cost_usd, rel=1e-9)
    assert [(g.key, _exact_fields(g.stats)) for g in fast.groups] == [
        (g.key, _exact_fields(g.stats)) for g in slow.groups
    ]
    for a, b in zip(fast.groups, slow.groups, strict=True):
        assert a.stats.cost_usd == pytest.approx(b.stats.cost_usd, rel=1e-9)
        assert (a.series is None) == (b.series is None)
        if a.series is not None and b.series is not None:
            assert [(p.time_ns, _exact_fields(p.stats)) for p in a.series] == [
                (p.time_ns, _exact_fields(p.stats)) for p in b.series
            ]
    assert (fast.series is None) == (slow.series is None)
    if fast.series is not None and slow.series is not None:
        assert [(p.time_ns, _exact_fields(p.stats)) for p in fast.series] == [
            (p.time_ns, _exact_fields(p.stats)) for p in slow.series
        ]


def _latencies(stats: CallStats) -> list[float]:
    return [stats.latency_p50_ms, stats.latency_p95_ms, stats.latency_p99_ms]


@pytest.mark.parametrize("start_ns, end_ns", RANGES)
@pytest.mark.parametrize("group_by", ["model", "project", "team", "operation", "provider", "service"])
def test_rollup_summary_matches_spans(
    client: ClickHouseClient, start_ns: int, end_ns: int, group_by: str
) -> None:
    fast, slow = _stores(client)
    got = fast.metrics_summary(ACME, start_ns, end_ns, group_by)
    want = slow.metrics_summary(ACME, start_ns, end_ns, group_by)
    assert want.total.request_count > 0
    _assert_same_sums(got, want)
    column = {"model": "GenAiRequestModel", "project": "ProjectId", "team": "TeamId",
              "operation": "GenAiOperation", "provider": "GenAiProvider", "service": "ServiceName"}[group_by]  # fmt: skip
    sketch = _sketch(client, ACME, start_ns, end_ns, column)
    assert _latencies(got.total) == pytest.approx(sketch[None], rel=1e-9)
    for group in got.groups:
        assert _latencies(group.stats) == pytest.approx(sketch[group.key], rel=1e-9)


@pytest.mark.parametrize("step", [60, 900, 3600, 7200])
def test_rollup_summary_series_match_spans(client: ClickHouseClient, step: int) -> None:
    fast, slow = _stores(client)
    start_ns, end_ns = RANGES[1]
    got = fast.metrics_summary(ACME, start_ns, end_ns, "model", None, step, group_series=True)
    want = slow.metrics_summary(ACME, start_ns, end_ns, "model", None, step, group_series=True)
    assert want.series and len(want.series) > 1
    _assert_same_sums(got, want)


def test_rollup_summary_percentiles_within_sketch_accuracy(client: ClickHouseClient) -> None:
    fast, slow = _stores(client)
    got = fast.metrics_summary(ACME, BASE, END)
    want = slow.metrics_summary(ACME, BASE, END)
    # 1 % from the sketch, plus the gap between neighbouring values the exact percentile interpolates over.
    assert _latencies(got.total) == pytest.approx(_latencies(want.total), rel=0.03)
    assert _latencies(got.total) != _latencies(want.total)  # the aggregates were read, not the spans


@pytest.mark.parametrize(
    "spans, group_by",
    [
        (SpanFilter(), "user"),
        (SpanFilter(user_id="u3"), "model"),
        (SpanFilter(conversation_id="c1"), "model"),
        (SpanFilter(attributes=(("user.id", "u3"),)), "model"),
        (SpanFilter(text="gpt"), "model"),
    ],
)
def test_rollup_filters_it_lacks_read_the_spans(
    client: ClickHouseClient, spans: SpanFilter, group_by: str
) -> None:
    fast, slow = _stores(client)
    got = fast.metrics_summary(ACME, BASE, END, group_by, spans)
    want = slow.metrics_summary(ACME, BASE, END, group_by, spans)
    _assert_same_sums(got, want)
    # Exact percentiles, equal: the spans were read.
    assert _latencies(got.total) == _latencies(want.total)
    assert [_latencies(g.stats) for g in got.groups] == [_latencies(g.stats) for g in want.groups]


@pytest.mark.parametrize(
    "spans",
    [
        SpanFilter(model="gpt-4o"),
        SpanFilter(model="gpt-4o-2024"),  # the responding model
        SpanFilter(provider="anthropic", operation="chat"),
        SpanFilter(service="svc-1", team_id="search"),
        SpanFilter(span_name="chat gpt-4o-mini"),
        SpanFilter(model="no-such-model"),
    ],
)
def test_rollup_filters_it_holds_match_spans(client: ClickHouseClient, spans: SpanFilter) -> None:
    fast, slow = _stores(client)
    start_ns, end_ns = RANGES[1]
    got = fast.metrics_summary(ACME, start_ns, end_ns, "model", spans, 3600)
    want = slow.metrics_summary(ACME, start_ns, end_ns, "model", spans, 3600)
    _assert_same_sums(got, want)


def test_rollup_summary_confined_to_tenant(client: ClickHouseClient) -> None:
    fast, slow = _stores(client)
    start_ns, end_ns = RANGES[1]
    totals = {}
    for tenant in (ACME, ACME_WEB, GLOBEX):
        got = fast.metrics_summary(tenant, start_ns, end_ns, "organization")
        want = slow.metrics_summary(tenant, start_ns, end_ns, "organization")
        _assert_same_sums(got, want)
        totals[tenant] = got.total.request_count
        assert [g.key for g in got.groups] == [tenant.organization_id]
    assert 0 < totals[ACME_WEB] < totals[ACME]
    assert totals[GLOBEX] > 0
    projects = fast.metrics_summary(ACME_WEB, start_ns, end_ns, "project")
    assert [g.key for g in projects.groups] == ["web"]


def test_rollup_small_summaries_stay_exact(client: ClickHouseClient) -> None:
    _, slow = _stores(client)
    want = slow.metrics_summary(ACME, BASE, END)
    calls = want.total.request_count
    at_limit = TraceStore(client, "otel", exact_max_calls=calls)
    assert _latencies(at_limit.metrics_summary(ACME, BASE, END).total) == _latencies(want.total)
    above = TraceStore(client, "otel", exact_max_calls=calls - 1)
    got = above.metrics_summary(ACME, BASE, END)
    assert _latencies(got.total) != _latencies(want.total)
    _assert_same_sums(got, want)


def test_rollup_plan_splits_ranges() -> None:
    s = SECOND
    plan = rollup.plan(BASE + 5 * s, BASE + 3 * HOUR + 2 * MINUTE + 7 * s, None)
    assert plan == rollup.RollupPlan(
        hours=(BASE // s + 3600, BASE // s + 3 * 3600),
        minutes=((BASE // s + 60, BASE // s + 3600), (BASE // s + 3 * 3600, BASE // s + 3 * 3600 + 120)),
        raw=(
            (BASE + 5 * s, BASE + MINUTE),
            (BASE + 3 * HOUR + 2 * MINUTE, BASE + 3 * HOUR + 2 * MINUTE + 7 * s),
        ),
    )
    on_bounds = rollup.plan(BASE, BASE + 2 * HOUR, 3600)
    assert on_bounds == rollup.RollupPlan((BASE // s, BASE // s + 7200), (), ())
    # A step of whole minutes but not whole hours: the minute table alone.
    assert rollup.plan(BASE, BASE + 2 * HOUR, 900) == rollup.RollupPlan(
        None, ((BASE // s, BASE // s + 7200),), ()
    )
    assert rollup.plan(BASE, BASE + 2 * HOUR, 90) is None  # buckets would split minutes
    assert rollup.plan(BASE + s, BASE + MINUTE + s, None) is None  # no whole minute
    assert rollup.plan(-HOUR, HOUR, None) is None  # before 1970: not a DateTime


def test_rollup_upgrade_backfills_existing_store(client: ClickHouseClient) -> None:
    # A store made by the previous schema version (a database of its own beside the module's).
    older = schema.migrations("older", 30)[:2]
    ensure_schema(client, "older", 30, migrations=older)
    _fill(client, database="older")
    fast, slow = _stores(client, "older")
    start_ns, end_ns = RANGES[1]
    want = slow.metrics_summary(ACME, start_ns, end_ns, "model", None, 3600)
    # Before the upgrade the aggregates do not exist: the spans are read.
    before = fast.metrics_summary(ACME, start_ns, end_ns, "model", None, 3600)
    _assert_same_sums(before, want)
    assert _latencies(before.total) == _latencies(want.total)
    assert ensure_schema(client, "older", 30) == [3, 4]
    got = fast.metrics_summary(ACME, start_ns, end_ns, "model", None, 3600)
    _assert_same_sums(got, want)
    sketch = _sketch(client, ACME, start_ns, end_ns, "ProjectId", "older")
    assert _latencies(got.total) == pytest.approx(sketch[None], rel=1e-9)
    # Spans written after the upgrade reach the aggregates through the views, and are not counted twice.
    _fill(client, seed=15, database="older")
    again = slow.metrics_summary(ACME, start_ns, end_ns, "model", None, 3600)
    assert again.total.request_count > want.total.request_count
    _assert_same_sums(fast.metrics_summary(ACME, start_ns, end_ns, "model", None, 3600), again)
