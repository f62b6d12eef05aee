"""Streamed OpenAI calls get token usage by default without changing what the application iterates: the
instrumentation asks servers known to accept ``stream_options`` for the usage chunk and keeps that chunk
from the caller; the span ends however the iteration ends."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from llm_observer.instrumentation.openai import OpenAIInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture

Recording = Callable[[str], list[Route]]

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
ANSWER = "Paris is the capital of France."
# The replay server's host, named as a server known to accept stream_options.
KNOWN = {"127.0.0.1": "openai"}


@pytest.fixture
def instrument(telemetry: TelemetryCapture) -> Iterator[Callable[..., TelemetryCapture]]:
    instrumentor = OpenAIInstrumentor()

    def start(**kwargs: Any) -> TelemetryCapture:
        instrumentor.instrument(**telemetry.kwargs, **kwargs)
        return telemetry

    yield start
    instrumentor.uninstrument()


def _client(replay: ReplayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=replay.url + "/v1", api_key="sk-test", max_retries=0)


def _async_client(replay: ReplayServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=replay.url + "/v1", api_key="sk-test", max_retries=0)


def _usage(telemetry: TelemetryCapture) -> tuple[Any, Any]:
    attributes = telemetry.only_span().attributes
    return attributes.get("gen_ai.usage.input_tokens"), attributes.get("gen_ai.usage.output_tokens")


def test_openai_stream_usage_asked_by_default_and_final_chunk_hidden(
    instrument: Callable[..., TelemetryCapture], replay: ReplayServer, recording: Recording
) -> None:
    telemetry = instrument(providers=KNOWN)
    replay.set_routes(recording("openai/chat_stream.json"))
    stream = _client(replay).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    # Ordinary application code: every chunk it sees has a choice.
    chunks = list(stream)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == ANSWER
    assert len(chunks) == 9 and all(chunk.usage is None for chunk in chunks)
    assert replay.requests[0].body["stream_options"] == {"include_usage": True}
    assert _usage(telemetry) == (24, 7)
    points = {
        p.attributes["gen_ai.token.type"]: p.sum
        for p in telemetry.histogram_points("gen_ai.client.token.usage")
    }
    assert points == {"input": 24, "output": 7}


def test_openai_stream_usage_hidden_from_next_calls(
    instrument: Callable[..., TelemetryCapture], replay: ReplayServer, recording: Recording
) -> None:
    telemetry = instrument(providers=KNOWN)
    replay.set_routes(recording("openai/chat_stream.json"))
    stream = _client(replay).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    seen = []
    while True:
        try:
            seen.append(next(stream).choices[0])
        except StopIteration:
            break
    assert len(seen) == 9
    assert _usage(telemetry) == (24, 7)


async def test_openai_stream_usage_hidden_from_async_iteration(
    instrument: Callable[..., TelemetryCapture], replay: ReplayServer, recording: Recording
) -> None:
    telemetry = instrument(providers=KNOWN)
    replay.set_routes(recording("openai/chat_stream.json"))
    client = _async_client(replay)
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    text = [chunk.choices[0].delta.content or "" async for chunk in stream]
    assert "".join(text) == ANSWER and len(text) == 9
    assert _usage(telemetry) == (24, 7)
    telemetry.clear()
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    manual = []
    while True:
        try:
            manual.append((await stream.__anext__()).choices[0])
        except StopAsyncIteration:
            break
    assert len(manual) == 9
    assert _usage(telemetry) == (24, 7)


def test_openai_stream_usage_chunk_passed_through_when_app_asks(
    instrument: Callable[..., TelemetryCapture], replay: ReplayServer, recording: Recording
) -> None:
    telemetry = instrument(providers=KNOWN)
    replay.set_routes(recording("openai/chat_stream.json"))
    chunks = list(
        _client(replay).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert len(chunks) == 10
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 7
    assert _usage(telemetry) == (24, 7)


def test_openai_stream_usage_added_to_app_stream_options(
    instrument: Callable[..., TelemetryCapture], replay: ReplayServer, recording: Recording
) -> None:
    telemetry = instrument(providers=KNOWN)
    replay.set_routes(recording("openai/chat_stream.json") * 2)
    client = _client(replay)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_obfuscation": False},
        )
    )
    assert len(chunks) == 9
    assert replay.requests[0].body["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert _usage(telemetry) == (24, 7)
    # include_usage=False is the application's decision: left alone.
    telemetry.clear()
    list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": False}
        )
    )
    assert replay.requests[1].body["stream_options"] == {"include_usage": False}


def test_openai_stream_usage_stream_helper_unchanged_for_the_app(
    instrument: Callable[..., TelemetryCapture], replay: ReplayServer, recording: Recording
) -> None:
    telemetry = instrument(providers=KNOWN)
    replay.set_routes(recording("openai/chat_stream.json"))
    with _client(replay).chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "content.done" in events
    assert final.choices[0].message.content == ANSWER
    assert final.usage is None  # as without instrumentation: the app did not ask for usage
    assert replay.requests[0].body["stream_options"] == {"include_usage": True}
    assert _usage(telemetry) == (24, 7)


def test_openai_stream_usage_legacy_completions(
    instrument: Callable[..., TelemetryCapture], replay: ReplayServer
) -> None:
    telemetry = instrument(providers=KNOWN)
    base = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "gpt-3.5-turbo-instruct"}
    pieces = [
        {**base, "choices": [{"index": 0, "text": "Par", "finish_reason": None, "logprobs": None}]},
        {**base, "choices": [{"index": 0, "text": "is", "finish_reason": "stop", "logprobs": None}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}},
    ]
    replay.set_routes(
        [Route("POST", "/v1/completions", sse=[f"data: {json.dumps(p)}" for p in pieces] + ["data: [DONE]"])]
    )
    stream = _client(replay).completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Capital?", stream=True
    )
    assert "".join(chunk.choices[0].text for chunk in stream) == "Paris"
    assert _usage(telemetry) == (5, 2)
    assert "openai.api.type" not in telemetry.only_span().attributes


def test_openai_stream_usage_not_asked_of_unknown_hosts(
    instrument: Callable[..., TelemetryCapture], replay: ReplayServer, recording: Recording
) -> None:
    telemetry = instrument()
    replay.set_routes(recording("openai/chat_stream_no_usage.json"))
    for _ in _client(replay).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
        pass
    assert "stream_options" not in replay.requests[0].body
    assert telemetry.only_span().attributes["gen_ai.provider.name"] == "openai"


@pytest.mark.parametrize(
    ("setting", "providers", "asked"),
    [
        ("false", KNOWN, False),
        ("true", {}, True),
        ("auto", KNOWN, True),
        ("auto", {}, False),
        ("sometimes", KNOWN, True),
    ],
)
def test_openai_stream_usage_environment_overrides_default(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    instrument: Callable[..., TelemetryCapture],
    replay: ReplayServer,
    recording: Recording,
    setting: str,
    providers: dict[str, str],
    asked: bool,
) -> None:
    monkeypatch.setenv("LLM_OBSERVER_OPENAI_STREAM_USAGE", setting)
    with caplog.at_level(logging.WARNING, "llm_observer.instrumentation.openai"):
        instrument(providers=providers)
    warned = [record.getMessage() for record in caplog.records]
    assert warned == (["LLM_OBSERVER_OPENAI_STREAM_USAGE='sometimes' is not true, false or auto; using auto."]
                      if setting == "sometimes" else [])  # fmt: skip
    replay.set_routes(recording("openai/chat_stream.json"))
    list(_client(replay).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert ("stream_options" in replay.requests[0].body) is asked


@pytest.mark.parametrize(("api_version", "asked"), [("2024-10-21", True), ("2024-06-01", False)])
def test_openai_stream_usage_azure_by_api_version(
    instrument: Callable[..., TelemetryCapture],
    replay: ReplayServer,
    recording: Recording,
    api_version: str,
    asked: bool,
) -> None:
    telemetry = instrument()
    replay.set_routes(
        [Route("POST", "/openai/deployments/*", sse=recording("openai/chat_stream.json")[0].sse)]
    )
    client = openai.AzureOpenAI(
        azure_endpoint=replay.url, api_key="k", api_version=api_version, max_retries=0
    )
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert ("stream_options" in replay.requests[0].body) is asked
    # The recording always ends with the usage chunk: hidden only when the instrumentation asked for it.
    assert len(chunks) == (9 if asked else 10)
    assert _usage(telemetry) == (24, 7)


def test_openai_stream_app_exception_in_loop_ends_span(
    instrument: Callable[..., TelemetryCapture], replay: ReplayServer, recording: Recording
) -> None:
    telemetry = instrument(providers=KNOWN)
    replay.set_routes(recording("openai/chat_stream.json"))
    stream = _client(replay).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    with pytest.raises(RuntimeError):
        for chunk in stream:
            if chunk.choices[0].delta.content == " the":
                raise RuntimeError("the application failed")
    span = telemetry.only_span()
    assert span.attributes["gen_ai.response.id"] == "chatcmpl-CXq9z8y7x6w5v4u3t2s1r0q9"
    assert "error.type" not in span.attributes  # the call itself did not fail


async def test_openai_async_stream_app_exception_in_loop_ends_span(
    instrument: Callable[..., TelemetryCapture], replay: ReplayServer, recording: Recording
) -> None:
    telemetry = instrument(providers=KNOWN)
    replay.set_routes(recording("openai/chat_stream.json"))
    stream = await _async_client(replay).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    with pytest.raises(RuntimeError):
        async for chunk in stream:
            if chunk.choices[0].delta.content == " the":
                raise RuntimeError("the application failed")
    await stream.close()
    assert len(telemetry.spans()) == 1


APP_DYING_IN_LOOP = """
import json, os
import openai
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from llm_observer.instrumentation.openai import OpenAIInstrumentor


