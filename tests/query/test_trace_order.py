"""The trace list in every order: sorted by ClickHouse over the whole range, paged by a cursor that carries
the sort value, so no page repeats or skips a trace whatever the order and page size."""

from __future__ import annotations

import time
from typing import Any

import pytest

from llm_observer.kernel.batch import SpanBatch
from tests.query.test_rest import KEY_A, _hdr, expected_traces, list_all
from tests.support.spans import GENAI_ATTRIBUTES, add_span

# Each order as a key over the planted summaries (expected_traces), ties broken by trace id like the API.
_KEYS = {
    "start": lambda t: t["start"],
    "duration": lambda t: round(t["duration_ms"] * 1e6),
    "cost": lambda t: t["cost_usd"],
    "tokens": lambda t: t["input_tokens"] + t["output_tokens"],
    "input_tokens": lambda t: t["input_tokens"],
    "output_tokens": lambda t: t["output_tokens"],
    "spans": lambda t: t["span_count"],
    "errors": lambda t: t["error_count"],
}


@pytest.mark.parametrize("order", ["desc", "asc"])
@pytest.mark.parametrize("sort", sorted(_KEYS))
async def test_trace_order_pages_in_sort_order_without_gaps_or_repeats(
    running: Any, sort: str, order: str
) -> None:
    expected = expected_traces(running.planted, "org-a")
    key = _KEYS[sort]
    want = sorted(expected, key=lambda tid: (key(expected[tid]), tid), reverse=order == "desc")
    # Pages of 4 cross ties (several planted traces share a span count or a cost of 0).
    got = await list_all(running.http, KEY_A, limit=4, sort=sort, order=order)
    ids = [t["trace_id"] for t in got]
    assert len(ids) == len(set(ids)) == len(expected)
    values = [key(expected[tid]) for tid in ids]
    assert values == [key(expected[tid]) for tid in want]
    assert ids == want


async def test_trace_order_llm_calls_counts_model_spans(running: Any) -> None:
    expected = expected_traces(running.planted, "org-a")
    b = running.planted.batch
    calls = {
        tid: sum(1 for i in want["rows"] if "gen_ai.request.model" in b.attributes[i])
        for tid, want in expected.items()
    }
    got = await list_all(running.http, KEY_A, limit=3, sort="llm_calls")
    assert [calls[t["trace_id"]] for t in got] == sorted(calls.values(), reverse=True)


async def test_trace_order_rejects_unknown_order_and_foreign_cursor(running: Any) -> None:
    http = running.http
    bad = await http.get("/api/v1/traces", headers=_hdr(KEY_A), params={"sort": "price"})
    assert bad.status_code == 400
    assert "sort must be one of" in bad.json()["error"]["message"]
    assert (await http.get("/api/v1/traces", headers=_hdr(KEY_A), params={"order": "up"})).status_code == 400
    first = (
        await http.get("/api/v1/traces", headers=_hdr(KEY_A), params={"limit": 2, "sort": "cost"})
    ).json()
    assert first["next_cursor"]
    # A cursor made for one order is refused by another: its position means nothing there.
    for params in ({"sort": "spans"}, {"sort": "cost", "order": "asc"}, {}):
        response = await http.get(
            "/api/v1/traces", headers=_hdr(KEY_A), params={**params, "cursor": first["next_cursor"]}
        )
        assert response.status_code == 400, params


async def test_trace_order_newest_first_is_exact_for_traces_older_than_the_first_window(running: Any) -> None:
    """The newest page is looked for in the last minutes first: a long trace that started 20 minutes ago and
    still has a span a minute ago must rank by its real start, below 60 short traces of the last minutes."""
    now = time.time_ns()
    batch = SpanBatch()
    resource = {
        "service.name": "svc",
        "llm_observer.organization.id": "org-a",
        "llm_observer.project.id": "web",
    }
    long_id = bytes([0xAA]) * 16
    add_span(
        batch,
        dict(GENAI_ATTRIBUTES),
        resource=resource,
        trace_id=long_id,
        name="agent run",
        span_id=b"\x01" * 8,
        start=now - 20 * 60 * 10**9,
        end=now - 30 * 10**9,
    )
    add_span(
        batch,
        dict(GENAI_ATTRIBUTES),
        resource=resource,
        trace_id=long_id,
        name="late step",
        span_id=b"\x02" * 8,
        parent_span_id=b"\x01" * 8,
        start=now - 60 * 10**9,
        end=now - 50 * 10**9,
    )
    shorts = []
    for i in range(60):
        trace_id = bytes([0xBB, i]) + bytes(14)
        shorts.append((now - 3 * 60 * 10**9 + i * 10**9, trace_id.hex()))
        add_span(
            batch,
            dict(GENAI_ATTRIBUTES),
            resource=resource,
            trace_id=trace_id,
            name="chat",
            span_id=bytes([3, i]) + bytes(6),
            start=shorts[-1][0],
            end=shorts[-1][0] + 10**6,
        )
    batch.origin = "test:straddle"
    await running.exporter.send(batch)

    planted = expected_traces(running.planted, "org-a")
    want = [tid for _, tid in sorted(shorts, reverse=True)] + [long_id.hex()]
    want += sorted(planted, key=lambda tid: (planted[tid]["start"], tid), reverse=True)
    for limit in (50, 7):
        got = await list_all(running.http, KEY_A, limit=limit)
        assert [t["trace_id"] for t in got] == want, limit
    long_trace = next(t for t in got if t["trace_id"] == long_id.hex())
    assert long_trace["span_count"] == 2
    assert long_trace["start_time"] < next(t for t in got if t["trace_id"] == shorts[0][1])["start_time"]
