"""Reusable fakes and helpers for tests and benchmarks: a running service in the current loop, an
exporter that fails on demand, and realistic GenAI span traffic."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from pydantic import Field

from llm_observer.collector.config import Config, load_config
from llm_observer.collector.service import Service
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import ComponentConfig, CreateContext, Exporter, Factory
from llm_observer.kernel.errors import RetryableError
from llm_observer.kernel.otlp_codec import to_any_value

# --- an exporter that fails until told not to -------------------------------------------------------


class FlakyExporterConfig(ComponentConfig):
    fail: bool = Field(True, description="start failing")


class FlakyExporter:
    """Raises ``RetryableError`` while ``failing`` is set; records every span id it accepted."""

    def __init__(self, config: FlakyExporterConfig) -> None:
        self.failing = config.fail
        self.span_ids: list[bytes] = []
        self.attempts = 0

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def send(self, batch: SpanBatch) -> None:
        self.attempts += 1
        if self.failing:
            raise RetryableError("flaky exporter is failing on purpose")
        self.span_ids.extend(batch.span_id)


def _create_flaky(ctx: CreateContext, config: FlakyExporterConfig) -> Exporter:
    return FlakyExporter(config)


flaky_factory = Factory("flaky", FlakyExporterConfig, _create_flaky)
TEST_FACTORIES: Mapping[str, Mapping[str, Factory[Any, Any]]] = {"exporters": {"flaky": flaky_factory}}


def local_config(
    data_dir: Path,
    overrides: dict[str, Any] | None = None,
    extra_factories: Mapping[str, Mapping[str, Factory[Any, Any]]] | None = None,
) -> Config:
    """The default config with every listener on an ephemeral loopback port, merged with ``overrides``.

    The test-only component types here (the ``flaky`` exporter) are always known; ``extra_factories``
    adds more (``{"exporters": {"mine": Factory(...)}}``)."""
    base: dict[str, Any] = {
        "receivers": {
            "otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}}
        },
        "exporters": {"prometheus": {"endpoint": "127.0.0.1:0"}},
    }
    from llm_observer.collector.config import EXTENSIONS, deep_merge, discover_factories

    if "query" in discover_factories()[EXTENSIONS]:
        base["query"] = {"http": {"endpoint": "127.0.0.1:0"}, "grpc": {"endpoint": "127.0.0.1:0"}}

    factories = {kind: dict(found) for kind, found in TEST_FACTORIES.items()}
    for kind, found in (extra_factories or {}).items():
        factories.setdefault(kind, {}).update(found)
    return load_config(
        None, data_dir=data_dir, overrides=deep_merge(base, overrides or {}), extra_factories=factories
    )


@asynccontextmanager
async def running(config: Config, *, query: bool = False) -> AsyncIterator[Service]:
    """A started ``Service`` in the current event loop, shut down (drained) on exit."""
    service = Service(config, collector=True, query=query)
    await service.start()
    try:
        yield service
    finally:
        await service.shutdown()


# --- realistic GenAI traffic -----------------------------------------------------------------------

_PROMPTS = (
    "Summarise the customer's last three support tickets and suggest a next step.",
    "Translate the following paragraph into French, keeping the product names unchanged.",
    "Write a SQL query that returns the ten most active users in the last 30 days.",
    "Explain the difference between a process and a thread to a new engineer.",
    "Draft a polite reply declining the meeting invitation for Thursday afternoon.",
)
_MODELS = (("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-3-5-sonnet-20241022"))


def _kv(span_attrs: Any, key: str, value: Any) -> None:
    kv = span_attrs.add()
    kv.key = key
    to_any_value(value, kv.value)


def genai_request(
    traces: int,
    spans_per_trace: int = 5,
    *,
    service_name: str = "support-bot",
    start_ns: int | None = None,
    rng: random.Random | None = None,
) -> ExportTraceServiceRequest:
    """An OTLP request of agent traces: one ``invoke_agent`` root, then ``chat`` and ``execute_tool`` spans
    with usage and prompt content (about 1 KB each). Ids are random and unique."""
    rng = rng or random.Random()
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    _kv(rs.resource.attributes, "service.name", service_name)
    _kv(rs.resource.attributes, "llm_observer.project.id", "bench")
    _kv(rs.resource.attributes, "telemetry.sdk.language", "python")
    ss = rs.scope_spans.add()
    ss.scope.name = "llm_observer.instrumentation.openai"
    ss.scope.version = "0.1.0"
    now = start_ns if start_ns is not None else _now_ns()
    for t in range(traces):
        trace_id = rng.randbytes(16)
        root_id = rng.randbytes(8)
        begin = now + t * 1000
        root = ss.spans.add()
        root.trace_id, root.span_id, root.name = trace_id, root_id, "invoke_agent support"
        root.kind = Span.SPAN_KIND_INTERNAL
        root.start_time_unix_nano, root.end_time_unix_nano = begin, begin + 2_500_000_000
        _kv(root.attributes, "gen_ai.operation.name", "invoke_agent")
        _kv(root.attributes, "gen_ai.agent.name", "support")
        _kv(root.attributes, "user.id", f"user-{rng.randrange(1000)}")
        for s in range(spans_per_trace - 1):
            span = ss.spans.add()
            span.trace_id, span.span_id, span.parent_span_id = trace_id, rng.randbytes(8), root_id
            span.kind = Span.SPAN_KIND_CLIENT
            span.start_time_unix_nano = begin + (s + 1) * 100_000_000
            span.end_time_unix_nano = span.start_time_unix_nano + rng.randrange(50_000_000, 900_000_000)
            if s % 2 == 1:
                span.name = "execute_tool search_tickets"
                _kv(span.attributes, "gen_ai.operation.name", "execute_tool")
                _kv(span.attributes, "gen_ai.tool.name", "search_tickets")
                continue
            provider, model = _MODELS[rng.randrange(len(_MODELS))]
            prompt = _PROMPTS[rng.randrange(len(_PROMPTS))]
            span.name = f"chat {model}"
            _kv(span.attributes, "gen_ai.operation.name", "chat")
            _kv(span.attributes, "gen_ai.provider.name", provider)
            _kv(span.attributes, "gen_ai.request.model", model)
            _kv(span.attributes, "gen_ai.response.model", model)
            _kv(span.attributes, "gen_ai.request.temperature", 0.2)
            _kv(span.attributes, "gen_ai.usage.input_tokens", rng.randrange(200, 4000))
            _kv(span.attributes, "gen_ai.usage.output_tokens", rng.randrange(20, 800))
            _kv(span.attributes, "gen_ai.response.finish_reasons", ["stop"])
            _kv(
                span.attributes,
                "gen_ai.input.messages",
                '[{"role":"system","parts":[{"type":"text","content":"You are a helpful support assistant for '
                'Acme Corp. Be concise and accurate."}]},{"role":"user","parts":[{"type":"text","content":"'
                + prompt
                + '"}]}]',
            )
            _kv(
                span.attributes,
                "gen_ai.output.messages",
                '[{"role":"assistant","parts":[{"type":"text","content":"Here is what I found: the customer '
                "reported a billing issue twice and a login problem once; I suggest escalating the billing "
                'case to tier 2."}],"finish_reason":"stop"}]',
            )
    return request


def _now_ns() -> int:
    import time

    return time.time_ns()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


__all__ = [
    "TEST_FACTORIES",
    "FlakyExporter",
    "flaky_factory",
    "free_port",
    "genai_request",
    "local_config",
    "running",
]
