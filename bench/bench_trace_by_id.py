"""Where a trace-by-id read spends its time on a large store, and what smaller granules and fewer lookup
partitions would change.

Reads a store made by ``bench_query.py`` (``--data-dir``; 100 M spans for the query goal), with the engine in
this process and nothing else running on it. Three parts:

``breakdown`` — for ``--traces`` random traces, each read once in every variant, the variants in a random
order per trace (the first read of a trace pays for what the engine then caches, so a fixed order would favour
whichever comes second): the whole ``TraceStore.get_trace``; the lookup-table query alone; the span query
with every column ``get_trace`` reads; the same without the ten typed GenAI and two tenant columns; the span
query reading two columns (what finding the rows costs); and the span query's column list over no rows (what
analysing it costs). Median and p95 in ms.

``granules`` (with ``--granules``) — copies one day of the store (``--day-offset`` days back) into two new
databases made by the real migrations, one as they are (8,192-row granules, up to 10 MB) and one whose
``otel_traces`` closes a granule at ``--granule-bytes`` (``index_granularity_bytes``, fixed when a table is
made), waits for their merges, then alternates between them: trace by id, and the newest 50 traces of that
day (``search_traces``). The copies are dropped at the end.

``lookup`` (with ``--lookup``) — copies the trace-id lookup table twice the same way, into the table as the
migrations make it (a partition a week) and into one with a partition a day (as stores made before have it),
waits for their merges, then alternates the lookup query between them. Dropped at the end.

    .venv/bin/python bench/bench_trace_by_id.py --data-dir DIR [--traces 150] [--granules] [--lookup] [--json F]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llm_observer.storage.clickhouse import migrate, schema
from llm_observer.storage.clickhouse.client import open_client
from llm_observer.storage.clickhouse.reads import _SPAN_COLUMNS, Tenant, TraceQuery, TraceStore, _Sql, _where

TENANT = Tenant(organization_id="org-0", project_ids=None)
TYPED = (
    "OrganizationId AS organization_id, ProjectId AS project_id,\n"
    "    GenAiOperation AS operation, GenAiProvider AS provider,\n"
    "    GenAiRequestModel AS request_model, GenAiResponseModel AS response_model,\n"
    "    InputTokens AS input_tokens, OutputTokens AS output_tokens,\n"
    "    CacheReadTokens AS cache_read_tokens, CacheWriteTokens AS cache_write_tokens,\n"
    "    ReasoningTokens AS reasoning_tokens, CostUsd AS cost_usd,\n"
)


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1),
    }


def _alternate(
    keys: list[str], variants: dict[str, Callable[[str], Any]], rng: random.Random
) -> dict[str, dict[str, float]]:
    """Each variant once per key, in a random order per key; wall time of each call."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for key in keys:
        order = list(variants.items())
        rng.shuffle(order)
        for name, call in order:
            began = time.perf_counter()
            call(key)
            samples[name].append((time.perf_counter() - began) * 1000)
    return {name: _summary(values) for name, values in samples.items()}


def _bounds(client: Any, database: str, trace_id: str) -> tuple[int, int]:
    row = client.rows(
        "SELECT toUnixTimestamp64Nano(min(Start)) AS first, toUnixTimestamp64Nano(max(End)) AS last "
        f"FROM `{database}`.{schema.TRACE_ID_TS_TABLE} WHERE TraceId = {{id:String}}",
        {"id": trace_id},
    )[0]
    return int(row["first"]), int(row["last"]) + 1


def _span_query(
    database: str, columns: str, trace_id: str, first: int, end: int
) -> tuple[str, dict[str, Any]]:
    """The span query ``get_traces`` sends once the lookup gave the trace's time (same conditions)."""
    sql = _Sql()
    where = [f"TraceId IN {sql.values([trace_id], 'String')}", *sql.tenant(TENANT), *sql.time(first, end)]
    return (
        f"SELECT {columns} FROM `{database}`.{schema.TRACES_TABLE} WHERE {_where(where)} ORDER BY Timestamp, SpanId",
        sql.params,
    )


