"""Regression guard for the speed and memory goals: one line per goal, in under five minutes.

Runs ``bench_collector.py --up`` (``llm-observer up`` as shipped, eight concurrent streams of 500-span
requests) and ``bench_vectors.py`` (semantic search over stored prompts) at sizes that fit the time, then prints
for each goal the figure, the goal and the ratio to the figure recorded in ``bench/guard_baseline.json`` (the
one the README reports). ``--record`` writes this run's figures there.

    .venv/bin/python bench/bench_guard.py [--record]

Figures from one short run on a shared machine are noisy: compare ratios well away from 1, or run twice.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "guard_baseline.json"


@dataclass(frozen=True)
class Goal:
    key: str
    what: str
    target: float
    higher_is_better: bool
    unit: str

    def met(self, value: float) -> bool:
        return value >= self.target if self.higher_is_better else value <= self.target


GOALS = (
    Goal("stored_spans_per_s", "1. spans/s acknowledged and stored by `up`", 100_000, True, "spans/s"),
    Goal("acked_spans_per_s", "1. spans/s acknowledged by `up`", 100_000, True, "spans/s"),
    Goal("half_rate_p99_ms", "2. export p99 at half the stored rate", 50, False, "ms"),
    Goal("peak_rss_mb", "3. peak RSS of `up` under that load", 500, False, "MB"),
    Goal("disk_bytes_per_span", "4. data dir per stored span", 500, False, "B"),
    Goal("vectors_caught_up_s", "4. vector exporter behind the last ack", 10, False, "s"),
    Goal("search_p95_ms", "4. semantic search p95 (worse case), 1M spans / 100k prompts", 100, False, "ms"),
)


def _run_json(args: list[str], timeout: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            [sys.executable, *args, "--json", out.name],
            check=True,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
        )
        data: dict[str, Any] = json.loads(Path(out.name).read_text())
        return data


def collector_figures(spans: int, seconds: float) -> tuple[dict[str, float], dict[str, int], dict[str, Any]]:
    """The figures of goals 1 to 4 that ``up`` gives, its memory by part near the peak (MB) and where its CPU
    went."""
    result = _run_json(
        [
            str(HERE / "bench_collector.py"),
            "--up",
            "--senders",
            "2",
            "--inflight",
            "4",
            "--spans",
            str(spans),
            "--seconds",
            str(seconds),
        ],
        timeout=240,
    )
    peak, half = result["peak"], result.get("half_rate") or {}
    figures = {
        "stored_spans_per_s": peak["stored_spans_per_s"],
        "acked_spans_per_s": peak["acked_spans_per_s"],
        "peak_rss_mb": result["peak_rss_mb"],
        "disk_bytes_per_span": result["disk_bytes_per_stored_span"],
    }
    if half.get("latency_ms_p99") is not None:
        figures["half_rate_p99_ms"] = half["latency_ms_p99"]
    caught_up = (peak.get("vectors") or {}).get("caught_up_after_last_ack_s")
    if caught_up is not None:
        figures["vectors_caught_up_s"] = caught_up
    return figures, result.get("memory_parts_mb_near_peak") or {}, peak.get("cpu") or {}


def cpu_breakdown(cpu: dict[str, Any]) -> str:
    """Where ``up``'s CPU went until the last span was stored, per stored span, and the rate it allows."""
    if not cpu:
        return "not reported"
    threads = cpu.get("collector_by_thread_us_per_span", {})
    top = ", ".join(f"{name} {value:g}" for name, value in list(threads.items())[:3])
    return (
        f"{cpu['collector_us_per_span']:g} µs per stored span on {cpu['collector_cores']:g} cores ({top}), "
        f"the load generator {cpu['senders_us_per_span']:g}; both cores full: "
        f"{cpu['machine_bound_spans_per_s']:g} spans/s"
    )


def memory_breakdown(parts: dict[str, int]) -> str:
    """Where ``up``'s resident memory was near the peak: mapped files, the engine's and glibc's heaps, the rest
    (the interpreter's small objects, stacks, and the engine's heap as it moved between reads)."""
    anonymous, files = parts.get("rss_anonymous"), parts.get("rss_file")
    if anonymous is None or files is None:
        return "not reported"
    engine = parts.get("chdb_heap_resident", 0)
    used, free = parts.get("malloc_in_use", 0), parts.get("malloc_free", 0)
    rest = anonymous - engine - used - free
    library = parts.get("rss_engine_library", 0)
    return (
        f"mapped files {files} (chDB's engine library {library}), the engine's heap {engine}, "
        f"glibc's heaps {used} in use + {free} free, the rest {rest} MB"
    )


def search_figures(queries: int) -> dict[str, float]:
    result = _run_json(
        [str(HERE / "bench_vectors.py"), "--skip-embedding", "--queries", str(queries)], timeout=240
    )
    search = result["search"]
    worst = max(search["tenant_project_24h"]["p95_ms"], search["org_only_all_time"]["p95_ms"])
    return {"search_p95_ms": worst}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=150_000, help="spans in the peak phase")
    parser.add_argument("--seconds", type=float, default=15, help="length of the half-rate phase")
    parser.add_argument("--queries", type=int, default=100, help="semantic searches per case")
    parser.add_argument("--record", action="store_true", help=f"write the figures to {BASELINE.name}")
    args = parser.parse_args()
    began = time.monotonic()
    from_up, memory, cpu = collector_figures(args.spans, args.seconds)
    figures = {**from_up, **search_figures(args.queries)}
    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    for goal in GOALS:
        value = figures.get(goal.key)
        if value is None:
            print(f"{goal.what}: not measured")
            continue
        previous = baseline.get(goal.key)
        ratio = f"{value / previous:.2f} x the recorded {previous:g}" if previous else "nothing recorded"
        mark = "met" if goal.met(value) else "NOT met"
        print(f"{goal.what}: {value:g} {goal.unit} (goal {goal.target:g}, {mark}; {ratio})")
        if goal.key == "peak_rss_mb":
            print(f"   near the peak: {memory_breakdown(memory)}")
        if goal.key == "stored_spans_per_s":
            print(f"   CPU: {cpu_breakdown(cpu)}")
    print(f"(guard ran {time.monotonic() - began:.0f} s)")
    if args.record:
        BASELINE.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