class FileExporter(SpanExporter):
    def export(self, spans):
        with open(os.environ["SPANS_FILE"], "a") as out:
            for span in spans:
                out.write(json.dumps({"name": span.name, "attributes": dict(span.attributes)}) + "\\n")
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(FileExporter()))
OpenAIInstrumentor().instrument(tracer_provider=provider, stream_usage=os.environ["ASK"] == "1")
client = openai.OpenAI(base_url=os.environ["PROVIDER_URL"] + "/v1", api_key="k", max_retries=0)
stream = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                        stream=True)
# The traceback of the uncaught error keeps this generator expression, and so the stream, alive until
# the interpreter exits.
print("".join(chunk.choices[0].delta.content or "" for chunk in stream))
if os.environ["ASK"] != "1":
    raise SystemExit(3)
"""


@pytest.mark.parametrize("ask", ["1", "0"])
def test_openai_stream_span_exported_when_script_dies_in_loop(
    tmp_path: Path, replay: ReplayServer, recording: Recording, ask: str
) -> None:
    # ask=0: the server sends a usage chunk nobody asked for and the loop dies on it at top level.
    # ask=1: the instrumentation asked for it and hides it, so the loop completes.
    replay.set_routes(recording("openai/chat_stream.json"))
    (tmp_path / "app.py").write_text(APP_DYING_IN_LOOP)
    spans_file = tmp_path / "spans.jsonl"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "PYTEST_"))}
    env.update({"PROVIDER_URL": replay.url, "SPANS_FILE": str(spans_file), "ASK": ask})
    done = subprocess.run(
        [sys.executable, "app.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if ask == "1":
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == ANSWER
    else:
        assert done.returncode == 1 and "IndexError" in done.stderr
    (span,) = [json.loads(line) for line in spans_file.read_text().splitlines()]
    assert span["name"] == "chat gpt-4o-mini"
    assert span["attributes"]["gen_ai.usage.output_tokens"] == 7
