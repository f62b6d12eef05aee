"""`opentelemetry-instrument python app.py` loads llm_observer_ollama from its entry point: an unchanged ollama app
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
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "llm_observer_openai,llm_observer_anthropic,llm_observer_cohere,llm_observer_google_genai,llm_observer_huggingface,llm_observer_mistral,llm_observer_bedrock"
}

APP = """
import os
import ollama

client = ollama.Client(host=os.environ["PROVIDER_URL"])
print(client.chat(model="llama3.2", messages=[{"role": "user", "content": "Why is the sky blue?"}]).message.content)
for chunk in client.chat(model="llama3.2", messages=[{"role": "user", "content": "Again"}], stream=True):
    pass
"""


def test_ollama_autoinstrument_entry_point_exports_spans(
    tmp_path: Path, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(
        [
            Route("POST", "/api/chat", json=recording("ollama/chat.json")[0].json, repeat=False),
            *recording("ollama/chat_stream.json"),
        ]
    )
    with ReplayServer([otlp_trace_route()]) as collector:
        done = run_instrumented(
            APP,
            tmp_path,
            collector.url,
            {**OTHERS_OFF, "PROVIDER_URL": replay.url, "OTEL_SERVICE_NAME": "ollama-app"},
        )
        assert done.returncode == 0, done.stderr
        spans = [
            span
            for span in spans_from_requests(collector.requests)
            if span.scope == "llm_observer.instrumentation.ollama"
        ]
    assert done.stdout.startswith("The sky appears blue")
    assert [span.name for span in spans] == ["chat llama3.2", "chat llama3.2"]
    plain, streamed = spans
    assert plain.attributes["gen_ai.provider.name"] == "ollama"
    assert plain.attributes["gen_ai.usage.output_tokens"] == 21
    assert streamed.attributes["gen_ai.usage.input_tokens"] == 31
