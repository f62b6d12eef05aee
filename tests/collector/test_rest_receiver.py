"""The ``rest`` receiver: the JSON ingest on a listener of its own, through the WAL and the pipeline (the
ingest key's tenant applied by the ``tenant`` processor), with the query API's error shapes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from llm_observer.collector.testing import local_config, running
from llm_observer.kernel.auth import hash_api_key
from tests.support import wait_for
from tests.support.collector import sink, stored

KEY = "llmo-test-rest-key-0123456789"


def _config(tmp_path: Path, auth: bool = False) -> Any:
    overrides: dict[str, Any] = {
        "receivers": {"rest": {"endpoint": "127.0.0.1:0", "max_request_body_size_mib": 0.01}},
        "exporters": {"debug": {}},
        "service": {
            "pipelines": {
                "traces": {"receivers": ["rest"], "processors": ["tenant"], "exporters": ["debug"]}
            },
            "delivery": {"linger_seconds": 0.01},
        },
    }
    if auth:
        overrides["auth"] = {
            "enabled": True,
            "api_keys": [
                {
                    "id": "acme",
                    "key_sha256": hash_api_key(KEY),
                    "organization_id": "acme",
                    "scopes": ["ingest"],
                }
            ],
        }
    return local_config(tmp_path, overrides)


TRACE = {
    "project_id": "support",
    "model": "gpt-4o",
    "provider": "openai",
    "spans": [{"name": "llm", "input": "Hi", "output": "Hello!", "prompt_tokens": 3, "completion_tokens": 2}],
}


async def test_rest_receiver_ingests_through_the_pipeline_with_the_keys_tenant(tmp_path: Path) -> None:
    async with running(_config(tmp_path, auth=True)) as service:
        base = f"http://127.0.0.1:{service.receivers['rest'].http_port}"  # type: ignore[attr-defined]
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=base) as http:
            one = await http.post("/api/v1/traces", json=TRACE, headers=headers)
            batch = await http.post("/api/v1/traces/batch", json={"traces": [TRACE, TRACE]}, headers=headers)
            anonymous = await http.post("/api/v1/traces", json=TRACE)
            foreign = await http.post(
                "/api/v1/traces", json={**TRACE, "organization_id": "other"}, headers=headers
            )
        assert one.status_code == 202 and one.json()["accepted_spans"] == 1
        assert batch.status_code == 202 and batch.json()["accepted_traces"] == 2
        assert len(batch.json()["trace_ids"]) == 2
        assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthenticated"
        assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "permission_denied"
        spans = await wait_for(
            lambda: len(sink(service).spans) == 3 and sink(service).spans, what="3 spans exported"
        )
    for span in spans:
        assert span["resource"]["llm_observer.organization.id"] == "acme"
        assert span["resource"]["llm_observer.project.id"] == "support"
        assert span["attributes"]["gen_ai.request.model"] == "gpt-4o"
        assert json.loads(span["attributes"]["gen_ai.input.messages"])[0]["role"] == "user"


async def test_rest_receiver_refuses_bad_requests_with_clear_errors(tmp_path: Path) -> None:
    async with running(_config(tmp_path)) as service:
        base = f"http://127.0.0.1:{service.receivers['rest'].http_port}"  # type: ignore[attr-defined]
        async with httpx.AsyncClient(base_url=base) as http:
            not_json = await http.post(
                "/api/v1/traces", content=b"{nope", headers={"content-type": "application/json"}
            )
            no_spans = await http.post("/api/v1/traces", json={**TRACE, "spans": []})
            too_big = await http.post("/api/v1/traces", json={**TRACE, "metadata": {"x": "y" * 20_000}})
            wrong_method = await http.get("/api/v1/traces")
            elsewhere = await http.post("/api/v1/other", json=TRACE)
            still_fine = await http.post("/api/v1/traces", json=TRACE)
    assert (not_json.status_code, not_json.json()["error"]["code"]) == (400, "invalid_argument")
    assert no_spans.status_code == 400 and "body.spans" in no_spans.json()["error"]["message"]
    assert (too_big.status_code, too_big.json()["error"]["code"]) == (413, "payload_too_large")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert elsewhere.status_code == 404
    assert still_fine.status_code == 202


# --- fields the spans cannot carry or storage cannot hold: 400 naming the field, nothing kept ----------

SPAN = {"name": "llm", "input": "Hi", "prompt_tokens": 3}
UNSTORABLE: dict[str, tuple[str, str]] = {  # name: (raw JSON body, what the message must name)
    "trace-start-1900": (json.dumps({**TRACE, "start_time": "1900-01-01T00:00:00Z"}), "body.start_time"),
    "span-start-9999": (
        json.dumps({**TRACE, "spans": [{**SPAN, "start_time": "9999-12-31T23:59:59Z"}]}),
        "body.spans.0.start_time",
    ),
    "span-start-year-1-naive": (
        json.dumps({**TRACE, "spans": [{**SPAN, "start_time": "0001-01-01T00:00:00"}]}),
        "body.spans.0.start_time",
    ),
    "start-2262-after-int64": (
        json.dumps({**TRACE, "start_time": "2262-04-12T00:00:00Z"}),
        "body.start_time",
    ),
    "end-past-int64": (
        json.dumps({**TRACE, "start_time": "2262-04-01T00:00:00Z", "spans": [{"duration_ms": 1e12}]}),
        "body.spans.0.duration_ms",
    ),
    "duration-1e300": (json.dumps({**TRACE, "spans": [{"duration_ms": 1e300}]}), "body.spans.0.duration_ms"),
    "duration-infinity-string": (
        json.dumps({**TRACE, "spans": [{"duration_ms": "Infinity"}]}),
        "body.spans.0.duration_ms",
    ),
    "duration-infinity-literal": ('{"spans": [{"duration_ms": Infinity}]}', "body.spans.0.duration_ms"),
    "duration-nan-literal": ('{"spans": [{"duration_ms": NaN}]}', "body.spans.0.duration_ms"),
    "tokens-1e30": (
        json.dumps({**TRACE, "spans": [{**SPAN, "prompt_tokens": 10**30}]}),
        "body.spans.0.prompt_tokens",
    ),
    "metadata-int-1e30": (json.dumps({**TRACE, "metadata": {"n": 10**30}}), "body.metadata"),
    "span-metadata-int-minus-1e30": (
        json.dumps({**TRACE, "spans": [{**SPAN, "metadata": {"n": -(10**30)}}]}),
        "body.spans.0.metadata",
    ),
    "cost-infinity": ('{"spans": [{"cost_usd": Infinity}]}', "body.spans.0.cost_usd"),
    "batch-second-trace": (
        json.dumps({"traces": [TRACE, {**TRACE, "start_time": "1900-01-01T00:00:00Z"}]}),
        "body.traces.1.start_time",
    ),
    "bare-list-second-trace": (
        json.dumps([TRACE, {**TRACE, "spans": [{**SPAN, "start_time": "2300-01-01T00:00:00Z"}]}]),
        "body.1.spans.0.start_time",
    ),
    "input-nested-1000-deep": ('{"spans": [{"input": ' + "[" * 1000 + "]" * 1000 + "}]}", "deeper than"),
    "metadata-nested-200-deep": (
        '{"spans": [{"metadata": {"k": ' + "[" * 200 + "]" * 200 + "}}]}",
        "deeper than",
    ),
    "nested-5000-deep": ("[" * 5_000 + "]" * 5_000, "deeper than"),
}


def _ingest_path(body: str) -> str:
    return "/api/v1/traces/batch" if body.startswith(("[", '{"traces"')) else "/api/v1/traces"


async def test_rest_receiver_refuses_fields_spans_cannot_carry_naming_them(tmp_path: Path) -> None:
    config = _config(tmp_path)
    async with running(config) as service:
        base = f"http://127.0.0.1:{service.receivers['rest'].http_port}"  # type: ignore[attr-defined]
        answers = {}
        async with httpx.AsyncClient(base_url=base) as http:
            for name, (body, _) in UNSTORABLE.items():
                answers[name] = await http.post(
                    _ingest_path(body), content=body, headers={"content-type": "application/json"}
                )
            good = await http.post("/api/v1/traces", json=TRACE)
        assert good.status_code == 202
        spans = await wait_for(lambda: sink(service).spans, what="the good span exported")
        assert len(spans) == 1, "a refused request left spans behind"
    for name, (_, field) in UNSTORABLE.items():
        answer = answers[name]
        assert answer.status_code == 400, (name, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "invalid_argument"
        assert field in error["message"], (name, error["message"])


def _clickhouse_config(tmp_path: Path, ttl_days: int) -> Any:
    return local_config(
        tmp_path,
        {
            "receivers": {"rest": {"endpoint": "127.0.0.1:0"}},
            "exporters": {"clickhouse": {"ttl_days": ttl_days}},
            "service": {
                "pipelines": {"traces": {"receivers": ["rest"], "exporters": ["clickhouse"]}},
                "delivery": {"linger_seconds": 0.01},
            },
        },
    )


async def test_rest_receiver_refuses_what_the_store_would_drop(tmp_path: Path) -> None:
    """With the ClickHouse store behind it: a start older than its retention, or too late for its
    ``DateTime`` keys, is a 400 naming the field; nothing of that request is stored, the rest is."""
    async with running(_clickhouse_config(tmp_path, ttl_days=30)) as service:
        base = f"http://127.0.0.1:{service.receivers['rest'].http_port}"  # type: ignore[attr-defined]
        async with httpx.AsyncClient(base_url=base) as http:
            old = datetime.now(UTC) - timedelta(days=31)
            expired = await http.post("/api/v1/traces", json={**TRACE, "start_time": old.isoformat()})
            late = await http.post(
                "/api/v1/traces/batch",
                json=[TRACE, {**TRACE, "spans": [{**SPAN, "start_time": "2106-01-20T00:00:00Z"}]}],
            )
            recent = datetime.now(UTC) - timedelta(days=29)
            good = await http.post("/api/v1/traces", json={**TRACE, "start_time": recent.isoformat()})
        assert good.status_code == 202, good.text
        assert (expired.status_code, late.status_code) == (400, 400)
        assert "body.start_time" in expired.json()["error"]["message"]
        assert "retention of 30 days" in expired.json()["error"]["message"]
        assert "body.1.spans.0.start_time" in late.json()["error"]["message"]
        rows = await wait_for(
            lambda: stored(service, "SELECT TraceId FROM otel.otel_traces"), what="the good span stored"
        )
        assert [row["TraceId"] for row in rows] == [good.json()["trace_id"]]
        registry = service.telemetry.registry
        refused = registry.get_sample_value(
            "llm_observer_spans_refused_total", {"component": "rest", "reason": "expired"}
        )
        assert refused == 1


# --- the body limit, on every port that serves the JSON ingest ------------------------------------------


async def test_rest_receiver_body_limit_holds_on_every_port(tmp_path: Path) -> None:
    limit_mib = 0.5
    config = local_config(
        tmp_path,
        {
            "receivers": {"rest": {"endpoint": "127.0.0.1:0", "max_request_body_size_mib": limit_mib}},
            "exporters": {"debug": {}},
            "service": {"pipelines": {"traces": {"receivers": ["rest"], "exporters": ["debug"]}}},
        },
    )
    unit = json.dumps(TRACE).encode()
    big = b'{"traces":[' + b",".join([unit] * (int(limit_mib * (1 << 20)) // len(unit) + 10)) + b"]}"

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    async with running(config, query=True) as service:
        ports = {
            "rest": service.receivers["rest"].http_port,  # type: ignore[attr-defined]
            "query": service.query_service.http_port,
        }
        async with httpx.AsyncClient(timeout=30) as http:
            for where, port in ports.items():
                url = f"http://127.0.0.1:{port}/api/v1/traces/batch"
                headers = {"content-type": "application/json"}
                declared = await http.post(url, content=big, headers=headers)
                streamed = await http.post(url, content=chunks(), headers=headers)
                for answer in (declared, streamed):
                    assert answer.status_code == 413, (where, answer.text)
                    assert answer.json()["error"]["code"] == "payload_too_large"
                good = await http.post(url, json={"traces": [TRACE]})
                assert good.status_code == 202, (where, good.text)
        await wait_for(lambda: len(sink(service).spans) == 2, what="one good span per port")
