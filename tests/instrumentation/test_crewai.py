"""CrewAIInstrumentor against real CrewAI releases (the newest and the oldest supported), each in a virtualenv
of its own: CrewAI pins openai, httpx and pydantic versions the main venv cannot hold.

The virtualenvs are built once and cached under ``~/.cache/llm-observer/crewai-<version>-venv`` (rebuilt
when their marker file is missing); ``crewai_app/app.py`` runs there with this checkout's instrumentation
and semconv sources on ``PYTHONPATH``, against a local replay server of recorded OpenAI chat answers, and
prints the finished spans of each scenario as JSON; the tests here check the trees structurally. CrewAI's
own telemetry and tracing are switched off, and any request for a host other than the replay server goes
to a dead proxy, so nothing leaves the machine. Slow (builds virtualenvs, imports CrewAI): run with
``LLM_OBSERVER_SLOW_TESTS=1``.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llm_observer.instrumentation.testing import ReplayServer
from llm_observer.instrumentation.testing.otlp import otlp_trace_route, spans_from_requests

ROOT = Path(__file__).resolve().parents[2]
RECORDINGS = Path(__file__).parent / "recordings"
APP = Path(__file__).parent / "crewai_app" / "app.py"
SLOW = os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1"

NEWEST = "1.15.30"
#: The oldest supported release: the event ids the instrumentor reads are stamped since 1.10, but 1.10-1.14
#: pin OpenTelemetry 1.34, whose opentelemetry-instrumentation pins wrapt < 2, and llm-observer's
#: instrumentation needs wrapt 2.
OLDEST = "1.15.0"
VERSIONS = (NEWEST, OLDEST)
#: Installed beside each CrewAI release: the OpenTelemetry packages pinned to the SDK line that release
#: pins (unpinned, pip would spend minutes backtracking through them).
VENV_PACKAGES = {
    NEWEST: ("opentelemetry-sdk", "opentelemetry-instrumentation", "opentelemetry-distro", "wrapt"),
    OLDEST: (
        "opentelemetry-sdk~=1.42.0",
        "opentelemetry-instrumentation==0.63b0",
        "opentelemetry-distro==0.63b0",
        "wrapt",
    ),
}
ENTRY_POINT = "llm_observer_crewai"

Span = dict[str, Any]
Scenario = dict[str, Any]

slow = pytest.mark.skipif(SLOW, reason="slow (builds CrewAI virtualenvs): set LLM_OBSERVER_SLOW_TESTS=1")
# Building a virtualenv takes minutes on a cold cache (it happens in the first test's fixture).
pytestmark = pytest.mark.timeout(1800)


def crewai_venv(version: str) -> Path:
    """The cached virtualenv with ``crewai==version`` (built when its marker is missing); its python."""
    venv = Path.home() / ".cache" / "llm-observer" / f"crewai-{version}-venv"
    marker = venv / ".llm-observer-ready"
    pins = [f"crewai=={version}", *VENV_PACKAGES[version]]
    if not marker.exists() or marker.read_text().split() != pins:
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *pins], check=True, timeout=900
        )
        marker.write_text(" ".join(pins))
    return venv / "bin" / "python"


def app_env(home: Path, **extra: str) -> dict[str, str]:
    """The app's environment: CrewAI's telemetry and tracing off (OTEL_SDK_DISABLED stays unset: the
    app's own SDK must run), every host but the local servers behind a dead proxy."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "instrumentation/src"), str(ROOT / "semconv/src")]),
        "CREWAI_DISABLE_TELEMETRY": "true",
        "CREWAI_TRACING_ENABLED": "false",
        "ANONYMIZED_TELEMETRY": "False",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
        "OPENAI_API_KEY": "sk-test",
    }
    env.update(extra)
    return env


