"""QueryService lifecycle: idempotent start/shutdown, shutdown with live streams open, port conflicts."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from llm_observer.kernel.errors import ConfigError
from llm_observer.query.config import GrpcConfig, HttpConfig, QueryConfig
from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
from llm_observer.query.v1 import llm_observer_query_v1_pb2_grpc as pb_grpc


def _config(http: str = "127.0.0.1:0", grpc_endpoint: str = "127.0.0.1:0") -> QueryConfig:
    return QueryConfig(
        http=HttpConfig(endpoint=http),
        grpc=GrpcConfig(endpoint=grpc_endpoint),
        tail_poll_interval_seconds=0.05,
    )


async def test_service_lifecycle_is_idempotent(tmp_path: Path, new_service: Any) -> None:
    service = new_service(tmp_path, _config())
    await service.shutdown()  # before start
    await service.start()
    port = service.http_port
    await service.start()
    assert service.http_port == port
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200
    await service.shutdown()
    await service.shutdown()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"http://127.0.0.1:{port}/health")


async def test_service_shuts_down_with_live_tails_open(tmp_path: Path, new_service: Any) -> None:
    service = new_service(tmp_path, _config())
    await service.start()
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http_port}", timeout=30)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}")
    try:
        stream_cm = http.stream("GET", "/api/v1/tail")
        response = await stream_cm.__aenter__()
        assert response.status_code == 200
        lines = response.aiter_lines()
        assert (await lines.__anext__()).startswith(":")  # the stream is open
        tail = pb_grpc.QueryServiceStub(channel).TailSpans(pb.TailSpansRequest())
        await asyncio.wait_for(tail.initial_metadata(), 10)  # the server has opened the gRPC tail
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.wait_for(service.shutdown(), timeout=15)
        assert loop.time() - began < 10
        with pytest.raises(grpc.aio.AioRpcError):
            await tail.read()
        await stream_cm.__aexit__(None, None, None)
    finally:
        await http.aclose()
        await channel.close()
        await service.shutdown()


async def test_service_port_in_use_fails_start_and_releases_everything(
    tmp_path: Path, new_service: Any
) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    busy = f"127.0.0.1:{holder.getsockname()[1]}"
    try:
        service = new_service(tmp_path, _config(http=busy))
        with pytest.raises(ConfigError) as info:
            await service.start()
        assert [path for path, _ in info.value.problems] == ["query.http.endpoint"]
        assert service.backend is None
        # The store was released: another service can open it.
        other = new_service(tmp_path, _config())
        await other.start()
        await other.shutdown()
    finally:
        holder.close()


async def test_service_alone_on_a_fresh_store_creates_the_schema_and_answers_empty(
    tmp_path: Path, new_service: Any
) -> None:
    service = new_service(tmp_path, _config())
    await service.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http_port}") as http:
            response = await http.get("/api/v1/traces")
            assert response.status_code == 200, response.text
            assert response.json()["traces"] == []
            summary = await http.get("/api/v1/metrics/summary")
            assert summary.status_code == 200 and summary.json()["request_count"] == 0
    finally:
        await service.shutdown()
