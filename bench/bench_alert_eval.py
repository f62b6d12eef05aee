"""Alert evaluation benchmark: 1,000 rules over 10 million stored spans, every 30 s.

Fills a chDB store in a temporary directory (or ``--data-dir``) with ``--spans`` GenAI spans (default 10
million over 7 days, generated inside ClickHouse by ``bench_query.generate``: ``INSERT … SELECT FROM
numbers()`` into the real ``otel_traces`` table), then evaluates ``--rules`` rules of every kind (threshold,
anomaly, SLO and budget rules over a mix of filters, groupings, measures and windows) with the real
``Evaluator`` and an injected clock advancing 30 s a round, and reports:

* evaluation wall time per round (the first, cold round reads every anomaly history; later rounds only the
  windows completed since) and queries per round;
* the CPU share of evaluation at a 30 s interval: CPU time of the process (Python and the ClickHouse engine
  in it) per round, over 30 s, as a share of one core and of the machine;
* the latency (p50 / p95) of a ``TraceStore.metrics_summary`` call (last 24 h by model), alone and while
  evaluation rounds run back to back in another thread (the worst case: an evaluation always under way;
  calls go on until at least three rounds have run). chDB runs one query at a time, so a call that arrives
  during an evaluation query waits for it.

Usage: ``.venv/bin/python bench/bench_alert_eval.py [--spans 10000000] [--rules 1000] [--rounds 10]``
(``--spans 1000000`` for a quick run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_query import generate
from pydantic import TypeAdapter

from llm_observer.query.alerting.config import Rule
from llm_observer.query.alerting.evaluate import Evaluator
from llm_observer.storage.clickhouse.alert_reads import AlertStore
from llm_observer.storage.clickhouse.client import open_client
from llm_observer.storage.clickhouse.migrate import ensure_schema
from llm_observer.storage.clickhouse.reads import Tenant, TraceStore

S = 10**9
INTERVAL_S = 30.0
GROUPINGS: list[list[str]] = [["model"], ["provider"], ["service"], ["project"], ["model", "provider"], []]
WHERES: list[dict[str, str]] = [
    {},
    {"service": "service-0"},
    {"service": "service-1"},
    {"model": "gpt-4o"},
    {"provider": "openai"},
    {"project": "project-1"},
]
THRESHOLD_MEASURES = [
    "error_rate",
    "latency_p95",
    "latency_p99",
    "latency_p50",
    "request_rate",
    "cost_per_hour",
    "tokens_per_request",
    "error_count",
]
ANOMALY_MEASURES = ["latency_p95", "error_rate", "request_rate", "cost_per_hour"]


def make_rules(count: int, seed: int = 1) -> list[Rule]:
    """``count`` rules: half thresholds, a quarter anomalies, 15% SLOs, 10% budgets."""
    rng = random.Random(seed)
    adapter: TypeAdapter[Rule] = TypeAdapter(Rule)
    rules = []
    for i in range(count):
        share = i / count
        where = rng.choice(WHERES)
        group_by = rng.choice(GROUPINGS)
        base: dict[str, Any] = {"name": f"rule-{i}", "where": where}
        if share < 0.5:
            spec = {
                **base,
                "kind": "threshold",
                "measure": rng.choice(THRESHOLD_MEASURES),
                "window": rng.choice(["5m", "10m", "15m"]),
                "group_by": group_by,
                "threshold": rng.uniform(0, 2000),
            }
        elif share < 0.75:
            spec = {
                **base,
                "kind": "anomaly",
                "measure": rng.choice(ANOMALY_MEASURES),
                "window": rng.choice(["5m", "15m"]),
                "history": rng.choice(["1d", "3d"]),
                "baseline": rng.choice(["robust", "seasonal"]),
                "group_by": group_by,
            }
        elif share < 0.9:
            spec = {
                **base,
                "kind": "slo",
                "objective": rng.choice([0.99, 0.995, 0.999]),
                "group_by": rng.choice([["service"], ["model"]]),
            }
            if rng.random() < 0.5:
                spec.update(sli="latency", latency_threshold_ms=rng.choice([1000, 1500, 2000]))
        else:
            spec = {
                **base,
                "kind": "budget",
                "scope": rng.choice(["organization", "project", "user"]),
                "period": rng.choice(["day", "month"]),
                "amount_usd": rng.choice([100, 1000, 10000]),
            }
        rules.append(adapter.validate_python(spec))
    return rules


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary_latencies(store: TraceStore, runs: int, now_ns: int) -> list[float]:
    tenant = Tenant(organization_id="org-0", project_ids=None)
    out = []
    for _ in range(runs):
        began = time.perf_counter()
        store.metrics_summary(tenant, now_ns - 86400 * S, now_ns, group_by="model")
        out.append((time.perf_counter() - began) * 1000)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="bench-alert-eval-"))
    results: dict[str, Any] = {"spans": args.spans, "rules": args.rules, "cores": os.cpu_count()}
    client = open_client("chdb://clickhouse", data_dir)
    try:
        ensure_schema(client, "otel", ttl_days=30)
        existing = client.rows("SELECT count() AS n FROM otel.otel_traces")[0]["n"]
        if existing < args.spans:
            print(f"Generating {args.spans:,} spans over 7 days in {data_dir} …", file=sys.stderr, flush=True)
            results["generate_seconds"] = generate(client, "otel", args.spans, 7, 1, 3, time.time_ns())
        last = client.rows("SELECT toUnixTimestamp64Nano(max(Timestamp)) AS t FROM otel.otel_traces")[0]["t"]
        rules = make_rules(args.rules)
        kinds: dict[str, int] = {}
        for rule in rules:
            kinds[rule.kind] = kinds.get(rule.kind, 0) + 1
        results["rule_kinds"] = kinds
        alert_store = AlertStore(client, "otel")
        evaluator = Evaluator(alert_store, evaluation_delay_s=15)
        start = int(last) - 3600 * S  # an hour before the newest span: every window has data
        walls, cpus, queries, samples = [], [], [], 0
        print(f"Evaluating {len(rules)} rules ({kinds}) every {INTERVAL_S:g} s of injected time:", flush=True)
        for k in range(args.rounds):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            evaluation = evaluator.evaluate(rules, start + k * int(INTERVAL_S * S))
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            walls.append(wall)
            cpus.append(cpu)
            queries.append(evaluation.queries)
            samples = len(evaluation.samples)
            print(
                f"  round {k + 1:>2}: {wall * 1000:8.0f} ms wall, {cpu * 1000:8.0f} ms CPU, "
                f"{evaluation.queries:4d} queries, {samples:,} samples, {len(evaluation.errors)} errors",
                flush=True,
            )
        steady_wall, steady_cpu = walls[1:] or walls, cpus[1:] or cpus
        cores = os.cpu_count() or 1
        results.update(
            first_round_ms=walls[0] * 1000,
            first_round_queries=queries[0],
            steady_round_ms_mean=statistics.fmean(steady_wall) * 1000,
            steady_round_ms_max=max(steady_wall) * 1000,
            steady_queries_mean=statistics.fmean(queries[1:] or queries),
            steady_cpu_ms_mean=statistics.fmean(steady_cpu) * 1000,
            cpu_share_of_one_core=statistics.fmean(steady_cpu) / INTERVAL_S,
            cpu_share_of_machine=statistics.fmean(steady_cpu) / INTERVAL_S / cores,
            samples_per_round=samples,
        )

        traces = TraceStore(client, "otel")
        summary_latencies(traces, 3, int(last))  # warm-up
        alone = summary_latencies(traces, args.runs, int(last))
        stop = threading.Event()
        background_rounds = 0

        def evaluate_continuously() -> None:
            nonlocal background_rounds
            k = args.rounds
            while not stop.is_set():
                evaluator.evaluate(rules, start + k * int(INTERVAL_S * S))
                background_rounds += 1
                k += 1

        worker = threading.Thread(target=evaluate_continuously, daemon=True)
        worker.start()
        try:
            # At least three whole rounds meanwhile, so the calls meet every kind of query a round makes.
            during: list[float] = []
            while len(during) < args.runs or (background_rounds < 3 and len(during) < 50 * args.runs):
                during += summary_latencies(traces, 5, int(last))
        finally:
            stop.set()
            worker.join()
        results.update(
            summary_alone_p50_ms=pct(alone, 0.5),
            summary_alone_p95_ms=pct(alone, 0.95),
            summary_during_p50_ms=pct(during, 0.5),
            summary_during_p95_ms=pct(during, 0.95),
            background_rounds=background_rounds,
        )
    finally:
        client.close()
        if not args.data_dir and not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    print()
    print(f"{'spans stored':<46} {results['spans']:>12,}")
    print(f"{'rules':<46} {results['rules']:>12,}  {kinds}")
    print(f"{'first (cold) round: wall ms / queries':<46} {results['first_round_ms']:>12,.0f} / {queries[0]}")
    print(
        f"{'steady round: wall ms mean / max':<46} {results['steady_round_ms_mean']:>12,.0f} / "
        f"{results['steady_round_ms_max']:,.0f}"
    )
    print(f"{'steady round: queries':<46} {results['steady_queries_mean']:>12,.1f}")
    print(
        f"{'CPU share at a 30 s interval (1 core / machine)':<46} {results['cpu_share_of_one_core'] * 100:>11.1f}% / "
        f"{results['cpu_share_of_machine'] * 100:.1f}% of {cores} cores"
    )
    print(
        f"{'metrics_summary alone p50 / p95 ms':<46} {results['summary_alone_p50_ms']:>12,.1f} / "
        f"{results['summary_alone_p95_ms']:,.1f}"
    )
    print(
        f"{'metrics_summary during evaluation p50 / p95 ms':<46} {results['summary_during_p50_ms']:>12,.1f} / "
        f"{results['summary_during_p95_ms']:,.1f}  ({len(during)} calls, {background_rounds} rounds back to back)"
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=40, help="metrics_summary calls per measurement")
    parser.add_argument("--data-dir", help="reuse (or keep) a store here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    results = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