def run_app(version: str, home: Path) -> dict[str, Any]:
    python = crewai_venv(version)
    done = subprocess.run(
        [str(python), str(APP), str(RECORDINGS)],
        cwd=home,
        env=app_env(home),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # CrewAI prints to stdout too: the report is the line the app marks.
    lines = [line for line in done.stdout.splitlines() if line.startswith("CREWAI_APP_REPORT ")]
    assert len(lines) == 1, done.stdout[-3000:]
    report: dict[str, Any] = json.loads(lines[0].partition(" ")[2])
    assert report["version"] == version
    return report


@pytest.fixture(scope="module", params=VERSIONS)
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if SLOW:
        pytest.skip("slow (builds CrewAI virtualenvs): set LLM_OBSERVER_SLOW_TESTS=1")
    return run_app(str(request.param), tmp_path_factory.mktemp(f"crewai-{request.param}"))


# --- reading a tree -----------------------------------------------------------------------------------


def ours(spans: list[Span]) -> list[Span]:
    return [span for span in spans if span["scope"] == "llm_observer.instrumentation.crewai"]


def named(spans: list[Span], name: str) -> list[Span]:
    return [span for span in spans if span["name"] == name]


def one(spans: list[Span], name: str) -> Span:
    found = named(spans, name)
    assert len(found) == 1, (name, [span["name"] for span in spans])
    return found[0]


def children(
    spans: list[Span], parent: Span, where: Callable[[Span], bool] = lambda span: True
) -> list[Span]:
    return [span for span in spans if span["parent_id"] == parent["span_id"] and where(span)]


def descendants(spans: list[Span], parent: Span) -> list[Span]:
    found = children(spans, parent)
    for child in list(found):
        found.extend(descendants(spans, child))
    return found


def is_llm(span: Span) -> bool:
    return bool(span["attributes"].get("gen_ai.operation.name") == "chat")


def check_crew_tree(spans: list[Span]) -> dict[str, Span]:
    """The research crew's tree, the same with and without the provider instrumentor; its main spans."""
    workflow = one(spans, "invoke_workflow city_report")
    assert workflow["parent_id"] is None
    assert {span["trace_id"] for span in spans} == {workflow["trace_id"]}
    assert workflow["attributes"]["gen_ai.workflow.name"] == "city_report"
    research, write = one(spans, "research"), one(spans, "write")
    assert research["parent_id"] == write["parent_id"] == workflow["span_id"]
    assert research["attributes"]["crewai.task.name"] == "research"
    assert "gen_ai.operation.name" not in research["attributes"]
    main: dict[str, Span] = {"workflow": workflow, "research": research, "write": write}
    for task, role in ((research, "Researcher"), (write, "Writer")):
        agent = one(children(spans, task), f"invoke_agent {role}")
        assert agent["attributes"]["gen_ai.agent.name"] == role
        assert agent["attributes"]["gen_ai.agent.id"]
        assert agent["attributes"]["gen_ai.agent.description"].startswith(("Find", "Write"))
        retrieval = one(children(spans, task), "retrieval knowledge")
        assert retrieval["attributes"]["gen_ai.operation.name"] == "retrieval"
        assert retrieval["attributes"]["gen_ai.data_source.id"] == "knowledge"
        # The model call that writes the search query is inside the retrieval.
        rewrite = one(children(spans, retrieval), "knowledge_query")
        assert len(children(spans, rewrite, is_llm)) == 1
        main[role] = agent
    researcher, writer = main["Researcher"], main["Writer"]
    # Each agent's own steps (directly under it: the executor's internal flow has no span).
    assert [span["name"] for span in children(spans, writer)] == ["chat gpt-4o-mini"]
    steps = children(spans, researcher)
    assert sorted(span["name"] for span in steps) == [
        "chat gpt-4o-mini",
        "chat gpt-4o-mini",
        "execute_tool capital_of",
        "execute_tool population_of",
    ]
    for name in ("capital_of", "population_of"):
        tool = one(steps, f"execute_tool {name}")
        assert tool["attributes"]["gen_ai.tool.name"] == name
        assert tool["attributes"]["gen_ai.tool.type"] == "function"
        assert tool["attributes"]["gen_ai.operation.name"] == "execute_tool"
    # One LLM span per model request: 2 query rewrites, 2 researcher turns, 1 writer turn.
    assert len([span for span in spans if is_llm(span)]) == 5
    assert all(span["status"] == "UNSET" for span in spans)
    return main


# --- the tests ----------------------------------------------------------------------------------------


def test_crewai_instrumentor_imports_and_instruments_nothing_without_crewai() -> None:
    from llm_observer.instrumentation.crewai import CrewAIInstrumentor

    instrumentor = CrewAIInstrumentor()
    assert list(instrumentor.instrumentation_dependencies()) == ["crewai >= 1.15.0, < 2"]
    try:
        importlib.metadata.version("crewai")
    except importlib.metadata.PackageNotFoundError:
        instrumentor.instrument()  # the dependency check finds no CrewAI: nothing is wrapped
        assert not instrumentor.is_instrumented_by_opentelemetry
    instrumentor.uninstrument()


@slow
def test_crewai_tree_without_provider_instrumentor_has_framework_llm_spans(report: dict[str, Any]) -> None:
    scenario: Scenario = report["scenarios"]["framework"]
    assert scenario["error"] is None
    assert scenario["requests"] == 5
    spans = scenario["spans"]
    assert ours(spans) == spans
    main = check_crew_tree(spans)
    first, second = sorted(children(spans, main["Researcher"], is_llm), key=lambda span: span["name"])
    for llm in (first, second):
        assert llm["attributes"]["gen_ai.provider.name"] == "openai"
        assert llm["attributes"]["gen_ai.request.model"] == "gpt-4o-mini"
    usages = sorted(
        (span["attributes"]["gen_ai.usage.input_tokens"], span["attributes"]["gen_ai.usage.output_tokens"])
        for span in children(spans, main["Researcher"], is_llm)
    )
    assert usages == [(320, 40), (410, 18)]


@slow
def test_crewai_tree_with_provider_instrumentor_has_provider_llm_spans_only(report: dict[str, Any]) -> None:
    scenario: Scenario = report["scenarios"]["provider"]
    assert scenario["error"] is None
    spans = scenario["spans"]
    main = check_crew_tree(spans)
    llms = [span for span in spans if is_llm(span)]
    assert {span["scope"] for span in llms} == {"llm_observer.instrumentation.openai"}
    assert {span["scope"] for span in spans if not is_llm(span)} == {"llm_observer.instrumentation.crewai"}
    answer = next(iter(children(spans, main["Writer"], is_llm)))
    assert answer["attributes"]["gen_ai.response.id"] == "chatcmpl-Cr5answer"
    assert answer["attributes"]["gen_ai.usage.input_tokens"] == 260


@slow
def test_crewai_subtree_token_sums_on_agents_tasks_and_workflow(report: dict[str, Any]) -> None:
    for name in ("framework", "provider"):
        spans = report["scenarios"][name]["spans"]
        main = check_crew_tree(spans)

        def sums(span: Span) -> tuple[int, int]:
            attributes = span["attributes"]
            return attributes["llm_observer.subtree.input_tokens"], attributes[
                "llm_observer.subtree.output_tokens"
            ]

        assert sums(main["Researcher"]) == (320 + 410, 40 + 18)
        assert sums(main["Writer"]) == (260, 16)
        assert sums(main["research"]) == (60 + 320 + 410, 6 + 40 + 18)
        assert sums(main["write"]) == (70 + 260, 5 + 16)
        assert sums(main["workflow"]) == (60 + 320 + 410 + 70 + 260, 6 + 40 + 18 + 5 + 16)
        tools = [span for span in spans if span["name"].startswith("execute_tool")]
        assert all("llm_observer.subtree.input_tokens" not in span["attributes"] for span in tools)


@slow
def test_crewai_content_capture_on_records_tool_io_retrieval_and_messages(report: dict[str, Any]) -> None:
    spans = report["scenarios"]["framework"]["spans"]
    capital = one(spans, "execute_tool capital_of")
    assert json.loads(capital["attributes"]["gen_ai.tool.call.arguments"]) == {"country": "France"}
    assert capital["attributes"]["gen_ai.tool.call.result"] == "Paris"
    retrieval = named(spans, "retrieval knowledge")[0]
    assert retrieval["attributes"]["gen_ai.retrieval.query.text"] == "capital and population of France"
    assert "Paris is the capital of France." in retrieval["attributes"]["gen_ai.retrieval.documents"]
    writer_llm = children(spans, one(spans, "invoke_agent Writer"), is_llm)[0]
    output = json.loads(writer_llm["attributes"]["gen_ai.output.messages"])
    assert output[0]["parts"][0]["content"].startswith("Paris, the capital of France")
    assert "Write one sentence" in writer_llm["attributes"]["gen_ai.input.messages"]
    tool_turn = [
        span
        for span in children(spans, one(spans, "invoke_agent Researcher"), is_llm)
        if "tool_call" in span["attributes"]["gen_ai.output.messages"]
    ]
    assert len(tool_turn) == 1


@slow
def test_crewai_content_capture_off_records_no_content(report: dict[str, Any]) -> None:
    for span in report["scenarios"]["provider"]["spans"]:
        keys = set(span["attributes"])
        assert not keys & {
            "gen_ai.tool.call.arguments",
            "gen_ai.tool.call.result",
            "gen_ai.retrieval.query.text",
            "gen_ai.retrieval.documents",
            "gen_ai.input.messages",
            "gen_ai.output.messages",
        }, span["name"]


@slow
def test_crewai_threaded_tools_land_under_their_agent(report: dict[str, Any]) -> None:
    scenario = report["scenarios"]["framework"]
    spans = scenario["spans"]
    researcher = one(spans, "invoke_agent Researcher")
    tools = [span for span in spans if span["name"].startswith("execute_tool")]
    assert len(tools) == 2
    assert all(tool["parent_id"] == researcher["span_id"] for tool in tools)
    # CrewAI runs the two tool calls of one model answer in a thread pool.
    assert len(scenario["tool_threads"]) == 2
    assert all(name != "MainThread" for name in scenario["tool_threads"])


@slow
def test_crewai_async_kickoff_with_parallel_tasks_is_one_tree(report: dict[str, Any]) -> None:
    scenario = report["scenarios"]["parallel"]
    assert scenario["error"] is None
    assert scenario["requests"] == 3
    spans = scenario["spans"]
    workflow = one(spans, "invoke_workflow regions")
    assert workflow["parent_id"] is None
    tasks = children(spans, workflow)
    assert sorted(task["name"] for task in tasks) == ["merge", "north", "south"]
    roles = {"north": "North analyst", "south": "South analyst", "merge": "North analyst"}
    for task in tasks:
        agent = one(children(spans, task), f"invoke_agent {roles[task['name']]}")
        assert [span["name"] for span in children(spans, agent)] == ["chat gpt-4o-mini"]
    assert len([span for span in spans if is_llm(span)]) == 3
    assert workflow["attributes"]["llm_observer.subtree.input_tokens"] == 3 * 150
    assert {span["trace_id"] for span in spans} == {workflow["trace_id"]}


@slow
def test_crewai_errors_set_error_status_and_type(report: dict[str, Any]) -> None:
    scenario = report["scenarios"]["error"]
    assert scenario["error"] == "InternalServerError"
    spans = scenario["spans"]
    workflow = one(spans, "invoke_workflow one_line")
    task = one(children(spans, workflow), "line")
    # CrewAI retries the agent; some releases leave each failed attempt open, so the next one nests in it.
    attempts = descendants(spans, task)
    agents = [span for span in attempts if not is_llm(span)]
    assert agents and {span["name"] for span in agents} == {"invoke_agent Writer"}
    assert children(spans, task) == [agents[0]] or len(children(spans, task)) == len(agents)
    llms = [span for span in spans if is_llm(span)]
    assert len(llms) == len(agents) == scenario["requests"]
    # Each failed model request is one LLM span under an attempt of the agent.
    attempt_ids = {span["span_id"] for span in agents}
    assert all(llm["parent_id"] in attempt_ids for llm in llms)
    assert len(spans) == 2 + len(agents) + len(llms)
    for span in spans:
        assert span["status"] == "ERROR", span["name"]
        assert span["attributes"]["error.type"] == "InternalServerError", span["name"]


@slow
def test_crewai_flow_run_holds_its_crew_run(report: dict[str, Any]) -> None:
    scenario = report["scenarios"]["flow"]
    assert scenario["error"] is None
    spans = scenario["spans"]
    flow = one(spans, "invoke_workflow ReportFlow")
    assert flow["parent_id"] is None
    assert flow["attributes"]["gen_ai.workflow.name"] == "ReportFlow"
    assert sorted(span["name"] for span in children(spans, flow)) == ["draft", "publish"]
    draft, publish = one(spans, "draft"), one(spans, "publish")
    assert "gen_ai.operation.name" not in draft["attributes"]
    crew = one(children(spans, draft), "invoke_workflow one_line")
    agent = one(children(spans, one(children(spans, crew), "line")), "invoke_agent Writer")
    assert [span["name"] for span in children(spans, agent)] == ["chat gpt-4o-mini"]
    assert children(spans, publish) == []
    assert flow["attributes"]["llm_observer.subtree.input_tokens"] == 150
    assert {span["trace_id"] for span in spans} == {flow["trace_id"]}
    assert len(spans) == 7


@slow
def test_crewai_uninstrument_leaves_no_spans(report: dict[str, Any]) -> None:
    scenario = report["scenarios"]["uninstrumented"]
    assert scenario["requests"] == 1
    assert scenario["spans"] == []


AUTO_APP = """
import os, sys
sys.argv = ["app.py", os.environ["RECORDINGS"]]
sys.path.insert(0, os.environ["APP_DIR"])
import app
from llm_observer.instrumentation.testing.replay import ReplayServer, load_recording
with ReplayServer(load_recording(app.RECORDINGS / "crewai/answer.json")) as server:
    app.single_crew(server.url).kickoff()
"""


@slow
def test_crewai_autoinstrument_entry_point_exports_spans(tmp_path: Path) -> None:
    python = crewai_venv(NEWEST)
    # This checkout's distributions, built with their entry points beside the venv's packages (from copies:
    # building writes into the source folder).
    site = tmp_path / "site"
    sources = []
    for folder in ("semconv", "instrumentation"):
        copy = tmp_path / "src" / folder
        shutil.copytree(
            ROOT / folder, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
        )
        sources.append(str(copy))
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), *sources],
        check=True,
        timeout=600,
    )
    (tmp_path / "auto.py").write_text(AUTO_APP)
    with ReplayServer([otlp_trace_route()]) as collector:
        done = subprocess.run(
            [str(python.parent / "opentelemetry-instrument"), str(python), "auto.py"],
            cwd=tmp_path,
            env=app_env(
                tmp_path,
                PYTHONPATH=str(site),
                RECORDINGS=str(RECORDINGS),
                APP_DIR=str(APP.parent),
                OTEL_TRACES_EXPORTER="otlp",
                OTEL_METRICS_EXPORTER="none",
                OTEL_LOGS_EXPORTER="none",
                OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=collector.url + "/v1/traces",
                OTEL_BSP_SCHEDULE_DELAY="50",
            ),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        spans = spans_from_requests(collector.requests)
    names = {span.name for span in spans if span.scope == "llm_observer.instrumentation.crewai"}
    assert {"invoke_workflow one_line", "line", "invoke_agent Writer"} <= names
