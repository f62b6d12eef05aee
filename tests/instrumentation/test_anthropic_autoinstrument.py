"""`opentelemetry-instrument python app.py` loads llm_observer_anthropic from its entry point; with the SDK's
own tracing also present, the app still yields one LLM span per call."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from llm_observer.instrumentation.testing import ReplayServer, Route
from llm_observer.instrumentation.testing.autoinstrument import run_instrumented
from llm_observer.instrumentation.testing.otlp import otlp_trace_route, spans_from_requests

Recording = Callable[[str], list[Route]]

APP = """
import os
import anthropic

client = anthropic.Anthropic(base_url=os.environ["PROVIDER_URL"], api_key="sk-ant-test", max_retries=0)
message = client.messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                 messages=[{"role": "user", "content": "Capital?"}])
print(message.content[0].text)
"""


def test_anthropic_autoinstrument_entry_point_exports_one_span(
    tmp_path: Path, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("anthropic/messages.json"))
    with ReplayServer([otlp_trace_route()]) as collector:
        done = run_instrumented(APP, tmp_path, collector.url, {"PROVIDER_URL": replay.url})
        assert done.returncode == 0, done.stderr
        spans = spans_from_requests(collector.requests)
    llm = [span for span in spans if "gen_ai.usage.input_tokens" in span.attributes]
    assert len(llm) == 1, [(span.name, span.scope) for span in spans]
    (span,) = llm
    assert span.name == "chat claude-sonnet-4-6"
    assert span.scope == "llm_observer.instrumentation.anthropic"
    assert span.attributes["gen_ai.usage.input_tokens"] == 3560
    assert span.attributes["gen_ai.usage.cache_read.input_tokens"] == 2048
