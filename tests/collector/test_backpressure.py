"""Over its limits the collector refuses with retry advice, memory stays bounded, and SDK retries land."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import httpx
import psutil
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from llm_observer.collector.testing import FlakyExporter, genai_request, local_config, running
from tests.support import wait_for
from tests.support.collector import stored

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


async def test_full_wal_answers_retry_info_and_sdk_retries_end_stored(tmp_path: Path) -> None:
    config = local_config(
        tmp_path,
        {
            "exporters": {"flaky": {"fail": True}},
            "service": {
                "wal": {"segment_size_mib": 1, "max_size_mib": 2},
                "delivery": {
                    "initial_backoff_seconds": 0.05,
                    "max_backoff_seconds": 0.2,
                    "linger_seconds": 0,
                },
                "pipelines": {
                    "traces": {"receivers": ["otlp"], "processors": [], "exporters": ["clickhouse", "flaky"]}
                },
            },
        },
    )
    async with running(config) as service:
        rss_before = psutil.Process().memory_info().rss  # after start-up: chDB's engine is loaded by then
        flaky = service.exporters["flaky"]
        assert isinstance(flaky, FlakyExporter)
        ports = service.endpoints()
        url = f"http://127.0.0.1:{ports['otlp.http']}/v1/traces"
        body = genai_request(traces=20).SerializeToString()
        refused = None
        async with httpx.AsyncClient() as client:
            for _ in range(400):
                response = await client.post(
                    url, content=body, headers={"content-type": "application/x-protobuf"}
                )
                if response.status_code != 200:
                    refused = response
                    break
        assert refused is not None, "the WAL never filled"
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert "limit" in status_pb2.Status.FromString(refused.content).message

        def grpc_call() -> grpc.RpcError:
            with grpc.insecure_channel(f"127.0.0.1:{ports['otlp.grpc']}") as channel:
                try:
                    channel.unary_unary(EXPORT)(body, timeout=5)
                except grpc.RpcError as exc:
                    return exc
            raise AssertionError("gRPC export was accepted while the WAL is full")

        error = await asyncio.to_thread(grpc_call)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        details = dict(error.trailing_metadata())  # type: ignore[attr-defined]
        status = status_pb2.Status.FromString(details["grpc-status-details-bin"])
        retry = error_details_pb2.RetryInfo()
        assert status.details[0].Unpack(retry)
        assert retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9 > 0

        # An SDK exporting now is refused, retries as told, and succeeds once the exporter recovers.
        def sdk_send() -> bool:
            provider = TracerProvider(resource=Resource.create({"service.name": "retrying-app"}))
            provider.add_span_processor(
                BatchSpanProcessor(
                    OTLPSpanExporter(endpoint=f"127.0.0.1:{ports['otlp.grpc']}", insecure=True, timeout=30)
                )
            )
            tracer = provider.get_tracer("t")
            for i in range(100):
                with tracer.start_as_current_span(f"chat step-{i}") as span:
                    span.set_attribute("gen_ai.operation.name", "chat")
            ok = provider.force_flush(60_000)
            provider.shutdown()
            return ok

        refused = service.telemetry.refused.labels("otlp", "wal_size")
        refused_before = refused._value.get()
        sending = asyncio.create_task(asyncio.to_thread(sdk_send))
        await wait_for(lambda: refused._value.get() > refused_before, what="the SDK's export to be refused")
        flaky.failing = False
        assert await asyncio.wait_for(sending, 90)
        sql = "SELECT count() AS n FROM otel.otel_traces WHERE ServiceName = 'retrying-app'"
        await wait_for(
            lambda: stored(service, sql)[0]["n"] == 100, timeout=30, what="the SDK's 100 spans stored"
        )
    growth = psutil.Process().memory_info().rss - rss_before
    assert growth < 300 << 20, f"RSS grew by {growth >> 20} MiB under overload"
