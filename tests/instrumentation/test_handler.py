"""The shared GenAI handler: suppression, content-capture switch, stream wrappers, failure isolation."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import openai
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import StatusCode

from llm_observer.instrumentation._streams import AsyncStreamWrapper, SyncStreamWrapper
from llm_observer.instrumentation._wrappers import sync_wrapper
from llm_observer.instrumentation.handler import (
    ContentCapture,
    GenAIHandler,
    LLMCall,
    content_capture_from_env,
    llm_spans_suppressed,
    suppress_llm_spans,
)
from llm_observer.instrumentation.openai import OpenAIInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture

Recording = Callable[[str], list[Route]]


@pytest.mark.parametrize(
    ("raw", "mode"),
    [
        ("", ContentCapture.NO_CONTENT),
        ("no_content", ContentCapture.NO_CONTENT),
        ("SPAN_ONLY", ContentCapture.SPAN_ONLY),
        ("event_only", ContentCapture.EVENT_ONLY),
        ("Span_And_Event", ContentCapture.SPAN_AND_EVENT),
        ("true", ContentCapture.SPAN_ONLY),
        ("TRUE", ContentCapture.SPAN_ONLY),
        ("false", ContentCapture.NO_CONTENT),
        ("bogus", ContentCapture.NO_CONTENT),
    ],
)
def test_handler_content_capture_switch(raw: str, mode: ContentCapture) -> None:
    assert content_capture_from_env({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": raw}) is mode


def test_handler_framework_suppression_gives_one_llm_span(
    telemetry: TelemetryCapture, replay: ReplayServer, recording: Recording
) -> None:
    replay.set_routes(recording("openai/chat.json"))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(**telemetry.kwargs)
    framework = GenAIHandler("framework", **telemetry.kwargs)
    try:
        client = openai.OpenAI(base_url=replay.url + "/v1", api_key="k", max_retries=0)
        # A framework instrumentation's own LLM span, with the provider call inside it.
        call = framework.start(LLMCall("chat", "openai", "gpt-4o-mini"))
        assert llm_spans_suppressed()
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        framework.detach(call)
        framework.finish(call)
        assert not llm_spans_suppressed()
        # A framework that makes its span some other way says so explicitly.
        with suppress_llm_spans():
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        # OpenTelemetry's generic switch is honoured too.
        with suppress_instrumentation():
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    finally:
        instrumentor.uninstrument()
    (span,) = telemetry.spans()
    assert span.instrumentation_scope.name == "framework"
    assert len(replay.requests) == 3


def test_handler_broken_extractors_never_reach_user_code(telemetry: TelemetryCapture) -> None:
    handler = GenAIHandler("t", **telemetry.kwargs)

    def bad_request(instance: Any, args: Any, kwargs: Any) -> LLMCall:
        raise RuntimeError("extractor bug")

    def bad_response(call: LLMCall, result: Any) -> None:
        raise RuntimeError("extractor bug")

    def ok_request(instance: Any, args: Any, kwargs: Any) -> LLMCall:
        return LLMCall("chat", "acme", "m")

    def sdk_method(x: int) -> int:
        return x * 2

    assert sync_wrapper(handler, bad_request, bad_response)(sdk_method, None, (21,), {}) == 42
    assert telemetry.spans() == ()
    assert sync_wrapper(handler, ok_request, bad_response)(sdk_method, None, (21,), {}) == 42
    (span,) = telemetry.spans()
    assert span.name == "chat m"


def test_handler_user_exception_propagates_unchanged(telemetry: TelemetryCapture) -> None:
    handler = GenAIHandler("t", **telemetry.kwargs)

    class QuotaExceeded(Exception):
        pass

    def request(instance: Any, args: Any, kwargs: Any) -> LLMCall:
        return LLMCall("chat", "acme", "m")

    def sdk_method() -> None:
        raise QuotaExceeded("over")

    wrapper = sync_wrapper(handler, request, lambda call, result: None, error_type=lambda exc: "quota")
    with pytest.raises(QuotaExceeded, match="over"):
        wrapper(sdk_method, None, (), {})
    (span,) = telemetry.spans()
    assert span.attributes["error.type"] == "quota"
    assert span.status.status_code is StatusCode.ERROR


class _Counting(SyncStreamWrapper):
    def _llmo_on_chunk(self, chunk: Any) -> None:
        self._self_call.output_tokens = chunk

    def _llmo_on_end(self) -> None:
        self._self_call.response_model = "counted"


class _AsyncCounting(AsyncStreamWrapper):
    def _llmo_on_chunk(self, chunk: Any) -> None:
        self._self_call.output_tokens = chunk


class _Source:
    """A stand-in SDK stream: an iterator with close() and context-manager support."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.items = iter(range(1, n + 1))
        self.fail_at = fail_at
        self.closed = False

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        item = next(self.items)
        if item == self.fail_at:
            raise ConnectionError("dropped")
        return item

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stream(telemetry: TelemetryCapture, source: Any, cls: type[Any] = _Counting) -> Any:
    handler = GenAIHandler("t", **telemetry.kwargs)
    call = handler.start(LLMCall("chat", "acme", "m", streaming=True))
    handler.detach(call)
    return cls(source, handler, call)


