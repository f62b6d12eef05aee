"""Query-service benchmark: trace-by-id p99 and trace search / metrics summary p95 over 24 h.

Generates ``--spans`` GenAI spans (default 10 million) into a chDB store in a temporary directory (or
``--data-dir``), spread evenly over ``--days`` days: traces of one root span plus ``--calls`` model calls with
provider, model, tokens, cost, user and a prompt of ~200 bytes, in ``--orgs`` organizations. Rows are generated
inside ClickHouse (``INSERT … SELECT FROM numbers()``) into the real schema (created by the exporter's
migrations), so the trace-id lookup table is filled by its materialized view as in production.

Then measures, with the result cache off, through the query service's REST API on a local port (what a client
sees: HTTP, JSON, SQL) and, for comparison, the store alone:

* trace by id (random existing traces, each read once; lookup table then ``otel_traces``) — p50 / p99;
* trace search over the last 24 h (newest 50; unfiltered, by model, errors only) — p50 / p95;
* metrics summary over the last 24 h grouped by model, and with a one-hour series — p50 / p95.

Usage: ``python bench/bench_query.py [--spans 10000000] [--days 7] [--orgs 1] [--runs 50]``
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.query.component import factory
from llm_observer.query.config import GrpcConfig, HttpConfig, QueryConfig, VectorsConfig
from llm_observer.storage.clickhouse.client import open_client
from llm_observer.storage.clickhouse.migrate import ensure_schema
from llm_observer.storage.clickhouse.reads import SpanFilter, Tenant, TraceQuery, TraceStore
from llm_observer.storage.clickhouse.schema import TRACES_TABLE
from llm_observer.storage.clickhouse.settings import ClickHouseSettings

MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "gemini-2.0-flash", "llama-3.1-70b")
PROVIDERS = ("openai", "openai", "anthropic", "gcp.gemini", "groq")
PROMPT = (
    "You are a helpful assistant. The customer asks about order {n}: when will it arrive, can the address be "
    "changed, and is there a discount for the delay? Answer briefly and politely."
)


def trace_id(n: int) -> str:
    """The id the generator gives trace ``n`` (MD5 of its number, as ClickHouse computes it)."""
    return hashlib.md5(str(n).encode()).hexdigest()


def generate(
    client: Any, database: str, spans: int, days: float, orgs: int, calls: int, end_ns: int
) -> float:
    """Insert ``spans`` spans; returns the seconds it took."""
    per_trace = calls + 1
    traces = spans // per_trace
    span_ns = int(days * 86400 * 1e9 / max(1, traces))
    start_ns = end_ns - int(days * 86400 * 1e9)
    models = "[" + ",".join(f"'{m}'" for m in MODELS) + "]"
    providers = "[" + ",".join(f"'{p}'" for p in PROVIDERS) + "]"
    prompt_head, prompt_tail = PROMPT.split("{n}")
    chunk = 1_000_000 // per_trace * per_trace
    began = time.perf_counter()
    for offset in range(0, traces * per_trace, chunk):
        count = min(chunk, traces * per_trace - offset)
        sql = f"""
INSERT INTO `{database}`.{TRACES_TABLE}
    (Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName, ResourceAttributes,
     ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, StatusMessage,
     `Events.Timestamp`, `Events.Name`, `Events.Attributes`,
     `Links.TraceId`, `Links.SpanId`, `Links.TraceState`, `Links.Attributes`)
