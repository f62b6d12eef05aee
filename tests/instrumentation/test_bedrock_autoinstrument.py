"""`opentelemetry-instrument python app.py` loads llm_observer_bedrock from its entry point: an unchanged boto3 bedrock-runtime app
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
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "llm_observer_openai,llm_observer_anthropic,llm_observer_cohere,llm_observer_google_genai,llm_observer_huggingface,llm_observer_ollama,llm_observer_mistral"
}

APP = """
import os
import boto3
from botocore.config import Config

client = boto3.client(
    "bedrock-runtime",
    region_name="us-east-1",
    endpoint_url=os.environ["PROVIDER_URL"],
    aws_access_key_id="AKIDEXAMPLE",
    aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    config=Config(retries={"total_max_attempts": 1}),
)
model = "anthropic.claude-3-5-sonnet-20240620-v1:0"
reply = client.converse(modelId=model, messages=[{"role": "user", "content": [{"text": "What is Bedrock?"}]}])
print(reply["output"]["message"]["content"][0]["text"])
for event in client.converse_stream(modelId=model, messages=[{"role": "user", "content": [{"text": "Hi"}]}])["stream"]:
    pass
"""


def test_bedrock_autoinstrument_entry_point_exports_spans(
    tmp_path: Path, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes([*recording("bedrock/converse.json"), *recording("bedrock/converse_stream.json")])
    with ReplayServer([otlp_trace_route()]) as collector:
        done = run_instrumented(
            APP,
            tmp_path,
            collector.url,
            {**OTHERS_OFF, "PROVIDER_URL": replay.url, "OTEL_SERVICE_NAME": "bedrock-app"},
        )
        assert done.returncode == 0, done.stderr
        spans = [
            span
            for span in spans_from_requests(collector.requests)
            if span.scope == "llm_observer.instrumentation.bedrock"
        ]
    assert done.stdout.startswith("Amazon Bedrock is")
    assert [span.name for span in spans] == ["chat anthropic.claude-3-5-sonnet-20240620-v1:0"] * 2
    plain, streamed = spans
    assert plain.attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert plain.attributes["gen_ai.usage.input_tokens"] == 2071
    assert streamed.attributes["gen_ai.usage.output_tokens"] == 6
