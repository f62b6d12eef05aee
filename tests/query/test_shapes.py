"""The REST documents' keys (in order) and value types, as clients parse them: presenting typed rows must not
change them."""

from __future__ import annotations

from typing import Any

H = {"Authorization": "Bearer key-for-org-a"}
NONE = type(None)

TRACE = {
    "trace_id": str,
    "root_span_name": str,
    "service_name": str,
    "organization_id": str,
    "project_id": str,
    "start_time": str,
    "duration_ms": float,
    "span_count": int,
    "error_count": int,
    "status": str,
    "input_tokens": int,
    "output_tokens": int,
    "cost_usd": float,
    "models": list,
    "llm_call_count": int,
}
SPAN = {
    "trace_id": str,
    "span_id": str,
    "parent_span_id": (str, NONE),
    "name": str,
    "kind": str,
    "start_time": str,
    "end_time": str,
    "duration_ms": float,
    "status": str,
    "status_message": str,
    "service_name": str,
    "organization_id": str,
    "project_id": str,
    "operation": (str, NONE),
    "provider": (str, NONE),
    "request_model": (str, NONE),
    "response_model": (str, NONE),
    "input_tokens": int,
    "output_tokens": int,
    "cache_read_tokens": int,
    "cache_write_tokens": int,
    "reasoning_tokens": int,
    "cost_usd": float,
    "input": (str, NONE),
    "output": (str, NONE),
    "attributes": dict,
    "resource": dict,
    "events": list,
    "links": list,
}
STATS = {
    "request_count": int,
    "error_count": int,
    "error_rate": float,
    "latency_ms": dict,
    "input_tokens": int,
    "output_tokens": int,
    "cache_read_tokens": int,
    "cache_write_tokens": int,
    "reasoning_tokens": int,
    "cost_usd": float,
}
COSTS = {
    "request_count": int,
    "input_tokens": int,
    "output_tokens": int,
    "cache_read_tokens": int,
    "cache_write_tokens": int,
    "cost_usd": float,
    "input_cost_usd": float,
    "output_cost_usd": float,
    "cache_read_cost_usd": float,
    "cache_write_cost_usd": float,
}


def check(document: dict[str, Any], shape: dict[str, Any]) -> None:
    assert list(document) == list(shape)
    for key, kind in shape.items():
        assert isinstance(document[key], kind), (key, document[key])
        assert not isinstance(document[key], bool), key


async def test_shapes_trace_list_and_detail(running: Any) -> None:
    body = (await running.http.get("/api/v1/traces", headers=H, params={"limit": 3})).json()
    assert list(body) == ["traces", "next_cursor"] and isinstance(body["next_cursor"], str)
    for trace in body["traces"]:
        check(trace, TRACE)
    detail = (await running.http.get(f"/api/v1/traces/{body['traces'][0]['trace_id']}", headers=H)).json()
    assert list(detail) == ["trace_id", "spans"]
    for span in detail["spans"]:
        check(span, SPAN)
        for event in span["events"]:
            assert list(event) == ["time", "name", "attributes"]
    assert any(span["events"] for span in detail["spans"])


async def test_shapes_metrics_summary_and_cost(running: Any) -> None:
    body = (await running.http.get("/api/v1/metrics/summary", headers=H, params={"step_seconds": 600})).json()
    assert list(body) == [*STATS, "start_time", "end_time", "group_by", "groups", "by_model", "series"]
    check({key: body[key] for key in STATS}, STATS)
    assert list(body["latency_ms"]) == ["p50", "p95", "p99"]
    for group in body["groups"]:
        check(group, {"key": str, **STATS})
        assert body["by_model"][group["key"]] == group
    for point in body["series"]:
        check(point, {"time": str, **STATS})
    cost = (await running.http.get("/api/v1/metrics/cost", headers=H)).json()
    assert list(cost) == [*COSTS, "group_by", "groups", "start_time", "end_time"]
    check({key: cost[key] for key in COSTS}, COSTS)
    for group in cost["groups"]:
        check(group, {"key": str, **COSTS})