def test_handler_stream_normal_end(telemetry: TelemetryCapture) -> None:
    stream = _stream(telemetry, _Source(5))
    assert list(stream) == [1, 2, 3, 4, 5]
    (span,) = telemetry.spans()
    assert span.attributes["gen_ai.usage.output_tokens"] == 5
    assert span.attributes["gen_ai.response.model"] == "counted"
    assert span.attributes["gen_ai.request.stream"] is True
    assert span.attributes["gen_ai.response.time_to_first_chunk"] >= 0


def test_handler_stream_error_mid_way(telemetry: TelemetryCapture) -> None:
    stream = _stream(telemetry, _Source(5, fail_at=3))
    with pytest.raises(ConnectionError):
        for _ in stream:
            pass
    (span,) = telemetry.spans()
    assert span.attributes["error.type"] == "ConnectionError"
    assert span.attributes["gen_ai.usage.output_tokens"] == 2


def test_handler_stream_context_manager_and_close_end_once(telemetry: TelemetryCapture) -> None:
    source = _Source(5)
    with _stream(telemetry, source) as stream:
        next(stream)
    assert source.closed
    stream.close()
    assert len(telemetry.spans()) == 1


def test_handler_stream_gc_ends_span(telemetry: TelemetryCapture) -> None:
    stream = _stream(telemetry, _Source(5))
    next(stream)
    del stream
    gc.collect()
    assert len(telemetry.spans()) == 1


def test_handler_stream_is_transparent_proxy(telemetry: TelemetryCapture) -> None:
    source = _Source(2)
    stream = _stream(telemetry, source)
    assert isinstance(stream, _Source)
    assert stream.fail_at is None


async def test_handler_async_stream_break_ends_span(telemetry: TelemetryCapture) -> None:
    class _AsyncSource:
        def __init__(self) -> None:
            self.closed = False

        async def _gen(self) -> AsyncIterator[int]:
            for item in range(1, 6):
                yield item

        def __aiter__(self) -> AsyncIterator[int]:
            return self._gen()

        async def close(self) -> None:
            self.closed = True

    stream = _stream(telemetry, _AsyncSource(), _AsyncCounting)
    async for _ in stream:
        break
    await stream.close()
    (span,) = telemetry.spans()
    assert span.attributes["gen_ai.usage.output_tokens"] == 1


