"""The prompt insight routes over REST: a running query service (real chDB store, and real vectors in
ClickHouse or in a Qdrant local store, written by the real exporters, auth on), its backend served with the
prompt router, called over HTTP (ASGI); and the CLI's tables over the same answers."""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_observer.exporters.clickhouse import ClickHouseExporterConfig
from llm_observer.exporters.qdrant import factory as qdrant_factory
from llm_observer.exporters.vectors import factory as vectors_factory
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.query.app import create_app
from llm_observer.query.config import VectorsConfig
from llm_observer.query.insights import prompt_cli
from llm_observer.query.insights.fingerprint import fingerprint
from tests.query.conftest import KEY_A, KEY_A_WEB, KEY_B, Running
from tests.query.insights.prompt_support import HOUR, MINUTE, PromptCall, batch_of

DATA = Path(__file__).parent / "data" / "labelled_prompts.json"


def inclusive_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def insights_client(running: Running) -> httpx.AsyncClient:
    """The running service's backend behind an app that also serves the prompt insight routes."""
    backend = running.service.backend
    assert backend is not None
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(backend)), base_url="http://insights"
    )


@pytest.fixture
async def insights_http(running: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with insights_client(running) as client:
        yield client


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_prompt_routes_versions_are_tenant_scoped(
    running: Running, insights_http: httpx.AsyncClient
) -> None:
    planted = running.planted
    # The planted calls' prompts are "question <org> <t> <c>": one template per organization.
    org_a = fingerprint("question org-a <NUM> <NUM>")
    response = await insights_http.get("/api/v1/insights/prompt-versions", headers=auth(KEY_A))
    assert response.status_code == 200, response.text
    body = response.json()
    assert [v["id"] for v in body["versions"]] == [f"fp:{org_a}"]
    version = body["versions"][0]
    rows = [
        i
        for i in range(len(planted.batch))
        if planted.batch.resource[i]["llm_observer.organization.id"] == "org-a"
        and "gen_ai.request.model" in planted.batch.attributes[i]
    ]
    durations = [
        (planted.batch.end_time_unix_nano[i] - planted.batch.start_time_unix_nano[i]) / 1e6 for i in rows
    ]
    assert version["calls"] == len(rows) == 36
    assert version["errors"] == sum(planted.batch.status_code[i] == 2 for i in rows) == 3
    assert version["cost_usd"] == pytest.approx(
        sum(planted.batch.attributes[i]["llm_observer.cost.usd"] for i in rows)
    )
    assert version["latency_ms"]["p50"] == pytest.approx(inclusive_quantile(durations, 0.5))
    assert version["latency_ms"]["p95"] == pytest.approx(inclusive_quantile(durations, 0.95))
    assert version["template"] == "question org-a <NUM> <NUM>"
    assert body["total_calls"] == 36 and body["unidentified_calls"] == 0
    assert body["start_time"].endswith("Z")

    # A key of project web sees that project's calls only; org-b its own template only.
    web = (await insights_http.get("/api/v1/insights/prompt-versions", headers=auth(KEY_A_WEB))).json()
    assert [(v["id"], v["calls"]) for v in web["versions"]] == [(f"fp:{org_a}", 24)]
    b = (await insights_http.get("/api/v1/insights/prompt-versions", headers=auth(KEY_B))).json()
    assert [v["id"] for v in b["versions"]] == [f"fp:{fingerprint('question org-b <NUM> <NUM>')}"]
    other = await insights_http.get(
        "/api/v1/insights/prompt-versions", headers=auth(KEY_B), params={"organization_id": "org-a"}
    )
    assert other.status_code == 403
    assert (await insights_http.get("/api/v1/insights/prompt-versions")).status_code == 401

    # The CLI: its commands parse under an ``insights`` parser, and its table shows the version.
    parser = argparse.ArgumentParser()
    prompt_cli.add_prompt_commands(parser.add_subparsers(dest="insights_command", required=True))
    args = parser.parse_args(["versions", "--since", "6h", "--compare", "x@1", "x@2", "--json"])
    assert args.compare == ["x@1", "x@2"] and args.func is prompt_cli.run_versions and args.json
    assert parser.parse_args(["clusters", "--k", "5", "--project", "web"]).k == 5
    table = prompt_cli.format_versions(body, 200)
    assert f"fp:{org_a}" in table and "question org-a <NUM> <NUM>" in table
    assert "36 of 36 calls have a prompt version" in table


async def test_prompt_routes_compare_two_named_versions(
    running: Running, insights_http: httpx.AsyncClient
) -> None:
    now = time.time_ns() - HOUR
    calls = [
        PromptCall(
            now + i * MINUTE,
            prompt_name="triage",
            prompt_version="3",
            duration_ms=d,
            error=i == 0,
            cost_usd=0.01,
        )
        for i, d in enumerate([100.0, 200.0, 300.0, 400.0])
    ] + [
        PromptCall(
            now + (10 + i) * MINUTE, prompt_name="triage", prompt_version="4", duration_ms=d, cost_usd=0.02
        )
        for i, d in enumerate([50.0, 60.0, 70.0, 80.0, 1000.0])
    ]
    batch, _ = batch_of(calls)
    await running.exporter.send(batch)
    params = {"a": "triage@3", "b": "triage@4"}
    response = await insights_http.get(
        "/api/v1/insights/prompt-versions/compare", headers=auth(KEY_A), params=params
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["a"]["calls"], body["b"]["calls"]) == (4, 5)
    assert body["delta"]["calls"] == 1
    assert body["delta"]["error_rate"] == pytest.approx(-0.25)
    assert body["delta"]["latency_p50_ms"] == pytest.approx(70.0 - 250.0)
    assert body["delta"]["cost_per_call_usd"] == pytest.approx(0.01)
    assert body["error_rate_test"] == {"method": "fisher_exact", "p_value": pytest.approx(4 / 9)}
    assert body["latency_test"]["u"] == 4.0 and body["latency_test"]["probability_b_slower"] == pytest.approx(
        0.2
    )

    # org-b has no such versions; an unknown id is 404, a missing one 400.
    missing = await insights_http.get(
        "/api/v1/insights/prompt-versions/compare", headers=auth(KEY_B), params=params
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    bad = await insights_http.get(
        "/api/v1/insights/prompt-versions/compare", headers=auth(KEY_A), params={"a": "triage@3"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_argument"

    # The CLI's table of the same answer.
    out = io.StringIO()
    args = argparse.Namespace(json=False)
    prompt_cli._print(args, out, body, lambda: prompt_cli.format_comparison(body))
    text = out.getvalue()
    assert "triage@3" in text and "triage@4" in text and "-25.0pt (p=0.444)" in text


# Qdrant first: its points come back in an order set by the span ids, which a counter shared by the tests of
# this file hands out, and k-means seeding depends on that order.
@pytest.mark.parametrize("store", ["qdrant", "vectors"])
async def test_prompt_routes_clusters_over_stored_vectors(
    store: str, start_running: Any, tmp_path: Path
) -> None:
    # The default store (ClickHouse tables beside the spans) and Qdrant, each named by query.vectors.exporter.
    running: Running = await start_running(cache_ttl_seconds=0, vectors=VectorsConfig(exporter=store))
    async with insights_client(running) as insights_http:
        await _clusters_over_stored_vectors(store, running, insights_http, tmp_path)


async def _clusters_over_stored_vectors(
    store: str, running: Running, insights_http: httpx.AsyncClient, tmp_path: Path
) -> None:
    intents: dict[str, list[str]] = json.loads(DATA.read_text(encoding="utf-8"))["intents"]
    end = time.time_ns() // MINUTE * MINUTE
    start = end - 20 * HOUR
    middle = start + 10 * HOUR
    calls: list[PromptCall] = []
    expected: dict[str, dict[str, Any]] = {}
    for index, (intent, paraphrases) in enumerate(intents.items()):
        mine = []
        for j, text in enumerate(paraphrases):
            # Password questions only arrive in the second half; the others half and half.
            first = intent != "password_reset" and j < len(paraphrases) // 2
            when = (start if first else middle) + (j + 1) * MINUTE
            call = PromptCall(
                when,
                user=text,
                project="web",
                cost_usd=0.001 * (index + 1),
                duration_ms=100.0 * (index + 1) + j,
                error=intent == "refund_request" and j == 0,
            )
            mine.append(call)
        calls += mine
        expected[intent] = {
            "cost": sum(c.cost_usd for c in mine),
            "p50": inclusive_quantile([c.duration_ms for c in mine], 0.5),
            "errors": sum(c.error for c in mine),
            "texts": set(paraphrases),
        }
    batch, _ = batch_of(calls)
    await running.exporter.send(batch)
    ctx = CreateContext(
        store,
        tmp_path,
        Telemetry(),
        logging.getLogger(f"test.{store}"),
        configs={"exporters": {"clickhouse": ClickHouseExporterConfig()}},
    )
    factory: Any = vectors_factory if store == "vectors" else qdrant_factory
    # The prompts are up to 20 h old: the vectors exporter must not take that for a backlog and sample.
    settings = {"max_lag_seconds": 86_400} if store == "vectors" else {}
    exporter = factory.create(ctx, factory.config_model.model_validate(settings))
    await exporter.start()
    try:
        await exporter.send(batch)
        params = {"start_time": _rfc3339(start), "end_time": _rfc3339(end), "k": 7}
        response = await insights_http.get(
            "/api/v1/insights/prompt-clusters", headers=auth(KEY_A_WEB), params=params
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["project_id"] == "web" and body["k"] == 7 and body["k_chosen_by"] == "fixed"
        assert body["prompts"] == 112 and body["matched_calls"] == 112
        assert len(body["clusters"]) == 7
        for cluster in body["clusters"]:
            # Every cluster is one intent, and carries that intent's calls' figures.
            intent = next(name for name, e in expected.items() if cluster["examples"][0] in e["texts"])
            want = expected[intent]
            assert set(cluster["examples"]) <= want["texts"]
            assert (cluster["prompts"], cluster["calls"]) == (16, 16), intent
            assert cluster["cost_usd"] == pytest.approx(want["cost"])
            assert cluster["latency_ms"]["p50"] == pytest.approx(want["p50"])
            assert cluster["errors"] == want["errors"]
            if intent == "password_reset":
                assert "password" in cluster["label"]
                assert cluster["first_half_share"] == 0.0
                assert cluster["second_half_share"] == pytest.approx(16 / 64)
        # First half: six intents of 8; second half: the same 8 each and 16 password questions.
        p = [0.0] + [1 / 6] * 6
        q = [16 / 64] + [8 / 64] * 6
        m = [(x + y) / 2 for x, y in zip(p, q, strict=True)]
        js = 0.5 * sum(x * math.log2(x / z) for x, z in zip(p, m, strict=True) if x) + 0.5 * sum(
            y * math.log2(y / z) for y, z in zip(q, m, strict=True) if y
        )
        assert body["drift"]["js_divergence"] == pytest.approx(js)
        assert (body["drift"]["first_half_prompts"], body["drift"]["second_half_prompts"]) == (48, 64)

        # k chosen by silhouette when not given; another organization sees none of these prompts.
        chosen = await insights_http.get(
            "/api/v1/insights/prompt-clusters",
            headers=auth(KEY_A_WEB),
            params={key: value for key, value in params.items() if key != "k"},
        )
        assert chosen.status_code == 200 and chosen.json()["k_chosen_by"] == "silhouette"
        assert 6 <= chosen.json()["k"] <= 9
        b = await insights_http.get(
            "/api/v1/insights/prompt-clusters", headers=auth(KEY_B), params={**params, "project_id": "web"}
        )
        assert b.status_code == 200 and b.json()["prompts"] == 0 and b.json()["clusters"] == []
        # A key of the whole organization must name the project when it is not the default one.
        default = await insights_http.get(
            "/api/v1/insights/prompt-clusters", headers=auth(KEY_A), params=params
        )
        assert default.json()["project_id"] == "default" and default.json()["prompts"] == 0
        bad = await insights_http.get(
            "/api/v1/insights/prompt-clusters", headers=auth(KEY_A), params={**params, "k_min": 1}
        )
        assert bad.status_code == 400

        text = prompt_cli.format_clusters(body, 160)
        assert "112 prompts of project web in 7 clusters (k given" in text and "password" in text
    finally:
        await running.service.shutdown()  # releases the vector store before the exporter closes it
        await exporter.shutdown()


def _rfc3339(ns: int) -> str:
    from llm_observer.query.formats import rfc3339

    return rfc3339(ns)
