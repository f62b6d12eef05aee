"""The cost insight routes (``/api/v1/insights/forecast``, ``/api/v1/insights/advice``) and their CLI, served
by the real query app (auth on) over a chDB store written through the real exporter: tenant scoping, the
JSON shapes, errors, and the tables."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from llm_observer.kernel.servers import AsgiServer, serve_asgi
from llm_observer.query.app import create_app
from llm_observer.query.formats import rfc3339
from llm_observer.query.insights.cost_cli import add_insight_commands, insights_parser
from llm_observer.query.insights.forecast import DAY_NS
from llm_observer.query.service import QueryService
from tests.query.conftest import KEY_A, KEY_A_WEB, KEY_B, auth_config, local_config, make_service
from tests.query.insights.cost_support import HOUR, CostPlant, LlmCall

MONTH_START = (
    int(
        dt.datetime.combine(
            (dt.datetime.now(dt.UTC).date().replace(day=1) - dt.timedelta(days=1)).replace(day=1),
            dt.time(),
            tzinfo=dt.UTC,
        ).timestamp()
    )
    * 10**9
)
AS_OF = MONTH_START + 10 * DAY_NS + 12 * HOUR
T0 = (time.time_ns() - 2 * DAY_NS) // HOUR * HOUR


@dataclass
class Served:
    plant: CostPlant
    service: QueryService
    server: AsgiServer
    http: httpx.AsyncClient

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


def workload() -> list[LlmCall]:
    calls = []
    # Steady spend from 14 days before the month: web $10 a day, api $5 a day (org-a), org-b $1 a day.
    for d in range(-14, 11):
        for h in (2, 8, 14, 20):
            at = MONTH_START + d * DAY_NS + h * HOUR
            calls.append(LlmCall(at, project="web", cost_usd=2.5))
            calls.append(LlmCall(at, project="api", cost_usd=1.25, model="gpt-4o-mini"))
            calls.append(LlmCall(at, org="org-b", cost_usd=0.25))
    # Repeated prompts two days ago: three in org-a/web, two in org-b.
    for i in range(3):
        calls.append(LlmCall(T0 + i * HOUR, project="web", user="Where is my order?", input_tokens=50))
    for i in range(2):
        calls.append(LlmCall(T0 + i * HOUR, org="org-b", user="Where is my order?", input_tokens=50))
    return calls


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    plant = CostPlant(tmp_path)
    await plant.start()
    await plant.write(workload())
    service = make_service(tmp_path, local_config(cache_ttl_seconds=0), auth_config())
    await service.start()
    assert service.backend is not None
    app = create_app(service.backend)
    server = await serve_asgi(app, "127.0.0.1:0", "test.http")
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=60)
    try:
        yield Served(plant, service, server, http)
    finally:
        await http.aclose()
        await server.stop()
        await service.shutdown()
        await plant.close()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_cost_routes_forecast_per_project_with_budget(served: Served) -> None:
    params = {"as_of": rfc3339(AS_OF), "group_by": "project", "budget_usd": "100"}
    answer = await served.http.get("/api/v1/insights/forecast", params=params, headers=auth(KEY_A))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["period"] == "month" and body["period_start"] == rfc3339(MONTH_START)
    days = (
        dt.datetime.fromisoformat(body["period_end"][:10])
        - dt.datetime.fromisoformat(body["period_start"][:10])
    ).days
    by_project = {f["group"]["project"]: f for f in body["forecasts"]}
    assert set(by_project) == {"web", "api"}
    assert {f["group"]["organization"] for f in body["forecasts"]} == {"org-a"}
    web = by_project["web"]
    assert web["spent_usd"] == pytest.approx(105.0)  # ten days and a half at $10
    assert web["forecast_usd"] == pytest.approx(10.0 * days)
    assert web["low_usd"] <= web["forecast_usd"] <= web["high_usd"]
    assert (
        web["budget_exhausted_on"]
        == (dt.datetime.fromtimestamp(MONTH_START / 1e9, tz=dt.UTC) + dt.timedelta(days=9)).date().isoformat()
    )
    assert by_project["api"]["forecast_usd"] == pytest.approx(5.0 * days)
    assert (
        by_project["api"]["budget_exhausted_on"]
        == (dt.datetime.fromtimestamp(MONTH_START / 1e9, tz=dt.UTC) + dt.timedelta(days=19))
        .date()
        .isoformat()
    )
    assert len(web["expected_cumulative_usd"]) == days and len(web["daily_usd"]) == 11

    # A key of org-a's web project sees that project only; org-b's key its own spend only.
    web_only = await served.http.get("/api/v1/insights/forecast", params=params, headers=auth(KEY_A_WEB))
    assert [f["group"]["project"] for f in web_only.json()["forecasts"]] == ["web"]
    other = await served.http.get(
        "/api/v1/insights/forecast", params={"as_of": rfc3339(AS_OF)}, headers=auth(KEY_B)
    )
    (org_b,) = other.json()["forecasts"]
    assert org_b["group"] == {"organization": "org-b"} and org_b["forecast_usd"] == pytest.approx(1.0 * days)


async def test_cost_routes_refuse_bad_requests(served: Served) -> None:
    unauthenticated = await served.http.get("/api/v1/insights/forecast")
    assert unauthenticated.status_code == 401
    for path, params in (
        ("/api/v1/insights/forecast", {"period": "year"}),
        ("/api/v1/insights/forecast", {"group_by": "user"}),
        ("/api/v1/insights/forecast", {"budget_usd": "-1"}),
        ("/api/v1/insights/advice", {"kind": "magic"}),
        ("/api/v1/insights/advice", {"near_threshold": "2"}),
    ):
        answer = await served.http.get(path, params=params, headers=auth(KEY_A))
        assert answer.status_code == 400, (path, params, answer.text)
        assert answer.json()["error"]["code"]
    other_org = await served.http.get(
        "/api/v1/insights/advice", params={"organization_id": "org-b"}, headers=auth(KEY_A)
    )
    assert other_org.status_code == 403


async def test_cost_routes_advice_is_tenant_scoped(served: Served) -> None:
    params = {"start_time": rfc3339(T0 - HOUR), "end_time": rfc3339(T0 + 6 * HOUR), "near": "false"}
    answer = await served.http.get("/api/v1/insights/advice", params=params, headers=auth(KEY_A))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    (item,) = [i for i in body["items"] if i["kind"] == "response_cache_exact"]
    assert (item["organization_id"], item["project_id"], item["model"], item["calls"]) == (
        "org-a",
        "web",
        "gpt-4o",
        2,
    )
    assert item["saving_usd"] == pytest.approx(2 * (50 * 2.5 + 20 * 10.0) / 1e6)
    assert len(item["span_ids"]) == len(item["trace_ids"]) == 2
    assert body["total_saving_usd"] == pytest.approx(sum(i["saving_usd"] for i in body["items"]))
    assert body["start_time"] == params["start_time"]

    org_b = (await served.http.get("/api/v1/insights/advice", params=params, headers=auth(KEY_B))).json()
    assert [(i["organization_id"], i["calls"]) for i in org_b["items"]] == [("org-b", 1)]
    only = await served.http.get(
        "/api/v1/insights/advice", params={**params, "kind": "truncation"}, headers=auth(KEY_A)
    )
    assert only.json()["items"] == []


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-observer")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_insight_commands(subparsers)
    # Other insight modules join the same ``insights`` parser.
    assert insights_parser(subparsers) is insights_parser(subparsers)
    return parser


async def _cli(served: Served, *argv: str) -> str:
    args = _parser().parse_args([*argv, "--url", served.base_url, "--api-key", KEY_A])
    out = io.StringIO()
    assert await asyncio.to_thread(args.func, args, out) == 0
    return out.getvalue()


async def test_cost_cli_forecast_and_advice(served: Served) -> None:
    # The CLI forecasts the current period (as of now): a title line, then the table.
    table = (await _cli(served, "insights", "forecast", "--by", "project", "--budget", "50")).splitlines()
    assert table[0].startswith("month ")
    assert table[1].split() == ["GROUP", "SPENT", "FORECAST", "INTERVAL", "METHOD", "BUDGET", "RUNS", "OUT"]
    advice = await _cli(served, "insights", "advice", "--since", "7d", "--no-near")
    lines = advice.splitlines()
    assert lines[0].split()[:5] == ["SAVING", "KIND", "PROJECT", "MODEL", "CALLS"]
    assert any("response_cache_exact" in line and " web " in line for line in lines[1:])
    assert lines[-1].startswith("Total: $") or any(line.startswith("Total: $") for line in lines)
    as_json = json.loads(await _cli(served, "insights", "advice", "--since", "7d", "--no-near", "--json"))
    assert {i["kind"] for i in as_json["items"]} >= {"response_cache_exact"}
