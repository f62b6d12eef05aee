"""Per-step overhead of the agent-framework instrumentation (LangChain/LangGraph), in microseconds.

A small LangGraph graph with no network — retrieve (a retriever) → agent (LangChain's fake chat model) →
act (a tool) — is run uninstrumented and instrumented with ``LangChainInstrumentor``, rounds interleaved,
median time per run, and uninstrumented with a no-op callback handler: LangChain does much more work for a
run once any handler listens, which any callback-based tracer pays. The real OpenTelemetry SDK is behind the instrumentation (a BatchSpanProcessor whose
exporter counts and drops the spans, a MeterProvider aggregating the histograms). Per step (the spans one
run makes: workflow, three nodes, retrieval, chat, tool): ``overhead_us_per_step`` is instrumented minus
no-op handler (llm-observer's own cost), ``langchain_callbacks_us_per_step`` no-op handler minus none.

    .venv/bin/python bench/bench_frameworks.py [--runs 300] [--rounds 7]

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any, TypedDict

from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from llm_observer.instrumentation.langchain import LangChainInstrumentor


class _Count(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class _Docs(BaseRetriever):
    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [Document(page_content="paris is rainy in spring")]


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"rain in {city}"


class _State(TypedDict):
    question: str
    answer: str


def _graph() -> Any:
    retriever = _Docs()
    model = FakeListChatModel(responses=["Take an umbrella."])

    def retrieve(state: _State) -> dict[str, Any]:
        retriever.invoke(state["question"])
        return {}

    def agent(state: _State) -> dict[str, Any]:
        return {"answer": str(model.invoke([HumanMessage(state["question"])]).content)}

    def act(state: _State) -> dict[str, Any]:
        get_weather.invoke({"city": "Paris"})
        return {}

    graph = StateGraph(_State)
    graph.add_node("retrieve", retrieve)
    graph.add_node("agent", agent)
    graph.add_node("act", act)
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", "agent")
    graph.add_edge("agent", "act")
    graph.add_edge("act", END)
    return graph.compile()


def _run_us(graph: Any, runs: int, callbacks: list[BaseCallbackHandler] | None = None) -> float:
    config: Any = {"callbacks": callbacks} if callbacks else None
    start = time.perf_counter_ns()
    for _ in range(runs):
        graph.invoke({"question": "Weather in Paris?", "answer": ""}, config)
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
    graph = _graph()
    instrumentor = LangChainInstrumentor()
    _run_us(graph, 20)  # warm up imports and caches

    plain: list[float] = []
    noop: list[float] = []
    instrumented: list[float] = []
    spans_per_run = 0.0
    for _ in range(args.rounds):
        plain.append(_run_us(graph, args.runs))
        noop.append(_run_us(graph, args.runs, [BaseCallbackHandler()]))
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        before = exporter.spans
        instrumented.append(_run_us(graph, args.runs))
        instrumentor.uninstrument()
        processor.force_flush()
        spans_per_run = (exporter.spans - before) / args.runs
    overhead = statistics.median(instrumented) - statistics.median(noop)
    callbacks = statistics.median(noop) - statistics.median(plain)
    print(
        json.dumps(
            {
                "framework": "langgraph",
                "runs_per_round": args.runs,
                "rounds": args.rounds,
                "run_us_uninstrumented": round(statistics.median(plain), 1),
                "run_us_noop_handler": round(statistics.median(noop), 1),
                "run_us_instrumented": round(statistics.median(instrumented), 1),
                "spans_per_run": spans_per_run,
                "overhead_us_per_step": round(overhead / spans_per_run, 1) if spans_per_run else None,
                "langchain_callbacks_us_per_step": round(callbacks / spans_per_run, 1)
                if spans_per_run
                else None,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
