"""The web view's shell and its own pages in headless Chromium, against the real server ``seeded`` fed:
every page loads clean, sign-in, keyboard reach, the live tail's freshness, a dashboard chart equal to the
metrics API, semantic search opening a trace, and tenancy in pages and in the requests behind them."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.waiting import wait_until
from tests.web.conftest import (
    ARTIFACTS,
    GLOBEX_MARK,
    KEY_A,
    KEY_B,
    ORG_A,
    PASSWORD,
    USERNAME,
    OtlpSender,
    Seeded,
    WebPage,
    WebService,
)

SHELL_PAGES = {
    "dashboards": "#/dashboards",
    "live": "#/live",
    "search": "#/search",
    "alerts": "#/alerts",
    "insights": "#/insights",
}


@pytest.mark.parametrize("name", list(SHELL_PAGES))
def test_web_shell_page_loads_clean(page: WebPage, seeded: Seeded, name: str) -> None:
    tab = page.open(SHELL_PAGES[name])
    assert tab.locator("main").get_attribute("data-page") == name
    assert tab.locator("#nav a[aria-current=page]").get_attribute("data-route") == name
    assert tab.locator("#message").is_hidden()
    page.screenshot(name)


def test_web_dark_theme_toggle(page: WebPage, seeded: Seeded) -> None:
    tab = page.open("#/dashboards?range=24h")
    before = tab.evaluate("getComputedStyle(document.body).backgroundColor")
    tab.click("#theme")
    tab.wait_for_selector("main[data-ready]")
    after = tab.evaluate("getComputedStyle(document.body).backgroundColor")
    assert before != after
    page.screenshot("dashboards-dark")


def test_web_asks_for_a_key_then_shows_data(page: WebPage, seeded: Seeded) -> None:
    page.allow(r"HTTP 401: GET .*/api/v1/")
    page.allow(r"console error: Failed to load resource: the server responded with a status of 401")
    tab = page.open("#/dashboards", key=None)
    tab.wait_for_selector("#signin:not([hidden])")
    page.screenshot("sign-in")
    tab.fill("#api-key", KEY_A)
    tab.press("#api-key", "Enter")
    tab.wait_for_selector("main[data-ready] .cards")
    assert tab.evaluate("sessionStorage.getItem('llm-observer.token')") == KEY_A
    tab.click("#signout")
    tab.wait_for_selector("#signin:not([hidden])")
    assert tab.evaluate("sessionStorage.getItem('llm-observer.token')") is None


def test_web_login_with_user_and_password(page: WebPage, seeded: Seeded) -> None:
    page.allow(r"HTTP 401: GET .*/api/v1/")
    page.allow(r"console error: Failed to load resource: the server responded with a status of 401")
    tab = page.open("#/dashboards", key=None)
    tab.wait_for_selector("#signin:not([hidden])")
    tab.fill("#username", USERNAME)
    tab.fill("#password", PASSWORD)
    tab.click("#login-form button[type=submit]")
    tab.wait_for_selector("main[data-ready] .cards")
    token = tab.evaluate("sessionStorage.getItem('llm-observer.token')")
    assert token and token.count(".") == 2  # a JWT, not the password


def test_web_keyboard_reaches_the_navigation(page: WebPage, seeded: Seeded) -> None:
    tab = page.open("#/alerts")
    tab.keyboard.press("Tab")
    assert tab.evaluate("document.activeElement.className") == "skip"
    reached = []
    for _ in range(8):
        tab.keyboard.press("Tab")
        reached.append(tab.evaluate("document.activeElement.getAttribute('data-route')"))
    assert {"traces", "dashboards", "live", "search", "alerts", "insights"} <= set(reached)
    # Enter on a focused link navigates.
    tab.focus("#nav a[data-route=live]")
    tab.keyboard.press("Enter")
    tab.wait_for_selector("main[data-page=live][data-ready]")


def test_web_dashboard_charts_equal_the_metrics_api(web: WebService, page: WebPage, seeded: Seeded) -> None:
    tab = page.open("#/dashboards?range=24h&group_by=model")
    window = json.loads(tab.locator("main").get_attribute("data-window") or "{}")
    api = web.get("/api/v1/metrics/summary", KEY_A, **window).json()
    series = api["series"]
    assert sum(point["request_count"] for point in series) == api["request_count"] > 0

    def drawn(title: str) -> dict[str, list[Any]]:
        figure = tab.locator(f"figure[data-chart='{title}']")
        assert json.loads(figure.get_attribute("data-times") or "[]") == [
            _epoch(point["time"]) for point in series
        ]
        values: dict[str, list[Any]] = json.loads(figure.get_attribute("data-values") or "{}")
        return values

    assert drawn("Requests")["requests"] == [point["request_count"] for point in series]
    assert drawn("Cost")["cost"] == pytest.approx([point["cost_usd"] for point in series])
    tokens = drawn("Tokens")
    assert tokens["input"] == [point["input_tokens"] for point in series]
    assert tokens["output"] == [point["output_tokens"] for point in series]
    latency = drawn("Latency")
    assert latency["p95"] == [p["latency_ms"]["p95"] if p["request_count"] else None for p in series]
    # One line per model (the group-by switch), each equal to that group's own series from the API.
    by_group = web.get("/api/v1/metrics/summary", KEY_A, **window, group_series="true").json()
    assert len(by_group["groups"]) >= 2
    for group in by_group["groups"]:
        points = {point["time"]: point for point in group["series"]}
        at = [points.get(point["time"]) for point in series]
        assert drawn("Requests by model")[group["key"]] == [p["request_count"] if p else 0 for p in at]
        assert drawn("Cost by model")[group["key"]] == pytest.approx([p["cost_usd"] if p else 0 for p in at])
        assert drawn("Latency p95 by model")[group["key"]] == [
            p["latency_ms"]["p95"] if p else None for p in at
        ]
    # The group table holds the API's groups, and choosing one filters the charts.
    keys = [row.get_attribute("data-key") for row in tab.locator("#groups tbody tr").all()]
    assert keys == [group["key"] for group in api["groups"]]
    tab.click("#groups tbody tr[data-key='gpt-4o-mini'] a")
    tab.wait_for_selector("main[data-ready] #groups")
    assert "model=gpt-4o-mini" in tab.url
    filtered = web.get("/api/v1/metrics/summary", KEY_A, **{**window, "model": "gpt-4o-mini"}).json()
    requests = json.loads(tab.locator("figure[data-chart='Requests']").get_attribute("data-values") or "{}")
    assert sum(requests["requests"]) == filtered["request_count"]
    page.screenshot("dashboards-filtered")


def test_web_group_by_switch(web: WebService, page: WebPage, seeded: Seeded) -> None:
    tab = page.open("#/dashboards?range=24h")
    for group, seeded_keys in (("user", {"u-alice", "u-bob"}), ("provider", {"openai"})):
        tab.click(f"button[data-group={group}]")
        tab.wait_for_selector(f"main[data-ready] button[data-group={group}][aria-pressed=true]")
        keys = {row.get_attribute("data-key") for row in tab.locator("#groups tbody tr").all()}
        # The groups the API reports for the page's own window (other tests of the session add calls of
        # their own), which hold those the seed sent.
        window = json.loads(tab.locator("main").get_attribute("data-window") or "{}")
        api = web.get("/api/v1/metrics/summary", KEY_A, **window).json()
        assert keys == {g["key"] for g in api["groups"]} >= seeded_keys
        assert f"group_by={group}" in tab.url


def test_web_live_shows_new_spans_as_they_arrive(
    page: WebPage, seeded: Seeded, sender: Callable[..., OtlpSender]
) -> None:
    """Twenty spans, each sent while the Live page is open, each appear on it without a reload. How soon is
    measured by bench/bench_web.py (goal: p95 within 2 s); this run's delays are saved with the screenshots,
    not asserted, since a shared machine's timings are no test."""
    tab = page.open("#/live")
    tab.wait_for_selector(".live-state[data-state=live]")
    one = sender(KEY_A, **{"service.name": "live-test"})
    delays = []
    for n in range(20):
        with one.tracer.start_as_current_span(f"live span {n}") as span:
            pass
        acknowledged = time.monotonic()  # SimpleSpanProcessor: end() returned after the collector's answer
        trace_id = format(span.get_span_context().trace_id, "032x")
        tab.wait_for_selector(f"#live-rows tr[data-trace-id='{trace_id}']", timeout=10_000)
        delays.append(time.monotonic() - acknowledged)
    delays.sort()
    p95 = delays[int(0.95 * (len(delays) - 1))]
    figures = {"spans": len(delays), "p50_s": statistics.median(delays), "p95_s": p95, "max_s": delays[-1]}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "live_freshness.json").write_text(json.dumps(figures, indent=2))
    page.screenshot("live")


