"""The browser live tail: Server-Sent Events of new spans matching a filter."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from typing import Any

import grpc
import httpx
import pytest

from llm_observer.kernel.batch import SpanBatch
from llm_observer.query.tail import TailEnded
from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
from llm_observer.query.v1 import llm_observer_query_v1_pb2_grpc as pb_grpc
from llm_observer.storage.clickhouse.reads import SpanFilter, Tenant
from tests.query.conftest import KEY_A, KEY_A_WEB, KEY_B
from tests.support import add_span, wait_for


async def test_tail_sse_streams_new_matching_spans(open_running: Any) -> None:
    http = open_running.http
    posted: set[str] = set()
    received: list[dict[str, Any]] = []

    async def read() -> None:
        params = {"service": "live-svc"}
        async with http.stream("GET", "/api/v1/tail", params=params, timeout=30) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            event = None
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event == "span":
                    received.append(json.loads(line.removeprefix("data: ")))
                    return

    reader = asyncio.ensure_future(read())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    # The tail reports spans stored after it started: keep adding until one arrives. Other services' spans
    # must not come through.
    while not reader.done():
        assert loop.time() < deadline, "no span came through the tail"
        for service in ("other-svc", "live-svc"):
            response = await http.post(
                "/api/v1/traces",
                json={"service_name": service, "spans": [{"name": f"from {service}", "duration_ms": 3}]},
            )
            assert response.status_code == 202
            if service == "live-svc":
                posted.add(response.json()["trace_id"])
        await asyncio.wait([reader], timeout=0.3)
    reader.result()
    span = received[0]
    assert (
        span["trace_id"] in posted and span["service_name"] == "live-svc" and span["name"] == "from live-svc"
    )


async def test_tail_requires_query_scope(running: Any) -> None:
    response = await running.http.get("/api/v1/tail")
    assert response.status_code == 401
    response = await running.http.get(
        "/api/v1/tail", headers={"Authorization": "Bearer key-for-org-b"}, params={"organization_id": "org-a"}
    )
    assert response.status_code == 403


async def _open_sse(
    http: httpx.AsyncClient, key: str, stack: contextlib.AsyncExitStack, **params: Any
) -> httpx.Response:
    """An SSE tail opened (and kept open until ``stack`` closes) for ``key``; its response, headers read."""
    return await stack.enter_async_context(
        http.stream("GET", "/api/v1/tail", headers={"Authorization": f"Bearer {key}"}, params=params)
    )


def _batch(service: str, n: int = 1) -> SpanBatch:
    batch = SpanBatch(origin=f"test:tail:{service}:{time.time_ns()}")
    for _ in range(n):
        add_span(
            batch,
            resource={"service.name": service, "llm_observer.organization.id": "org-a"},
            trace_id=os.urandom(16),
            span_id=os.urandom(8),
        )
    return batch


async def test_tail_is_capped_per_principal_and_in_all(start_running: Any) -> None:
    service = await start_running(tail_max_per_principal=2, tail_max_total=3, tail_poll_interval_seconds=0.1)
    hub = service.service.backend.tails
    async with contextlib.AsyncExitStack() as stack:
        assert [(await _open_sse(service.http, KEY_A, stack)).status_code for _ in range(2)] == [200, 200]
        refused = await _open_sse(service.http, KEY_A, stack)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        await refused.aread()
        body = json.loads(refused.text)
        assert body["error"]["code"] == "resource_exhausted"
        assert "tail_max_per_principal" in body["error"]["message"]
        assert (await _open_sse(service.http, KEY_B, stack)).status_code == 200
        refused = await _open_sse(service.http, KEY_B, stack)
        await refused.aread()
        assert refused.status_code == 429 and "tail_max_total" in refused.json()["error"]["message"]
        async with grpc.aio.insecure_channel(service.grpc_target) as channel:
            stub = pb_grpc.QueryServiceStub(channel)
            call = stub.TailSpans(pb.TailSpansRequest(), metadata=(("authorization", f"Bearer {KEY_B}"),))
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call.read()
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert hub.open_tails == 3
    # Closed by the clients: every place is given back, and the polls stop.
    await wait_for(lambda: hub.open_tails == 0 and hub.polls == 0, what="tails released")
    async with contextlib.AsyncExitStack() as stack:
        assert (await _open_sse(service.http, KEY_A, stack)).status_code == 200


async def test_tail_shares_one_poll_per_filter(start_running: Any) -> None:
    service = await start_running(tail_poll_interval_seconds=0.1)
    hub = service.service.backend.tails
    received: dict[int, list[str]] = {}

    async def read(n: int, response: httpx.Response) -> None:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                received.setdefault(n, []).append(json.loads(line.removeprefix("data: "))["service_name"])
                return

    async with contextlib.AsyncExitStack() as stack:
        same = [await _open_sse(service.http, KEY_A, stack, service="shared-svc") for _ in range(3)]
        other = await _open_sse(service.http, KEY_A_WEB, stack, service="shared-svc")
        assert [r.status_code for r in [*same, other]] == [200] * 4
        # Three tails of one tenant and filter read one poll; another tenant's tail has its own.
        assert (hub.open_tails, hub.polls) == (4, 2)
        readers = [asyncio.ensure_future(read(n, r)) for n, r in enumerate(same)]
        deadline = asyncio.get_running_loop().time() + 20
        while not all(reader.done() for reader in readers):
            assert asyncio.get_running_loop().time() < deadline, "the shared tail delivered nothing"
            await service.exporter.send(_batch("shared-svc"))
            await asyncio.wait(readers, timeout=0.3)
        assert received == {0: ["shared-svc"], 1: ["shared-svc"], 2: ["shared-svc"]}


async def test_tail_drops_a_subscriber_that_falls_behind(start_running: Any) -> None:
    service = await start_running(tail_poll_interval_seconds=0.05, tail_max_queued_spans=2)
    hub = service.service.backend.tails
    tenant = Tenant("org-a", None)
    spans = SpanFilter(service="slow-svc")
    fast, slow = hub.open("fast", tenant, spans), hub.open("slow", tenant, spans)
    try:
        await hub.ready(fast)
        await hub.ready(slow)
        for sent in range(1, 4):
            await service.exporter.send(_batch("slow-svc"))
            got: list[Any] = []
            deadline = asyncio.get_running_loop().time() + 20
            while not got:
                assert asyncio.get_running_loop().time() < deadline, f"span {sent} never came"
                got = await fast.next(0.2)
            assert len(got) == 1
        # The slow one read nothing: two spans waited for it, the third was one too many.
        with pytest.raises(TailEnded, match="tail_max_queued_spans"):
            await slow.next(0)
        assert hub.open_tails == 2  # dropped, not released: its owner still closes it
    finally:
        fast.close()
        slow.close()
    assert (hub.open_tails, hub.polls) == (0, 0)
    registry = service.service.telemetry.registry
    labels = {"component": "query", "event": "tail_dropped_slow"}
    assert registry.get_sample_value("llm_observer_component_events_total", labels) == 1
