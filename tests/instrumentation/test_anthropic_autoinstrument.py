"""`opentelemetry-instrument python app.py` loads llm_observer_anthropic from its entry point; a running
collector stores exactly one LLM span for the call (the SDK's own tracing stands down) with its cache usage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from llm_observer.instrumentation.testing import ReplayServer, Route
from llm_observer.instrumentation.testing.autoinstrument import run_instrumented

Recording = Callable[[str], list[Route]]

APP = """
import os
import anthropic

client = anthropic.Anthropic(base_url=os.environ["PROVIDER_URL"], api_key="sk-ant-test", max_retries=0)
message = client.messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                 messages=[{"role": "user", "content": "Capital?"}])
print(message.content[0].text)
"""


def test_anthropic_autoinstrument_cache_usage_stored_by_running_collector(
    tmp_path: Path, replay: ReplayServer, recording: Recording
) -> None:
    from llm_observer.instrumentation.testing.collector import CollectorProcess

    replay.set_routes(recording("anthropic/messages.json"))
    with CollectorProcess(tmp_path) as collector:
        done = run_instrumented(APP, tmp_path, collector.otlp_url, {"PROVIDER_URL": replay.url})
        assert done.returncode == 0, done.stderr
        (summary,) = collector.wait_for_traces(1)
        stored = collector.wait_for_trace(summary["trace_id"])
    (span,) = stored["spans"]
    assert span["name"] == "chat claude-sonnet-4-6"
    assert span["provider"] == "anthropic"
    assert span["input_tokens"] == 3560
    assert span["cache_read_tokens"] == 2048
    assert span["cache_write_tokens"] == 1500
    assert span["output_tokens"] == 9
