"""The Jaeger-compatible API (legacy, as Grafana's Jaeger datasource parses it, and api_v3)."""

from __future__ import annotations

import json
from typing import Any

from llm_observer.kernel.batch import STATUS_ERROR

H = {"Authorization": "Bearer key-for-org-a"}
TAG_TYPES = {"string": str, "bool": bool, "int64": int, "float64": float}


def check_legacy_trace(trace: dict[str, Any]) -> None:
    """The fields and types Grafana's Jaeger datasource reads from a trace."""
    assert set(trace) >= {"traceID", "spans", "processes"}
    assert isinstance(trace["processes"], dict) and trace["processes"]
    for process in trace["processes"].values():
        assert isinstance(process["serviceName"], str)
        assert isinstance(process["tags"], list)
    for span in trace["spans"]:
        assert span["traceID"] == trace["traceID"]
        assert len(span["spanID"]) == 16
        assert isinstance(span["operationName"], str)
        assert isinstance(span["startTime"], int) and isinstance(span["duration"], int)
        assert span["processID"] in trace["processes"]
        assert isinstance(span["flags"], int)
        for ref in span["references"]:
            assert ref["refType"] in ("CHILD_OF", "FOLLOWS_FROM")
            assert len(ref["spanID"]) == 16
        for tag in span["tags"]:
            assert isinstance(tag["value"], TAG_TYPES[tag["type"]]), tag
        for log in span["logs"]:
            assert isinstance(log["timestamp"], int) and isinstance(log["fields"], list)


def envelope(body: dict[str, Any]) -> Any:
    assert set(body) == {"data", "total", "limit", "offset", "errors"}
    assert body["errors"] is None
    return body["data"]


async def test_jaeger_services_and_operations(running: Any) -> None:
    http = running.http
    assert envelope((await http.get("/jaeger/api/services", headers=H)).json()) == ["agent-svc", "chatbot"]
    ops = envelope((await http.get("/jaeger/api/services/chatbot/operations", headers=H)).json())
    assert ops == sorted({"chatbot request", "chat gpt-4o", "chat gpt-4o-mini", "chat claude-sonnet-4"})
    kinds = envelope(
        (
            await http.get(
                "/jaeger/api/operations", headers=H, params={"service": "chatbot", "spanKind": "server"}
            )
        ).json()
    )
    assert kinds == [{"name": "chatbot request", "spanKind": "server"}]
    v3 = (await http.get("/jaeger/api/v3/services", headers=H)).json()
    assert v3 == {"services": ["agent-svc", "chatbot"]}
    v3ops = (await http.get("/jaeger/api/v3/operations", headers=H, params={"service": "agent-svc"})).json()
    assert {"name": "agent-svc request", "spanKind": "server"} in v3ops["operations"]


async def test_jaeger_search_by_service_operation_tags_and_duration(running: Any) -> None:
    planted = running.planted
    b = planted.batch
    http = running.http
    end_us = (planted.base_ns + 48 * 3600 * 10**9) // 1000
    start_us = (planted.base_ns - 3600 * 10**9) // 1000
    base = {"start": start_us, "end": end_us, "limit": 100}
    data = envelope(
        (await http.get("/jaeger/api/traces", headers=H, params={**base, "service": "agent-svc"})).json()
    )
    assert len(data) == 6
    for trace in data:
        check_legacy_trace(trace)
        assert len(trace["spans"]) == 3
    # GenAI attributes are typed tags.
    llm = next(s for s in data[0]["spans"] if s["operationName"].startswith("chat "))
    tags = {t["key"]: t for t in llm["tags"]}
    assert tags["gen_ai.usage.input_tokens"]["type"] == "int64"
    assert tags["llm_observer.cost.usd"]["type"] == "float64"
    assert tags["gen_ai.request.model"]["type"] == "string"
    assert tags["span.kind"]["value"] == "client"
    process = data[0]["processes"][llm["processID"]]
    assert process["serviceName"] == "agent-svc"
    assert {"key": "llm_observer.organization.id", "type": "string", "value": "org-a"} in process["tags"]

    # Tags as JSON (Grafana) and logfmt (Jaeger UI); a span must match every condition.
    want = {
        b.trace_id[i].hex()
        for i in range(len(b))
        if b.resource[i]["llm_observer.organization.id"] == "org-a"
        and b.attributes[i].get("gen_ai.request.model") == "gpt-4o-mini"
        and b.status_code[i] == STATUS_ERROR
    }
    assert want
    for tags_param in (
        json.dumps({"gen_ai.request.model": "gpt-4o-mini", "error": "true"}),
        'gen_ai.request.model="gpt-4o-mini" error=true',
    ):
        found = envelope(
            (await http.get("/jaeger/api/traces", headers=H, params={**base, "tags": tags_param})).json()
        )
        assert {t["traceID"] for t in found} == want, tags_param

    chat_4o = envelope(
        (
            await http.get(
                "/jaeger/api/traces",
                headers=H,
                params={
                    **base,
                    "service": "chatbot",
                    "operation": "chat gpt-4o",
                    "minDuration": "400ms",
                    "maxDuration": "1s",
                },
            )
        ).json()
    )
    want = {
        b.trace_id[i].hex()
        for i in range(len(b))
        if b.resource[i]["llm_observer.organization.id"] == "org-a"
        and b.resource[i]["service.name"] == "chatbot"
        and b.name[i] == "chat gpt-4o"
        and 400e6 <= b.end_time_unix_nano[i] - b.start_time_unix_nano[i] <= 1e9
    }
    assert want and {t["traceID"] for t in chat_4o} == want
    limited = envelope((await http.get("/jaeger/api/traces", headers=H, params={**base, "limit": 2})).json())
    assert len(limited) == 2
    empty = (await http.get("/jaeger/api/traces", headers=H, params={**base, "service": "nope"})).json()
    assert empty["data"] == [] and empty["total"] == 0
    bad = await http.get("/jaeger/api/traces", headers=H, params={**base, "minDuration": "fast"})
    assert bad.status_code == 400


