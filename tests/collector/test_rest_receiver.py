"""The ``rest`` receiver: the JSON ingest on a listener of its own, through the WAL and the pipeline (the
ingest key's tenant applied by the ``tenant`` processor), with the query API's error shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from llm_observer.collector.testing import local_config, running
from llm_observer.kernel.auth import hash_api_key
from tests.support import wait_for
from tests.support.collector import sink

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
