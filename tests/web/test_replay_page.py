"""The trace page's "Replay" in a real browser: replaying a seeded chat call with another model shows the
answer's diff, tokens and cost (computed by hand here) and links to the new trace, which is stored linked
to the original.

The page is served by a query app that includes the replay router (as ``create_app`` will), on a port of
its own over the running service's backend; the service's OpenAI SDK calls go to a local replay server
through ``OPENAI_BASE_URL``.

Slow (a whole server and Chromium): runs when ``LLM_OBSERVER_SLOW_TESTS=1``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llm_observer.instrumentation.testing import ReplayServer, load_recording
from llm_observer.kernel.servers import serve_asgi
from llm_observer.query.app import create_app
from tests.support.waiting import wait_until
from tests.web.conftest import KEY_A, Seeded, WebPage, WebService

pytestmark = pytest.mark.skipif(
    os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1",
    reason="slow (a whole server and headless Chromium): set LLM_OBSERVER_SLOW_TESTS=1",
)

RECORDINGS = Path(__file__).parents[1] / "instrumentation" / "recordings" / "openai"


@dataclass
class ReplayView:
    """The query app with the replay router (as ``create_app`` will include it), served on a port of its
    own over the running service's backend, and the fake provider its OpenAI calls go to."""

    base_url: str
    provider: ReplayServer


@pytest.fixture
def replay_view(web: WebService, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReplayView]:
    assert web.service is not None and web.service.query_service is not None
    backend = web.service.query_service.backend
    assert backend is not None
    app = create_app(backend)
    app.state.replay_otlp_endpoint = web.otlp_http
    app.state.replay_otlp_headers = {"Authorization": f"Bearer {KEY_A}"}
    server = web.call(serve_asgi(app, "127.0.0.1:0", "tests.replay_view"))
    try:
        with ReplayServer(load_recording(RECORDINGS / "chat_tool_call.json")) as provider:
            # The service's SDK reads these when the replay makes its client.
            monkeypatch.setenv("OPENAI_BASE_URL", provider.url + "/v1")
            monkeypatch.setenv("OPENAI_API_KEY", "sk-replay-test")
            yield ReplayView(f"http://127.0.0.1:{server.port}", provider)
    finally:
        web.call(server.stop())


@pytest.fixture
def replay_page(replay_view: ReplayView, browser: Any) -> Iterator[WebPage]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    tab = WebPage(replay_view, context)  # type: ignore[arg-type]
    try:
        yield tab
    finally:
        context.close()
    assert not tab.problems, "the page met problems:\n" + "\n".join(tab.problems)


def test_replay_page_shows_the_diff_and_links_the_new_trace(
    replay_page: WebPage, seeded: Seeded, web: WebService, replay_view: ReplayView
) -> None:
    page = replay_page
    trace_id = seeded.chat_traces[0]
    spans = web.get(f"/api/v1/traces/{trace_id}").json()["spans"]
    (llm,) = [span for span in spans if span["operation"] == "chat"]
    tab = page.open(f"#/trace/{trace_id}?span={llm['span_id']}")
    tab.wait_for_selector("[data-testid=replay-button]")
    tab.fill("[data-testid=replay-model]", "gpt-4o")
    tab.click("[data-testid=replay-button]")
    tab.wait_for_selector("[data-testid=replay-table]", timeout=60_000)

    (sent,) = replay_view.provider.requests
    assert sent.body["model"] == "gpt-4o" and sent.body["messages"][-1]["content"] == (
        "What is the capital of France?"
    )
    added = tab.eval_on_selector_all("[data-diff=add]", "lines => lines.map(l => l.textContent.trim())")
    removed = tab.eval_on_selector_all("[data-diff=remove]", "lines => lines.map(l => l.textContent.trim())")
    assert removed == ["-Paris is the capital of France."]
    assert added == ['+[tool_call get_weather {"city": "Paris", "unit": "celsius"}]']

    def cells(key: str) -> list[str]:
        found: list[str] = tab.eval_on_selector_all(
            f"[data-replay={key}] td", "cells => cells.map(c => c.textContent)"
        )
        return found

    assert cells("model")[:2] == ["gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06"]
    assert cells("input") == ["24", "1,180", "+1,156"]
    assert cells("output") == ["8", "21", "+13"]
    # gpt-4o-mini: (24 x 0.15 + 8 x 0.60) / 1e6; gpt-4o: (156 x 2.50 + 1024 x 1.25 + 21 x 10) / 1e6.
    assert cells("cost") == ["$0.00000840", "$0.00188", "+$0.00187"]
    page.screenshot("replay")

    link = tab.get_attribute("[data-link=replay-trace]", "href")
    assert link is not None and link.startswith("#/trace/")
    new_trace = link.removeprefix("#/trace/")

    def stored() -> list[dict[str, Any]] | None:
        response = web.get(f"/api/v1/traces/{new_trace}")
        body = response.json() if response.status_code == 200 else {"spans": []}
        return body["spans"] if len(body["spans"]) >= 2 else None

    new_spans = wait_until(stored, timeout=60, what=f"replay trace {new_trace} stored")
    links = [link for span in new_spans for link in span["links"]]
    assert {"trace_id": trace_id, "span_id": llm["span_id"]} in links
    tab.click("[data-link=replay-trace]")
    tab.wait_for_selector("main[data-ready] h1")
    assert tab.text_content("main h1") == "replay answer question"
