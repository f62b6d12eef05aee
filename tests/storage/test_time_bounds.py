"""Time ranges are matched to the nanosecond, whatever whole seconds and minutes the primary index is given to
prune with: spans on either side of a second's and a minute's edge, ranges one nanosecond wide, and bounds past
what a DateTime holds."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from llm_observer.kernel.batch import SpanBatch
from llm_observer.storage.clickhouse.reads import Tenant, TraceQuery, TraceStore
from tests.support import add_span
from tests.support.span_store import span_store

SECOND = 10**9
ACME = Tenant(organization_id="acme", project_ids=None)
RESOURCE = {"service.name": "shop", "llm_observer.organization.id": "acme", "llm_observer.project.id": "web"}
EDGE = (time.time_ns() // SECOND - 60) * SECOND  # a whole second, a minute ago
MINUTE = (time.time_ns() // (60 * SECOND) - 3) * 60 * SECOND  # a whole minute, before EDGE
STARTS = {
    "before": EDGE - 1,  # the last nanosecond of the second before
    "at": EDGE,
    "after": EDGE + SECOND - 1,  # the last nanosecond of the second that starts at EDGE
    "before the minute": MINUTE - 1,
    "at the minute": MINUTE,
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TraceStore]:
    batch = SpanBatch()
    for n, start in enumerate(STARTS.values()):
        add_span(batch, resource=RESOURCE, trace_id=(n + 1).to_bytes(16, "big"), start=start, end=start + 5)
    with span_store(tmp_path_factory.mktemp("bounds"), batch) as client:
        yield TraceStore(client, "otel")


def _found(store: TraceStore, start_ns: int, end_ns: int) -> set[str]:
    page = store.search_traces(ACME, TraceQuery(start_ns=start_ns, end_ns=end_ns, limit=10))
    names = {(n + 1).to_bytes(16, "big").hex(): name for n, name in enumerate(STARTS)}
    return {names[t.trace_id] for t in page.traces}


@pytest.mark.parametrize("name", list(STARTS))
def test_time_bounds_one_nanosecond_range_finds_exactly_its_span(store: TraceStore, name: str) -> None:
    start = STARTS[name]
    assert _found(store, start, start + 1) == {name}


def test_time_bounds_half_open_at_both_edges(store: TraceStore) -> None:
    assert _found(store, EDGE, EDGE + SECOND - 1) == {"at"}
    assert _found(store, EDGE - 1, EDGE) == {"before"}
    assert _found(store, MINUTE - 1, MINUTE) == {"before the minute"}
    assert _found(store, MINUTE, MINUTE + 60 * SECOND) == {"at the minute"}
    assert _found(store, MINUTE - 60 * SECOND, MINUTE + 1) == {"before the minute", "at the minute"}
    assert _found(store, EDGE + 1, EDGE + SECOND) == {"after"}


def test_time_bounds_past_what_a_datetime_holds(store: TraceStore) -> None:
    everything = set(STARTS)
    assert _found(store, 0, 2**63 - 1) == everything  # ends in 2262
    assert _found(store, -(2**62), EDGE + SECOND) == everything  # starts before 1970
    assert _found(store, MINUTE - SECOND, 5 * 10**18) == everything  # ends in 2128