SELECT
    fromUnixTimestamp64Nano(toInt64({start_ns} + t * {span_ns} + i * 1000000)) AS ts,
    lower(hex(MD5(toString(t)))) AS TraceId,
    substring(lower(hex(MD5(concat(toString(t), '/', toString(i))))), 1, 16) AS SpanId,
    if(i = 0, '', substring(lower(hex(MD5(concat(toString(t), '/0')))), 1, 16)) AS ParentSpanId,
    '' AS TraceState,
    if(i = 0, 'handle request', concat('chat ', arrayElement({models}, m + 1))) AS SpanName,
    if(i = 0, 'Server', 'Client') AS SpanKind,
    concat('service-', toString(t % 5)) AS ServiceName,
    map('service.name', concat('service-', toString(t % 5)),
        'llm_observer.organization.id', concat('org-', toString(t % {orgs})),
        'llm_observer.project.id', concat('project-', toString(t % 3))) AS ResourceAttributes,
    'bench' AS ScopeName, '1' AS ScopeVersion,
    if(i = 0,
       map('user.id', concat('user-', toString(t % 1000))),
       map('gen_ai.operation.name', 'chat',
           'gen_ai.provider.name', arrayElement({providers}, m + 1),
           'gen_ai.request.model', arrayElement({models}, m + 1),
           'gen_ai.response.model', arrayElement({models}, m + 1),
           'gen_ai.usage.input_tokens', toString(100 + (t * 7 + i) % 900),
           'gen_ai.usage.output_tokens', toString(20 + (t * 3 + i) % 300),
           'llm_observer.cost.usd', toString(((100 + (t * 7 + i) % 900) * 2.5 + (20 + (t * 3 + i) % 300) * 10) / 1e6),
           'user.id', concat('user-', toString(t % 1000)),
           'gen_ai.input.messages', concat('[{{"role":"user","parts":[{{"type":"text","content":"',
               '{prompt_head}', toString(t), '{prompt_tail}', '"}}]}}]'))) AS SpanAttributes,
    toUInt64(if(i = 0, 400000000 + (t % 1000) * 1000000, 50000000 + ((t * 13 + i) % 2000) * 1000000)) AS Duration,
    if(i > 0 AND (t + i) % 50 = 0, 'Error', 'Ok') AS StatusCode,
    if(i > 0 AND (t + i) % 50 = 0, 'rate limited', '') AS StatusMessage,
    [], [], [], [], [], [], []
