"""`opentelemetry-instrument python app.py` loads llm_observer_mistral from its entry point: an unchanged mistralai app
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
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "llm_observer_openai,llm_observer_anthropic,llm_observer_cohere,llm_observer_google_genai,llm_observer_huggingface,llm_observer_ollama,llm_observer_bedrock"
}

APP = """
import os
from mistralai.client import Mistral

client = Mistral(api_key="test-key", server_url=os.environ["PROVIDER_URL"])
reply = client.chat.complete(model="mistral-large-latest", messages=[{"role": "user", "content": "Best cheese?"}])
print(reply.choices[0].message.content)
with client.chat.stream(model="mistral-large-latest", messages=[{"role": "user", "content": "Capital?"}]) as stream:
    for event in stream:
        pass
"""


def test_mistral_autoinstrument_entry_point_exports_spans(
    tmp_path: Path, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(
        [
            Route("POST", "/v1/chat/completions", json=recording("mistral/chat.json")[0].json, repeat=False),
            *recording("mistral/chat_stream.json"),
        ]
    )
    with ReplayServer([otlp_trace_route()]) as collector:
        done = run_instrumented(
            APP,
            tmp_path,
            collector.url,
            {**OTHERS_OFF, "PROVIDER_URL": replay.url, "OTEL_SERVICE_NAME": "mistral-app"},
        )
        assert done.returncode == 0, done.stderr
        spans = [
            span
            for span in spans_from_requests(collector.requests)
            if span.scope == "llm_observer.instrumentation.mistral"
        ]
    assert done.stdout.startswith("The best French cheese")
    assert [span.name for span in spans] == ["chat mistral-large-latest"] * 2
    plain, streamed = spans
    assert plain.attributes["gen_ai.provider.name"] == "mistral_ai"
    assert plain.attributes["gen_ai.response.model"] == "mistral-large-2411"
    assert streamed.attributes["gen_ai.usage.output_tokens"] == 7
