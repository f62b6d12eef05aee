"""Per-step overhead of the OpenAI Agents SDK instrumentation, in microseconds.

A small run with no network — triage calls a tool, hands off to a planner, the planner answers (the SDK's
``ScriptedModel``, which makes its generation spans as the real models do) — is run with no tracing
processor, with a no-op processor, and with ``OpenAIAgentsInstrumentor``'s, rounds interleaved, median
CPU time of the process per run (``time.process_time``: on a shared machine, wall time mostly measures the
other processes). The SDK builds its spans whatever the processors, so the no-op processor is the
baseline. The real OpenTelemetry SDK is behind the instrumentation (a BatchSpanProcessor whose exporter
counts and drops the spans, a MeterProvider aggregating the histograms). Per step (the spans one run makes: workflow, two
agents, three chat, tool, handoff): ``overhead_us_per_step`` is instrumented minus no-op processor.

    .venv/bin/python bench/bench_openai_agents.py [--runs 200] [--rounds 7]

Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

from agents import Agent, Runner, function_tool
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.tracing import TracingProcessor, set_trace_processors
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from llm_observer.instrumentation.openai_agents import OpenAIAgentsInstrumentor


class _Count(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class _NoOp(TracingProcessor):
    def on_trace_start(self, trace: Any) -> None:
        pass

    def on_trace_end(self, trace: Any) -> None:
        pass

    def on_span_start(self, span: Any) -> None:
        pass

    def on_span_end(self, span: Any) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


@function_tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"rain in {city}"


def _steps() -> list[ModelStep]:
    return [
        ModelStep(output=[function_call("get_weather", {"city": "Paris"}, call_id="call_1")]),
        ModelStep(output=[function_call("transfer_to_planner", {}, call_id="call_2")]),
        ModelStep(output=[assistant_message("Take an umbrella.")]),
    ]


def _agents() -> tuple[Agent[Any], ScriptedModel]:
    model = ScriptedModel(emit_traces=True)
    planner: Agent[Any] = Agent(name="planner", model=model)
    triage: Agent[Any] = Agent(name="triage", model=model, tools=[get_weather], handoffs=[planner])
    return triage, model


def _run_us(agent: Agent[Any], model: ScriptedModel, runs: int) -> float:
    async def loop() -> float:
        elapsed = 0
        for _ in range(runs):
            model.extend(_steps())
            start = time.process_time_ns()
            await Runner.run(agent, "Weather in Paris?")
            elapsed += time.process_time_ns() - start
        return elapsed / runs / 1000

    return asyncio.run(loop())


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
    agent, model = _agents()
    instrumentor = OpenAIAgentsInstrumentor()
    set_trace_processors([])  # nothing to OpenAI's trace backend
    _run_us(agent, model, 20)  # warm up imports and caches

    plain: list[float] = []
    noop: list[float] = []
    instrumented: list[float] = []
    spans_per_run = 0.0
    for _ in range(args.rounds):
        set_trace_processors([])
        plain.append(_run_us(agent, model, args.runs))
        set_trace_processors([_NoOp()])
        noop.append(_run_us(agent, model, args.runs))
        instrumentor.instrument(
            tracer_provider=tracer_provider, meter_provider=meter_provider, exclusive=True
        )
        before = exporter.spans
        instrumented.append(_run_us(agent, model, args.runs))
        instrumentor.uninstrument()
        processor.force_flush()
        spans_per_run = (exporter.spans - before) / args.runs
    overhead = statistics.median(instrumented) - statistics.median(noop)
    print(
        json.dumps(
            {
                "framework": "openai-agents",
                "runs_per_round": args.runs,
                "rounds": args.rounds,
                "run_us_no_processor": round(statistics.median(plain), 1),
                "run_us_noop_processor": round(statistics.median(noop), 1),
                "run_us_instrumented": round(statistics.median(instrumented), 1),
                "spans_per_run": spans_per_run,
                "overhead_us_per_step": round(overhead / spans_per_run, 1) if spans_per_run else None,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
