"""GenAI content sent as OTLP log records reaches its span even when the span comes in a later batch."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llm_observer.collector.pipeline import PendingEvents
from llm_observer.collector.testing import local_config, running
from llm_observer.kernel.batch import Event

PROTOBUF = {"content-type": "application/x-protobuf"}


def _logs(trace_id: bytes, span_id: bytes) -> ExportLogsServiceRequest:
    """What the official OpenAI instrumentation (semconv v1.28) sends for one call's prompt."""
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.time_unix_nano = time.time_ns()
    record.trace_id, record.span_id = trace_id, span_id
    record.event_name = "gen_ai.user.message"
    kv = record.attributes.add()
    kv.key, kv.value.string_value = "gen_ai.system", "openai"
    content = record.body.kvlist_value.values.add()
    content.key, content.value.string_value = "content", "What is the capital of Portugal?"
    return request


def _span(trace_id: bytes, span_id: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name, span.kind = trace_id, span_id, "chat gpt-4o-mini", 3
    span.start_time_unix_nano = time.time_ns() - 1_000_000
    span.end_time_unix_nano = time.time_ns()
    for key, value in (
        ("gen_ai.system", "openai"),
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.request.model", "gpt-4o-mini"),
    ):
        kv = span.attributes.add()
        kv.key, kv.value.string_value = key, value
    return request


async def test_log_events_arriving_batches_before_their_span_become_its_input_messages(
    tmp_path: Path,
) -> None:
    config = local_config(
        tmp_path,
        {
            "exporters": {"debug": {}},
            "service": {
                "delivery": {"linger_seconds": 0},
                "pipelines": {
                    "traces": {"receivers": ["otlp"], "processors": ["normalize"], "exporters": ["debug"]}
                },
            },
        },
    )
    trace_id, span_id = os.urandom(16), os.urandom(8)
    async with running(config) as service:
        url = f"http://127.0.0.1:{service.endpoints()['otlp.http']}"
        pipeline = service.pipelines[0]
        async with httpx.AsyncClient(base_url=url) as http:
            response = await http.post(
                "/v1/logs", content=_logs(trace_id, span_id).SerializeToString(), headers=PROTOBUF
            )
            assert response.status_code == 200
            # The log record is processed on its own before the span exists.
            deadline = time.monotonic() + 10
            while not pipeline.caught_up():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            response = await http.post(
                "/v1/traces", content=_span(trace_id, span_id).SerializeToString(), headers=PROTOBUF
            )
            assert response.status_code == 200
        debug = service.exporters["debug"]
        deadline = time.monotonic() + 10
        while not debug.spans:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        span = debug.spans[0]  # type: ignore[attr-defined]
    messages = json.loads(span["attributes"]["gen_ai.input.messages"])
    assert messages == [
        {"role": "user", "parts": [{"type": "text", "content": "What is the capital of Portugal?"}]}
    ]
    assert span["attributes"]["gen_ai.provider.name"] == "openai"


def test_log_events_pending_are_kept_once_per_record_and_expire() -> None:
    pending = PendingEvents(max_spans=2, max_age_seconds=10)
    key = (b"t" * 16, b"s" * 8)
    event = Event(1, "gen_ai.user.message", {"gen_ai.event.content": "{}"})
    pending.add(7, {key: [event]}, now=0.0)
    pending.add(7, {key: [event]}, now=1.0)  # the same WAL record decoded again (a worker catching up)
    assert pending.take(key) == [event]
    pending.add(3, {key: [event._replace(time_unix_nano=0)]}, now=1.0)
    assert [e.time_unix_nano for e in pending.take(key)] == [0, 1]  # WAL order
    pending.add(9, {(b"a" * 16, b"b" * 8): [event], (b"c" * 16, b"d" * 8): [event]}, now=2.0)
    assert len(pending) == 2 and pending.take(key) == []  # the oldest span made room
    pending.expire(now=12.5)
    assert len(pending) == 0