def breakdown(client: Any, traces: int, rng: random.Random) -> dict[str, Any]:
    store = TraceStore(client, "otel")
    ids = [
        row["TraceId"]
        for row in client.rows(
            f"SELECT DISTINCT TraceId FROM otel.{schema.TRACE_ID_TS_TABLE} "
            f"WHERE cityHash64(TraceId) % 1000 = {rng.randrange(1000)} LIMIT {traces}"
        )
    ]
    bounds = {trace_id: _bounds(client, "otel", trace_id) for trace_id in ids}
    untyped = _SPAN_COLUMNS.replace(TYPED, "")
    assert untyped != _SPAN_COLUMNS, "the span columns changed: update TYPED"

    def span_query(columns: str) -> Callable[[str], Any]:
        return lambda trace_id: client.rows(*_span_query("otel", columns, trace_id, *bounds[trace_id]))

    variants: dict[str, Callable[[str], Any]] = {
        "get_trace (lookup + span query + rows)": lambda trace_id: store.get_trace(TENANT, trace_id),
        "lookup query alone": lambda trace_id: _bounds(client, "otel", trace_id),
        "span query, every column": span_query(_SPAN_COLUMNS),
        "span query, without typed and tenant columns": span_query(untyped),
        "span query, TraceId and SpanId": span_query("TraceId, SpanId"),
        "span query's columns over no rows": lambda _: client.rows(
            f"SELECT {_SPAN_COLUMNS} FROM otel.{schema.TRACES_TABLE} WHERE 0"
        ),
    }
    return _alternate(ids, variants, rng)


def with_granule_bytes(statement: str, granule_bytes: int) -> str:
    """``otel_traces``' creating statement with granules closed at ``granule_bytes`` (``index_granularity_bytes``
    can only be given when a table is made)."""
    changed = statement.replace(
        "SETTINGS index_granularity = 8192,",
        f"SETTINGS index_granularity = 8192, index_granularity_bytes = {granule_bytes},",
    )
    assert changed != statement, "otel_traces' settings changed: update this benchmark"
    return changed


def _granular_migrations(database: str, granule_bytes: int) -> tuple[schema.Migration, ...]:
    """The migrations of ``database``, its ``otel_traces`` made with granules closed at ``granule_bytes``."""
    first, *rest = schema.migrations(database, 30)
    traces = with_granule_bytes(first.statements[0], granule_bytes)
    return (schema.Migration(1, first.description, (traces, *first.statements[1:])), *rest)


