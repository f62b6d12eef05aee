"""Benchmark of the ``vectors`` store: semantic search over 1M spans / 100k unique prompts in chDB, and the
exporter's embedding throughput.

Part 1 fills the two tables straight (no model): 100k unique unit vectors (384 dimensions, clustered around
2,000 topics) and 1M span rows over 30 days, in four organizations holding 70/20/7/3% of the spans; every
unique text has a span, the rest repeat texts. It then times 200 searches (``search_vector``: the query is a
stored vector plus noise, so the time is the store's, not the model's) with tenant + project + 24 h filters
and with the organization filter alone over the largest organization, and reports peak RSS and the bytes on
disk per span (the whole chDB folder, after merges).

Part 2 times the real exporter (bundled model, one thread, low priority) on a realistic batch: chat spans
whose prompts repeat, as support traffic does.

    .venv/bin/python bench/bench_vectors.py [--spans 1000000] [--unique 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import random
import resource
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from llm_observer.exporters.clickhouse import ClickHouseExporterConfig
from llm_observer.exporters.vectors import factory
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.storage.clickhouse.client import open_client
from llm_observer.storage.clickhouse.vector_reads import ClickHouseVectorSearch
from llm_observer.storage.clickhouse.vector_schema import (
    SPAN_COLUMNS,
    VECTOR_COLUMNS,
    VECTOR_SPANS_TABLE,
    VECTORS_TABLE,
    ensure_vector_schema,
)
from llm_observer.storage.vectors.embed import Embedder

DIM = 384
ORGS = (("org-big", 0.70), ("org-mid", 0.20), ("org-small", 0.07), ("org-tiny", 0.03))
PROJECTS = ("web", "mobile", "api")
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5")
DAYS = 30
CHUNK = 100_000


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def unit_vectors(rng: np.random.Generator, n: int, topics: int) -> np.ndarray:
    centers = rng.standard_normal((topics, DIM)).astype(np.float32)
    vectors = centers[rng.integers(0, topics, n)] + 0.6 * rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def fill(client: object, database: str, model: str, spans: int, unique: int, seed: int) -> np.ndarray:
    """Insert ``unique`` vectors and ``spans`` span rows; returns the vectors (row i = hash i)."""
    rng = np.random.default_rng(seed)
    vectors = unit_vectors(rng, unique, max(1, unique // 50))
    hashes = rng.bytes(16 * unique)
    now = int(time.time())
    for first in range(0, unique, CHUNK):
        part = vectors[first : first + CHUNK]
        n = len(part)
        offsets = pa.array(np.arange(0, DIM * n + 1, DIM, dtype=np.int32))
        table = pa.table(
            {
                "EmbeddingModel": pa.array([model] * n),
                "Hash": pa.array(
                    [hashes[16 * i : 16 * i + 16] for i in range(first, first + n)], pa.binary(16)
                ),
                "Vector": pa.ListArray.from_arrays(offsets, pa.array(part.ravel())),
                "Text": pa.array(
                    [
                        f"Prompt number {i} about topic {i % 997}, in a sentence or two."
                        for i in range(first, first + n)
                    ]
                ),
                "FirstSeen": pa.array(np.full(n, now, dtype=np.uint32)),
            }
        )
        client.insert_arrow(f"`{database}`.{VECTORS_TABLE}", VECTOR_COLUMNS, table)  # type: ignore[attr-defined]
    shares = np.cumsum([share for _, share in ORGS])
    end_ns = time.time_ns()
    for first in range(0, spans, CHUNK):
        n = min(CHUNK, spans - first)
        index = np.arange(first, first + n)
        which = np.where(index < unique, index, rng.integers(0, unique, n))
        orgs = np.searchsorted(shares, rng.random(n))
        times = end_ns - rng.integers(0, DAYS * 86_400 * 10**9, n)
        table = pa.table(
            {
                "Time": pa.array(times, pa.timestamp("ns")),
                "OrganizationId": pa.array([ORGS[o][0] for o in orgs]),
                "ProjectId": pa.array([PROJECTS[i % 3] for i in rng.integers(0, 3, n)]),
                "Kind": pa.array(["prompt"] * n),
                "EmbeddingModel": pa.array([model] * n),
                "Hash": pa.array([hashes[16 * h : 16 * h + 16] for h in which], pa.binary(16)),
                "TraceId": pa.array([rng.bytes(16) for _ in range(n)], pa.binary(16)),
                "SpanId": pa.array([rng.bytes(8) for _ in range(n)], pa.binary(8)),
                "Model": pa.array([MODELS[i] for i in rng.integers(0, 3, n)]),
                "RequestModel": pa.array([MODELS[i] for i in rng.integers(0, 3, n)]),
                "Provider": pa.array(["openai"] * n),
                "ServiceName": pa.array(["support-bot"] * n),
                "SpanName": pa.array(["chat"] * n),
            }
        )
        client.insert_arrow(f"`{database}`.{VECTOR_SPANS_TABLE}", SPAN_COLUMNS, table)  # type: ignore[attr-defined]
    return vectors


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[max(0, round(0.95 * len(ordered)) - 1)]


def fill_store(root: Path, model: str, spans: int, unique: int, seed: int) -> tuple[float, float]:
    """In a child process (so that its memory is not the search's): fill and merge the tables; returns the
    seconds taken and the child's peak RSS in MB. The vectors are saved to ``root/vectors.npy``."""
    client = open_client("chdb://store", root)
    ensure_vector_schema(client, "otel", 90)
    began = time.perf_counter()
    vectors = fill(client, "otel", model, spans, unique, seed)
    for table in (VECTORS_TABLE, VECTOR_SPANS_TABLE):
        client.command(f"OPTIMIZE TABLE `otel`.{table} FINAL")
    elapsed = time.perf_counter() - began
    client.close()
    np.save(root / "vectors.npy", vectors)
    return elapsed, peak_rss_mb()


def bench_search(args: argparse.Namespace, root: Path) -> dict[str, object]:
    root.mkdir(parents=True, exist_ok=True)
    embedder = Embedder(models_dir=root / "models")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        filled, rss_filled = pool.apply(
            fill_store, (root, embedder.cache_key, args.spans, args.unique, args.seed)
        )
    vectors = np.load(root / "vectors.npy")
    client = open_client("chdb://store", root)
    database = "otel"
    client.rows(f"SELECT count() AS n FROM `{database}`.{VECTORS_TABLE}")
    rss_open = current_rss_mb()
    search = ClickHouseVectorSearch(client, database, embedder)
    rng = np.random.default_rng(args.seed + 1)
    day_ago = datetime.now(UTC) - timedelta(days=1)
    results: dict[str, object] = {"fill_seconds": round(filled, 1)}
    cases = {
        "tenant_project_24h": {"organization_id": "org-mid", "project_id": "web", "start": day_ago},
        "org_only_all_time": {"organization_id": "org-big"},
    }
    for name, filters in cases.items():
        times: list[float] = []
        hits = 0
        for _ in range(args.queries):
            base = vectors[rng.integers(0, len(vectors))]
            query = base + 0.3 * rng.standard_normal(DIM).astype(np.float32) / np.sqrt(DIM)
            query /= np.linalg.norm(query)
            t0 = time.perf_counter()
            found = search.search_vector(query, 10, **filters)  # type: ignore[arg-type]
            times.append((time.perf_counter() - t0) * 1000)
            hits += len(found)
        p50, p95 = percentiles(times)
        results[name] = {"p50_ms": round(p50, 1), "p95_ms": round(p95, 1), "mean_hits": hits / args.queries}
    # BFloat16 storage against exact Float32 numpy: overlap of the top 10 over the whole store.
    overlaps = []
    for _ in range(50):
        query = vectors[rng.integers(0, len(vectors))] + 0.3 * rng.standard_normal(DIM).astype(
            np.float32
        ) / np.sqrt(DIM)
        query /= np.linalg.norm(query)
        exact = set(np.argsort(-(vectors @ query))[:10].tolist())
        rows = client.rows(
            f"SELECT Text AS text FROM `{database}`.{VECTORS_TABLE} "
            "ORDER BY dotProduct(Vector, CAST({q:Array(Float32)} AS Array(BFloat16))) DESC LIMIT 10",
            {"q": [float(x) for x in query]},
        )
        # The bench's texts are "Prompt number <row> ...".
        stored = {int(str(r["text"]).split()[2].rstrip(",")) for r in rows}
        overlaps.append(len(exact & stored) / 10)
    results["bf16_top10_overlap_with_float32"] = round(float(np.mean(overlaps)), 3)
    results["fill_process_peak_rss_mb"] = round(rss_filled, 0)
    results["search_process_rss_before_queries_mb"] = round(rss_open, 0)
    # This process: the model, chDB with both tables open, 200+ searches (and the test vectors in numpy).
    results["search_process_peak_rss_mb"] = round(peak_rss_mb(), 0)
    parts = client.rows(
        "SELECT table, sum(bytes_on_disk) AS b FROM system.parts WHERE database = {db:String} AND active "
        "GROUP BY table",
        {"db": database},
    )
    results["table_bytes_per_span"] = {row["table"]: round(int(row["b"]) / args.spans, 1) for row in parts}
    results["folder_bytes_per_span"] = round(folder_bytes(root / "store") / args.spans, 1)
    client.close()
    return results


PROMPT_TEMPLATES = (
    "How do I {verb} the {thing} for order {n}?",
    "My {thing} stopped working after the update, can you help me {verb} it? Account {n}.",
    "Please {verb} my {thing}; I have tried twice already and the page keeps failing (ticket {n}).",
    "What is the fastest way to {verb} a {thing} when the customer {n} is on the enterprise plan?",
)
VERBS = ("reset", "cancel", "renew", "update", "export", "share", "delete", "track")
THINGS = ("password", "invoice", "subscription", "api key", "dashboard", "shipment", "team seat", "refund")


def realistic_batch(spans: int, unique: int, seed: int) -> SpanBatch:
    rng = random.Random(seed)
    pool = [
        rng.choice(PROMPT_TEMPLATES).format(
            verb=rng.choice(VERBS), thing=rng.choice(THINGS), n=rng.randrange(10**6)
        )
        for _ in range(unique)
    ]
    batch = SpanBatch()
    now = time.time_ns()
    resource_attrs = {"service.name": "support-bot", "llm_observer.organization.id": "acme"}
    for i in range(spans):
        prompt = pool[i] if i < unique else rng.choice(pool)
        batch.trace_id.append(rng.randbytes(16))
        batch.span_id.append(rng.randbytes(8))
        batch.parent_span_id.append(b"")
        batch.trace_state.append("")
        batch.name.append("chat gpt-4o")
        batch.kind.append(3)
        batch.start_time_unix_nano.append(now - 10**9)
        batch.end_time_unix_nano.append(now)
        batch.status_code.append(0)
        batch.status_message.append("")
        batch.attributes.append(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.input.messages": json.dumps(
                    [
                        {
                            "role": "system",
                            "parts": [{"type": "text", "content": "You are a support agent."}],
                        },
                        {"role": "user", "parts": [{"type": "text", "content": prompt}]},
                    ]
                ),
            }
        )
        batch.resource.append(resource_attrs)
        batch.scope_name.append("bench")
        batch.scope_version.append("")
        batch.events.append([])
        batch.links.append([])
    return batch


