"""Per-step overhead of the LlamaIndex instrumentation, in microseconds.

A small LlamaIndex workflow with no network — retrieve (a vector index retriever over a local hashing
embedding) → act (a FunctionTool) → answer (LlamaIndex's MockLLM) — is run uninstrumented and instrumented
with ``LlamaIndexInstrumentor``, rounds interleaved, median time per run. LlamaIndex's dispatcher notifies
its handlers whether or not one is ours, so the uninstrumented run already pays for LlamaIndex's own
instrumentation. The real OpenTelemetry SDK is behind the instrumentation (a BatchSpanProcessor whose
exporter counts and drops the spans, a MeterProvider aggregating the histograms). Per step (the spans one
run makes: workflow, three steps, retrieval, embeddings, tool, chat): ``overhead_us_per_step`` is
instrumented minus uninstrumented, divided by the spans per run. Times are the process's CPU time (every
thread, the exporter's included), which a machine shared with other work disturbs far less than wall time.

    .venv/bin/python bench/bench_llama_index.py [--runs 200] [--rounds 7]

Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Sequence

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.llms.mock import MockLLM
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Event, StartEvent, StopEvent, Workflow, step
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from llm_observer.instrumentation.llama_index import LlamaIndexInstrumentor


class _Count(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class _Letters(BaseEmbedding):
    """Letter counts: deterministic and cheap."""

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * 26
        for char in text.lower():
            if "a" <= char <= "z":
                vector[ord(char) - 97] += 1.0
        return vector

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)


def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"rain in {city}"


class _Found(Event):
    question: str


class _Acted(Event):
    question: str


class _Desk(Workflow):
    def __init__(self, retriever: BaseRetriever) -> None:
        super().__init__(timeout=30)
        self.retriever = retriever
        self.tool = FunctionTool.from_defaults(get_weather)
        self.llm = MockLLM(max_tokens=8)

    @step
    async def retrieve(self, ev: StartEvent) -> _Found:
        await self.retriever.aretrieve(ev.question)
        return _Found(question=ev.question)

    @step
    async def act(self, ev: _Found) -> _Acted:
        await self.tool.acall(city="Paris")
        return _Acted(question=ev.question)

    @step
    async def answer(self, ev: _Acted) -> StopEvent:
        reply = await self.llm.achat([ChatMessage(role="user", content=ev.question)])
        return StopEvent(result=reply.message.content)


async def _run_us(desk: _Desk, runs: int) -> float:
    start = time.process_time_ns()
    for _ in range(runs):
        await desk.run(question="Weather in Paris?")
    return (time.process_time_ns() - start) / runs / 1000


async def _bench(runs: int, rounds: int) -> dict[str, object]:
    exporter = _Count()
    tracer_provider = TracerProvider()
    processor = BatchSpanProcessor(exporter, max_queue_size=65536)
    tracer_provider.add_span_processor(processor)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    index = VectorStoreIndex.from_documents(
        [Document(text="paris is rainy in spring"), Document(text="lisbon is sunny")], embed_model=_Letters()
    )
    desk = _Desk(index.as_retriever(similarity_top_k=1))
    instrumentor = LlamaIndexInstrumentor()
    await _run_us(desk, 20)  # warm up imports and caches

    plain: list[float] = []
    instrumented: list[float] = []
    spans_per_run = 0.0
    for _ in range(rounds):
        plain.append(await _run_us(desk, runs))
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        before = exporter.spans
        instrumented.append(await _run_us(desk, runs))
        instrumentor.uninstrument()
        processor.force_flush()
        spans_per_run = (exporter.spans - before) / runs
    overhead = statistics.median(instrumented) - statistics.median(plain)
    return {
        "framework": "llama_index",
        "runs_per_round": runs,
        "rounds": rounds,
        "run_us_uninstrumented": round(statistics.median(plain), 1),
        "run_us_instrumented": round(statistics.median(instrumented), 1),
        "spans_per_run": spans_per_run,
        "overhead_us_per_step": round(overhead / spans_per_run, 1) if spans_per_run else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_bench(args.runs, args.rounds)), indent=2))


if __name__ == "__main__":
    main()
