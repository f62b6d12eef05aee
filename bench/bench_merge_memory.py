"""What the embedded engine's merges of ``otel_traces`` parts hold in memory, against the inserts alone.

``--parts`` inserts of ``--batch`` spans each (``up``'s batches, as ``bench_insert.py`` makes them) go into a
store made by the real migrations with merges stopped, then merges start and run until at most a few parts are
left. While they run, ``system.merges.memory_usage`` (what the engine counts for each merge) and the
process's anonymous resident memory are sampled. Each variant runs in a fresh process, alternating:

- ``shipped``: ``otel_traces`` as the migrations make it;
- ``small-granules``: a copy whose granules close at 1 MiB (``index_granularity_bytes``), fixed when a table is
  made; a merge reads one granule of every part at once.

    .venv/bin/python bench/bench_merge_memory.py [--parts 48] [--batch 9000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("shipped", "small-granules")


def _anonymous_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) // 1024
    return 0


async def _one(variant: str, parts: int, batch_spans: int) -> dict[str, object]:
    from bench_arrow import _processed_batches
    from bench_insert import _small_granules_table, migrated_store

    from llm_observer.storage.clickhouse import schema
    from llm_observer.storage.clickhouse.arrow import to_arrow

    tables = [to_arrow(batch) for batch in _processed_batches(batch_spans, 4)]
    async with migrated_store() as client:
        name = schema.TRACES_TABLE
        if variant == "small-granules":
            name = "bench_small_granules"
            client.command(_small_granules_table("otel", name))
        where = f"database = 'otel' AND table = '{name}'"
        client.command(f"SYSTEM STOP MERGES otel.{name}")
        before = _anonymous_mb()
        for n in range(parts):
            table = tables[n % len(tables)]
            # Four distinct tables, inserted again and again: the engine would drop the repeats as duplicates.
            # (Since ClickHouse 26 ``deduplicate_insert`` decides that; ``insert_deduplicate = 0`` no longer does.)
            client.insert_arrow(
                f"otel.{name}", schema.INSERT_COLUMNS, table, {"deduplicate_insert": "disable"}
            )
        inserted = _anonymous_mb()
        made = client.rows(f"SELECT count() AS n FROM system.parts WHERE active AND {where}")
        # At least one part per insert (more when an insert straddles midnight: a partition is a day).
        assert int(made[0]["n"]) >= parts, f"{made[0]['n']} parts made of {parts} inserts: nothing to merge"
        del tables
        peak, merge_bytes, polls_seeing_merges = _anonymous_mb(), 0, 0
        started = time.perf_counter()
        client.command(f"SYSTEM START MERGES otel.{name}")
        while time.perf_counter() - started < 120:
            rows = client.rows(
                f"SELECT toInt64(sum(memory_usage)) AS m, count() AS n FROM system.merges WHERE {where}"
            )
            peak = max(peak, _anonymous_mb())
            merge_bytes = max(merge_bytes, int(rows[0]["m"]))
            polls_seeing_merges += int(rows[0]["n"]) > 0
            left = client.rows(f"SELECT count() AS n FROM system.parts WHERE active AND {where}")
            if not int(rows[0]["n"]) and int(left[0]["n"]) <= 4:
                break
            await asyncio.sleep(0.02)
        merged_s = time.perf_counter() - started
        disk = client.rows(f"SELECT sum(bytes_on_disk) AS b FROM system.parts WHERE active AND {where}")
    disk_mb = round(int(disk[0]["b"]) / 1e6, 2)
    return {
        "variant": variant,
        # Sampled every 20 ms: a short merge can start and end between two samples and go unseen.
        "merges_mb": round(merge_bytes / 1e6, 2),
        "polls_seeing_merges": polls_seeing_merges,
        "parts": {"inserted": int(made[0]["n"]), "merged": int(left[0]["n"])},
        "anonymous_mb": {"before": before, "inserted": inserted, "merging_peak": peak},
        "merge_s": round(merged_s, 2),
        "disk_mb": disk_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", type=int, default=48)
    parser.add_argument("--batch", type=int, default=9000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one run, in a child process
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(asyncio.run(_one(args.variant, args.parts, args.batch))))
        return
    results: dict[str, list[dict[str, object]]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            command = [sys.executable, __file__, "--variant", variant, "--parts", str(args.parts)]
            run = subprocess.run(
                [*command, "--batch", str(args.batch)], capture_output=True, text=True, check=True
            )
            result = json.loads(run.stdout.strip().splitlines()[-1])
            results[variant].append(result)
            print(json.dumps(result))
    for variant, runs in results.items():
        merges = statistics.median(float(str(r["merges_mb"])) for r in runs)
        seconds = statistics.median(float(str(r["merge_s"])) for r in runs)
        print(f"{variant}: merges hold {merges:.0f} MB at most (median), merging takes {seconds:.1f} s")


if __name__ == "__main__":
    main()
