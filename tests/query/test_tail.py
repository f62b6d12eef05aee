"""The browser live tail: Server-Sent Events of new spans matching a filter."""

from __future__ import annotations

import asyncio
import json
from typing import Any


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
