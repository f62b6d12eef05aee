"""A small CrewAI application run by tests/instrumentation/test_crewai.py in a virtualenv of its own (CrewAI
pins SDK versions the main venv cannot hold).

``python app.py RECORDINGS_DIR`` runs each scenario against a local replay server of the recorded OpenAI
chat API and prints one line, ``CREWAI_APP_REPORT {json}`` (CrewAI prints to stdout too): the CrewAI
version and, per scenario, the finished spans (name, ids, parent, status, attributes), the number of model
requests served and the threads the tools ran in.

Scenarios: ``framework`` (CrewAI instrumented alone, content capture on: a crew of two agents, two tools
called at once, crew knowledge searched before each task), ``provider`` (the same crew with the OpenAI
instrumentor active too, content capture off), ``parallel`` (``kickoff_async`` of a crew whose first two
tasks run at the same time), ``error`` (the model answers 500), ``flow`` (a flow whose first method
kicks a crew off) and ``uninstrumented`` (instrumented, then uninstrumented, before the run).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import threading
from pathlib import Path
from typing import Any

import crewai
from crewai import LLM, Agent, Crew, Process, Task
from crewai.flow.flow import Flow, listen, start
from crewai.knowledge.knowledge import Knowledge
from crewai.knowledge.storage.base_knowledge_storage import BaseKnowledgeStorage
from crewai.tools import tool
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_observer.instrumentation.crewai import CrewAIInstrumentor
from llm_observer.instrumentation.openai import OpenAIInstrumentor

RECORDINGS = Path(sys.argv[1])


def _load_replay() -> Any:
    """The replay server's module, loaded from its file: the testing package's other modules need a newer
    OpenTelemetry SDK than some CrewAI releases pin."""
    spec = importlib.util.find_spec("llm_observer.instrumentation")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "testing" / "replay.py"
    module_spec = importlib.util.spec_from_file_location("llm_observer_replay", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module  # dataclasses look their module up while the class is made
    module_spec.loader.exec_module(module)
    return module


_replay = _load_replay()
ReplayServer, load_recording = _replay.ReplayServer, _replay.load_recording
TOOL_THREADS: list[str] = []
FACTS = ["Paris is the capital of France.", "About 2.1 million people live in Paris."]


class KeywordStorage(BaseKnowledgeStorage):
    """Crew knowledge kept in memory and searched by shared words: a retrieval step that needs no embedding
    model or vector store."""

    def search(
        self,
        query: list[str],
        limit: int = 5,
        metadata_filter: dict[str, Any] | None = None,
        score_threshold: float = 0.6,
    ) -> list[Any]:
        words = {word.lower() for text in query for word in text.split()}
        found = [fact for fact in FACTS if words & {word.lower().strip(".") for word in fact.split()}]
        return [{"id": str(i), "content": fact, "metadata": {}, "score": 1.0} for i, fact in enumerate(found)]

    async def asearch(
        self,
        query: list[str],
        limit: int = 5,
        metadata_filter: dict[str, Any] | None = None,
        score_threshold: float = 0.6,
    ) -> list[Any]:
        return self.search(query, limit, metadata_filter, score_threshold)

    def save(self, documents: list[str]) -> None:
        pass

    async def asave(self, documents: list[str]) -> None:
        pass

    def reset(self) -> None:
        pass

    async def areset(self) -> None:
        pass


@tool("capital_of")
def capital_of(country: str) -> str:
    """The capital city of a country."""
    TOOL_THREADS.append(threading.current_thread().name)
    return {"France": "Paris"}.get(country, "unknown")


@tool("population_of")
def population_of(city: str) -> str:
    """The number of people living in a city."""
    TOOL_THREADS.append(threading.current_thread().name)
    return {"Paris": "2.1 million"}.get(city, "unknown")


def llm(url: str) -> LLM:
    return LLM(model="gpt-4o-mini", base_url=url + "/v1", api_key="sk-test", max_retries=0)


def research_crew(url: str) -> Crew:
    researcher = Agent(
        role="Researcher",
        goal="Find facts about cities",
        backstory="A careful fact finder.",
        tools=[capital_of, population_of],
        llm=llm(url),
        allow_delegation=False,
    )
    writer = Agent(
        role="Writer",
        goal="Write one clear sentence",
        backstory="A concise writer.",
        llm=llm(url),
        allow_delegation=False,
    )
    research = Task(
        name="research",
        description="Find the capital of France and its population.",
        expected_output="The capital and its population.",
        agent=researcher,
    )
    write = Task(
        name="write",
        description="Write one sentence about the capital of France.",
        expected_output="One sentence.",
        agent=writer,
        context=[research],
    )
    knowledge = Knowledge(collection_name="facts", sources=[], storage=KeywordStorage())
    return Crew(
        name="city_report",
        agents=[researcher, writer],
        tasks=[research, write],
        process=Process.sequential,
        knowledge=knowledge,
    )


def parallel_crew(url: str) -> Crew:
    north = Agent(
        role="North analyst", goal="Report on the north", backstory="Knows the north.", llm=llm(url)
    )
    south = Agent(
        role="South analyst", goal="Report on the south", backstory="Knows the south.", llm=llm(url)
    )
    first = Task(
        name="north",
        description="Report on the north.",
        expected_output="A line.",
        agent=north,
        async_execution=True,
    )
    second = Task(
        name="south",
        description="Report on the south.",
        expected_output="A line.",
        agent=south,
        async_execution=True,
    )
    merge = Task(
        name="merge",
        description="Merge both reports.",
        expected_output="A line.",
        agent=north,
        context=[first, second],
    )
    return Crew(
        name="regions", agents=[north, south], tasks=[first, second, merge], process=Process.sequential
    )


def single_crew(url: str) -> Crew:
    agent = Agent(role="Writer", goal="Write one line", backstory="A concise writer.", llm=llm(url))
    task = Task(name="line", description="Write one line.", expected_output="A line.", agent=agent)
    return Crew(name="one_line", agents=[agent], tasks=[task])


def run_flow(url: str) -> None:
    """A flow whose first method kicks a crew off and whose second uses the result."""

    class ReportFlow(Flow):  # type: ignore[type-arg]
        @start()
        def draft(self) -> str:
            return str(single_crew(url).kickoff())

        @listen(draft)
        def publish(self, text: str) -> str:
            return text.upper()

    ReportFlow().kickoff()


def span_dict(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }


def main() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    crew_routes = load_recording(RECORDINGS / "crewai/crew.json")
    answer_routes = load_recording(RECORDINGS / "crewai/answer.json")
    error_routes = load_recording(RECORDINGS / "openai/error_500.json")
    report: dict[str, Any] = {"version": crewai.__version__, "scenarios": {}}

    def scenario(name: str, routes: list[Any], run: Any, *, content: bool, provider_spans: bool) -> None:
        exporter.clear()
        TOOL_THREADS.clear()
        crewai_instrumentor = CrewAIInstrumentor()
        openai_instrumentor = OpenAIInstrumentor()
        crewai_instrumentor.instrument(tracer_provider=provider, capture_content=content)
        if provider_spans:
            openai_instrumentor.instrument(tracer_provider=provider, capture_content=content)
        error = None
        with ReplayServer(routes) as server:
            try:
                run(server.url)
            except Exception as exc:
                error = type(exc).__name__
            requests = len(server.requests)
        crewai_instrumentor.uninstrument()
        if provider_spans:
            openai_instrumentor.uninstrument()
        report["scenarios"][name] = {
            "spans": [span_dict(span) for span in exporter.get_finished_spans()],
            "requests": requests,
            "tool_threads": list(TOOL_THREADS),
            "error": error,
        }

    scenario(
        "framework", crew_routes, lambda url: research_crew(url).kickoff(), content=True, provider_spans=False
    )
    scenario(
        "provider", crew_routes, lambda url: research_crew(url).kickoff(), content=False, provider_spans=True
    )
    scenario(
        "parallel",
        answer_routes,
        lambda url: asyncio.run(parallel_crew(url).kickoff_async()),
        content=False,
        provider_spans=False,
    )
    scenario(
        "error", error_routes, lambda url: single_crew(url).kickoff(), content=False, provider_spans=False
    )
    scenario("flow", answer_routes, run_flow, content=False, provider_spans=False)

    exporter.clear()
    CrewAIInstrumentor().instrument(tracer_provider=provider)
    CrewAIInstrumentor().uninstrument()
    with ReplayServer(answer_routes) as server:
        single_crew(server.url).kickoff()
        report["scenarios"]["uninstrumented"] = {
            "spans": [span_dict(span) for span in exporter.get_finished_spans()],
            "requests": len(server.requests),
        }
    print("CREWAI_APP_REPORT", json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