FROM (
    SELECT intDiv(number, {per_trace}) AS t, number % {per_trace} AS i, (intDiv(number, {per_trace}) + i) % 5 AS m
    FROM numbers({offset}, {count})
)
"""
        client.command(sql)
        done = offset + count
        elapsed = time.perf_counter() - began
        print(f"  generated {done:,} spans ({done / elapsed:,.0f}/s)", file=sys.stderr, flush=True)
    return time.perf_counter() - began


async def measure(name: str, runs: int, call: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    await call()  # warm-up: caches of the engine, not of the service
    durations = []
    for _ in range(runs):
        began = time.perf_counter()
        await call()
        durations.append((time.perf_counter() - began) * 1000)
    durations.sort()

    def pct(q: float) -> float:
        return durations[min(len(durations) - 1, round(q * (len(durations) - 1)))]

    result = {
        "p50_ms": pct(0.5),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_ms": statistics.fmean(durations),
    }
    print(
        f"  {name:<44} p50 {result['p50_ms']:7.1f} ms   p95 {result['p95_ms']:7.1f} ms   "
        f"p99 {result['p99_ms']:7.1f} ms",
        flush=True,
    )
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="bench-query-"))
    results: dict[str, Any] = {"spans": args.spans, "days": args.days, "orgs": args.orgs}
    end_ns = time.time_ns()
    client = open_client("chdb://clickhouse", data_dir)
    try:
        ensure_schema(client, "otel", ttl_days=max(30, int(args.days) + 2))
        existing = client.rows("SELECT count() AS n FROM otel.otel_traces")[0]["n"]
        if existing < args.spans:
            print(f"Generating {args.spans:,} spans over {args.days} days in {data_dir} …", file=sys.stderr)
            results["generate_seconds"] = generate(
                client, "otel", args.spans, args.days, args.orgs, args.calls, end_ns
            )
        stored = client.rows("SELECT count() AS n, max(Timestamp) AS last FROM otel.otel_traces")[0]
        results["stored_spans"] = stored["n"]
        day_rows = client.rows(
            "SELECT count() AS n FROM otel.otel_traces WHERE OrganizationId = 'org-0' "
            "AND Timestamp >= now64(9) - INTERVAL 1 DAY"
        )[0]["n"]
        results["spans_in_24h_for_tenant"] = day_rows
        print(f"{stored['n']:,} spans stored; {day_rows:,} of org-0 in the last 24 h", flush=True)
        per_trace = args.calls + 1
        traces = args.spans // per_trace
        rng = random.Random(7)
        # Trace t belongs to org-(t % orgs): pick org-0's, the tenant measured below. Each read (warm-up
        # included) gets a trace no earlier read asked for: a repeated id would be answered from the engine's
        # caches (its query condition cache remembers which granules held no match for that id).
        reads = args.runs * 2 + 1
        pool = max(1, traces // args.orgs)
        picked = rng.sample(range(pool), min(2 * reads, pool))
        ids = [trace_id(t * args.orgs) for t in picked]

        config = QueryConfig(
            http=HttpConfig(endpoint="127.0.0.1:0"),
            grpc=GrpcConfig(endpoint="127.0.0.1:0"),
            cache_ttl_seconds=0,
            vectors=VectorsConfig(enabled=False),
        )
        # As the collector's runtime makes it: the query extension reads the store the exporter names.
        ctx = CreateContext(
            "query",
            data_dir,
            Telemetry(),
            logging.getLogger("bench.query"),
            configs={"exporters": {"clickhouse": ClickHouseSettings(endpoint="chdb://clickhouse")}},
        )
        service = factory.create(ctx, config)
        await service.start()
        try:
            store = TraceStore(client, "otel")
            tenant = Tenant(organization_id="org-0", project_ids=None)
            day_start = time.time_ns() - 86400 * 10**9
            http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http_port}", timeout=60)
            org = {"organization_id": "org-0"}
            t_ids = iter(ids[:reads] * 2)  # the store alone; repeats only on a store of fewer traces
            it = iter(ids[reads:] + ids * 2)  # through REST: the other half
            print("Store alone:", flush=True)
            results["store"] = {
                "trace_by_id": await measure(
                    "trace by id",
                    args.runs * 2,
                    lambda: asyncio.to_thread(store.get_trace, tenant, next(t_ids)),
                ),
                "search_24h": await measure(
                    "search 24 h (newest 50)",
                    args.runs,
                    lambda: asyncio.to_thread(
                        store.search_traces,
                        tenant,
                        TraceQuery(start_ns=day_start, end_ns=time.time_ns(), limit=50),
                    ),
                ),
                "summary_24h": await measure(
                    "summary 24 h by model",
                    args.runs,
                    lambda: asyncio.to_thread(
                        store.metrics_summary, tenant, day_start, time.time_ns(), "model", SpanFilter(), None
                    ),
                ),
            }
            print("REST API (HTTP + JSON, cache off):", flush=True)

            async def get(path: str, **params: Any) -> Any:
                response = await http.get(path, params={**org, **params})
                response.raise_for_status()
                return response.json()

            results["rest"] = {
                "trace_by_id": await measure(
                    "GET /api/v1/traces/{id}", args.runs * 2, lambda: get(f"/api/v1/traces/{next(it)}")
                ),
                "search_24h": await measure(
                    "GET /api/v1/traces (24 h, 50)", args.runs, lambda: get("/api/v1/traces", limit=50)
                ),
                "search_24h_model": await measure(
                    "GET /api/v1/traces?model=… (24 h, 50)",
                    args.runs,
                    lambda: get("/api/v1/traces", limit=50, model="claude-sonnet-4"),
                ),
                "search_24h_errors": await measure(
                    "GET /api/v1/traces?status=error (24 h, 50)",
                    args.runs,
                    lambda: get("/api/v1/traces", limit=50, status="error"),
                ),
                "summary_24h": await measure(
                    "GET /api/v1/metrics/summary (24 h)", args.runs, lambda: get("/api/v1/metrics/summary")
                ),
                "summary_24h_series": await measure(
                    "GET /api/v1/metrics/summary (24 h, 1 h step)",
                    args.runs,
                    lambda: get("/api/v1/metrics/summary", step_seconds=3600),
                ),
            }
            await http.aclose()
        finally:
            await service.shutdown()
    finally:
        client.close()
        if not args.data_dir and not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--orgs", type=int, default=1, help="organizations the traces are spread over")
    parser.add_argument("--calls", type=int, default=3, help="model calls per trace (plus a root span)")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--data-dir", help="reuse / keep a store here instead of a temporary one")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
