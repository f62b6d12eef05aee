"""Storage's read API against a real chDB store: typed rows, tenant confinement, cursors, no lock of its own."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from llm_observer.kernel.batch import Event, Link, SpanBatch
from llm_observer.storage.clickhouse import schema
from llm_observer.storage.clickhouse.arrow import to_arrow
from llm_observer.storage.clickhouse.migrate import ensure_schema
from llm_observer.storage.clickhouse.reads import (
    CallCosts,
    CallStats,
    InvalidArgument,
    MetricsSummary,
    ServiceOperation,
    SpanEvent,
    SpanFilter,
    SpanLink,
    SpanRow,
    Tenant,
    TraceIdQuery,
    TracePage,
    TraceQuery,
    TraceStore,
    TraceSummary,
    decode_cursor,
    encode_cursor,
    normalize_trace_id,
)
from tests.support import add_span
from tests.support.span_store import span_store

HOUR = 3600 * 10**9
BASE = (time.time_ns() - 2 * HOUR) // HOUR * HOUR  # two hours ago, on the hour
ALL = Tenant(organization_id=None, project_ids=None)
ACME = Tenant(organization_id="acme", project_ids=None)
WINDOW = (BASE - HOUR, BASE + 2 * HOUR)

TRACE_A = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
TRACE_B = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
TRACE_OTHER = bytes.fromhex("11111111111111111111111111111111")
PROMPT = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Hi there"}]}])


def _resource(org: str) -> dict[str, Any]:
    return {"service.name": "shop", "llm_observer.organization.id": org, "llm_observer.project.id": "web"}


def _planted() -> SpanBatch:
    """Trace A (acme): a root and two model calls, one failed; trace B (acme): one call; a trace of globex."""
    batch = SpanBatch()
    acme, globex = _resource("acme"), _resource("globex")
    root = b"\x00" * 7 + b"\x01"
    add_span(
        batch,
        {"user.id": "u1"},
        resource=acme,
        trace_id=TRACE_A,
        span_id=root,
        name="handle",
        kind=2,
        start=BASE,
        end=BASE + 900_000_000,
        status_code=1,
    )
    add_span(
        batch,
        {
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.provider.name": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 20,
            "llm_observer.cost.usd": 0.5,
            "llm_observer.cost.input_usd": 0.3,
            "llm_observer.cost.output_usd": 0.2,
            "gen_ai.input.messages": PROMPT,
        },
        resource=acme,
        trace_id=TRACE_A,
        span_id=b"\x00" * 7 + b"\x02",
        parent_span_id=root,
        start=BASE + 100_000_000,
        end=BASE + 400_000_000,
        status_code=1,
        events=[Event(BASE + 200_000_000, "gen_ai.choice", {"index": 0})],
        links=[Link(TRACE_B, b"\x00" * 7 + b"\x09", "", {})],
    )
    add_span(
        batch,
        {
            "gen_ai.request.model": "claude-sonnet-4",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.usage.input_tokens": 50,
            "llm_observer.cost.usd": 0.25,
        },
        resource=acme,
        trace_id=TRACE_A,
        span_id=b"\x00" * 7 + b"\x03",
        parent_span_id=root,
        start=BASE + 500_000_000,
        end=BASE + 600_000_000,
        status_code=2,
        status_message="rate limited",
    )
    add_span(
        batch,
        {"gen_ai.request.model": "gpt-4o", "llm_observer.cost.usd": 0.1},
        resource=acme,
        trace_id=TRACE_B,
        span_id=b"\x00" * 7 + b"\x09",
        start=BASE + HOUR,
        end=BASE + HOUR + 200_000_000,
    )
    add_span(
        batch,
        {"gen_ai.request.model": "gpt-4o"},
        resource=globex,
        trace_id=TRACE_OTHER,
        span_id=b"\x00" * 7 + b"\x0a",
        start=BASE + 10,
        end=BASE + 20,
    )
    return batch


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TraceStore]:
    with span_store(tmp_path_factory.mktemp("reads"), _planted()) as client:
        yield TraceStore(client, "otel")


def test_reads_get_trace_returns_typed_spans(store: TraceStore) -> None:
    spans = store.get_trace(ACME, TRACE_A.hex().upper())
    assert [type(span) for span in spans] == [SpanRow] * 3
    root, call, failed = spans  # ordered by start
    assert (root.name, root.kind, root.parent_span_id, root.status) == ("handle", "Server", "", "Ok")
    assert root.start_ns == BASE and root.end_ns == BASE + 900_000_000
    assert (call.parent_span_id, call.request_model, call.provider) == (root.span_id, "gpt-4o", "openai")
    assert (call.input_tokens, call.output_tokens, call.cost_usd) == (100, 20, 0.5)
    assert call.input_text == "user: Hi there" and call.output_text == ""
    assert call.events == (SpanEvent(BASE + 200_000_000, "gen_ai.choice", {"index": "0"}),)
    assert call.links == (SpanLink(TRACE_B.hex(), "0000000000000009"),)
    assert call.resource["llm_observer.organization.id"] == "acme"
    assert (failed.status, failed.status_message) == ("Error", "rate limited")
    assert store.get_trace(Tenant("globex", None), TRACE_A.hex()) == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        call.name = "changed"  # type: ignore[misc]


def test_reads_search_traces_pages_typed_summaries(store: TraceStore) -> None:
    first = store.search_traces(ACME, TraceQuery(*WINDOW, limit=1))
    assert isinstance(first, TracePage) and first.next_cursor is not None
    (newest,) = first.traces
    assert isinstance(newest, TraceSummary) and newest.trace_id == TRACE_B.hex()
    second = store.search_traces(ACME, TraceQuery(*WINDOW, limit=1, cursor=first.next_cursor))
    (trace,) = second.traces
    assert second.next_cursor is None
    assert (trace.trace_id, trace.root_span_name, trace.service_name) == (TRACE_A.hex(), "handle", "shop")
    assert (trace.span_count, trace.error_count, trace.status) == (3, 1, "Error")
    assert (trace.input_tokens, trace.output_tokens, trace.cost_usd) == (150, 20, 0.75)
    assert trace.models == ("claude-sonnet-4", "gpt-4o")
    assert trace.duration_ns == 900_000_000
    errors = store.search_traces(ACME, TraceQuery(*WINDOW, status="error"))
    assert [t.trace_id for t in errors.traces] == [TRACE_A.hex()]
    everyone = store.search_traces(ALL, TraceQuery(*WINDOW))
    assert [t.trace_id for t in everyone.traces] == [TRACE_B.hex(), TRACE_OTHER.hex(), TRACE_A.hex()]
    with pytest.raises(InvalidArgument):
        store.search_traces(ACME, TraceQuery(*WINDOW, status="weird"))


def test_reads_metrics_summary_and_cost_breakdown(store: TraceStore) -> None:
    summary = store.metrics_summary(ACME, *WINDOW, group_by="provider", step_seconds=3600)
    assert isinstance(summary, MetricsSummary) and summary.group_by == "provider"
    total = summary.total
    assert (total.request_count, total.error_count, total.error_rate) == (3, 1, 1 / 3)
    assert (total.input_tokens, total.cost_usd) == (150, pytest.approx(0.85))
    assert total.latency_p50_ms == pytest.approx(200.0)
    assert [(g.key, g.stats.request_count) for g in summary.groups] == [
        ("openai", 1),
        ("anthropic", 1),
        ("", 1),
    ]
    assert summary.series is not None
    assert [(p.time_ns, p.stats.request_count) for p in summary.series] == [(BASE, 2), (BASE + HOUR, 1)]
    assert store.metrics_summary(ACME, *WINDOW).series is None

    cost = store.cost_breakdown(ACME, *WINDOW, group_by="model")
    assert [(g.key, g.costs.request_count) for g in cost.groups] == [("gpt-4o", 2), ("claude-sonnet-4", 1)]
    assert cost.total.input_cost_usd == pytest.approx(0.3) and cost.total.cost_usd == pytest.approx(0.85)
    with pytest.raises(InvalidArgument):
        store.cost_breakdown(ACME, *WINDOW, group_by="color")


def test_reads_services_operations_and_trace_ids(store: TraceStore) -> None:
    assert store.services(ACME) == ("shop",)
    assert ServiceOperation("handle", "Server") in store.operations(ACME, "shop")
    assert store.operations(ACME, "shop", "Server") == (ServiceOperation("handle", "Server"),)
    assert store.operations(ACME, "nope") == ()
    found = store.find_trace_ids(ACME, TraceIdQuery(*WINDOW, spans=SpanFilter(model="gpt-4o")))
    assert found == (TRACE_B.hex(), TRACE_A.hex())
    assert store.find_trace_ids(ACME, TraceIdQuery(*WINDOW, error=True)) == (TRACE_A.hex(),)
    since = store.spans_since(ACME, BASE + HOUR, SpanFilter())
    assert [span.trace_id for span in since] == [TRACE_B.hex()]


def test_reads_a_database_nobody_wrote_answers_empty_typed_results(store: TraceStore) -> None:
    # chDB opens one path per process, so the fresh store is a database the schema was never created in.
    fresh = TraceStore(store.client, "fresh")
    assert fresh.search_traces(ALL, TraceQuery(*WINDOW)) == TracePage((), None)
    assert fresh.get_trace(ALL, "ab" * 16) == ()
    assert fresh.metrics_summary(ALL, *WINDOW) == MetricsSummary("model", CallStats(), ())
    assert fresh.cost_breakdown(ALL, *WINDOW).total == CallCosts()
    assert fresh.services(ALL) == ()


def test_reads_trace_ids_and_cursors() -> None:
    assert normalize_trace_id(" 0AF7651916CD43DD8448EB211C80319C ") == TRACE_A.hex()
    assert normalize_trace_id("8448eb211c80319c") == "0" * 16 + "8448eb211c80319c"
    for bad in ("xyz", "0af7651916cd43dd8448eb211c80319", ""):
        with pytest.raises(InvalidArgument):
            normalize_trace_id(bad)
    assert decode_cursor(encode_cursor(123, TRACE_A.hex())) == (123, TRACE_A.hex())
    for bad in ("nope", encode_cursor(1, "not-an-id"), "W10"):
        with pytest.raises(InvalidArgument):
            decode_cursor(bad)


class _ConcurrentServer:
    """A ClickHouse server stand-in: each query waits until another one is running at the same time."""

    endpoint = "http://clickhouse:8123"

    def __init__(self) -> None:
        self.together = threading.Barrier(2, timeout=5)

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        self.together.wait()
        return []


def test_reads_take_no_lock_of_their_own() -> None:
    """A server serves concurrent queries; serialising them in the store would deadlock this stand-in."""
    client: Any = _ConcurrentServer()
    store = TraceStore(client, "otel")
    failures: list[BaseException] = []

    def read() -> None:
        try:
            assert store.services(ALL) == ()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not failures


# Values that ClickHouse's escaped text format would read as escapes, or refuse, were they passed as they are.
LITERALS = (
    "DOMAIN\\alice",
    "ends with \\",
    "\\",
    "\\N",
    "tab\there",
    "line\nbreak",
    "nul\x00byte",
    "quote ' and \\' and \\\\ too",
    "\\x41\\u0041",
)


def test_reads_filter_values_match_literally(store: TraceStore) -> None:
    client = store.client
    ensure_schema(client, "literal", ttl_days=30)
    batch = SpanBatch()
    trace_ids = [bytes([n + 1]) * 16 for n in range(len(LITERALS))]
    for n, value in enumerate(LITERALS):
        add_span(
            batch,
            {
                "user.id": value,
                "gen_ai.request.model": value,
                "gen_ai.conversation.id": value,
                "path": value,
                value: "key",
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": f"msg {value}"}]}]
                ),
            },
            resource={**_resource("acme"), "service.name": value},
            trace_id=trace_ids[n],
            span_id=bytes([n + 1]) * 8,
            name=value,
            start=BASE + n * 1000,
            end=BASE + n * 1000 + 10,
        )
    client.insert_arrow(f"`literal`.{schema.TRACES_TABLE}", schema.INSERT_COLUMNS, to_arrow(batch))
    literal = TraceStore(client, "literal")
    for n, value in enumerate(LITERALS):
        want = (trace_ids[n].hex(),)
        for spans in (
            SpanFilter(service=value),
            SpanFilter(model=value),
            SpanFilter(span_name=value),
            SpanFilter(user_id=value),
            SpanFilter(conversation_id=value),
            SpanFilter(attributes=(("path", value),)),
            SpanFilter(attributes=((value, "key"),)),
        ):
            found = literal.find_trace_ids(ACME, TraceIdQuery(*WINDOW, spans=spans))
            assert found == want, (value, spans)
            page = literal.search_traces(ACME, TraceQuery(*WINDOW, spans=spans))
            assert tuple(t.trace_id for t in page.traces) == want, (value, spans)
        assert literal.operations(ACME, value) == (ServiceOperation(value, "Client"),)
        # Text in a prompt is found as it reads, although the attribute holds it JSON-escaped.
        found = literal.find_trace_ids(ACME, TraceIdQuery(*WINDOW, spans=SpanFilter(text=f"MSG {value}")))
        assert want[0] in found, value  # containment: "msg \\" is also in "msg \\N"
        summary = literal.metrics_summary(ACME, *WINDOW, spans=SpanFilter(model=value))
        assert summary.total.request_count == 1
        keys = literal.span_keys_since(ACME, BASE, SpanFilter(user_id=value))
        assert [(k[0], k[1]) for k in keys] == [(trace_ids[n].hex(), (bytes([n + 1]) * 8).hex())]
        (span,) = literal.spans_by_keys(ACME, BASE, [(k[0], k[1]) for k in keys])
        assert span.attributes["path"] == value
    # Text search finds the value as text, not as a pattern; a doubled backslash is another value.
    assert literal.find_trace_ids(ACME, TraceIdQuery(*WINDOW, spans=SpanFilter(text="DOMAIN\\alice"))) == (
        trace_ids[0].hex(),
    )
    for absent in ("DOMAIN\\\\alice", "DOMAIN\alice", "\\\\", "tab\\there"):
        assert literal.find_trace_ids(ACME, TraceIdQuery(*WINDOW, spans=SpanFilter(user_id=absent))) == ()


def test_reads_out_of_range_numbers_are_invalid_arguments(store: TraceStore) -> None:
    for query in (
        TraceQuery(*WINDOW, min_duration_ms=float("inf")),
        TraceQuery(*WINDOW, max_duration_ms=float("nan")),
        TraceQuery(*WINDOW, min_duration_ms=1e300),
        TraceQuery(*WINDOW, min_cost_usd=float("nan")),
        TraceQuery(2**63, 2**64),
        TraceQuery(*WINDOW, limit=2**40),
    ):
        with pytest.raises(InvalidArgument):
            store.search_traces(ACME, query)
    with pytest.raises(InvalidArgument):
        store.metrics_summary(ACME, *WINDOW, step_seconds=2**33)
    with pytest.raises(InvalidArgument):
        store.find_trace_ids(ACME, TraceIdQuery(*WINDOW, min_duration_ns=-1))
    with pytest.raises(InvalidArgument):
        decode_cursor(encode_cursor(2**70, TRACE_A.hex()))
    with pytest.raises(InvalidArgument):
        decode_cursor(encode_cursor(True, TRACE_A.hex()))
    with pytest.raises(InvalidArgument):
        decode_cursor("W" * 10 + "Ww" * 5000)
