"""The REST API against a running query service over real chDB data (planted through the real exporter)."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import httpx
import pytest

from llm_observer.kernel.batch import STATUS_ERROR
from llm_observer.kernel.errors import Backpressure

KEY_A = "key-for-org-a"
KEY_A_WEB = "key-for-org-a-web-only"
KEY_B = "key-for-org-b"


def _hdr(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def expected_traces(planted: Any, org: str, project: str | None = None) -> dict[str, dict[str, Any]]:
    """Trace summaries computed from the planted spans, independently of the service."""
    b = planted.batch
    out: dict[str, dict[str, Any]] = {}
    for tid, rows in planted.traces.items():
        res = b.resource[rows[0]]
        if res["llm_observer.organization.id"] != org:
            continue
        if project and res["llm_observer.project.id"] != project:
            continue
        start = min(b.start_time_unix_nano[i] for i in rows)
        end = max(b.end_time_unix_nano[i] for i in rows)
        out[tid] = {
            "start": start,
            "duration_ms": (end - start) / 1e6,
            "span_count": len(rows),
            "error_count": sum(1 for i in rows if b.status_code[i] == STATUS_ERROR),
            "input_tokens": sum(b.attributes[i].get("gen_ai.usage.input_tokens", 0) for i in rows),
            "output_tokens": sum(b.attributes[i].get("gen_ai.usage.output_tokens", 0) for i in rows),
            "cost_usd": sum(b.attributes[i].get("llm_observer.cost.usd", 0.0) for i in rows),
            "models": sorted(
                {
                    b.attributes[i]["gen_ai.request.model"]
                    for i in rows
                    if "gen_ai.request.model" in b.attributes[i]
                }
            ),
            "root": next(b.name[i] for i in rows if not b.parent_span_id[i]),
            "rows": rows,
        }
    return out


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, ClickHouse's quantileExactInclusive)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def model_rows(planted: Any, org: str) -> list[int]:
    b = planted.batch
    return [
        i
        for i in range(len(b))
        if b.resource[i]["llm_observer.organization.id"] == org and "gen_ai.request.model" in b.attributes[i]
    ]


async def list_all(http: httpx.AsyncClient, key: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await http.get("/api/v1/traces", headers=_hdr(key), params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        out.extend(body["traces"])
        cursor = body["next_cursor"]
        if not cursor:
            return out
    raise AssertionError("pagination did not end")


async def test_rest_health_answers(running: Any) -> None:
    response = await running.http.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_rest_list_traces_matches_planted_summaries(running: Any) -> None:
    expected = expected_traces(running.planted, "org-a")
    traces = await list_all(running.http, KEY_A, limit=1000)
    assert [t["trace_id"] for t in traces] == sorted(expected, key=lambda t: -expected[t]["start"])
    for trace in traces:
        want = expected[trace["trace_id"]]
        assert trace["span_count"] == want["span_count"]
        assert trace["error_count"] == want["error_count"]
        assert trace["input_tokens"] == want["input_tokens"]
        assert trace["output_tokens"] == want["output_tokens"]
        assert trace["cost_usd"] == pytest.approx(want["cost_usd"])
        assert trace["duration_ms"] == pytest.approx(want["duration_ms"])
        assert trace["models"] == want["models"]
        assert trace["root_span_name"] == want["root"]
        assert trace["start_time"].endswith("Z")


async def test_rest_list_traces_paginates_without_gaps_or_repeats(running: Any) -> None:
    expected = expected_traces(running.planted, "org-a")
    pages = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        body = (await running.http.get("/api/v1/traces", headers=_hdr(KEY_A), params=params)).json()
        pages.append([t["trace_id"] for t in body["traces"]])
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert [len(p) for p in pages] == [5, 5, 5, 3]
    flat = [tid for page in pages for tid in page]
    assert len(set(flat)) == len(flat) == len(expected)


async def test_rest_list_traces_filters(running: Any) -> None:
    planted = running.planted
    b = planted.batch
    expected = expected_traces(planted, "org-a")

    def having(pred: Any) -> set[str]:
        return {tid for tid, t in expected.items() if any(pred(i) for i in t["rows"])}

    cases: list[tuple[dict[str, Any], set[str]]] = [
        (
            {"model": "claude-sonnet-4"},
            having(lambda i: b.attributes[i].get("gen_ai.request.model") == "claude-sonnet-4"),
        ),
        (
            {"provider": "anthropic"},
            having(lambda i: b.attributes[i].get("gen_ai.provider.name") == "anthropic"),
        ),
        ({"service": "agent-svc"}, having(lambda i: b.resource[i]["service.name"] == "agent-svc")),
        ({"status": "error"}, {tid for tid, t in expected.items() if t["error_count"]}),
        ({"status": "ok"}, {tid for tid, t in expected.items() if not t["error_count"]}),
        ({"min_duration_ms": 900}, {tid for tid, t in expected.items() if t["duration_ms"] >= 900}),
        ({"max_duration_ms": 700}, {tid for tid, t in expected.items() if t["duration_ms"] <= 700}),
        ({"min_cost": 0.45}, {tid for tid, t in expected.items() if t["cost_usd"] >= 0.45}),
        (
            {"attribute": "customer.tier=gold"},
            having(lambda i: b.attributes[i].get("customer.tier") == "gold"),
        ),
        (
            {"q": "QUESTION org-a 7 1"},
            having(lambda i: "question org-a 7 1" in b.attributes[i].get("gen_ai.input.messages", "")),
        ),
        ({"user_id": "user-1"}, having(lambda i: b.attributes[i].get("user.id") == "user-1")),
        ({"team_id": "team-api"}, having(lambda i: b.resource[i]["llm_observer.team.id"] == "team-api")),
        ({"project_id": "web"}, set(expected_traces(planted, "org-a", "web"))),
        (
            {"operation": "chat", "model": "gpt-4o", "status": "error"},
            {tid for tid, t in expected.items() if t["error_count"]}
            & having(lambda i: b.attributes[i].get("gen_ai.request.model") == "gpt-4o"),
        ),
    ]
    for params, want in cases:
        assert want, f"bad case {params}"
        got = {t["trace_id"] for t in await list_all(running.http, KEY_A, **params)}
        assert got == want, params


async def test_rest_list_traces_empty_results(running: Any) -> None:
    response = await running.http.get(
        "/api/v1/traces",
        headers=_hdr(KEY_A),
        params={"start_time": "2001-01-01T00:00:00Z", "end_time": "2001-01-02T00:00:00Z"},
    )
    assert response.status_code == 200
    assert response.json() == {"traces": [], "next_cursor": None}
    response = await running.http.get(
        "/api/v1/traces", headers=_hdr(KEY_A), params={"model": "no-such-model"}
    )
    assert response.json()["traces"] == []


async def test_rest_bad_parameters_are_400(running: Any) -> None:
    for params in (
        {"start_time": "yesterday"},
        {"start_time": "2026-01-01T00:00:00"},  # no zone
        {"cursor": "not-a-cursor"},
        {"status": "weird"},
        {"limit": 0},
        {"attribute": "no-equals-sign"},
    ):
        response = await running.http.get("/api/v1/traces", headers=_hdr(KEY_A), params=params)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["error"]["code"] == "invalid_argument"
    response = await running.http.get(
        "/api/v1/metrics/summary", headers=_hdr(KEY_A), params={"group_by": "color"}
    )
    assert response.status_code == 400


async def test_rest_get_trace_returns_every_span(running: Any) -> None:
    planted = running.planted
    b = planted.batch
    tid, want = next(iter(expected_traces(planted, "org-a", "api").items()))
    response = await running.http.get(f"/api/v1/traces/{tid.upper()}", headers=_hdr(KEY_A))
    assert response.status_code == 200
    body = response.json()
    assert body["trace_id"] == tid
    spans = {s["span_id"]: s for s in body["spans"]}
    assert len(spans) == want["span_count"]
    for i in want["rows"]:
        span = spans[b.span_id[i].hex()]
        attrs = b.attributes[i]
        assert span["name"] == b.name[i]
        assert span["parent_span_id"] == (b.parent_span_id[i].hex() or None)
        assert span["duration_ms"] == pytest.approx(
            (b.end_time_unix_nano[i] - b.start_time_unix_nano[i]) / 1e6
        )
        assert span["status"] == ("Error" if b.status_code[i] == STATUS_ERROR else "Ok")
        assert span["service_name"] == b.resource[i]["service.name"]
        assert span["organization_id"] == "org-a" and span["project_id"] == "api"
        assert span["request_model"] == attrs.get("gen_ai.request.model")
        assert span["input_tokens"] == attrs.get("gen_ai.usage.input_tokens", 0)
        assert span["cost_usd"] == pytest.approx(attrs.get("llm_observer.cost.usd", 0.0))
        if "gen_ai.input.messages" in attrs:
            assert (
                span["input"]
                == "user: " + json.loads(attrs["gen_ai.input.messages"])[0]["parts"][0]["content"]
            )
            assert span["output"].startswith("assistant: answer")
        assert len(span["events"]) == len(b.events[i])
        for key in (
            "kind",
            "start_time",
            "end_time",
            "status_message",
            "operation",
            "provider",
            "response_model",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "attributes",
        ):
            assert key in span


async def test_rest_get_trace_missing_is_404(running: Any) -> None:
    response = await running.http.get(f"/api/v1/traces/{'ab' * 16}", headers=_hdr(KEY_A))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    response = await running.http.get("/api/v1/traces/not-hex", headers=_hdr(KEY_A))
    assert response.status_code == 400


async def test_rest_metrics_summary_golden_numbers(running: Any) -> None:
    b = running.planted.batch
    rows = model_rows(running.planted, "org-a")
    response = await running.http.get(
        "/api/v1/metrics/summary", headers=_hdr(KEY_A), params={"step_seconds": 600}
    )
    assert response.status_code == 200
    body = response.json()

    def check(doc: dict[str, Any], rows: list[int]) -> None:
        durations = [(b.end_time_unix_nano[i] - b.start_time_unix_nano[i]) / 1e6 for i in rows]
        errors = sum(1 for i in rows if b.status_code[i] == STATUS_ERROR)
        assert doc["request_count"] == len(rows)
        assert doc["error_count"] == errors
        assert doc["error_rate"] == pytest.approx(errors / len(rows))
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            assert doc["latency_ms"][name] == pytest.approx(quantile(durations, q)), name
        assert doc["input_tokens"] == sum(b.attributes[i]["gen_ai.usage.input_tokens"] for i in rows)
        assert doc["output_tokens"] == sum(b.attributes[i]["gen_ai.usage.output_tokens"] for i in rows)
        assert doc["cost_usd"] == pytest.approx(sum(b.attributes[i]["llm_observer.cost.usd"] for i in rows))

    check(body, rows)
    models = {b.attributes[i]["gen_ai.request.model"] for i in rows}
    assert set(body["by_model"]) == models
    for model in models:
        check(body["by_model"][model], [i for i in rows if b.attributes[i]["gen_ai.request.model"] == model])
    # The series covers every request once.
    assert sum(point["request_count"] for point in body["series"]) == len(rows)
    assert all(point["time"].endswith("Z") for point in body["series"])

    for group_by, key_of in (
        ("provider", lambda i: b.attributes[i]["gen_ai.provider.name"]),
        ("project", lambda i: b.resource[i]["llm_observer.project.id"]),
        ("team", lambda i: b.resource[i]["llm_observer.team.id"]),
        ("user", lambda i: b.attributes[i]["user.id"]),
    ):
        body = (
            await running.http.get(
                "/api/v1/metrics/summary", headers=_hdr(KEY_A), params={"group_by": group_by}
            )
        ).json()
        groups = body[f"by_{group_by}"]
        assert set(groups) == {key_of(i) for i in rows}, group_by
        for key, doc in groups.items():
            check(doc, [i for i in rows if key_of(i) == key])


async def test_rest_metrics_summary_group_series_splits_the_series_by_group(running: Any) -> None:
    b = running.planted.batch
    rows = model_rows(running.planted, "org-a")
    step = 600
    params = {"step_seconds": step, "group_by": "model", "group_series": "true"}
    body = (await running.http.get("/api/v1/metrics/summary", headers=_hdr(KEY_A), params=params)).json()
    total = {point["time"]: point for point in body["series"]}
    for group in body["groups"]:
        mine = [i for i in rows if b.attributes[i]["gen_ai.request.model"] == group["key"]]
        # Each group's series holds exactly its own calls, bucketed like the total series.
        assert sum(point["request_count"] for point in group["series"]) == len(mine) == group["request_count"]
        assert sum(point["cost_usd"] for point in group["series"]) == pytest.approx(group["cost_usd"])
        assert {point["time"] for point in group["series"]} <= set(total)
        for point in group["series"]:
            start = int(datetime.fromisoformat(point["time"].replace("Z", "+00:00")).timestamp()) * 10**9
            in_step = [i for i in mine if start <= b.start_time_unix_nano[i] < start + step * 10**9]
            assert point["request_count"] == len(in_step)
    # Per time, the groups add up to the total.
    for time, point in total.items():
        parts = [p for g in body["groups"] for p in g["series"] if p["time"] == time]
        assert sum(p["request_count"] for p in parts) == point["request_count"]
    # Without it (or without a step) the groups carry no series.
    plain = (
        await running.http.get("/api/v1/metrics/summary", headers=_hdr(KEY_A), params={"step_seconds": step})
    ).json()
    assert all("series" not in group for group in plain["groups"])
    bad = await running.http.get(
        "/api/v1/metrics/summary", headers=_hdr(KEY_A), params={"group_series": "true"}
    )
    assert bad.status_code == 400


async def test_rest_metrics_summary_empty_range(running: Any) -> None:
    body = (
        await running.http.get(
            "/api/v1/metrics/summary",
            headers=_hdr(KEY_A),
            params={"start_time": "2001-01-01T00:00:00Z", "end_time": "2001-01-02T00:00:00Z"},
        )
    ).json()
    assert body["request_count"] == 0
    assert body["error_rate"] == 0.0
    assert body["latency_ms"] == {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    assert body["groups"] == []


async def test_rest_cost_breakdown_golden_numbers(running: Any) -> None:
    b = running.planted.batch
    rows = model_rows(running.planted, "org-a")
    body = (
        await running.http.get("/api/v1/metrics/cost", headers=_hdr(KEY_A), params={"group_by": "provider"})
    ).json()
    assert body["cost_usd"] == pytest.approx(sum(b.attributes[i]["llm_observer.cost.usd"] for i in rows))
    assert body["input_cost_usd"] == pytest.approx(
        sum(b.attributes[i]["llm_observer.cost.input_usd"] for i in rows)
    )
    assert body["output_cost_usd"] == pytest.approx(
        sum(b.attributes[i]["llm_observer.cost.output_usd"] for i in rows)
    )
    by_key = {g["key"]: g for g in body["groups"]}
    for provider in ("openai", "anthropic"):
        mine = [i for i in rows if b.attributes[i]["gen_ai.provider.name"] == provider]
        assert by_key[provider]["request_count"] == len(mine)
        assert by_key[provider]["cost_usd"] == pytest.approx(
            sum(b.attributes[i]["llm_observer.cost.usd"] for i in mine)
        )
    costs = [g["cost_usd"] for g in body["groups"]]
    assert costs == sorted(costs, reverse=True)


async def test_rest_json_ingest_enters_pipeline_and_is_queryable(running: Any) -> None:
    payload = {
        "organization_id": "org-a",
        "project_id": "web",
        "trace_type": "chat",
        "model": "gpt-4o",
        "provider": "openai",
        "user_id": "u-42",
        "metadata": {"feature": "summarise"},
        "spans": [
            {"span_id": "root", "name": "handle request", "duration_ms": 900, "status": "success"},
            {
                "span_id": "llm",
                "name": "chat gpt-4o",
                "parent_span_id": "root",
                "model": "gpt-4o",
                "input": "What is OTLP?",
                "output": "A protocol.",
                "prompt_tokens": 12,
                "completion_tokens": 5,
                "duration_ms": 700,
                "status": "success",
            },
            {
                "span_id": "retry",
                "name": "chat gpt-4o",
                "parent_span_id": "root",
                "model": "gpt-4o",
                "prompt_tokens": 12,
                "completion_tokens": 0,
                "duration_ms": 50,
                "status": "error",
                "error": "timeout",
            },
        ],
    }
    response = await running.http.post("/api/v1/traces", headers=_hdr(KEY_A), json=payload)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted_spans"] == 3
    trace_id = body["trace_id"]
    request, meta = running.ingested[-1]
    assert meta is not None and (meta.organization_id, meta.project_id) == ("org-a", "web")
    assert len(request.resource_spans[0].scope_spans[0].spans) == 3
    detail = (await running.http.get(f"/api/v1/traces/{trace_id}", headers=_hdr(KEY_A))).json()
    spans = {s["name"] + str(s["status"]): s for s in detail["spans"]}
    llm = spans["chat gpt-4oOk"]
    assert llm["input"] == "user: What is OTLP?"
    assert llm["output"] == "assistant: A protocol."
    assert (llm["input_tokens"], llm["output_tokens"]) == (12, 5)
    assert llm["provider"] == "openai" and llm["operation"] == "chat"
    assert llm["attributes"]["user.id"] == "u-42"
    assert llm["attributes"]["llm_observer.metadata.feature"] == "summarise"
    root = spans["handle requestOk"]
    assert llm["parent_span_id"] == root["span_id"]
    assert spans["chat gpt-4oError"]["status_message"] == "timeout"
    assert llm["project_id"] == "web"

    batch = {
        "traces": [
            {"project_id": "web", "spans": [{"name": "one", "duration_ms": 1}]},
            {"project_id": "api", "spans": [{"name": "two", "duration_ms": 2}]},
        ]
    }
    response = await running.http.post("/api/v1/traces/batch", headers=_hdr(KEY_A), json=batch)
    assert response.status_code == 202
    assert response.json()["accepted_spans"] == 2 and len(response.json()["trace_ids"]) == 2


async def test_rest_json_ingest_cannot_cross_tenants(running: Any) -> None:
    trace = {"organization_id": "org-b", "spans": [{"name": "x", "duration_ms": 1}]}
    response = await running.http.post("/api/v1/traces", headers=_hdr(KEY_A), json=trace)
    assert response.status_code == 403
    response = await running.http.post(
        "/api/v1/traces", headers=_hdr(KEY_A_WEB), json={"project_id": "api", "spans": [{"name": "x"}]}
    )
    assert response.status_code == 403
    # Without an organization the key's organization is stamped.
    response = await running.http.post("/api/v1/traces", headers=_hdr(KEY_B), json={"spans": [{"name": "x"}]})
    assert response.status_code == 202
    assert running.ingested[-1][1].organization_id == "org-b"
    for bad in (
        {"spans": []},
        {"trace_id": "0" * 32, "spans": [{"name": "x"}]},
        {"trace_id": "xyz", "spans": [{"name": "x"}]},
        {"spans": [{"name": "x", "prompt_tokens": -1}]},
    ):
        response = await running.http.post("/api/v1/traces", headers=_hdr(KEY_A), json=bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "invalid_argument"
    response = await running.http.post("/api/v1/traces", headers=_hdr("key-for-org-a"), content=b"{nope")
    assert response.status_code == 400


async def test_rest_ingest_standalone_is_503_and_backpressure_is_429(
    running: Any, tmp_path: Any, new_service: Any
) -> None:
    async def refuse(signal: int, payload: bytes, meta: Any = None) -> None:
        raise Backpressure("memory", retry_after=3.0)

    for ingest, status in ((None, 503), (refuse, 429)):
        service = new_service(tmp_path, auth=running.service.auth_config, ingest=ingest)
        await service.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http_port}") as http:
                response = await http.post(
                    "/api/v1/traces", headers=_hdr(KEY_A), json={"spans": [{"name": "x"}]}
                )
                assert response.status_code == status, response.text
                assert "error" in response.json()
                if status == 429:
                    assert response.headers["Retry-After"] == "3"
                else:
                    assert "standalone" in response.json()["error"]["message"]
                # Reads still work on the second service (it shares the store).
                assert len((await http.get("/api/v1/traces", headers=_hdr(KEY_A))).json()["traces"]) == 18
        finally:
            await service.shutdown()
            await service.shutdown()


async def test_rest_openapi_and_docs_are_served(running: Any) -> None:
    spec = (await running.http.get("/openapi.json")).json()
    for path in (
        "/api/v1/traces",
        "/api/v1/traces/{trace_id}",
        "/api/v1/metrics/summary",
        "/api/v1/search/semantic",
        "/api/v1/auth/login",
        "/api/v1/traces/batch",
        "/jaeger/api/traces",
    ):
        assert path in spec["paths"], path
    docs = await running.http.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    # Readable offline: every operation is in the page itself, and nothing is loaded from elsewhere.
    assert "/api/v1/search/semantic" in docs.text and "one minute from now" in docs.text
    assert "<script" not in docs.text.lower()
    assert "http://" not in docs.text and "https://" not in docs.text
    assert (await running.http.get("/redoc")).status_code == 404
