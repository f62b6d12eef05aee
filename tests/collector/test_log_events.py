"""GenAI content sent as OTLP log records reaches its span even when the span comes in a later batch."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from llm_observer.collector.testing import local_config, running
from tests.support import trace_request, wait_for
from tests.support.collector import sink

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
                    "traces": {
                        "receivers": ["otlp"],
                        "processors": ["logjoin", "normalize"],
                        "exporters": ["debug"],
                    }
                },
            },
        },
    )
    request = trace_request(
        1,
        attributes={
            "gen_ai.system": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
        },
    )
    span = request.resource_spans[0].scope_spans[0].spans[0]
    trace_id, span_id = span.trace_id, span.span_id
    async with running(config) as service:
        url = f"http://127.0.0.1:{service.endpoints()['otlp.http']}"
        pipeline = service.pipelines[0]
        async with httpx.AsyncClient(base_url=url) as http:
            response = await http.post(
                "/v1/logs", content=_logs(trace_id, span_id).SerializeToString(), headers=PROTOBUF
            )
            assert response.status_code == 200
            # The log record is processed on its own before the span exists.
            await wait_for(pipeline.caught_up, what="the pipeline to process the log record")
            response = await http.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
            assert response.status_code == 200
        debug = sink(service)
        await wait_for(lambda: debug.spans, what="the span in the sink")
        stored = debug.spans[0]
    messages = json.loads(stored["attributes"]["gen_ai.input.messages"])
    assert messages == [
        {"role": "user", "parts": [{"type": "text", "content": "What is the capital of Portugal?"}]}
    ]
    assert stored["attributes"]["gen_ai.provider.name"] == "openai"
