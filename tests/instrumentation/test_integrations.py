"""``llm_observer.integrations``: one Integration per ``llm_observer_*`` instrumentor entry point that the
instrumentation distribution declares, and each loads that entry point's instrumentor; ``capture_content``
takes booleans and the mode names, and refuses anything else."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_observer import LLMObserverTracer, integrations
from llm_observer.instrumentation.handler import ContentCapture
from llm_observer.instrumentation.testing import ReplayServer, Route
from llm_observer.integrations import Integration, OpenAIIntegration

PYPROJECT = Path(__file__).resolve().parents[2] / "instrumentation" / "pyproject.toml"


def _declared() -> dict[str, str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    declared: dict[str, str] = project["entry-points"]["opentelemetry_instrumentor"]
    return declared


def test_integrations_entry_points_declared_are_installed() -> None:
    installed = {
        entry.name: entry.value
        for entry in entry_points(group="opentelemetry_instrumentor")
        if entry.name.startswith("llm_observer_")
    }
    assert installed == _declared()


def test_integrations_one_per_entry_point_and_exported() -> None:
    subclasses = Integration.__subclasses__()
    assert sorted(cls.entry_point for cls in subclasses) == sorted(_declared())
    assert all(name.startswith("llm_observer_") for name in _declared())
    assert sorted(cls.__name__ for cls in subclasses) == sorted(
        name for name in integrations.__all__ if name != "Integration"
    )


def test_integrations_load_the_instrumentor_of_their_entry_point() -> None:
    for cls in Integration.__subclasses__():
        instrumentor = cls._instrumentor()
        module, _, name = _declared()[cls.entry_point].partition(":")
        assert (type(instrumentor).__module__, type(instrumentor).__name__) == (module, name)
        assert cls.__name__.removesuffix("Integration") == name.removesuffix("Instrumentor")


@pytest.mark.parametrize(
    ("capture_content", "on_span"),
    [
        (True, True),
        ("span_only", True),
        ("SPAN_AND_EVENT", True),
        (ContentCapture.SPAN_ONLY, True),
        (False, False),
        ("No_Content", False),
        ("event_only", False),
    ],
)
def test_integrations_capture_content_accepts_booleans_and_mode_names(
    monkeypatch: pytest.MonkeyPatch,
    replay: ReplayServer,
    recording: Callable[[str], list[Route]],
    capture_content: object,
    on_span: bool,
) -> None:
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    replay.set_routes(recording("openai/chat.json"))
    exporter = InMemorySpanExporter()
    tracer = LLMObserverTracer(project_id="p", span_exporter=exporter)
    OpenAIIntegration.instrument(tracer, capture_content=capture_content)
    try:
        client = openai.OpenAI(base_url=replay.url + "/v1", api_key="k", max_retries=0)
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Capital?"}]
        )
        tracer.flush()
    finally:
        OpenAIIntegration.uninstrument()
        tracer.shutdown()
    (span,) = exporter.get_finished_spans()
    assert ("gen_ai.input.messages" in span.attributes) is on_span
    assert ("gen_ai.output.messages" in span.attributes) is on_span
    if on_span:
        assert '"content":"Capital?"' in span.attributes["gen_ai.input.messages"]


@pytest.mark.parametrize("capture_content", ["spanonly", "true", 1, "", ["SPAN_ONLY"]])
def test_integrations_capture_content_rejects_other_values(capture_content: object) -> None:
    from openai.resources.chat.completions import Completions

    original = Completions.create
    for cls in Integration.__subclasses__():
        with pytest.raises(ValueError, match="capture_content") as raised:
            cls.instrument(capture_content=capture_content)
        message = str(raised.value)
        assert all(name in message for name in ("True", "False", "SPAN_ONLY", "SPAN_AND_EVENT", "NO_CONTENT"))
        assert repr(capture_content) in message
    assert Completions.create is original  # nothing was instrumented
