"""Benchmark of the span processors (normalize; attribute and cost).

The batch is realistic and mixed: the spans of the cross-scheme corpus (OpenLLMetry old and new,
OpenInference, OpenLIT, the official OTel instrumentations, hand-written OTLP, each as its package really
emits them; read from the corpus' JSON files under tests/processors/corpus/cases) next to the non-GenAI spans
an LLM application also sends (HTTP server and client, database), half and half. Each round decodes a fresh
batch from OTLP protobuf (the collector's own decode path, timed as the reference per-span cost) and then
runs the processor over it, so nothing is measured on already-normalised spans.

    .venv/bin/python bench/bench_processors.py [--spans 50000] [--rounds 5] [--only normalize]
        [--mix all|current] [--profile]

Structure: ``make_request`` builds the mixed OTLP request; each processor has a ``bench_<name>`` function
returning its result dict, registered in ``BENCHES``; ``main`` runs the selected ones and prints JSON.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import pstats
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.json_format import ParseDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.otlp_codec import decode_trace_bytes, hex_ids_to_base64
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.processors.logjoin import content_events_by_span
from llm_observer.processors.normalize import normalize_batch

CORPUS_CASES = Path(__file__).resolve().parent.parent / "tests" / "processors" / "corpus" / "cases"
REFERENCE_SPANS_PER_S = 100_000  # the collector's target peak rate on 2 cores


@dataclass(frozen=True)
class _Case:
    name: str
    traces: ExportTraceServiceRequest
    logs: ExportLogsServiceRequest | None


def _corpus_cases() -> list[_Case]:
    """The inputs of the cross-scheme normalisation corpus, read as the data files they are
    (``<scheme>__<scenario>.input.json``: OTLP/JSON traces and, where content came as log records, logs)."""
    cases = []
    for path in sorted(CORPUS_CASES.glob("*.input.json")):
        raw = json.loads(path.read_text())
        traces = ParseDict(hex_ids_to_base64(raw["traces"]), ExportTraceServiceRequest())
        logs = (
            ParseDict(hex_ids_to_base64(raw["logs"]), ExportLogsServiceRequest()) if raw.get("logs") else None
        )
        cases.append(_Case(path.name.removesuffix(".input.json"), traces, logs))
    if not cases:
        raise SystemExit(f"no corpus cases under {CORPUS_CASES}")
    return cases


def _plain_spans() -> list[Span]:
    """Non-GenAI spans as an instrumented web app sends them."""
    out = []
    for name, attrs in (
        (
            "POST /api/chat",
            {
                "http.request.method": "POST",
                "http.route": "/api/chat",
                "url.scheme": "https",
                "server.address": "app.example.com",
                "http.response.status_code": 200,
                "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64)",
                "network.protocol.version": "1.1",
            },
        ),
        (
            "SELECT orders",
            {
                "db.system.name": "postgresql",
                "db.namespace": "shop",
                "db.collection.name": "orders",
                "db.operation.name": "SELECT",
                "db.query.text": "SELECT id, total FROM orders WHERE customer_id = $1 ORDER BY created_at DESC",
                "server.address": "db.internal",
                "server.port": 5432,
            },
        ),
        (
            "GET",
            {
                "http.request.method": "GET",
                "url.full": "https://kb.example.com/articles/42",
                "server.address": "kb.example.com",
                "http.response.status_code": 200,
            },
        ),
    ):
        span = Span(name=name, kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=1, end_time_unix_nano=2)
        for key, value in attrs.items():
            kv = span.attributes.add()
            kv.key = key
            if isinstance(value, int):
                kv.value.int_value = value
            else:
                kv.value.string_value = value
        out.append(span)
    return out


# Schemes whose spans already follow the current conventions (what llm-observer's own instrumentation,
# OpenLLMetry >= 0.4x, OpenLIT >= 1.4x and the official OTel packages with latest conventions send).
CURRENT_SCHEMES = ("otel_latest", "openllmetry_new", "openlit")


def make_request(spans: int, mix: str = "all") -> tuple[ExportTraceServiceRequest, int]:
    """A request of ``spans`` spans, half GenAI spans from the corpus (content events attached), half plain.

    ``mix`` is ``all`` (every scheme of the corpus, legacy ones included) or ``current`` (only schemes
    already on the current conventions). Returns the request and how many of its spans are GenAI.
    """
    genai: list[tuple[ResourceSpans, Span]] = []
    for case in _corpus_cases():
        if mix == "current" and not case.name.startswith(tuple(s + "__" for s in CURRENT_SCHEMES)):
            continue
        events = content_events_by_span(case.logs) if case.logs is not None else {}
        for rs in case.traces.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    if not span.attributes or span.name in ("POST", "GET /invoices"):
                        continue
                    copy = Span()
                    copy.CopyFrom(span)
                    for event in events.get((span.trace_id, span.span_id), []):
                        ev = copy.events.add()
                        ev.time_unix_nano, ev.name = event.time_unix_nano, event.name
                        for key, value in event.attributes.items():
                            kv = ev.attributes.add()
                            kv.key = key
                            kv.value.string_value = value if isinstance(value, str) else json.dumps(value)
                    genai.append((rs, copy))
    plain = _plain_spans()
    request = ExportTraceServiceRequest()
    rs_out = request.resource_spans.add()
    rs_out.resource.attributes.add(key="service.name").value.string_value = "bench"
    ss_out = rs_out.scope_spans.add()
    n_genai = 0
    for i in range(spans):
        if i % 2 == 0:
            ss_out.spans.add().CopyFrom(genai[(i // 2) % len(genai)][1])
            n_genai += 1
        else:
            ss_out.spans.add().CopyFrom(plain[(i // 2) % len(plain)])
    return request, n_genai


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


def bench_normalize(request: ExportTraceServiceRequest, rounds: int, profile: bool) -> dict[str, Any]:
    """Per-span CPU time of decode (the reference) and of normalize over fresh and already normalised spans.

    CPU time (``time.process_time``) and the best of ``rounds`` keep other work on the machine out of the
    figures as far as possible.
    """
    payload = request.SerializeToString()
    spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    decode_s, normalize_s, renormalize_s, plain_s = [], [], [], []
    profiler = cProfile.Profile() if profile else None
    for _ in range(rounds):
        t, batch = _timed(lambda: decode_trace_bytes(payload))
        decode_s.append(t)
        if profiler is not None:
            profiler.enable()
        t, batch = _timed(lambda b=batch: normalize_batch(b))
        if profiler is not None:
            profiler.disable()
        normalize_s.append(t)
        t, _ = _timed(lambda b=batch: normalize_batch(b))  # already normalised: the idempotent pass
        renormalize_s.append(t)
        fresh = decode_trace_bytes(payload)
        t, _ = _timed(lambda b=fresh: normalize_batch(b, convert_messages=False))
        plain_s.append(t)
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    decode, normalize, renormalize = min(decode_s), min(normalize_s), min(renormalize_s)
    per_span_us = normalize / spans * 1e6
    return {
        "spans": spans,
        "decode_us_per_span": round(decode / spans * 1e6, 2),
        "normalize_us_per_span": round(per_span_us, 2),
        "normalize_spans_per_s": round(spans / normalize),
        "renormalize_us_per_span": round(renormalize / spans * 1e6, 2),
        "normalize_without_messages_us_per_span": round(min(plain_s) / spans * 1e6, 2),
        "normalize_vs_decode": round(normalize / decode, 3),
        "normalize_vs_100k_per_s_budget": round(per_span_us / (1e6 / REFERENCE_SPANS_PER_S), 3),
    }


def _processor(factory: Any, **config: Any) -> Callable[[SpanBatch], SpanBatch]:
    """A processor made by ``factory`` with ``config``, as the pipeline makes it."""
    ctx = CreateContext(factory.type_name, Path("."), Telemetry(), logging.getLogger("bench"))
    processor: Callable[[SpanBatch], SpanBatch] = factory.create(
        ctx, factory.config_model.model_validate(config)
    )
    return processor


def bench_attribute_cost(request: ExportTraceServiceRequest, rounds: int, profile: bool) -> dict[str, Any]:
    """The attribute and cost processors on freshly decoded, normalised spans; and the three GenAI
    processors (normalize, attribute, cost) together as a share of the decode cost."""
    from llm_observer.processors import attribute, cost

    attribute_processor = _processor(
        attribute.factory, rules=[{"target": "project", "map": {"bench": "bench-project"}}]
    )
    cost_processor = _processor(cost.factory)
    payload = request.SerializeToString()
    spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    decode_s = normalize_s = attribute_s = cost_s = 0.0
    profiler = cProfile.Profile() if profile else None
    priced = 0
    # A first pass resolves the prices of the corpus' models (once per model, then cached).
    cost_processor(normalize_batch(decode_trace_bytes(payload)))
    for _ in range(rounds):
        t0 = time.perf_counter()
        batch = decode_trace_bytes(payload)
        t1 = time.perf_counter()
        batch = normalize_batch(batch)
        t2 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        batch = attribute_processor(batch)
        t3 = time.perf_counter()
        batch = cost_processor(batch)
        t4 = time.perf_counter()
        if profiler is not None:
            profiler.disable()
        decode_s, normalize_s = decode_s + t1 - t0, normalize_s + t2 - t1
        attribute_s, cost_s = attribute_s + t3 - t2, cost_s + t4 - t3
        priced = sum(1 for attrs in batch.attributes if "llm_observer.cost.usd" in attrs)
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    total = spans * rounds
    chain_s = normalize_s + attribute_s + cost_s
    return {
        "spans": spans,
        "rounds": rounds,
        "spans_priced_per_batch": priced,
        "decode_spans_per_s": round(total / decode_s),
        "attribute_spans_per_s": round(total / attribute_s),
        "attribute_us_per_span": round(attribute_s / total * 1e6, 2),
        "cost_spans_per_s": round(total / cost_s),
        "cost_us_per_span": round(cost_s / total * 1e6, 2),
        "normalize_attribute_cost_us_per_span": round(chain_s / total * 1e6, 2),
        "normalize_attribute_cost_share_of_decode": round(chain_s / decode_s, 3),
        "normalize_attribute_cost_share_of_10us_budget": round(
            chain_s / total * 1e6 / (1e6 / REFERENCE_SPANS_PER_S), 3
        ),
    }


BENCHES: dict[str, Callable[[ExportTraceServiceRequest, int, bool], dict[str, Any]]] = {
    "normalize": bench_normalize,
    "attribute_cost": bench_attribute_cost,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=sorted(BENCHES), action="append")
    parser.add_argument("--mix", choices=("all", "current"), action="append")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for mix in args.mix or ("all", "current"):
        request, genai = make_request(args.spans, mix)
        results[mix] = {"spans": args.spans, "genai_spans": genai}
        for name in args.only or sorted(BENCHES):
            results[mix][name] = BENCHES[name](request, args.rounds, args.profile)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