def granules(
    client: Any, day_offset: int, granule_bytes: int, traces: int, rng: random.Random
) -> dict[str, Any]:
    day = client.rows(f"SELECT toString(toDate(now()) - {int(day_offset)}) AS day")[0]["day"]
    databases = {
        "8192 rows / 10 MB": "bench_granules_default",
        f"{granule_bytes} bytes": "bench_granules_small",
    }
    made_with = {
        "bench_granules_default": None,
        "bench_granules_small": _granular_migrations("bench_granules_small", granule_bytes),
    }
    out: dict[str, Any] = {"day": day}
    try:
        for database, migrations in made_with.items():
            client.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
            migrate.ensure_schema(client, database, ttl_days=30, migrations=migrations)
            began = time.perf_counter()
            client.command(
                f"INSERT INTO `{database}`.{schema.TRACES_TABLE} "
                f"SELECT * FROM otel.{schema.TRACES_TABLE} WHERE toDate(Timestamp) = '{day}'"
            )
            print(f"  copied {day} into {database} in {time.perf_counter() - began:.0f} s", flush=True)
        while client.rows("SELECT count() AS n FROM system.merges")[0]["n"]:
            time.sleep(2)
        out["parts"] = client.rows(
            "SELECT database, count() AS parts, sum(rows) AS spans, round(spans / sum(marks)) AS rows_per_granule, "
            "sum(bytes_on_disk) AS bytes FROM system.parts WHERE active AND database LIKE 'bench_granules_%' "
            f"AND table = '{schema.TRACES_TABLE}' GROUP BY database ORDER BY database"
        )
        print(f"  {out['parts']}", flush=True)
        ids = [
            row["TraceId"]
            for row in client.rows(
                f"SELECT DISTINCT TraceId FROM otel.{schema.TRACE_ID_TS_TABLE} WHERE toDate(Start) = '{day}' "
                f"ORDER BY cityHash64(TraceId) LIMIT {traces}"
            )
        ]
        stores = {name: TraceStore(client, database) for name, database in databases.items()}
        day_end = client.rows(
            f"SELECT toUnixTimestamp64Nano(max(Timestamp)) AS last FROM otel.{schema.TRACES_TABLE} "
            f"WHERE toDate(Timestamp) = '{day}'"
        )[0]["last"]
        window = TraceQuery(start_ns=int(day_end) - 86400 * 10**9, end_ns=int(day_end) + 1, limit=50)

        def by_id(store: TraceStore) -> Callable[[str], Any]:
            return lambda trace_id: store.get_trace(TENANT, trace_id)

        def search(store: TraceStore) -> Callable[[str], Any]:
            return lambda _: store.search_traces(TENANT, window)

        variants = {f"trace by id, {name}": by_id(store) for name, store in stores.items()}
        out["trace_by_id"] = _alternate(ids, variants, rng)
        searches = {f"newest 50 of the day, {name}": search(store) for name, store in stores.items()}
        out["search_day"] = _alternate([str(n) for n in range(max(10, traces // 5))], searches, rng)
    finally:
        for database in databases.values():
            client.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
    return out


def lookup_partitions(client: Any, traces: int, rng: random.Random) -> dict[str, Any]:
    """The lookup table's rows copied twice the same way, into the table as the migrations make it (a partition
    a week) and into one with a partition a day (as stores made before have it), merges left to finish; then
    the lookup query on each, alternating. A lookup by id probes every part."""
    statement = schema.migrations("bench_lookup", 30)[0].statements[1]
    weekly = "PARTITION BY toMonday(Start)"
    assert weekly in statement, "the lookup table's partitioning changed: update this benchmark"
    tables = {"a partition a week": "bench_lookup.weekly", "a partition a day": "bench_lookup.daily"}
    out: dict[str, Any] = {}
    try:
        client.command("DROP DATABASE IF EXISTS bench_lookup SYNC")
        client.command("CREATE DATABASE bench_lookup")
        for name, table in tables.items():
            made = statement.replace(f"`bench_lookup`.{schema.TRACE_ID_TS_TABLE}", table)
            client.command(made if "week" in name else made.replace(weekly, "PARTITION BY toDate(Start)"))
            client.command(
                f"INSERT INTO {table} SELECT TraceId, Start, End FROM otel.{schema.TRACE_ID_TS_TABLE}"
            )
        while client.rows("SELECT count() AS n FROM system.merges WHERE database = 'bench_lookup'")[0]["n"]:
            time.sleep(2)
        out["parts"] = {
            name: client.rows(
                "SELECT count() AS n FROM system.parts WHERE active AND database = 'bench_lookup' "
                f"AND table = '{table.split('.')[1]}'"
            )[0]["n"]
            for name, table in tables.items()
        }
        ids = [
            row["TraceId"]
            for row in client.rows(
                f"SELECT TraceId FROM otel.{schema.TRACE_ID_TS_TABLE} "
                f"WHERE cityHash64(TraceId) % 1000 = {rng.randrange(1000)} LIMIT {traces}"
            )
        ]

        def lookup(table: str) -> Callable[[str], Any]:
            return lambda trace_id: client.rows(
                f"SELECT min(Start) AS first, max(End) AS last FROM {table} WHERE TraceId = {{id:String}}",
                {"id": trace_id},
            )

        out["lookup"] = _alternate(ids, {name: lookup(table) for name, table in tables.items()}, rng)
    finally:
        client.command("DROP DATABASE IF EXISTS bench_lookup SYNC")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True, help="a store made by bench_query.py")
    parser.add_argument("--traces", type=int, default=150)
    parser.add_argument("--granules", action="store_true", help="also compare smaller granules on one day")
    parser.add_argument("--granule-bytes", type=int, default=1 << 20)
    parser.add_argument("--lookup", action="store_true", help="also compare the lookup table's partitions")
    parser.add_argument("--day-offset", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    client = open_client("chdb://clickhouse", Path(args.data_dir))
    results: dict[str, Any] = {}
    try:
        print("Trace by id, by part (ms):", flush=True)
        results["breakdown"] = breakdown(client, args.traces, rng)
        for name, figures in results["breakdown"].items():
            print(
                f"  {name:<46} median {figures['median_ms']:6.1f}   p95 {figures['p95_ms']:6.1f}", flush=True
            )
        if args.granules:
            print("Granule size:", flush=True)
            results["granules"] = granules(client, args.day_offset, args.granule_bytes, args.traces, rng)
            for part in ("trace_by_id", "search_day"):
                for name, figures in results["granules"][part].items():
                    print(f"  {name:<46} median {figures['median_ms']:6.1f}   p95 {figures['p95_ms']:6.1f}")
        if args.lookup:
            print("Lookup table partitions:", flush=True)
            results["lookup"] = lookup_partitions(client, args.traces, rng)
            print(f"  parts: {results['lookup']['parts']}", flush=True)
            for name, figures in results["lookup"]["lookup"].items():
                print(
                    f"  lookup, {name:<38} median {figures['median_ms']:6.1f}   p95 {figures['p95_ms']:6.1f}"
                )
    finally:
        client.close()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
