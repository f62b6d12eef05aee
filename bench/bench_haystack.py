"""Per-step overhead of the Haystack instrumentation, in microseconds.

A small Haystack pipeline with no network — retriever (BM25 over an InMemoryDocumentStore) → prompt builder
→ agent (a scripted chat generator: first it asks for two tools, then it answers) with two tools — is run
uninstrumented (Haystack's default no-op tracer) and instrumented with ``HaystackInstrumentor``, rounds
interleaved, median time per run. The real OpenTelemetry SDK is behind the instrumentation (a
BatchSpanProcessor whose exporter counts and drops the spans, a MeterProvider aggregating the histograms).
Per step (the spans one run makes: workflow, retrieval, prompt, agent, two chat, two execute_tool):
``overhead_us_per_step`` is instrumented minus uninstrumented wall time, divided by the spans per run;
``cpu_overhead_us_per_step`` the same in CPU time of the whole process (all threads: Haystack runs tools in
a thread pool, the span processor exports from its own thread), steadier on a busy machine.

    .venv/bin/python bench/bench_haystack.py [--runs 200] [--rounds 7]

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

from haystack import Document, Pipeline, component
from haystack.components.agents import Agent
from haystack.components.builders import ChatPromptBuilder
from haystack.components.retrievers import InMemoryBM25Retriever
from haystack.dataclasses import ChatMessage, ToolCall
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.tools.from_function import tool
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from llm_observer.instrumentation.haystack import HaystackInstrumentor


class _Count(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


_USAGE = {"prompt_tokens": 100, "completion_tokens": 10}


@component
class ScriptedChatGenerator:
    """A chat generator without a model: asks for both tools when the last message is the user's, else
    answers."""

    model = "scripted"

    @component.output_types(replies=list[ChatMessage])
    def run(self, messages: list[ChatMessage], tools: Any = None) -> dict[str, Any]:
        meta = {"model": self.model, "finish_reason": "stop", "usage": _USAGE}
        if messages[-1].role.value == "user":
            calls = [
                ToolCall("get_weather", {"city": "Paris"}, "c1"),
                ToolCall("get_time", {"city": "Paris"}, "c2"),
            ]
            return {"replies": [ChatMessage.from_assistant(tool_calls=calls, meta=meta)]}
        return {"replies": [ChatMessage.from_assistant("Take an umbrella.", meta=meta)]}


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"rain in {city}"


@tool
def get_time(city: str) -> str:
    """Local time in a city."""
    return f"14:05 in {city}"


def _pipeline() -> Pipeline:
    store = InMemoryDocumentStore()
    store.write_documents([Document(content="paris is rainy in spring"), Document(content="lisbon is sunny")])
    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(store, top_k=1))
    template = [
        ChatMessage.from_system("Notes: {% for d in documents %}{{ d.content }}{% endfor %}"),
        ChatMessage.from_user("{{ question }}"),
    ]
    pipeline.add_component("prompt", ChatPromptBuilder(template=template, required_variables="*"))
    pipeline.add_component(
        "agent", Agent(chat_generator=ScriptedChatGenerator(), tools=[get_weather, get_time])
    )
    pipeline.connect("retriever.documents", "prompt.documents")
    pipeline.connect("prompt.prompt", "agent.messages")
    return pipeline


def _run_us(pipeline: Pipeline, runs: int) -> tuple[float, float]:
    """(wall, CPU of the whole process) µs per run."""
    data = {"retriever": {"query": "paris weather"}, "prompt": {"question": "Weather in Paris?"}}
    start, start_cpu = time.perf_counter_ns(), time.process_time_ns()
    for _ in range(runs):
        pipeline.run(data)
    return (time.perf_counter_ns() - start) / runs / 1000, (time.process_time_ns() - start_cpu) / runs / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    exporter = _Count()
    tracer_provider = TracerProvider()
    processor = BatchSpanProcessor(exporter, max_queue_size=65536)
    tracer_provider.add_span_processor(processor)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    pipeline = _pipeline()
    instrumentor = HaystackInstrumentor()
    _run_us(pipeline, 20)  # warm up imports and caches

    plain: list[tuple[float, float]] = []
    instrumented: list[tuple[float, float]] = []
    spans_per_run = 0.0
    for _ in range(args.rounds):
        plain.append(_run_us(pipeline, args.runs))
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        before = exporter.spans
        instrumented.append(_run_us(pipeline, args.runs))
        instrumentor.uninstrument()
        processor.force_flush()  # the export thread's work is counted in the instrumented rounds' CPU
        spans_per_run = (exporter.spans - before) / args.runs
    wall = [statistics.median(run[0] for run in runs) for runs in (plain, instrumented)]
    cpu = [statistics.median(run[1] for run in runs) for runs in (plain, instrumented)]
    print(
        json.dumps(
            {
                "framework": "haystack",
                "runs_per_round": args.runs,
                "rounds": args.rounds,
                "run_us_uninstrumented": round(wall[0], 1),
                "run_us_instrumented": round(wall[1], 1),
                "cpu_us_per_run_uninstrumented": round(cpu[0], 1),
                "cpu_us_per_run_instrumented": round(cpu[1], 1),
                "spans_per_run": spans_per_run,
                "overhead_us_per_step": round((wall[1] - wall[0]) / spans_per_run, 1)
                if spans_per_run
                else None,
                "cpu_overhead_us_per_step": round((cpu[1] - cpu[0]) / spans_per_run, 1)
                if spans_per_run
                else None,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
