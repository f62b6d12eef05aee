"""Per-step overhead of the CrewAI instrumentation, in microseconds.

CrewAIInstrumentor reads CrewAI's event bus, so its cost is paid per event. One "run" here is the event
sequence of a real crew run — kickoff, task, agent, a model call that asks for a tool, the tool, a second
model call, then the ends — emitted through CrewAI's own ``crewai_event_bus`` with real CrewAI ``Crew``,
``Task``, ``Agent`` and ``LLM`` objects as sources (no network: the model calls themselves are not made,
their cost is the provider's). Runs are timed uninstrumented and instrumented with ``CrewAIInstrumentor``,
rounds interleaved, median time per run; the real OpenTelemetry SDK is behind the instrumentation (a
BatchSpanProcessor whose exporter counts and drops the spans, a MeterProvider aggregating the histograms).
``overhead_us_per_step`` is the difference divided by the spans one run makes (workflow, task, agent, two
chat spans, tool). CrewAI hands each event to its listeners on a thread pool, so on a busy machine that
difference is noisy; ``own_us_per_step`` is the CPU time of the instrumentation's event reader itself
(the emitting thread's CPU time around each call, so waits for the GIL held by CrewAI's handler threads
do not count), per span.

CrewAI cannot be installed in the main venv (it pins older SDKs), so run it with the test suite's CrewAI
virtualenv (built by ``LLM_OBSERVER_SLOW_TESTS=1 .venv/bin/python -m pytest tests/instrumentation/test_crewai.py``)
and this checkout's sources on the path::

    CREWAI_DISABLE_TELEMETRY=true CREWAI_TRACING_ENABLED=false \\
    PYTHONPATH=instrumentation/src:semconv/src \\
    ~/.cache/llm-observer/crewai-1.15.30-venv/bin/python bench/bench_crewai.py [--runs 300] [--rounds 7]

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import crewai
from crewai import LLM, Agent, Crew, Task
from crewai.events.event_bus import crewai_event_bus
from crewai.events.types.agent_events import AgentExecutionCompletedEvent, AgentExecutionStartedEvent
from crewai.events.types.crew_events import CrewKickoffCompletedEvent, CrewKickoffStartedEvent
from crewai.events.types.llm_events import LLMCallCompletedEvent, LLMCallStartedEvent, LLMCallType
from crewai.events.types.task_events import TaskCompletedEvent, TaskStartedEvent
from crewai.events.types.tool_usage_events import ToolUsageFinishedEvent, ToolUsageStartedEvent
from crewai.tasks.task_output import TaskOutput
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from llm_observer.instrumentation.crewai import CrewAIInstrumentor


class _Count(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class _Scene:
    """The objects a crew run's events come from."""

    def __init__(self) -> None:
        self.llm = LLM(model="gpt-4o-mini", api_key="sk-bench")
        self.agent = Agent(role="Researcher", goal="Find facts", backstory="Careful.", llm=self.llm)
        self.task = Task(
            name="research", description="Find a fact.", expected_output="A fact.", agent=self.agent
        )
        self.crew = Crew(name="bench", agents=[self.agent], tasks=[self.task])
        self.output = TaskOutput(description="Find a fact.", raw="Paris.", agent="Researcher")
        self.messages = [{"role": "user", "content": "Find a fact."}]
        self.usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}

    def model_call(self, response: Any) -> None:
        call_id = str(uuid.uuid4())
        emit = crewai_event_bus.emit
        emit(
            self.llm,
            LLMCallStartedEvent(
                call_id=call_id,
                model="gpt-4o-mini",
                messages=self.messages,
                from_task=self.task,
                from_agent=self.agent,
            ),
        )
        emit(
            self.llm,
            LLMCallCompletedEvent(
                call_id=call_id,
                model="gpt-4o-mini",
                messages=self.messages,
                response=response,
                call_type=LLMCallType.LLM_CALL,
                usage=self.usage,
                from_task=self.task,
                from_agent=self.agent,
            ),
        )

    def run(self) -> None:
        emit = crewai_event_bus.emit
        emit(self.crew, CrewKickoffStartedEvent(crew_name="bench", crew=self.crew, inputs=None))
        emit(self.task, TaskStartedEvent(context="", task=self.task))
        emit(
            self.agent,
            AgentExecutionStartedEvent(
                agent=self.agent, task=self.task, tools=[], task_prompt="Find a fact."
            ),
        )
        self.model_call([{"id": "call_1", "function": {"name": "lookup", "arguments": "{}"}}])
        tool = {"tool_name": "lookup", "tool_args": {"q": "x"}, "agent_role": "Researcher"}
        emit(self.agent, ToolUsageStartedEvent(**tool))
        stamp = datetime.now(UTC)
        emit(self.agent, ToolUsageFinishedEvent(**tool, started_at=stamp, finished_at=stamp, output="Paris"))
        self.model_call("Paris.")
        emit(self.agent, AgentExecutionCompletedEvent(agent=self.agent, task=self.task, output="Paris."))
        emit(self.task, TaskCompletedEvent(output=self.output, task=self.task))
        emit(self.crew, CrewKickoffCompletedEvent(crew_name="bench", crew=self.crew, output=self.output))


class _OwnTime:
    """Sums the CPU time of the instrumentation's event reader (the instrumentor's listener), call by
    call."""

    def __init__(self) -> None:
        self.ns = 0

    def wrap(self, instrumentor: CrewAIInstrumentor) -> None:
        listener = type(instrumentor)._listener
        assert listener is not None
        read = listener.on_event

        def timed(source: Any, event: Any) -> None:
            start = time.thread_time_ns()
            read(source, event)
            self.ns += time.thread_time_ns() - start

        listener.on_event = timed  # type: ignore[method-assign]


def _run_us(scene: _Scene, runs: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(runs):
        scene.run()
    return (time.perf_counter_ns() - start) / runs / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    exporter = _Count()
    tracer_provider = TracerProvider()
    processor = BatchSpanProcessor(exporter, max_queue_size=65536)
    tracer_provider.add_span_processor(processor)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    scene = _Scene()
    instrumentor = CrewAIInstrumentor()
    _run_us(scene, 20)  # warm up imports and caches

    plain: list[float] = []
    instrumented: list[float] = []
    own: list[float] = []
    spans_per_run = 0.0
    for _ in range(args.rounds):
        plain.append(_run_us(scene, args.runs))
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        own_time = _OwnTime()
        own_time.wrap(instrumentor)
        before = exporter.spans
        instrumented.append(_run_us(scene, args.runs))
        own.append(own_time.ns / args.runs / 1000)
        instrumentor.uninstrument()
        processor.force_flush()
        spans_per_run = (exporter.spans - before) / args.runs
    overhead = statistics.median(instrumented) - statistics.median(plain)
    print(
        json.dumps(
            {
                "framework": "crewai",
                "crewai_version": crewai.__version__,
                "runs_per_round": args.runs,
                "rounds": args.rounds,
                "run_us_uninstrumented": round(statistics.median(plain), 1),
                "run_us_instrumented": round(statistics.median(instrumented), 1),
                "spans_per_run": spans_per_run,
                "overhead_us_per_step": round(overhead / spans_per_run, 1) if spans_per_run else None,
                "own_us_per_step": round(statistics.median(own) / spans_per_run, 1)
                if spans_per_run
                else None,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