async def bench_embedding(args: argparse.Namespace, root: Path) -> dict[str, object]:
    ctx = CreateContext(
        "vectors",
        root,
        Telemetry(),
        logging.getLogger("bench.vectors"),
        configs={"exporters": {"clickhouse": ClickHouseExporterConfig()}},
    )
    exporter = factory.create(ctx, factory.config_model.model_validate({"send_budget_seconds": 600}))
    await exporter.start()
    try:
        await exporter.send(realistic_batch(8, 8, args.seed + 2))  # model loaded, tables made
        before = exporter.counts.embedded
        batch = realistic_batch(args.embed_spans, args.embed_unique, args.seed)
        began = time.perf_counter()
        await exporter.send(batch)
        elapsed = time.perf_counter() - began
        embedded = exporter.counts.embedded - before
        return {
            "spans": args.embed_spans,
            "unique_texts": embedded,
            "seconds": round(elapsed, 2),
            "texts_per_second": round(embedded / elapsed, 1),
            "spans_per_second": round(args.embed_spans / elapsed, 1),
            "threads": exporter.config.threads,
            "nice": exporter.thread_priority,
        }
    finally:
        await exporter.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--unique", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embed-spans", type=int, default=2000)
    parser.add_argument("--embed-unique", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-embedding", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="bench_vectors_"))
    try:
        report: dict[str, object] = {"spans": args.spans, "unique": args.unique, "queries": args.queries}
        if not args.skip_search:
            report["search"] = bench_search(args, root / "search")
        if not args.skip_embedding:
            report["embedding"] = asyncio.run(bench_embedding(args, root / "embed"))
        print(json.dumps(report, indent=1))
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
