"""The newest-first trace list over ranges whose newest spans lie well before the range's end (an idle tenant,
a gap): the widening windows must still give exactly the newest traces, each with all its spans."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from llm_observer.kernel.batch import SpanBatch
from llm_observer.storage.clickhouse.reads import Tenant, TraceQuery, TraceStore
from tests.support import add_span
from tests.support.span_store import span_store

SECOND = 10**9
HOUR = 3600 * SECOND
NOW = time.time_ns()
ACME = Tenant(organization_id="acme", project_ids=None)
RESOURCE = {"service.name": "shop", "llm_observer.organization.id": "acme", "llm_observer.project.id": "web"}
OTHER = {"service.name": "shop", "llm_observer.organization.id": "globex", "llm_observer.project.id": "web"}


def _planted() -> tuple[SpanBatch, dict[str, int]]:
    """Acme's traces end three hours ago (one a minute, two spans each); one long trace starts eight hours ago
    and has a span in the last of them; globex writes up to now, and once into acme's newest trace. Returns the batch and each acme trace's
    start."""
    batch = SpanBatch()
    starts: dict[str, int] = {}
    for n in range(120):
        trace = (n + 1).to_bytes(16, "big")
        start = NOW - 3 * HOUR - n * 60 * SECOND
        starts[trace.hex()] = start
        add_span(batch, resource=RESOURCE, trace_id=trace, name="handle", start=start, end=start + SECOND)
        add_span(batch, resource=RESOURCE, trace_id=trace, start=start + 10, end=start + SECOND // 2)
    long_trace = (999).to_bytes(16, "big")
    starts[long_trace.hex()] = NOW - 8 * HOUR
    add_span(
        batch,
        resource=RESOURCE,
        trace_id=long_trace,
        name="handle",
        start=NOW - 8 * HOUR,
        end=NOW - 8 * HOUR + 1,
    )
    last = NOW - 3 * HOUR - 30 * SECOND  # among the newest acme traces
    add_span(batch, resource=RESOURCE, trace_id=long_trace, start=last, end=last + SECOND)
    # Globex writes a span, hours before everything of acme's, into acme's newest trace: acme's list must not
    # take that trace for one that began before the window.
    early = NOW - 20 * HOUR
    add_span(batch, resource=OTHER, trace_id=(1).to_bytes(16, "big"), start=early, end=early + 1)
    for n in range(50):
        start = NOW - n * 10 * SECOND
        add_span(batch, resource=OTHER, trace_id=(5000 + n).to_bytes(16, "big"), start=start, end=start + 1)
    return batch, starts


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TraceStore, dict[str, int]]]:
    batch, starts = _planted()
    with span_store(tmp_path_factory.mktemp("windows"), batch) as client:
        yield TraceStore(client, "otel"), starts


@pytest.mark.parametrize("limit", [1, 7, 50])
def test_search_windows_newest_page_after_a_gap(
    planted: tuple[TraceStore, dict[str, int]], limit: int
) -> None:
    store, starts = planted
    newest = sorted(starts, key=lambda tid: (-starts[tid], tid))
    page = store.search_traces(ACME, TraceQuery(start_ns=NOW - 24 * HOUR, end_ns=NOW + SECOND, limit=limit))
    assert [t.trace_id for t in page.traces] == newest[:limit]
    assert all(t.organization_id == "acme" for t in page.traces)
    # Every trace is whole: two spans each, the long one too (its first span is hours before the window).
    assert {t.span_count for t in page.traces} == {2}


def test_search_windows_pages_through_everything(planted: tuple[TraceStore, dict[str, int]]) -> None:
    store, starts = planted
    seen: list[str] = []
    cursor = None
    while True:
        page = store.search_traces(
            ACME, TraceQuery(start_ns=NOW - 24 * HOUR, end_ns=NOW + SECOND, limit=25, cursor=cursor)
        )
        seen.extend(t.trace_id for t in page.traces)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(starts, key=lambda tid: (-starts[tid], tid))


def test_search_windows_newest_below_a_gap(planted: tuple[TraceStore, dict[str, int]]) -> None:
    """Below a gap, the search finds a time with no span of the tenant's above it and one in the first window
    under it; globex's spans in the gap are not acme's."""
    store, _ = planted
    window = TraceStore._FIRST_WINDOW_NS
    newest = NOW - 3 * HOUR + 10  # acme's newest span starts here (the newest trace's second span)
    found = store._newest_below(ACME, NOW - 24 * HOUR, NOW + SECOND)
    assert found is not None
    assert newest < found <= newest + window
    assert not store._has_spans(ACME, found, NOW + SECOND)
    assert store._has_spans(ACME, found - window, found)


def test_search_windows_newest_below_none(planted: tuple[TraceStore, dict[str, int]]) -> None:
    store, _ = planted
    assert store._newest_below(ACME, NOW - 2 * HOUR, NOW + SECOND) is None
    assert store._newest_below(ACME, NOW - 30 * HOUR, NOW - 25 * HOUR) is None