def test_handler_no_allocation_per_chunk(telemetry: TelemetryCapture) -> None:
    import tracemalloc

    chunks = [object() for _ in range(20_000)]
    handler = GenAIHandler("t", **telemetry.kwargs)

    class _Keep(SyncStreamWrapper):
        def _llmo_on_chunk(self, chunk: Any) -> None:
            self._self_last = chunk

    call = handler.start(LLMCall("chat", "acme", "m", streaming=True))
    handler.detach(call)
    stream = _Keep(iter(chunks), handler, call)
    next(stream)  # the first chunk records time to first chunk
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(10_000):
        next(stream)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename") if stat.size_diff > 0)
    # 10,000 chunks; a single allocation per chunk would be >= 280 kB.
    assert grown < 20_000, grown


def test_handler_capture_content_kwarg_overrides_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    assert (
        GenAIHandler.from_kwargs({"capture_content": "no_content"}, "x").capture is ContentCapture.NO_CONTENT
    )
    assert GenAIHandler.from_kwargs({}, "x").capture is ContentCapture.SPAN_ONLY
    handler = GenAIHandler.from_kwargs({"capture_content": ContentCapture.EVENT_ONLY}, "x")
    assert handler.capture_content and not handler.capture.on_span


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (True, ContentCapture.SPAN_ONLY),
        (False, ContentCapture.NO_CONTENT),
        ("Span_And_Event", ContentCapture.SPAN_AND_EVENT),
        (" event_only ", ContentCapture.EVENT_ONLY),
        (ContentCapture.SPAN_ONLY, ContentCapture.SPAN_ONLY),
    ],
)
def test_handler_capture_content_kwarg_accepts_booleans_and_names(
    monkeypatch: pytest.MonkeyPatch, value: object, mode: ContentCapture
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "NO_CONTENT")
    assert GenAIHandler.from_kwargs({"capture_content": value}, "x").capture is mode


def test_handler_capture_content_kwarg_rejects_unknown_value() -> None:
    with pytest.raises(ValueError, match=r"capture_content must be True, False.*'SPAN_ONLY'.*not 'on'"):
        GenAIHandler.from_kwargs({"capture_content": "on"}, "x")


@pytest.mark.parametrize(
    ("level", "histograms"),
    [
        ("all", {"gen_ai.client.operation.duration": 1, "gen_ai.client.token.usage": 2}),
        ("duration", {"gen_ai.client.operation.duration": 1, "gen_ai.client.token.usage": 0}),
        ("none", {"gen_ai.client.operation.duration": 0, "gen_ai.client.token.usage": 0}),
    ],
)
def test_handler_client_metrics_levels(
    telemetry: TelemetryCapture,
    replay: ReplayServer,
    recording: Recording,
    level: str,
    histograms: dict[str, int],
) -> None:
    replay.set_routes(recording("openai/chat.json"))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(**telemetry.kwargs, client_metrics=level)
    try:
        client = openai.OpenAI(base_url=replay.url + "/v1", api_key="k", max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    finally:
        instrumentor.uninstrument()
    # The span is the same at every level: only the per-call histogram records differ.
    (span,) = telemetry.spans()
    assert span.attributes is not None and span.attributes["gen_ai.usage.input_tokens"] == 24
    for name, points in histograms.items():
        assert len(telemetry.histogram_points(name)) == points, name


def test_handler_client_metrics_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_OBSERVER_GENAI_CLIENT_METRICS", " Duration ")
    assert GenAIHandler.from_kwargs({}, "x").metrics == "duration"
    assert GenAIHandler.from_kwargs({"client_metrics": "NONE"}, "x").metrics == "none"
    monkeypatch.setenv("LLM_OBSERVER_GENAI_CLIENT_METRICS", "some")
    assert GenAIHandler.from_kwargs({}, "x").metrics == "all"
    monkeypatch.delenv("LLM_OBSERVER_GENAI_CLIENT_METRICS")
    assert GenAIHandler.from_kwargs({}, "x").metrics == "all"
    with pytest.raises(ValueError, match="client_metrics must be one of all, duration, none, not 'tokens'"):
        GenAIHandler.from_kwargs({"client_metrics": "tokens"}, "x")
