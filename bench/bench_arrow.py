"""Benchmark of ``SpanBatch`` → Arrow (``storage.clickhouse.arrow.to_arrow``) on the batches ``up`` stores:
the Python conversion against the one whose attribute maps and ids the native ``_arrow_native`` lays out.

The input is what the ClickHouse exporter receives in ``llm-observer up``: the generated GenAI requests of
``bench_collector.py`` (``genai_request``) decoded into ``--batch``-span batches and run through ``up``'s
default trace processors (tenant, logjoin, normalize, attribute, cost, rollup), which add the tenant, cost and
roll-up attributes. CPU time per span, best of ``--rounds``, both ways in each round; also the attribute
maps alone (``map_array``), the largest part of the conversion.

    .venv/bin/python bench/bench_arrow.py [--batch 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from llm_observer.collector.config import load_config
from llm_observer.collector.service import Service
from llm_observer.collector.testing import genai_request
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.otlp_codec import decode_trace_bytes
from llm_observer.storage.clickhouse import arrow


def _processed_batches(spans: int, count: int) -> list[SpanBatch]:
    """``count`` batches of ``spans`` spans, processed by ``up``'s default trace processors."""
    with tempfile.TemporaryDirectory() as data_dir:
        config = load_config(None, data_dir=Path(data_dir))
        service = Service(config)
        processors = [
            config.processors[pid].factory.create(service._ctx(pid), config.processors[pid].config)
            for pid in config.service.pipelines["traces"].processors
        ]
        rng = random.Random(1)
        batches = []
        for _ in range(count):
            batch = SpanBatch()
            while len(batch) < spans:
                decode_trace_bytes(genai_request(traces=100, rng=rng).SerializeToString(), batch)
            for processor in processors:
                batch = processor(batch)
            batches.append(batch)
        return batches


def _per_span_us(convert: Callable[[SpanBatch], object], batches: list[SpanBatch], native: bool) -> float:
    saved = arrow._arrow_native
    if not native:
        arrow._arrow_native = None
    try:
        started = time.process_time()
        for batch in batches:
            convert(batch)
        return (time.process_time() - started) / sum(map(len, batches)) * 1e6
    finally:
        arrow._arrow_native = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=10_000, help="spans per batch")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not arrow.NATIVE_ARROW:
        raise SystemExit("the native layout is not built (pip install -e ./storage with a C compiler)")
    batches = _processed_batches(args.batch, 4)
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)  # as ``llm-observer collector`` and ``up`` run
    steps: dict[str, Callable[[SpanBatch], object]] = {
        "to_arrow": arrow.to_arrow,
        "attribute_maps": lambda batch: arrow.map_array(batch.attributes),
    }
    results: dict[str, object] = {
        "attributes_per_span": round(sum(len(a) for b in batches for a in b.attributes) / (4 * args.batch), 1)
    }
    for name, convert in steps.items():
        python = native = float("inf")
        for _ in range(args.rounds):
            python = min(python, _per_span_us(convert, batches, native=False))
            native = min(native, _per_span_us(convert, batches, native=True))
        results[name] = {
            "python_us_per_span": round(python, 2),
            "native_us_per_span": round(native, 2),
            "speedup": round(python / native, 2),
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
