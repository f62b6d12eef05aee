"""Per-call overhead of the provider instrumentation (target: <= 50 us per call, nothing allocated per chunk).

Two measurements, both with the real OpenTelemetry SDK behind the handler (a TracerProvider with a
BatchSpanProcessor whose exporter drops the spans, a MeterProvider with a reader aggregating the histograms):

1. ``isolated``: the instrumentation's own cost. The instrumented SDK method is replaced by a function that
   returns an already-parsed SDK response (``ChatCompletion`` / ``Message``) or a list of parsed chunks, so
   the time is the wrapper, request/response extraction, span, attributes and metrics, and for streams the
   per-chunk proxy. Reported as us per call and ns per chunk.
2. ``end_to_end``: the real ``openai`` SDK against the local replay server, uninstrumented vs instrumented,
   rounds interleaved, median per call; the difference is the overhead seen by an application (noisier: the
   HTTP round trip is ~100x the overhead).

    .venv/bin/python bench/bench_instrumentation.py [--calls 3000] [--rounds 5] [--skip-end-to-end]

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from llm_observer.instrumentation.testing import ReplayServer, load_recording

RECORDINGS = Path(__file__).resolve().parent.parent / "tests" / "instrumentation" / "recordings"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _providers() -> dict[str, Any]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(_Drop(), max_queue_size=65536))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return {"tracer_provider": tracer_provider, "meter_provider": meter_provider}


def _per_call_us(fn: Callable[[], Any], calls: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter_ns() - start) / calls / 1000)
    return statistics.median(samples)


def bench_isolated(calls: int, rounds: int) -> dict[str, Any]:
    import openai
    from anthropic.types import Message
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    from llm_observer.instrumentation import anthropic as anthropic_instr
    from llm_observer.instrumentation import openai as openai_instr
    from llm_observer.instrumentation._wrappers import sync_wrapper
    from llm_observer.instrumentation.handler import GenAIHandler

    providers = _providers()
    handler = GenAIHandler("bench", **providers)
    client = openai.OpenAI(base_url="https://api.openai.com/v1", api_key="k")
    instance = client.chat.completions

    chat = ChatCompletion.model_validate(load_recording(RECORDINGS / "openai/chat.json")[0].json)
    stream_events = load_recording(RECORDINGS / "openai/chat_stream.json")[0].sse or []
    chunks = [
        ChatCompletionChunk.model_validate(json.loads(event.removeprefix("data: ")))
        for event in stream_events
        if event != "data: [DONE]"
    ]
    chat_op = openai_instr._Adapter(handler, False, {}).operations()["chat"]
    assert chat_op.stream is not None
    chat_wrapper = sync_wrapper(
        handler, chat_op.request(handler), chat_op.response, chat_op.stream(handler, False, None)
    )

    def sdk_chat(**kwargs: Any) -> Any:
        return chat

    def sdk_stream(**kwargs: Any) -> Any:
        return _FakeStream(chunks)

    def baseline_chat() -> Any:
        return sdk_chat(model="gpt-4o-mini", messages=MESSAGES, temperature=0.2)

    def instrumented_chat() -> Any:
        return chat_wrapper(
            sdk_chat, instance, (), {"model": "gpt-4o-mini", "messages": MESSAGES, "temperature": 0.2}
        )

    def baseline_stream() -> None:
        for _ in sdk_stream(model="gpt-4o-mini", messages=MESSAGES, stream=True):
            pass

    def instrumented_stream() -> None:
        stream = chat_wrapper(
            sdk_stream, instance, (), {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
        )
        for _ in stream:
            pass

    # The per-chunk cost: a long stream through the proxy vs the bare iterator.
    long_chunks = chunks[1:-2] * 500

    def long_baseline() -> None:
        for _ in _FakeStream(long_chunks):
            pass

    def long_instrumented() -> None:
        stream = chat_wrapper(
            lambda **kw: _FakeStream(long_chunks),
            instance,
            (),
            {"model": "m", "messages": MESSAGES, "stream": True},
        )
        for _ in stream:
            pass

    message = Message.model_validate(load_recording(RECORDINGS / "anthropic/messages.json")[0].json)
    import anthropic

    # The SDK's own tracing off, as AnthropicInstrumentor arranges (else the instrumentation stands aside).
    a_instance = anthropic.Anthropic(api_key="k", open_telemetry=False).messages
    a_create = anthropic_instr.AnthropicInstrumentor.operations["create"]
    assert a_create.stream is not None
    a_wrapper = sync_wrapper(
        handler, a_create.request(handler), a_create.response, a_create.stream(handler, False, None)
    )

    def a_sdk(**kwargs: Any) -> Any:
        return message

    def a_baseline() -> Any:
        return a_sdk(model="claude-sonnet-4-6", max_tokens=64, messages=MESSAGES)

    def a_instrumented() -> Any:
        return a_wrapper(
            a_sdk, a_instance, (), {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": MESSAGES}
        )

    # Sync calls only: the async wrapper runs the same code around an await.
    results: dict[str, Any] = {}
    for name, base, inst, n in (
        ("openai_chat", baseline_chat, instrumented_chat, calls),
        ("openai_chat_stream_10_chunks", baseline_stream, instrumented_stream, calls),
        ("anthropic_messages", a_baseline, a_instrumented, calls),
    ):
        base_us = _per_call_us(base, n, rounds)
        inst_us = _per_call_us(inst, n, rounds)
        results[name] = {
            "overhead_us_per_call": round(inst_us - base_us, 2),
            "baseline_us": round(base_us, 2),
        }
    results["otel_sdk_floor_us"] = round(_otel_floor(providers, calls, rounds), 2)
    # The same openai chat call with no-op providers: the cost of the instrumentation's own Python code.
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider

    noop = GenAIHandler("bench", tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider())
    noop_chat_op = openai_instr._Adapter(noop, False, {}).operations()["chat"]
    noop_wrapper = sync_wrapper(noop, noop_chat_op.request(noop), noop_chat_op.response)

    def noop_chat() -> Any:
        return noop_wrapper(
            sdk_chat, instance, (), {"model": "gpt-4o-mini", "messages": MESSAGES, "temperature": 0.2}
        )

    results["openai_chat_without_otel_sdk_us"] = round(
        _per_call_us(noop_chat, calls, rounds) - _per_call_us(baseline_chat, calls, rounds), 2
    )
    long_calls = max(5, calls // 200)
    base_us = _per_call_us(long_baseline, long_calls, rounds)
    inst_us = _per_call_us(long_instrumented, long_calls, rounds)
    results["stream_per_chunk_ns"] = round((inst_us - base_us) * 1000 / len(long_chunks), 1)
    providers["tracer_provider"].shutdown()
    return results


def _otel_floor(providers: dict[str, Any], calls: int, rounds: int) -> float:
    """What the OpenTelemetry SDK alone costs for one GenAI call: a CLIENT span with the attributes a chat
    call has, and the three histogram records (duration, input and output tokens)."""
    from opentelemetry.trace import SpanKind

    tracer = providers["tracer_provider"].get_tracer("floor")
    meter = providers["meter_provider"].get_meter("floor")
    duration = meter.create_histogram("floor.duration")
    tokens = meter.create_histogram("floor.tokens")
    start = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
             "server.address": "api.openai.com", "server.port": 443, "gen_ai.request.temperature": 0.2}  # fmt: skip
    end = {"gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.response.id": "chatcmpl-1",
           "gen_ai.response.finish_reasons": ["stop"], "gen_ai.usage.input_tokens": 24,
           "gen_ai.usage.output_tokens": 8, "gen_ai.usage.cache_read.input_tokens": 0,
           "gen_ai.usage.reasoning.output_tokens": 0, "openai.response.service_tier": "default",
           "openai.response.system_fingerprint": "fp"}  # fmt: skip
    labels = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
              "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "server.address": "api.openai.com",
              "server.port": 443}  # fmt: skip

    def one() -> None:
        span = tracer.start_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=start)
        span.set_attributes(end)
        span.end()
        duration.record(0.5, labels)
        tokens.record(24, {**labels, "gen_ai.token.type": "input"})
        tokens.record(8, {**labels, "gen_ai.token.type": "output"})

    return _per_call_us(one, calls, rounds)


class _FakeStream:
    """An already-parsed stream: what the SDK's Stream yields, without the HTTP read."""

    def __init__(self, chunks: list[Any]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Any:
        return iter(self._chunks)

    def __next__(self) -> Any:  # marks it as an iterator for the stream check
        raise StopIteration

    def close(self) -> None:
        pass


def bench_end_to_end(calls: int, rounds: int) -> dict[str, Any]:
    import openai

    from llm_observer.instrumentation.openai import OpenAIInstrumentor

    providers = _providers()
    routes = [
        *load_recording(RECORDINGS / "openai/chat.json"),
        *load_recording(RECORDINGS / "openai/chat_stream.json"),
    ]
    stream_route = load_recording(RECORDINGS / "openai/chat_stream.json")[0]
    results: dict[str, Any] = {}
    with ReplayServer(routes) as server, ReplayServer([stream_route]) as stream_server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)
        stream_client = openai.OpenAI(base_url=stream_server.url + "/v1", api_key="k", max_retries=0)

        def chat() -> Any:
            return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

        def stream() -> None:
            for _ in stream_client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            ):
                pass

        instrumentor = OpenAIInstrumentor()
        for name, fn in (("openai_chat", chat), ("openai_chat_stream", stream)):
            for _ in range(50):
                fn()  # warm connections and caches
            plain: list[float] = []
            traced: list[float] = []
            for _ in range(rounds):
                plain.append(_per_call_us(fn, calls, 1))
                instrumentor.instrument(**providers)
                traced.append(_per_call_us(fn, calls, 1))
                instrumentor.uninstrument()
                server.clear_requests()
                stream_server.clear_requests()
            results[name] = {
                "uninstrumented_us": round(statistics.median(plain), 1),
                "instrumented_us": round(statistics.median(traced), 1),
                "overhead_us_per_call": round(statistics.median(traced) - statistics.median(plain), 1),
            }
    providers["tracer_provider"].shutdown()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-end-to-end", action="store_true")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"isolated": bench_isolated(args.calls, args.rounds)}
    if not args.skip_end_to_end:
        report["end_to_end"] = bench_end_to_end(max(200, args.calls // 10), args.rounds)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
