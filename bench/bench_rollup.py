"""Benchmark of the ``rollup`` processor: microseconds per span over a stream of agent traces.

Each trace is an agent run of 13 spans: ``invoke_workflow`` → two ``invoke_agent`` → per agent two ``chat``
calls and an ``execute_tool`` with a ``chat`` and an HTTP span beneath it. Spans are streamed in end order
(children before parents, as SDKs export them) in batches of ``--batch`` spans, with several traces
interleaved, so a trace's spans straddle batches as they do in a pipeline. ``--parents-first`` reverses
the order inside each trace (every child arrives after its parent: the slow path that carries sums up).
The batches are built before the clock starts; only the processor is timed, in wall and CPU time (CPU time
is the steadier figure on a shared machine), with the prebuilt batches kept out of the garbage collector's
passes. Prints one JSON object.

    .venv/bin/python bench/bench_rollup.py [--spans 100000] [--batch 2000] [--rounds 5] [--parents-first]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time
import tracemalloc
from typing import Any

from llm_observer.kernel.batch import SpanBatch
from llm_observer.processors.rollup import SUBTREE_INPUT_TOKENS, RollUp, RollUpConfig

# (name, parent index or -1, usage (input, output, cost) or None), in end order: each span after its
# descendants. Per agent: a call, a tool with a call and an HTTP span beneath it, another call.
_CALL_A = (1200, 300, 0.006)
_CALL_B = (400, 80, 0.000108)
_CALL_C = (900, 150, 0.00375)
_TREE: tuple[tuple[str, int, tuple[int, int, float] | None], ...] = (
    ("chat gpt-4o", 5, _CALL_A),  # 0
    ("chat gpt-4o-mini", 3, _CALL_B),  # 1
    ("GET /search", 3, None),  # 2
    ("execute_tool search", 5, None),  # 3
    ("chat gpt-4o", 5, _CALL_C),  # 4
    ("invoke_agent researcher", 12, None),  # 5
    ("chat gpt-4o", 11, _CALL_A),  # 6
    ("chat gpt-4o-mini", 9, _CALL_B),  # 7
    ("GET /fetch", 9, None),  # 8
    ("execute_tool fetch", 11, None),  # 9
    ("chat gpt-4o", 11, _CALL_C),  # 10
    ("invoke_agent writer", 12, None),  # 11
    ("invoke_workflow report", -1, None),  # 12
)


def _batches(spans: int, batch_size: int, parents_first: bool, seed: int) -> list[SpanBatch]:
    tree = _TREE
    per_trace = len(tree)
    order = list(range(per_trace))
    if parents_first:
        order.reverse()
    rng = random.Random(seed)
    resource = {"service.name": "agents", "llm_observer.organization.id": "acme"}
    streams: list[list[tuple[bytes, int]]] = []
    # Eight traces in flight at a time, their spans interleaved.
    traces = spans // per_trace
    for _ in range(traces):
        tid = rng.randbytes(16)
        streams.append([(tid, i) for i in order])
    rows: list[tuple[bytes, int]] = []
    for group in range(0, len(streams), 8):
        live = [list(s) for s in streams[group : group + 8]]
        while any(live):
            stream = rng.choice([s for s in live if s])
            rows.append(stream.pop(0))
    out: list[SpanBatch] = []
    batch = SpanBatch()
    now = time.time_ns()
    for tid, index in rows:
        name, parent, usage = tree[index]
        attrs: dict[str, Any] = {}
        if usage is not None:
            attrs = {
                "gen_ai.operation.name": "chat",
                "gen_ai.usage.input_tokens": usage[0],
                "gen_ai.usage.output_tokens": usage[1],
                "llm_observer.cost.usd": usage[2],
            }
        batch.trace_id.append(tid)
        batch.span_id.append(tid[:4] + index.to_bytes(4, "big"))
        batch.parent_span_id.append(tid[:4] + parent.to_bytes(4, "big") if parent >= 0 else b"")
        batch.trace_state.append("")
        batch.name.append(name)
        batch.kind.append(1)
        batch.start_time_unix_nano.append(now)
        batch.end_time_unix_nano.append(now + 1000)
        batch.status_code.append(0)
        batch.status_message.append("")
        batch.attributes.append(attrs)
        batch.resource.append(resource)
        batch.scope_name.append("bench")
        batch.scope_version.append("")
        batch.events.append([])
        batch.links.append([])
        if len(batch) == batch_size:
            out.append(batch)
            batch = SpanBatch()
    if len(batch):
        out.append(batch)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--parents-first", action="store_true")
    args = parser.parse_args()

    timings: list[float] = []
    cpu: list[float] = []  # CPU seconds: on a shared machine, less noisy than wall time
    rolled = total = 0
    for round_no in range(args.rounds):
        batches = _batches(args.spans, args.batch, args.parents_first, seed=round_no)
        total = sum(len(b) for b in batches)
        # A pipeline holds one batch at a time, not the 100k spans prebuilt here: keep those out of the
        # garbage collector's passes, which would otherwise be charged to the processor.
        gc.collect()
        gc.freeze()
        rollup = RollUp(RollUpConfig())
        begin, cpu_begin = time.perf_counter(), time.process_time()
        for batch in batches:
            rollup(batch)
        timings.append(time.perf_counter() - begin)
        cpu.append(time.process_time() - cpu_begin)
        rolled = sum(1 for b in batches for attrs in b.attributes if SUBTREE_INPUT_TOKENS in attrs)
        del batches, rollup
        gc.unfreeze()

    # Memory of the table at its bound: spans remembered and bytes traced while filling it.
    batches = _batches(args.spans, args.batch, args.parents_first, seed=99)
    tracemalloc.start()
    rollup = RollUp(RollUpConfig())
    for batch in batches:
        rollup(batch)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    best, median = min(timings), statistics.median(timings)
    print(
        json.dumps(
            {
                "bench": "rollup",
                "spans": total,
                "batch": args.batch,
                "order": "parents_first" if args.parents_first else "children_first",
                "rounds": args.rounds,
                "us_per_span_median": round(median / total * 1e6, 3),
                "us_per_span_best": round(best / total * 1e6, 3),
                "cpu_us_per_span_median": round(statistics.median(cpu) / total * 1e6, 3),
                "cpu_us_per_span_best": round(min(cpu) / total * 1e6, 3),
                "spans_per_s_median": round(total / median),
                "spans_rolled_up": rolled,
                "table_traces": rollup.traces,
                "table_spans": rollup.spans,
                "table_bytes": held,
                "bytes_per_remembered_span": round(held / max(rollup.spans, 1)),
            }
        )
    )


if __name__ == "__main__":
    main()
