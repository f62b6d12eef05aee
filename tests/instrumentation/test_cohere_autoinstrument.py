"""`opentelemetry-instrument python app.py` loads llm_observer_cohere from its entry point: an unchanged cohere app
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
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "llm_observer_openai,llm_observer_anthropic,llm_observer_google_genai,llm_observer_huggingface,llm_observer_ollama,llm_observer_mistral,llm_observer_bedrock"
}

APP = """
import os
import cohere

client = cohere.ClientV2(api_key="test-key", base_url=os.environ["PROVIDER_URL"], max_retries=0)
reply = client.chat(model="command-a-03-2025", messages=[{"role": "user", "content": "What are LLMs?"}])
print(reply.message.content[0].text)
for event in client.chat_stream(model="command-a-03-2025", messages=[{"role": "user", "content": "Hi"}]):
    pass
"""


def test_cohere_autoinstrument_entry_point_exports_spans(
    tmp_path: Path, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(
        [
            Route("POST", "/v2/chat", json=recording("cohere/v2_chat.json")[0].json, repeat=False),
            *recording("cohere/v2_chat_stream.json"),
        ]
    )
    with ReplayServer([otlp_trace_route()]) as collector:
        done = run_instrumented(
            APP,
            tmp_path,
            collector.url,
            {
                "PROVIDER_URL": replay.url,
                "OTEL_SERVICE_NAME": "cohere-app",
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY",
            },
        )
        assert done.returncode == 0, done.stderr
        spans = [
            span
            for span in spans_from_requests(collector.requests)
            if span.scope == "llm_observer.instrumentation.cohere"
        ]
    assert done.stdout.startswith("Large language models")
    assert [span.name for span in spans] == ["chat command-a-03-2025", "chat command-a-03-2025"]
    plain, streamed = spans
    assert plain.resource["service.name"] == "cohere-app"
    assert plain.attributes["gen_ai.provider.name"] == "cohere"
    assert plain.attributes["gen_ai.usage.input_tokens"] == 14
    assert '"content":"What are LLMs?"' in plain.attributes["gen_ai.input.messages"]
    assert streamed.attributes["gen_ai.request.stream"] is True
    assert streamed.attributes["gen_ai.usage.output_tokens"] == 9
