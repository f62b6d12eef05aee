"""The trace list, one trace, a session and a user in a real browser, against the data ``seeded`` sent
through the OpenTelemetry SDK: what the pages show must be what was sent and what the API reports.

Slow (a whole server and Chromium): they run when ``LLM_OBSERVER_SLOW_TESTS=1``."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.support.waiting import wait_until
from tests.web.conftest import KEY_A, KEY_B, Seeded, WebPage, WebService, wait_stored

pytestmark = pytest.mark.skipif(
    os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1",
    reason="slow (a whole server and headless Chromium): set LLM_OBSERVER_SLOW_TESTS=1",
)

ROWS = "table[data-testid=traces-table] tbody tr"


def listed(page: WebPage) -> list[str]:
    ids: list[str] = page.page.eval_on_selector_all(ROWS, "rows => rows.map(r => r.dataset.traceId)")
    return ids


def hash_query(page: WebPage) -> dict[str, str]:
    search: dict[str, str] = page.page.evaluate(
        "Object.fromEntries(new URLSearchParams(location.hash.split('?')[1] || ''))"
    )
    return search


def test_traces_list_shows_exactly_the_traces_sent(page: WebPage, seeded: Seeded, web: WebService) -> None:
    page.open("#/traces?service=shop-agent")
    assert sorted(listed(page)) == sorted(seeded.acme_traces)
    page.screenshot("traces")
    # Without a filter: what the API lists for this key, none of the other organisation's.
    page.open("#/traces")
    api = [t["trace_id"] for t in web.get("/api/v1/traces", KEY_A, limit=50).json()["traces"]]
    assert listed(page) == api
    assert set(seeded.acme_traces) <= set(api) and not set(seeded.globex_traces) & set(api)
    text = page.page.inner_text("main")
    assert "globex" not in text.lower()
    # The columns hold the API's figures for the agent run.
    summary = next(
        t for t in web.get("/api/v1/traces", KEY_A).json()["traces"] if t["trace_id"] == seeded.agent_trace
    )
    cells = page.page.eval_on_selector_all(
        f"tr[data-trace-id='{seeded.agent_trace}'] td", "cells => cells.map(c => c.textContent)"
    )
    assert cells[4] == str(summary["span_count"]) and cells[5] == str(summary["llm_call_count"]) == "2"
    assert cells[6] == f"{summary['input_tokens']:,}" and cells[7] == f"{summary['output_tokens']:,}"


def test_traces_list_pages_with_the_cursor(page: WebPage, seeded: Seeded) -> None:
    page.open("#/traces?service=shop-agent&page_size=2")
    seen = [listed(page)]
    while page.page.is_visible("button.load-more"):
        page.page.click("button.load-more")
        wait_until(lambda: len(listed(page)) > len(seen[-1]), what="the next page")
        seen.append(listed(page))
    assert [len(ids) for ids in seen] == [2, 4, 5]
    assert sorted(seen[-1]) == sorted(seeded.acme_traces)
    cursors = [url for url in page.api_requests() if "cursor=" in url]
    assert len(cursors) == 2 and all("limit=2" in url for url in cursors)


def test_traces_list_sorts_on_the_server_across_pages(page: WebPage, seeded: Seeded, web: WebService) -> None:
    # The order of the whole list, not of the rows loaded so far: the API sorts, the cursor keeps the order.
    listing = web.get("/api/v1/traces", KEY_A, service="shop-agent", sort="cost", order="asc", limit=100)
    want = [t["trace_id"] for t in listing.json()["traces"]]
    assert sorted(want) == sorted(seeded.acme_traces)
    page.open("#/traces?service=shop-agent&sort=cost&dir=asc&page_size=2")
    while page.page.is_visible("button.load-more"):
        before = len(listed(page))
        page.page.click("button.load-more")
        wait_until(lambda before=before: len(listed(page)) > before, what="the next page")
    assert listed(page) == want
    assert all(
        "sort=cost" in url and "order=asc" in url for url in page.api_requests() if "/api/v1/traces?" in url
    )


def test_traces_filter_narrows_and_round_trips_through_the_url(page: WebPage, seeded: Seeded) -> None:
    page.open("#/traces?service=shop-agent")
    page.page.fill("#f-model", "gpt-4o")
    page.page.click("form.filters button[type=submit]")
    page.page.wait_for_function("location.hash.includes('model=gpt-4o')")
    page.page.wait_for_selector("main[data-ready]")
    # Only the agent run asked gpt-4o (the others asked gpt-4o-mini).
    assert listed(page) == [seeded.agent_trace]
    assert hash_query(page) == {"service": "shop-agent", "model": "gpt-4o"}
    url = page.page.url

    # The same URL in a fresh tab shows the same rows and the filter in the form.
    other = WebPage(page.web, page.context)
    other.open(url.split("/", 3)[3])
    assert listed(other) == [seeded.agent_trace]
    assert other.page.input_value("#f-model") == "gpt-4o"
    assert other.page.input_value("#f-service") == "shop-agent"
    other.page.close()

    page.open("#/traces?service=shop-agent&status=error")
    assert listed(page) == [seeded.error_trace]
    page.open("#/traces?service=shop-agent&user_id=u-bob")
    assert sorted(listed(page)) == sorted(seeded.users["u-bob"])
    # A sort is kept in the URL and orders the rows.
    page.open("#/traces?service=shop-agent&sort=spans&dir=desc")
    assert listed(page)[0] == seeded.agent_trace


def depths(spans: list[dict[str, Any]]) -> dict[str, int]:
    parents = {span["span_id"]: span["parent_span_id"] for span in spans}
    out = {}
    for span_id in parents:
        depth, parent = 0, parents[span_id]
        while parent in parents:
            depth, parent = depth + 1, parents[parent]
        out[span_id] = depth
    return out


def test_traces_trace_page_shows_the_tree_messages_tokens_and_cost(
    page: WebPage, seeded: Seeded, web: WebService
) -> None:
    spans = web.get(f"/api/v1/traces/{seeded.agent_trace}", KEY_A).json()["spans"]
    page.open(f"#/trace/{seeded.agent_trace}")
    rows = page.page.eval_on_selector_all(
        ".wf-row",
        "rows => rows.map(r => [r.dataset.spanId, Number(r.dataset.depth), r.querySelector('.role').textContent])",
    )
    assert len(rows) == len(spans)
    expected = depths(spans)
    assert {span_id: depth for span_id, depth, _ in rows} == expected
    roles = {span_id: role for span_id, _, role in rows}
    by_name = {span["name"]: span for span in spans}
    agent = by_name["invoke_agent planner"]
    tool = by_name["execute_tool get_weather"]
    assert roles[agent["span_id"]] == "agent" and roles[tool["span_id"]] == "tool"
    # agent → tool → LLM: the tool's child is a model call.
    tool_children = [s for s in spans if s["parent_span_id"] == tool["span_id"]]
    assert [roles[s["span_id"]] for s in tool_children] == ["llm"]

    # The trace totals are the sums of what the API reports.
    stat = lambda name: page.page.inner_text(f"[data-stat={name}]")  # noqa: E731
    assert stat("spans") == str(len(spans))
    assert stat("input-tokens") == f"{sum(s['input_tokens'] for s in spans):,}"
    assert stat("output-tokens") == f"{sum(s['output_tokens'] for s in spans):,}"
    assert stat("llm-calls") == "2"

    # The model call that asked for a tool: its conversation, with the call as a structured block.
    call = next(s for s in spans if s["parent_span_id"] == agent["span_id"] and s["request_model"])
    page.page.click(f".wf-row[data-span-id='{call['span_id']}']")
    detail = page.page.locator("[data-testid=span-detail]")
    detail.locator(".messages").wait_for()
    roles_shown = detail.locator(".msg").evaluate_all("items => items.map(i => i.dataset.role)")
    assert roles_shown[:2] == ["system", "user"] and "assistant" in roles_shown
    assert "What is the capital of France?" in detail.locator(".msg[data-role=user]").first.inner_text()
    assert "get_weather" in detail.locator("[data-block=tool_call]").first.inner_text()
    assert detail.locator("[data-tokens=input]").inner_text() == f"{call['input_tokens']:,}"
    assert detail.locator("[data-tokens=output]").inner_text() == f"{call['output_tokens']:,}"
    assert float(detail.locator(".cost-total").get_attribute("data-cost") or "nan") == pytest.approx(
        call["cost_usd"]
    )
    assert call["cost_usd"] > 0
    assert f"span={call['span_id']}" in page.page.url
    page.screenshot("trace")
    # The trace links to its session and user.
    assert page.page.get_attribute("[data-link=session]", "href") == "#/sessions/s-1"
    assert page.page.get_attribute("[data-link=user]", "href") == "#/users/u-alice"

    # The keyboard walks the tree: Home selects the root, ↓ the next row.
    page.page.focus("[data-testid=waterfall]")
    page.page.keyboard.press("Home")
    assert page.page.get_attribute(".wf-row.selected", "data-span-id") == agent["span_id"]
    page.page.keyboard.press("ArrowDown")
    assert page.page.get_attribute(".wf-row.selected", "data-span-id") == rows[1][0]
    # ← on the root collapses it: one row left.
    page.page.keyboard.press("Home")
    page.page.keyboard.press("ArrowLeft")
    assert page.page.locator(".wf-row").count() == 1

    # The attribute table filters as one types.
    page.page.keyboard.press("ArrowRight")
    page.page.click(f".wf-row[data-span-id='{call['span_id']}']")
    page.page.fill(".attr-search", "gen_ai.request.model")
    assert page.page.locator(".attr-table tbody tr").count() == 1


def test_traces_failed_call_shows_its_error(page: WebPage, seeded: Seeded, web: WebService) -> None:
    spans = web.get(f"/api/v1/traces/{seeded.error_trace}", KEY_A).json()["spans"]
    failed = next(s for s in spans if s["status"] == "Error")
    page.open(f"#/trace/{seeded.error_trace}?span={failed['span_id']}")
    detail = page.page.locator("[data-testid=span-detail]")
    assert "Error" in detail.locator(".error-message").inner_text()
    if failed["status_message"]:
        assert failed["status_message"] in detail.inner_text()


def test_traces_session_and_user_pages(page: WebPage, seeded: Seeded, web: WebService) -> None:
    api = web.get("/api/v1/sessions/s-3", KEY_A, start_time="2000-01-01T00:00:00Z").json()
    page.open("#/sessions/s-3")
    turns = page.page.eval_on_selector_all(".turn", "items => items.map(i => i.dataset.traceId)")
    assert turns == [turn["trace_id"] for turn in api["turns"]] and len(turns) == 2
    assert sorted(turns) == sorted(seeded.chat_traces[1:])
    assert page.page.inner_text("[data-stat=turns]") == "2"
    assert (
        "What is the capital of France?" in page.page.locator(".turn .msg[data-role=user]").first.inner_text()
    )
    page.screenshot("session")

    user = web.get("/api/v1/users/u-bob", KEY_A).json()
    page.open("#/users/u-bob")
    assert page.page.inner_text("[data-stat=traces]") == str(user["trace_count"]) == "3"
    assert page.page.inner_text("[data-stat=errors]") == str(user["error_count"])
    sessions = page.page.eval_on_selector_all(
        "tr[data-session-id]", "rows => rows.map(r => r.dataset.sessionId)"
    )
    assert sorted(sessions) == ["s-3", "s-4"]
    page.screenshot("user")
    page.open("#/users")
    assert page.page.locator("tr[data-user-id='u-bob']").count() == 1


def test_traces_other_organisation_sees_nothing(page: WebPage, seeded: Seeded) -> None:
    page.allow(r"404.*/api/v1/(traces|sessions)/")
    page.open("#/traces", key=KEY_B)
    assert listed(page) == seeded.globex_traces
    page.open(f"#/trace/{seeded.agent_trace}", key=KEY_B)
    assert page.page.locator(".wf-row").count() == 0
    assert "not found" in page.page.inner_text("main")
    page.open("#/sessions/s-3", key=KEY_B)
    assert page.page.locator(".turn").count() == 0


def test_traces_a_1000_span_trace_draws_only_what_is_in_view(
    page: WebPage, seeded: Seeded, web: WebService
) -> None:
    """A 1,000-span trace (an agent, 333 tools, 666 model calls): the totals count every span, only the rows in
    view are in the page, siblings keep their start order, and the keyboard reaches the last span. (How fast
    it renders is measured by bench/bench_web.py, not asserted here.)"""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "bulk-agent"}))
    exporter = OTLPSpanExporter(
        endpoint=f"{web.otlp_http}/v1/traces", headers={"authorization": f"Bearer {KEY_A}"}, timeout=30
    )
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=500, max_queue_size=4096))
    tracer = provider.get_tracer("bulk")
    with tracer.start_as_current_span(
        "invoke_agent bulk", attributes={"gen_ai.operation.name": "invoke_agent"}
    ) as root:
        for i in range(333):
            with tracer.start_as_current_span(
                f"execute_tool step_{i}", attributes={"gen_ai.operation.name": "execute_tool"}
            ):
                for j in range(2):
                    with tracer.start_as_current_span(
                        "chat gpt-4o-mini",
                        attributes={
                            "gen_ai.operation.name": "chat",
                            "gen_ai.provider.name": "openai",
                            "gen_ai.request.model": "gpt-4o-mini",
                            "gen_ai.usage.input_tokens": 10 + i,
                            "gen_ai.usage.output_tokens": 1 + j,
                        },
                    ):
                        pass
    trace_id = format(root.get_span_context().trace_id, "032x")
    provider.force_flush()
    provider.shutdown()
    wait_stored(web, KEY_A, [trace_id], spans=1000)

    page.open(f"#/trace/{trace_id}")
    assert page.page.inner_text("[data-stat=spans]") == "1,000"
    # Only the rows in view are in the page, and scrolling to the end draws the last ones.
    drawn = page.page.locator(".wf-row").count()
    assert 0 < drawn < 200
    # Siblings in the order they started, though many start within the same millisecond.
    names = page.page.eval_on_selector_all(".wf-row .wf-name", "names => names.map(n => n.textContent)")
    tools = [name for name in names if name.startswith("execute_tool")]
    assert tools[:5] == [f"execute_tool step_{i}" for i in range(5)]
    page.page.focus("[data-testid=waterfall]")
    page.page.keyboard.press("End")
    wait_until(lambda: page.page.locator(".wf-row.selected").count() == 1, what="the last span selected")
    page.screenshot("trace-1000-spans")
