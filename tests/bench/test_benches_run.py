"""The benchmarks the README quotes still run and still measure something, at sizes that take seconds.

Not timings (those belong to the benchmarks themselves): each benchmark runs in its own process as a user
runs it, and its output is checked for what made it break before — an engine upgrade that made the engine
drop the merge benchmark's repeated inserts as duplicates (nothing left to merge), compact parts that report
no size per column (a compression ratio of 0), an exporter renamed under two benchmarks, a helper's new
argument. They run when ``LLM_OBSERVER_SLOW_TESTS=1``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SLOW = os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1"
pytestmark = pytest.mark.skipif(SLOW, reason="slow (runs the benchmarks): set LLM_OBSERVER_SLOW_TESTS=1")
REPO = Path(__file__).resolve().parents[2]


def _bench(*args: str, timeout: float = 280) -> str:
    run = subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert run.returncode == 0, f"{args[0]} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run.stdout


def _json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_benches_run_collector_up_stores_every_span_and_accounts_for_its_cpu(tmp_path: Path) -> None:
    result_file = tmp_path / "collector.json"
    _bench(
        "bench/bench_collector.py",
        "--up",
        "--senders",
        "1",
        "--inflight",
        "2",
        "--spans",
        "5000",
        "--seconds",
        "2",
        "--reads",
        "--json",
        str(result_file),
    )
    result = json.loads(result_file.read_text())
    peak = result["peak"]
    # Both phases' spans, drained into storage when the collector stopped.
    assert result["stored_rows"] == peak["acked_spans"] + result["half_rate"]["acked_spans"] > 0
    assert result["compression_ratio"] > 1
    assert result["pandas_loaded"] is False
    cpu = peak["cpu"]
    assert cpu["collector_us_per_span"] > 0 and cpu["senders_us_per_span"] > 0
    # The threads carry their names: the stage that decodes and processes, the exporters' pool.
    assert cpu["collector_by_thread_us_per_span"]["stage-traces"] > 0
    assert cpu["collector_by_thread_us_per_span"]["asyncio"] > 0
    assert cpu["machine_bound_spans_per_s"] > 0
    assert result["half_rate"]["latency_ms_p99"] > 0
    reads = result["half_rate"]["reads"]
    assert reads["failed"] == 0 and reads["traces"]["n"] > 0 and reads["summary"]["n"] > 0


def test_benches_run_spanmetrics_counts_up_s_batches() -> None:
    result = json.loads(_bench("bench/bench_spanmetrics.py", "--batch", "500", "--rounds", "1"))
    assert result["observe_us_per_span"] > 0 and result["label_sets"] > 0 and result["exposition_bytes"] > 0


def test_benches_run_merge_memory_merges_what_it_inserted() -> None:
    # The benchmark asserts that every insert made a part; here the merges must have done their work. What a
    # merge holds is sampled every 20 ms, and one of six 500-span parts can finish between two samples, so the
    # memory is checked to be reported in fractions of a MB, not to be above zero.
    runs = _json_lines(
        _bench("bench/bench_merge_memory.py", "--parts", "6", "--batch", "500", "--rounds", "1")
    )
    assert {run["variant"] for run in runs} == {"shipped", "small-granules"}
    for run in runs:
        assert run["parts"]["merged"] < run["parts"]["inserted"], run
        assert run["disk_mb"] > 0 and isinstance(run["merges_mb"], float), run


def test_benches_run_clickhouse_reports_sizes_per_column() -> None:
    out = _bench("bench/bench_clickhouse.py", "--spans", "2000", "--batch", "1000", "--rounds", "1")
    line = next(line for line in out.splitlines() if line.strip().startswith("SpanAttributes"))
    ratio = float(line.split()[-1].removesuffix(":1"))
    assert ratio > 1, line


def test_benches_run_vector_exporter_rate() -> None:
    # The first batch (10 prompts) is sent at once: stored and delivered well before the 5 s are up.
    out = _bench("bench/bench_embed_rate.py", "--rate", "50", "--seconds", "5")
    stored = re.search(r"prompts stored: ([0-9.]+)/s", out)
    delivered = re.search(r"the vectors exporter delivered ([0-9.]+) spans/s", out)
    assert stored is not None and delivered is not None, out
    assert float(stored.group(1)) > 0 and float(delivered.group(1)) > 0, out


def test_benches_run_embedding_and_its_collector_burst() -> None:
    out = _bench(
        "bench/bench_embed.py",
        *(
            "--texts",
            "8",
            "--spans",
            "250",
            "--repeat",
            "0.5",
            "--batch",
            "16",
            "--distinct",
            "5",
            "--long",
            "2",
        ),
    )
    burst = next(line for line in out.splitlines() if line.startswith("collector,"))
    assert "250 spans" in burst and "HTTP [200]" in burst, burst


def _stored_same(result: dict[str, Any]) -> None:
    assert result["stored"]["python"] == result["stored"]["native"] == result["spans"] > 0


def _search_answered(result: dict[str, Any]) -> None:
    search = result["search"]
    assert search["tenant_project_24h"]["mean_hits"] > 0 and search["org_only_all_time"]["mean_hits"] > 0


@pytest.mark.parametrize(
    ("args", "check"),
    [
        (["bench/bench_native_decode.py", "--spans", "2000"], _stored_same),
        (
            [
                "bench/bench_vectors.py",
                *("--spans", "5000", "--unique", "500", "--queries", "5"),
                *("--embed-spans", "100", "--embed-unique", "10"),
            ],
            _search_answered,
        ),
    ],
    ids=["native_decode", "vectors"],
)
def test_benches_run_with_json_results(
    tmp_path: Path, args: list[str], check: Callable[[dict[str, Any]], None]
) -> None:
    result_file = tmp_path / "result.json"
    _bench(*args, "--json", str(result_file))
    check(json.loads(result_file.read_text()))


def test_benches_run_query_then_trace_by_id_on_its_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    out = _bench(
        "bench/bench_query.py", "--spans", "5000", "--days", "1", "--runs", "2", "--data-dir", str(store)
    )
    assert "GET /api/v1/traces/{id}" in out
    out = _bench("bench/bench_trace_by_id.py", "--data-dir", str(store), "--traces", "5")
    assert "get_trace" in out


def test_benches_run_fanout_through_a_real_broker(tmp_path: Path) -> None:
    result_file = tmp_path / "fanout.json"
    _bench("bench/bench_fanout.py", "--seconds", "2", "--rounds", "1", "--json", str(result_file))
    median = json.loads(result_file.read_text())["median"]
    assert set(median) == {"clickhouse", "clickhouse+kafka", "edge->kafka->storage"}, median
    for figures in median.values():
        assert figures["acked_spans_per_s"] > 0 and figures["stored_spans_per_s"] > 0, median