async def test_jaeger_trace_by_id_legacy_and_v3(running: Any) -> None:
    planted = running.planted
    b = planted.batch
    tid = next(
        t
        for t, rows in planted.traces.items()
        if b.resource[rows[0]]["llm_observer.organization.id"] == "org-a"
    )
    rows = planted.traces[tid]
    body = (await running.http.get(f"/jaeger/api/traces/{tid}", headers=H)).json()
    data = envelope(body)
    assert len(data) == 1
    check_legacy_trace(data[0])
    spans = {s["spanID"]: s for s in data[0]["spans"]}
    assert set(spans) == {b.span_id[i].hex() for i in rows}
    for i in rows:
        span = spans[b.span_id[i].hex()]
        assert span["startTime"] == b.start_time_unix_nano[i] // 1000
        assert span["duration"] == (b.end_time_unix_nano[i] - b.start_time_unix_nano[i]) // 1000
        if b.parent_span_id[i]:
            assert span["references"] == [
                {"refType": "CHILD_OF", "traceID": tid, "spanID": b.parent_span_id[i].hex()}
            ]
        assert len(span["logs"]) == len(b.events[i])

    missing = await running.http.get(f"/jaeger/api/traces/{'0' * 31}1", headers=H)
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == 404

    v3 = (await running.http.get(f"/jaeger/api/v3/traces/{tid}", headers=H)).json()
    resource_spans = v3["result"]["resourceSpans"]
    otlp_spans = [s for rs in resource_spans for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert {s["spanId"] for s in otlp_spans} == {b.span_id[i].hex() for i in rows}
    for s in otlp_spans:
        assert s["traceId"] == tid and isinstance(s["kind"], int) and s["startTimeUnixNano"].isdigit()
        assert s["status"]["code"] in (0, 1, 2)
    res_attrs = {a["key"]: a["value"] for a in resource_spans[0]["resource"]["attributes"]}
    assert res_attrs["service.name"] == {"stringValue": b.resource[rows[0]]["service.name"]}
    assert (await running.http.get(f"/jaeger/api/v3/traces/{'0' * 31}1", headers=H)).status_code == 404


async def test_jaeger_v3_search(running: Any) -> None:
    planted = running.planted
    params = {
        "query.service_name": "agent-svc",
        "query.start_time_min": "2001-01-01T00:00:00Z",
        "query.start_time_max": "2100-01-01T00:00:00Z",
        "query.search_depth": "100",
    }
    body = (await running.http.get("/jaeger/api/v3/traces", headers=H, params=params)).json()
    spans = [s for rs in body["result"]["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert len({s["traceId"] for s in spans}) == 6 and len(spans) == 18
    params["query.attributes"] = json.dumps({"customer.tier": "gold"})
    body = (await running.http.get("/jaeger/api/v3/traces", headers=H, params=params)).json()
    ids = {
        s["traceId"] for rs in body["result"]["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]
    }
    b = planted.batch
    assert ids == {
        b.trace_id[i].hex()
        for i in range(len(b))
        if b.attributes[i].get("customer.tier") == "gold"
        and b.resource[i]["service.name"] == "agent-svc"
        and b.resource[i]["llm_observer.organization.id"] == "org-a"
    }
    params["query.duration_min"] = "1h"
    body = (await running.http.get("/jaeger/api/v3/traces", headers=H, params=params)).json()
    assert body == {"result": {"resourceSpans": []}}
