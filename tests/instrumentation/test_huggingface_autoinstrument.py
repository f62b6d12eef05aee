"""`opentelemetry-instrument python app.py` loads llm_observer_huggingface from its entry point: an unchanged huggingface_hub app
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
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "llm_observer_openai,llm_observer_anthropic,llm_observer_cohere,llm_observer_google_genai,llm_observer_ollama,llm_observer_mistral,llm_observer_bedrock"
}

APP = """
import os
from huggingface_hub import InferenceClient

client = InferenceClient(base_url=os.environ["PROVIDER_URL"], api_key="hf_test")
reply = client.chat_completion([{"role": "user", "content": "What is deep learning?"}], model="meta-llama/Llama-3.1-8B-Instruct")
print(reply.choices[0].message.content)
"""


def test_huggingface_autoinstrument_entry_point_exports_spans(
    tmp_path: Path, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("huggingface/chat_completion.json"))
    with ReplayServer([otlp_trace_route()]) as collector:
        done = run_instrumented(
            APP,
            tmp_path,
            collector.url,
            {**OTHERS_OFF, "PROVIDER_URL": replay.url, "OTEL_SERVICE_NAME": "huggingface-app"},
        )
        assert done.returncode == 0, done.stderr
        spans = [
            span
            for span in spans_from_requests(collector.requests)
            if span.scope == "llm_observer.instrumentation.huggingface"
        ]
    assert done.stdout.startswith("Deep learning")
    (span,) = spans
    assert span.name == "chat meta-llama/Llama-3.1-8B-Instruct"
    assert span.attributes["gen_ai.provider.name"] == "hugging_face"
    assert span.attributes["gen_ai.usage.input_tokens"] == 46
    assert span.attributes["gen_ai.usage.output_tokens"] == 17