def test_web_live_pause_holds_spans_and_filters(
    page: WebPage, seeded: Seeded, sender: Callable[..., OtlpSender]
) -> None:
    tab = page.open("#/live?service=live-filtered")
    tab.wait_for_selector(".live-state[data-state=live]")
    wanted = sender(KEY_A, **{"service.name": "live-filtered"})
    other = sender(KEY_A, **{"service.name": "live-other"})
    tab.click("#live-pause")
    with other.tracer.start_as_current_span("not this one"):
        pass
    with wanted.tracer.start_as_current_span("held while paused") as span:
        pass
    trace_id = format(span.get_span_context().trace_id, "032x")
    tab.wait_for_selector("#live-held:has-text('1 new while paused')")
    assert tab.locator("#live-rows tr").count() == 0
    tab.click("#live-pause")
    tab.wait_for_selector(f"#live-rows tr[data-trace-id='{trace_id}']")
    assert tab.locator("#live-rows tr").count() == 1  # the other service's span never came


def test_web_search_hit_opens_its_trace(web: WebService, page: WebPage, seeded: Seeded) -> None:
    # Embedding runs beside storage: wait until the prompts are searchable.
    wait_until(
        lambda: web.get("/api/v1/search/semantic", KEY_A, q="capital city of France").json().get("results"),
        timeout=60,
        what="semantic search results",
        interval=0.5,
    )
    page.allow(r"/api/v1/traces/")  # the trace page's own requests belong to the traces view's tests
    page.allow(r"pages/trace\.js")
    tab = page.open("#/search?q=capital+city+of+France")
    hits = tab.locator("#search-results li")
    assert hits.count() >= 1
    ids = {hit.get_attribute("data-trace-id") for hit in hits.all()}
    # Acme's traces only: the seeded ones, and any other test of the session made in acme (a replay of a
    # seeded call asks the same question) — never globex's.
    assert ids & set(seeded.acme_traces)
    assert not ids & set(seeded.globex_traces)
    for trace_id in ids - set(seeded.acme_traces):
        assert web.get(f"/api/v1/traces/{trace_id}", KEY_A).json()["spans"][0]["organization_id"] == "acme"
    page.screenshot("search")
    first = hits.first.get_attribute("data-trace-id")
    hits.first.locator("a").click()
    tab.wait_for_url(f"**#/trace/{first}*")


def test_web_tenancy_a_key_of_one_org_sees_nothing_of_another(
    web: WebService, page: WebPage, seeded: Seeded
) -> None:
    bodies: list[str] = []
    page.page.on(
        "response", lambda response: bodies.append(response.text()) if "/api/" in response.url else None
    )
    for route in ("#/dashboards?range=24h&group_by=user", "#/search?q=capital+city+of+France", "#/live"):
        tab = page.open(route, key=KEY_B)
        text = tab.locator("main").inner_text()
        for secret in ("u-alice", "u-bob", "shop-agent", *seeded.acme_traces):
            assert secret not in text, (route, secret)
    page.open("#/dashboards?range=24h&group_by=user", key=KEY_B)
    assert "u-mallory" in page.page.locator("#groups").inner_text()
    data = "\n".join(bodies)
    assert bodies and ORG_A not in data and "u-alice" not in data
    assert all(trace_id not in data for trace_id in seeded.acme_traces)
    # …and the other way round: acme's key sees nothing of globex.
    tab = page.open("#/dashboards?range=24h&group_by=user", key=KEY_A)
    assert "u-mallory" not in tab.locator("main").inner_text()
    assert GLOBEX_MARK not in tab.locator("main").inner_text()


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
