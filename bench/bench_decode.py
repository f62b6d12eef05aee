"""Benchmark of OTLP trace decoding: the protobuf runtime path against the native decoder, on the same bytes.

Two inputs: the generated GenAI requests of ``bench_collector.py`` (``genai_request``, ~700-byte chat spans)
and the mixed batch of ``bench_processors.py`` (the cross-scheme corpus next to HTTP and database spans).
Each is decoded the way the pipeline decodes a WAL range: many requests appended to one batch of
``--batch`` spans, with the last ``--keep`` batches kept alive as the pipeline's ring and exporters keep
them (so memory is not simply reused). CPU time, best of ``--rounds``; both paths in each round; the garbage collector set as the collector sets it.

    .venv/bin/python bench/bench_decode.py [--batch 10000] [--keep 8] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
from collections.abc import Callable

from bench_processors import make_request
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llm_observer.collector.testing import genai_request
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.otlp_codec import NATIVE_DECODE, decode_trace_bytes, decode_traces


def _runtime(payload: bytes, batch: SpanBatch) -> SpanBatch:
    return decode_traces(ExportTraceServiceRequest.FromString(payload), batch)


def _per_span_us(
    decode: Callable[[bytes, SpanBatch], SpanBatch], payloads: list[bytes], batch_spans: int, keep: int
) -> float:
    alive: list[SpanBatch] = []
    spans = 0
    started = time.process_time()
    for _ in range(30):
        batch = SpanBatch()
        while len(batch) < batch_spans:
            for payload in payloads:
                decode(payload, batch)
        spans += len(batch)
        alive.append(batch)
        if len(alive) > keep:
            alive.pop(0)
    return (time.process_time() - started) / spans * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=10_000, help="spans per decoded batch")
    parser.add_argument("--keep", type=int, default=8, help="batches kept alive")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not NATIVE_DECODE:
        raise SystemExit("the native decoder is not built (pip install -e ./kernel with a C compiler)")
    rng = random.Random(1)
    inputs = {
        "genai_request": [genai_request(traces=100, rng=rng).SerializeToString() for _ in range(10)],
        "mixed_corpus": [make_request(2_000)[0].SerializeToString()],
    }
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)  # as ``llm-observer collector`` and ``up`` run
    results = {}
    for name, payloads in inputs.items():
        runtime = native = float("inf")
        for _ in range(args.rounds):
            runtime = min(runtime, _per_span_us(_runtime, payloads, args.batch, args.keep))
            native = min(native, _per_span_us(decode_trace_bytes, payloads, args.batch, args.keep))
        results[name] = {
            "runtime_us_per_span": round(runtime, 2),
            "native_us_per_span": round(native, 2),
            "speedup": round(runtime / native, 2),
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
