"""`opentelemetry-instrument python app.py` loads llm_observer_google_genai from its entry point: an unchanged google-genai app
sends GenAI spans over OTLP/HTTP to a local receiver."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from llm_observer.instrumentation.testing import ReplayServer, Route
from llm_observer.instrumentation.testing.autoinstrument import run_instrumented
from llm_observer.instrumentation.testing.otlp import otlp_trace_route, spans_from_requests

Recording = Callable[[str], list[Route]]

# The other llm-observer instrumentors stay off (each imports its SDK at start-up): this also checks that our
# entry-point names let OTEL_PYTHON_DISABLED_INSTRUMENTATIONS pick them out.
OTHERS_OFF = {
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "llm_observer_openai,llm_observer_anthropic,llm_observer_cohere,llm_observer_huggingface,llm_observer_ollama,llm_observer_mistral,llm_observer_bedrock"
}

APP = """
import os
from google import genai
from google.genai import types

client = genai.Client(
    api_key="test-key",
    http_options=types.HttpOptions(
        base_url=os.environ["PROVIDER_URL"], api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)
    ),
)
print(client.models.generate_content(model="gemini-2.5-flash", contents="Explain AI").text)
for chunk in client.models.generate_content_stream(model="gemini-2.5-flash", contents="A story"):
    pass
"""


def test_google_genai_autoinstrument_entry_point_exports_spans(
    tmp_path: Path, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(
        [
            *recording("google_genai/generate_content.json"),
            *recording("google_genai/generate_content_stream.json"),
        ]
    )
    with ReplayServer([otlp_trace_route()]) as collector:
        done = run_instrumented(
            APP,
            tmp_path,
            collector.url,
            {**OTHERS_OFF, "PROVIDER_URL": replay.url, "OTEL_SERVICE_NAME": "google_genai-app"},
        )
        assert done.returncode == 0, done.stderr
        spans = [
            span
            for span in spans_from_requests(collector.requests)
            if span.scope == "llm_observer.instrumentation.google_genai"
        ]
    assert done.stdout.startswith("AI learns")
    assert [span.name for span in spans] == ["generate_content gemini-2.5-flash"] * 2
    plain, streamed = spans
    assert plain.attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert plain.attributes["gen_ai.usage.cache_read.input_tokens"] == 1024
    assert "gen_ai.input.messages" not in plain.attributes
    assert streamed.attributes["gen_ai.usage.output_tokens"] == 52
