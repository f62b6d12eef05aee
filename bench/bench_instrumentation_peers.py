"""Per-call overhead of three OpenAI instrumentations side by side, in one run: llm-observer's, the official
``opentelemetry-instrumentation-openai-v2`` and OpenLLMetry's ``opentelemetry-instrumentation-openai``.

The same ``openai`` client makes the same chat call, answered in process with the recorded, already parsed
response (see ``_client``: the difference between rounds is the instrumentation, not the SDK's request
building, the network or JSON parsing), behind the same OpenTelemetry SDK set-up (a TracerProvider with a BatchSpanProcessor whose
exporter drops the spans, a MeterProvider with an in-memory reader, a LoggerProvider with a batch processor
dropping records). Each round runs every set-up in turn — uninstrumented, then each instrumentor instrumented,
called and uninstrumented — in a rotating order; the overhead is the median per-call time minus the
uninstrumented median of the same rounds. Content capture off, then on (each instrumentation's own switch:
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY`` for llm-observer and openai-v2,
``TRACELOOP_TRACE_CONTENT`` for OpenLLMetry).

The two peers are installed on first use under ``~/.cache/llm-observer/bench-peers`` (pinned, without their
dependencies, which this venv already has) and put on the path of this process only: installed into the venv,
their entry points would load under ``opentelemetry-instrument`` in the test suite.

    .venv/bin/python bench/bench_instrumentation_peers.py [--calls 2000] [--rounds 7]

Prints JSON: µs per call for each instrumentation, content off and on, and the uninstrumented call.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from llm_observer.instrumentation.testing import load_recording

RECORDINGS = Path(__file__).resolve().parent.parent / "tests" / "instrumentation" / "recordings"
PEERS_DIR = Path.home() / ".cache" / "llm-observer" / "bench-peers"
# openai-v2 2.4b0 imports ``opentelemetry.util.genai.instruments``, which util-genai 1.2 moved.
PEERS = (
    "opentelemetry-instrumentation-openai-v2==2.4b0",
    "opentelemetry-util-genai==1.1b0",
    "opentelemetry-instrumentation-openai==0.62.4",
    "opentelemetry-semantic-conventions-ai==0.5.1",
)
MESSAGES = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]
CONTENT_ENV = ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "TRACELOOP_TRACE_CONTENT")


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class _DropLogs(LogRecordProcessor):
    def on_emit(self, log_record: Any) -> None:
        pass

    def emit(self, log_record: Any) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _install_peers() -> None:
    marker = PEERS_DIR / (".complete-" + "-".join(PEERS).replace("=", ""))
    if not marker.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(PEERS_DIR), *PEERS],
            check=True,
        )
        marker.touch()
    sys.path.insert(0, str(PEERS_DIR))


def _client() -> tuple[Any, Callable[[], None]]:
    """An ``openai`` client whose ``chat.completions.create`` is replaced, before any instrumentor wraps it, by
    a function answering the recorded, already parsed response: every instrumentor wraps that same method
    (by module, class and name), and the SDK's request building and HTTP round trip (~1 ms, and noisy) are
    not in the figures, so what differs between set-ups is the instrumentation alone. The second value puts
    the stub back: OpenLLMetry's ``uninstrument`` leaves its wrapper on openai 3's chat resource."""
    import openai
    from openai.resources.chat.completions import Completions
    from openai.types.chat import ChatCompletion

    answer = ChatCompletion.model_validate(load_recording(RECORDINGS / "openai/chat.json")[0].json)

    def create(self: Any, **kwargs: Any) -> Any:
        return answer

    def reset() -> None:
        Completions.create = create  # type: ignore[method-assign]

    reset()
    return openai.OpenAI(base_url="https://api.openai.com/v1", api_key="k", max_retries=0), reset


Setup = tuple[Callable[[], Any], dict[str, str], dict[str, str], dict[str, Any]]


def _instrumentors() -> dict[str, Setup]:
    """name → (make instrumentor, content-off env, content-on env, extra ``instrument`` arguments).

    llm-observer's is measured at each client-metrics level: ``all`` (the default, the metrics the peers
    record too), ``duration`` and ``none`` (for applications whose spans go to llm-observer's collector,
    which derives the same metrics from them)."""
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetry
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIV2

    from llm_observer.instrumentation.openai import OpenAIInstrumentor as Ours

    ours_on = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}
    return {
        "llm_observer": (Ours, {}, ours_on, {}),
        "llm_observer_client_metrics_duration": (Ours, {}, ours_on, {"client_metrics": "duration"}),
        "llm_observer_client_metrics_none": (Ours, {}, ours_on, {"client_metrics": "none"}),
        "openai_v2": (OpenAIV2, {}, {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}, {}),
        "openllmetry": (
            OpenLLMetry,
            {"TRACELOOP_TRACE_CONTENT": "false"},
            {"TRACELOOP_TRACE_CONTENT": "true"},
            {},
        ),
    }


def _time_calls(client: Any, calls: int) -> float:
    create = client.chat.completions.create
    for _ in range(min(50, calls)):
        create(model="gpt-4o-mini", messages=MESSAGES, temperature=0.2)
    start = time.perf_counter_ns()
    for _ in range(calls):
        create(model="gpt-4o-mini", messages=MESSAGES, temperature=0.2)
    return (time.perf_counter_ns() - start) / calls / 1000


def bench(calls: int, rounds: int) -> dict[str, Any]:
    _install_peers()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(_Drop(), max_queue_size=65536))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(_DropLogs())
    providers = {
        "tracer_provider": tracer_provider,
        "meter_provider": meter_provider,
        "logger_provider": logger_provider,
    }
    instrumentors = _instrumentors()
    client, reset = _client()
    results: dict[str, Any] = {}
    for content in ("off", "on"):
        samples: dict[str, list[float]] = {"none": [], **{name: [] for name in instrumentors}}
        order = ["none", *instrumentors]
        for round_no in range(rounds):
            shift = round_no % len(order)
            for name in order[shift:] + order[:shift]:
                if name == "none":
                    samples[name].append(_time_calls(client, calls))
                    continue
                make, off_env, on_env, extra = instrumentors[name]
                env = on_env if content == "on" else off_env
                for key in CONTENT_ENV:
                    os.environ.pop(key, None)
                os.environ.update(env)
                instrumentor = make()
                instrumentor.instrument(**providers, **extra)
                try:
                    samples[name].append(_time_calls(client, calls))
                finally:
                    instrumentor.uninstrument()
                    reset()
        base = statistics.median(samples["none"])
        results[f"content_{content}"] = {
            "uninstrumented_us_per_call": round(base, 1),
            **{
                name: {"overhead_us_per_call": round(statistics.median(samples[name]) - base, 1)}
                for name in instrumentors
            },
        }
    for key in CONTENT_ENV:
        os.environ.pop(key, None)
    tracer_provider.shutdown()
    results["peers"] = list(PEERS)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(bench(args.calls, args.rounds), indent=2))


if __name__ == "__main__":
    main()
