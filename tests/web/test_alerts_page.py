"""The web view's Alerts page in Chromium, against the whole server (``web``) running the real ``alerting``
extension: failing calls sent over OTLP fire two rules, which correlate into an incident; the page shows
them with a link to their traces, makes a silence from an alert's labels, expires it, lists the rules; and
another organization sees none of it.

The session's server runs the default config (alerting on, no rules) and the other pages' tests share it,
so ``alerting`` starts another ``alerting`` extension with this module's rules inside it and puts it in
place of the running one in the process's running extensions — the live mapping the query service searches
at each request — restoring the original afterwards; ``alerting_off`` takes it out for a while.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from opentelemetry.trace import Status, StatusCode

from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.query.alerting.component import AlertingService
from llm_observer.query.alerting.component import factory as alerting_factory
from llm_observer.query.alerting.config import AlertingConfig
from tests.support.waiting import wait_until
from tests.web.conftest import KEY_A, KEY_B, OtlpSender, WebPage, WebService

PROVIDER = "web-alerts-provider"
MODEL = "alert-model-1"


@pytest.fixture
def alerting(web: WebService, tmp_path: Path) -> Iterator[AlertingService]:
    assert web.service is not None
    config = AlertingConfig.model_validate(
        {
            "evaluation_interval": "1s",
            "evaluation_delay": 0,
            "state_path": str(tmp_path / "alerting.sqlite"),
            "rules": [
                {
                    "name": "WebErrorRate",
                    "kind": "threshold",
                    "measure": "error_rate",
                    "window": "1h",
                    "group_by": ["provider", "model"],
                    "where": {"provider": PROVIDER},
                    "threshold": 0.5,
                    "min_requests": 2,
                    "annotations": {"summary": "{{ $labels.provider }} fails"},
                },
                {
                    "name": "WebVolume",
                    "kind": "threshold",
                    "measure": "request_count",
                    "window": "1h",
                    "group_by": ["provider"],
                    "where": {"provider": PROVIDER},
                    "threshold": 1,
                },
            ],
        }
    )
    exporters = {cid: spec.config for cid, spec in web.service.config.exporters.items()}
    ctx = CreateContext(
        "alerting",
        web.service.data_dir,
        Telemetry(),
        logging.getLogger("test.web.alerting"),
        configs={"exporters": exporters},
    )
    service = alerting_factory.create(ctx, config)
    web.call(service.start())
    try:
        with _in_place_of_alerting(web, service):
            yield service
    finally:
        web.call(service.shutdown())


@contextlib.contextmanager
def _in_place_of_alerting(web: WebService, replacement: Any) -> Iterator[None]:
    """The process's alerting extensions taken out of its running extensions (``replacement``, unless None,
    put in their place) for the ``with`` block."""
    assert web.service is not None
    running = web.service.extensions
    taken = {key: value for key, value in running.items() if isinstance(value, AlertingService)}
    for key in taken:
        del running[key]
    if replacement is not None:
        running["alerting"] = replacement
    try:
        yield
    finally:
        running.pop("alerting", None)
        running.update(taken)


def _fail_calls(sender: Callable[..., OtlpSender], count: int) -> None:
    one = sender(KEY_A, **{"service.name": "alerting-web-test"})
    for _ in range(count):
        with one.tracer.start_as_current_span(
            f"chat {MODEL}",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": PROVIDER,
                "gen_ai.request.model": MODEL,
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 0,
            },
        ) as span:
            span.set_status(Status(StatusCode.ERROR, "provider down"))


def _firing(web: WebService, key: str) -> list[dict[str, Any]]:
    response = web.get("/api/v1/alerts", key, state="firing")
    assert response.status_code == 200, response.text
    return [a for a in response.json()["alerts"] if a["labels"].get("provider") == PROVIDER]


def test_alerts_page_says_how_to_enable_alerting_when_off(page: WebPage, web: WebService) -> None:
    with _in_place_of_alerting(web, None):
        assert web.get("/api/v1/alerts/status").json()["enabled"] is False
        tab = page.open("#/alerts")
        assert "Alerting is not enabled" in tab.inner_text("[data-testid=alerting-off]")
        # It asked whether alerting runs, and nothing else (no 404s to show).
        assert [url.split("?")[0] for url in page.api_requests()] == [web.base_url + "/api/v1/alerts/status"]


def test_alerts_page_shows_alerts_incidents_silences_and_rules(
    page: WebPage, web: WebService, alerting: AlertingService, sender: Callable[..., OtlpSender]
) -> None:
    _fail_calls(sender, 3)
    wait_until(lambda: len(_firing(web, KEY_A)) == 2, timeout=60, what="both rules firing for acme")
    wait_until(
        lambda: web.get("/api/v1/alerts/incidents", KEY_A).json()["incidents"], timeout=30, what="an incident"
    )

    tab = page.open("#/alerts")
    rows = tab.locator("[data-testid=alerts-table] tbody tr[data-state=firing]")
    assert rows.count() == 2
    error_row = tab.locator("tr[data-state=firing]", has_text="WebErrorRate")
    text = error_row.inner_text()
    assert f"provider={PROVIDER}" in text and f"model={MODEL}" in text
    assert f"{PROVIDER} fails" in text  # the rendered annotation
    assert tab.inner_text("[data-count=firing] .value") == "2"
    # The incident and its hint.
    incident = tab.inner_text("[data-testid=incidents]")
    assert f"provider={PROVIDER}" in incident and "WebErrorRate" in incident
    assert PROVIDER in tab.inner_text("[data-testid=incidents] .hint")
    # Rules with their last evaluation.
    rules = tab.inner_text("[data-testid=rules-table]")
    assert "WebErrorRate" in rules and "WebVolume" in rules and "never" not in rules

    # The traces link: the alert's window, filtered by its labels, lists the failing calls.
    href = error_row.get_by_role("link", name="Traces of WebErrorRate", exact=False).get_attribute("href")
    assert href is not None and href.startswith("#/traces?")
    query = parse_qs(href.split("?", 1)[1])
    assert query["provider"] == [PROVIDER] and query["model"] == [MODEL]
    assert "start_time" in query and "end_time" in query

    # Silence from the alert's labels, by keyboard: focus the button, Enter, type the comment, submit.
    error_row.get_by_role("button", name="Silence WebErrorRate", exact=False).focus()
    tab.keyboard.press("Enter")
    matchers = tab.input_value("#silence-matchers")
    assert 'alertname="WebErrorRate"' in matchers and f'provider="{PROVIDER}"' in matchers
    assert tab.evaluate("document.activeElement.id") == "silence-matchers"
    tab.fill("#silence-comment", "provider is being fixed")
    tab.select_option("#silence-duration", "1h")
    tab.click("form[data-testid=silence-form] button[type=submit]")
    tab.wait_for_selector("[data-testid=silences-table] tr[data-state=active]")
    (silence,) = web.get("/api/v1/alerts/silences", KEY_A).json()["silences"]
    assert silence["comment"] == "provider is being fixed"
    assert set(silence["matchers"]) == set(matchers.splitlines())
    assert tab.inner_text("[data-count=silences] .value") == "1"
    # Org B sees neither the alerts nor the silence.
    assert _firing(web, KEY_B) == []
    assert web.get("/api/v1/alerts/silences", KEY_B).json()["silences"] == []

    # Expire it.
    tab.get_by_role("button", name=f"Expire silence {silence['id']}").click()
    tab.wait_for_selector(
        f"[data-testid=silences-table] tr[data-silence='{silence['id']}'][data-state=expired]"
    )
    assert web.get("/api/v1/alerts/silences", KEY_A).json()["silences"][0]["state"] == "expired"
    page.screenshot("alerts")

    # A bad matcher typed by hand: the API's message shows and nothing is created.
    page.allow(r"HTTP 400: POST .*/api/v1/alerts/silences")
    page.allow(r"status of 400")
    tab.fill("#silence-matchers", "not a matcher")
    tab.fill("#silence-comment", "x")
    tab.click("form[data-testid=silence-form] button[type=submit]")
    tab.wait_for_selector("#message:not([hidden])")
    assert "not a matcher" in tab.inner_text("#message")
    assert len(web.get("/api/v1/alerts/silences", KEY_A).json()["silences"]) == 1

    # Following the traces link lists the failing calls behind the alert.
    tab.goto(web.base_url + "/" + href)
    tab.wait_for_selector("main[data-page=traces][data-ready]")
    shown = tab.eval_on_selector_all("tr[data-trace-id]", "rows => rows.map(r => r.dataset.traceId)")
    assert len(shown) >= 3, (page.api_requests()[-3:], tab.inner_text("main"))
    listed = web.get("/api/v1/traces", KEY_A, provider=PROVIDER, model=MODEL, limit=1000).json()["traces"]
    assert set(shown) <= {t["trace_id"] for t in listed}


def test_alerts_page_other_organization_sees_nothing(
    page: WebPage, web: WebService, alerting: AlertingService, sender: Callable[..., OtlpSender]
) -> None:
    _fail_calls(sender, 3)
    wait_until(lambda: len(_firing(web, KEY_A)) == 2, timeout=60, what="both rules firing for acme")
    tab = page.open("#/alerts", key=KEY_B)
    tab.wait_for_selector("[data-testid=no-alerts]")
    assert tab.locator("[data-testid=no-incidents]").count() == 1
    assert tab.locator("[data-testid=no-silences]").count() == 1
    # Rules apply to every organization: org B sees them (not org A's alerts).
    assert "WebErrorRate" in tab.inner_text("[data-testid=rules-table]")


def test_alerts_page_is_readable_in_dark_mode(page: WebPage, alerting: AlertingService) -> None:
    tab = page.open("#/alerts")
    tab.click("#theme")
    colors = tab.evaluate(
        "(() => { const s = getComputedStyle(document.body); return [s.color, s.backgroundColor]; })()"
    )
    tab.click("#theme")
    light = tab.evaluate(
        "(() => { const s = getComputedStyle(document.body); return [s.color, s.backgroundColor]; })()"
    )
    assert colors != light
    assert tab.locator("[data-testid=rules-table]").count() == 1
