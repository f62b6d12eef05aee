"""Property tests over every query parameter of the REST, Jaeger-compatible and gRPC APIs: whatever a client
sends, the answer is a success or a client error with a message (gRPC: a status other than INTERNAL and
UNKNOWN), never a server error; and the service keeps answering good queries afterwards.

Hypothesis drives a blocking client from a worker thread while the service runs in the test's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import grpc
import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
from llm_observer.query.v1 import llm_observer_query_v1_pb2_grpc as pb_grpc
from llm_observer.storage.clickhouse.reads import encode_cursor

KEY = "key-for-org-a"
AUTH = {"Authorization": f"Bearer {KEY}"}

SETTINGS = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- what clients send -----------------------------------------------------------------------------------

# Query strings carry UTF-8: any character but a lone surrogate (which no client can encode).
_CHARS = st.characters(exclude_categories=["Cs"])
_TRICKY = st.sampled_from(
    [
        "",
        " ",
        "\\",
        "\\N",
        "DOMAIN\\alice",
        "a\\",
        "\t",
        "\n",
        "\x00",
        "'",
        '"',
        "%",
        "_",
        "*",
        "' OR 1=1 --",
        "{p0:String}",
        "inf",
        "-Infinity",
        "NaN",
        "1e309",
        "-0",
        str(2**63),
        str(-(2**63) - 1),
        str(10**30),
        "0x10",
        "١٢٣",
        "a" * 5000,
        "gpt-4o",
        "chatbot",
        "org-a",
        "web",
    ]
)
TEXT = st.one_of(_TRICKY, st.text(_CHARS, max_size=40))
INTS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**31 - 1, 2**32, 2**63 - 1, 2**63, -(2**63), 10**30]),
)
NUMBER = st.one_of(
    INTS.map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    TEXT,
)


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


TIMES = st.one_of(
    st.datetimes(timezones=st.just(UTC)).map(_rfc3339),
    st.datetimes(timezones=st.just(UTC), min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1)).map(
        _rfc3339
    ),
    st.datetimes().map(datetime.isoformat),  # no zone
    st.builds(
        lambda moment, minutes: (
            moment.replace(tzinfo=UTC).astimezone(timezone(timedelta(minutes=minutes))).isoformat()
        ),
        st.datetimes(),
        st.integers(-1439, 1439),
    ),
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "1900-01-01T00:00:00Z",
            "2262-04-11T23:47:16.854775807Z",
            "2262-04-11T23:47:16.854775808Z",
            "2026-01-01T00:00:00.1234567890123Z",
            "2026-01-01T00:00:00z",
            "2026-13-01T00:00:00Z",
        ]
    ),
    TEXT,
)
CURSORS = st.one_of(
    TEXT,
    st.builds(encode_cursor, INTS, st.one_of(st.just("a" * 32), TEXT)),
    st.binary(max_size=64).map(lambda raw: base64.urlsafe_b64encode(raw).decode()),
)
DURATIONS = st.one_of(
    TEXT,
    st.builds(
        lambda number, unit: f"{number}{unit}",
        st.one_of(INTS.map(abs), st.floats(min_value=0, allow_infinity=True, allow_nan=False)),
        st.sampled_from(["ns", "us", "µs", "ms", "s", "m", "h", "d", ""]),
    ),
)
TRACE_IDS = st.one_of(TEXT, st.text("0123456789abcdefABCDEF", min_size=16, max_size=32))


def _logfmt(pairs: list[tuple[str, str]], quote: bool) -> str:
    return " ".join(f"{k}={json.dumps(v) if quote else v}" for k, v in pairs)


TAGS = st.one_of(
    TEXT,
    st.dictionaries(TEXT, st.one_of(TEXT, INTS, st.booleans(), st.none()), max_size=3).map(json.dumps),
    st.builds(_logfmt, st.lists(st.tuples(TEXT, TEXT), max_size=3), st.booleans()),
    st.sampled_from(['a="\\q"', 'a="\\', 'a=1 "x"', "{" * 3000, '{"a":' + "[" * 3000, "[1]", "null"]),
)
HOSTILE = st.one_of(TEXT, NUMBER, TIMES, CURSORS, TAGS, DURATIONS)


def params(**strategies: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Any subset of the named parameters, each drawn from its strategy."""
    return st.fixed_dictionaries({}, optional=strategies)


def segment(value: str) -> str:
    """``value`` as one path segment."""
    return urllib.parse.quote(value, safe="") or "%20"


NOW = datetime.now(UTC)
RECENT = st.integers(-48 * 3600, 3600).map(lambda s: _rfc3339(NOW + timedelta(seconds=s)))
RECENT_US = st.integers(-48 * 3600, 3600).map(lambda s: str(int((NOW.timestamp() + s) * 1e6)))


def good(*values: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


def _queries(
    specs: Mapping[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]],
    anything: st.SearchStrategy[Any],
) -> st.SearchStrategy[dict[str, Any]]:
    """Some parameters with values the API accepts, and at most one given a hostile value (its own kind of
    bad value, or ``anything``) — so that a bad value meets the code past the checks of the others. Now and
    then every parameter is drawn hostile at once."""
    names = sorted(specs)
    valid = params(**{name: spec[0] for name, spec in specs.items()})
    one_bad = st.one_of(
        st.none(),
        st.sampled_from(names).flatmap(
            lambda name: st.tuples(st.just(name), st.one_of(specs[name][1], anything))
        ),
    )
    mixed = st.builds(lambda query, bad: {**query, **({bad[0]: bad[1]} if bad else {})}, valid, one_bad)
    wild = params(**{name: st.one_of(spec[1], anything) for name, spec in specs.items()})
    return st.one_of(mixed, mixed, mixed, wild)


def endpoint(
    path: str | st.SearchStrategy[str], **specs: tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]
) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """``(path, query)`` for an HTTP route; a hostile value may be anything a client can send."""
    return st.tuples(st.just(path) if isinstance(path, str) else path, _queries(specs, HOSTILE))


SCOPE = {
    "organization_id": (good("org-a", ""), TEXT),
    "project_id": (good("web", "api", ""), TEXT),
}
WINDOW = {"start_time": (RECENT, TIMES), "end_time": (RECENT, TIMES)}
SPAN_FILTER = {
    "service": (good("chatbot", "agent-svc"), TEXT),
    "model": (good("gpt-4o", "claude-sonnet-4"), TEXT),
    "provider": (good("openai", "anthropic"), TEXT),
    "operation": (good("chat"), TEXT),
    "name": (good("chat gpt-4o", "chatbot request"), TEXT),
    "user_id": (good("user-1", "DOMAIN\\alice"), TEXT),
    "team_id": (good("team-web"), TEXT),
    "session_id": (good("s-1"), TEXT),
    "q": (good("question", "answer 3"), TEXT),
    "attribute": (
        good(["customer.tier=gold"], ["user.id=user-1", "customer.tier=gold"]),
        st.lists(st.one_of(TEXT, st.builds(lambda k, v: f"{k}={v}", TEXT, TEXT)), max_size=3),
    ),
}


# --- checking the answers ------------------------------------------------------------------------------


def _message(body: Any) -> str:
    """The error message of any of the APIs' error shapes (REST, Jaeger legacy, Jaeger api_v3)."""
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            return str(error.get("message") or "")
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return str(errors[0].get("msg") or "")
    return ""


def check(response: httpx.Response, request: object) -> None:
    assert response.status_code < 500, (request, response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert _message(response.json()), (request, response.status_code, response.text[:500])
    elif response.headers.get("content-type", "").startswith("application/json"):
        response.json()


def run_blocking(test: Callable[[], None]) -> Any:
    """Run a Hypothesis test in a worker thread, leaving the event loop free to serve it."""
    return asyncio.to_thread(test)


async def _still_answers(running: Any) -> None:
    listed = await running.http.get("/api/v1/traces", headers=AUTH, params={"limit": 1000})
    assert listed.status_code == 200 and len(listed.json()["traces"]) == 18


# --- REST ----------------------------------------------------------------------------------------------

REST_CALLS = st.one_of(
    endpoint(
        "/api/v1/traces",
        **SCOPE,
        **WINDOW,
        **SPAN_FILTER,
        status=(good("ok", "error", "unset", "ERROR"), TEXT),
        min_duration_ms=(good("0", "100", "250.5"), NUMBER),
        max_duration_ms=(good("1000", "99999"), NUMBER),
        min_cost=(good("0", "0.01"), NUMBER),
        limit=(good("1", "5", "1000"), NUMBER),
        cursor=(st.builds(encode_cursor, st.integers(0, 2**62), st.just("f" * 32)), CURSORS),
    ),
    endpoint(
        st.one_of(TRACE_IDS, st.just("0" * 32)).map(lambda tid: f"/api/v1/traces/{segment(tid)}"),
        **SCOPE,
    ),
    endpoint(
        "/api/v1/metrics/summary",
        **SCOPE,
        **WINDOW,
        **SPAN_FILTER,
        group_by=(good("model", "provider", "project", "team", "user", "operation", "service"), TEXT),
        step_seconds=(good("60", "3600", "86400"), NUMBER),
    ),
    endpoint(
        "/api/v1/metrics/cost",
        **SCOPE,
        **WINDOW,
        **SPAN_FILTER,
        group_by=(good("model", "provider", "user"), TEXT),
    ),
    endpoint(
        "/api/v1/search/semantic",
        **SCOPE,
        **WINDOW,
        q=(good("reset my password", "question"), TEXT),
        k=(good("1", "10", "1000"), NUMBER),
        model=(good("gpt-4o"), TEXT),
        kind=(good("prompt", "output", "all"), TEXT),
    ),
    endpoint("/api/v1/tail", **SCOPE, **SPAN_FILTER),
)


async def test_query_properties_rest_parameters_never_fail_the_server(running: Any) -> None:
    base = str(running.http.base_url)
    with httpx.Client(base_url=base, timeout=60, headers=AUTH) as client:

        @SETTINGS
        @given(REST_CALLS)
        @example(("/api/v1/traces", {"user_id": "DOMAIN\\alice"}))
        @example(("/api/v1/traces", {"service": "\\"}))
        @example(("/api/v1/traces", {"min_duration_ms": "inf", "max_duration_ms": "NaN"}))
        @example(("/api/v1/traces", {"min_cost": "1e309"}))
        @example(("/api/v1/traces", {"end_time": "0001-01-01T00:00:00Z"}))
        @example(("/api/v1/metrics/summary", {"step_seconds": str(2**40)}))
        @example(("/api/v1/tail", {"attribute": "k=\\"}))
        def rest(call: tuple[str, dict[str, Any]]) -> None:
            path, query = call
            if path == "/api/v1/tail":
                with client.stream("GET", path, params=query) as response:
                    if response.status_code >= 400:
                        response.read()
                    else:
                        assert response.status_code == 200
                        return
            else:
                response = client.get(path, params=query)
            check(response, call)

        @SETTINGS
        @given(
            st.one_of(
                st.fixed_dictionaries({}, optional={"username": TEXT, "password": TEXT, "extra": TEXT}),
                st.one_of(TEXT, INTS, st.lists(TEXT, max_size=2), st.none()),
            ),
            st.booleans(),
        )
        def login(body: Any, as_text: bool) -> None:
            if as_text:
                response = client.post("/api/v1/auth/login", content=json.dumps(body)[:-1])
            else:
                response = client.post("/api/v1/auth/login", json=body)
            check(response, body)

        await run_blocking(rest)
        await run_blocking(login)
    await _still_answers(running)


# --- Jaeger ------------------------------------------------------------------------------------------

TRACE_PATHS = st.one_of(TRACE_IDS, st.just("0" * 32), st.just("0" * 16)).map(segment)
JAEGER_CALLS = st.one_of(
    endpoint("/jaeger/api/services", organization_id=SCOPE["organization_id"]),
    endpoint(
        st.one_of(TEXT, st.just("chatbot")).map(lambda s: f"/jaeger/api/services/{segment(s)}/operations"),
        organization_id=SCOPE["organization_id"],
    ),
    endpoint(
        "/jaeger/api/operations",
        service=(good("chatbot"), TEXT),
        spanKind=(good("client", "server", "Internal"), TEXT),
    ),
    endpoint(
        "/jaeger/api/traces",
        service=(good("chatbot", "agent-svc"), TEXT),
        operation=(good("chat gpt-4o"), TEXT),
        tags=(
            good(
                '{"customer.tier":"gold"}', "error=true", 'user.id="user-1" span.kind=client', "user.id=a\\b"
            ),
            TAGS,
        ),
        limit=(good("1", "20", "1500"), NUMBER),
        minDuration=(good("1ms", "1.5s", "250us"), DURATIONS),
        maxDuration=(good("10s", "1h"), DURATIONS),
        start=(RECENT_US, NUMBER),
        end=(RECENT_US, NUMBER),
        lookback=(good("1h", "2d", "custom", "48h"), DURATIONS),
        organization_id=SCOPE["organization_id"],
    ),
    endpoint(
        TRACE_PATHS.map(lambda tid: f"/jaeger/api/traces/{tid}"), organization_id=SCOPE["organization_id"]
    ),
    endpoint("/jaeger/api/v3/services", organization_id=SCOPE["organization_id"]),
    endpoint(
        "/jaeger/api/v3/operations",
        service=(good("chatbot"), TEXT),
        span_kind=(good("client", "server"), TEXT),
    ),
    endpoint(
        "/jaeger/api/v3/traces",
        **{
            "query.service_name": (good("chatbot"), TEXT),
            "query.operation_name": (good("chat gpt-4o"), TEXT),
            "query.attributes": (good('{"customer.tier":"gold"}', "customer.tier=gold"), TAGS),
            "query.attributes[user.id]": (good("user-1"), TEXT),
            "query.start_time_min": (RECENT, TIMES),
            "query.start_time_max": (RECENT, TIMES),
            "query.duration_min": (good("1ms"), DURATIONS),
            "query.duration_max": (good("1h"), DURATIONS),
            "query.search_depth": (good("1", "20"), NUMBER),
            "query.num_traces": (good("5"), NUMBER),
        },
    ),
    endpoint(
        TRACE_PATHS.map(lambda tid: f"/jaeger/api/v3/traces/{tid}"), organization_id=SCOPE["organization_id"]
    ),
)


async def test_query_properties_jaeger_parameters_never_fail_the_server(running: Any) -> None:
    base = str(running.http.base_url)
    with httpx.Client(base_url=base, timeout=60, headers=AUTH) as client:

        @SETTINGS
        @given(JAEGER_CALLS)
        @example(("/jaeger/api/traces", {"tags": 'user.id="DOMAIN\\alice"'}))
        @example(("/jaeger/api/traces", {"tags": "user.id=DOMAIN\\alice", "service": "\\"}))
        @example(("/jaeger/api/traces", {"start": str(10**30), "lookback": "99999999999h"}))
        @example(("/jaeger/api/v3/traces", {"query.start_time_min": "0001-01-01T00:00:00Z"}))
        def jaeger(call: tuple[str, dict[str, Any]]) -> None:
            path, query = call
            check(client.get(path, params=query), call)

        await run_blocking(jaeger)
    await _still_answers(running)


# --- gRPC --------------------------------------------------------------------------------------------

INT64 = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63)]))
INT32 = st.integers(-(2**31), 2**31 - 1)
DOUBLE = st.floats(allow_nan=True, allow_infinity=True)
# Protobuf strings are UTF-8: no lone surrogates.
PB_TEXT = st.one_of(_TRICKY, st.text(_CHARS, max_size=30))
PB_FILTER = st.builds(
    pb.SpanFilter,
    service=PB_TEXT,
    model=PB_TEXT,
    provider=PB_TEXT,
    operation=PB_TEXT,
    span_name=PB_TEXT,
    user_id=PB_TEXT,
    team_id=PB_TEXT,
    conversation_id=PB_TEXT,
    attributes=st.dictionaries(PB_TEXT, PB_TEXT, max_size=3),
    text=PB_TEXT,
)
GOOD_FILTER = st.sampled_from(
    [
        pb.SpanFilter(),
        pb.SpanFilter(service="chatbot"),
        pb.SpanFilter(model="gpt-4o", attributes={"customer.tier": "gold"}),
        pb.SpanFilter(text="question", user_id="user-1"),
    ]
)
NOW_NS = int(NOW.timestamp()) * 10**9
RECENT_NS = st.integers(NOW_NS - 48 * 3600 * 10**9, NOW_NS + 3600 * 10**9)
PB_SCOPE = {
    "organization_id": (good("org-a", ""), PB_TEXT),
    "project_id": (good("web", ""), PB_TEXT),
}
PB_WINDOW = {"start_time_unix_nano": (RECENT_NS, INT64), "end_time_unix_nano": (RECENT_NS, INT64)}


def message(
    cls: type[Any], **specs: tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]
) -> st.SearchStrategy[Any]:
    """A request message: fields the API accepts, and at most one hostile (or, now and then, all)."""
    return _queries(specs, st.nothing()).map(lambda fields: cls(**fields))


GRPC_CALLS = st.one_of(
    st.tuples(
        st.just("GetTrace"),
        message(pb.GetTraceRequest, trace_id=(good("0" * 32, "f" * 16), PB_TEXT), **PB_SCOPE),
    ),
    st.tuples(
        st.just("SearchTraces"),
        message(
            pb.SearchTracesRequest,
            **PB_SCOPE,
            **PB_WINDOW,
            filter=(GOOD_FILTER, PB_FILTER),
            status=(good("ok", "error", "unset"), PB_TEXT),
            min_duration_ms=(good(0.0, 100.0), DOUBLE),
            max_duration_ms=(good(5000.0), DOUBLE),
            min_cost_usd=(good(0.0, 0.05), DOUBLE),
            limit=(good(1, 10, 1000), INT32),
            cursor=(
                st.builds(encode_cursor, st.integers(0, 2**62), st.just("f" * 32)),
                st.one_of(PB_TEXT, st.builds(encode_cursor, INT64, st.just("a" * 32))),
            ),
        ),
    ),
    st.tuples(
        st.just("GetMetricsSummary"),
        message(
            pb.GetMetricsSummaryRequest,
            **PB_SCOPE,
            **PB_WINDOW,
            group_by=(good("model", "provider", "user"), PB_TEXT),
            filter=(GOOD_FILTER, PB_FILTER),
            step_seconds=(good(60, 3600), INT64),
        ),
    ),
    st.tuples(
        st.just("GetCostBreakdown"),
        message(
            pb.GetCostBreakdownRequest,
            **PB_SCOPE,
            **PB_WINDOW,
            group_by=(good("model", "team"), PB_TEXT),
            filter=(GOOD_FILTER, PB_FILTER),
        ),
    ),
    st.tuples(
        st.just("SemanticSearch"),
        message(
            pb.SemanticSearchRequest,
            **PB_SCOPE,
            **PB_WINDOW,
            query=(good("reset my password"), PB_TEXT),
            k=(good(1, 10), INT32),
            model=(good("gpt-4o"), PB_TEXT),
            kind=(good("prompt", "output", "all"), PB_TEXT),
        ),
    ),
    st.tuples(
        st.just("TailSpans"),
        message(pb.TailSpansRequest, **PB_SCOPE, filter=(GOOD_FILTER, PB_FILTER)),
    ),
)
SERVER_FAULTS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNIMPLEMENTED}


async def test_query_properties_grpc_requests_never_fail_the_server(running: Any) -> None:
    with grpc.insecure_channel(running.grpc_target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)  # type: ignore[no-untyped-call]
        metadata = (("authorization", f"Bearer {KEY}"),)

        @SETTINGS
        @given(GRPC_CALLS)
        @example(("SearchTraces", pb.SearchTracesRequest(filter=pb.SpanFilter(user_id="DOMAIN\\alice"))))
        @example(("SearchTraces", pb.SearchTracesRequest(min_duration_ms=float("inf"))))
        @example(("GetMetricsSummary", pb.GetMetricsSummaryRequest(step_seconds=2**40)))
        @example(("SemanticSearch", pb.SemanticSearchRequest(query="x", end_time_unix_nano=-(2**63))))
        def rpc(call: tuple[str, Any]) -> None:
            method, request = call
            try:
                if method == "TailSpans":
                    stream = stub.TailSpans(request, metadata=metadata, timeout=60)
                    # Open is enough: the tail answered (or refused) with a status of its own.
                    initial = stream.initial_metadata()
                    assert initial is not None
                    stream.cancel()
                else:
                    getattr(stub, method)(request, metadata=metadata, timeout=60)
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.CANCELLED and method == "TailSpans":
                    return
                assert code not in SERVER_FAULTS, (call, code, exc.details())
                assert exc.details(), (call, code)

        @SETTINGS
        @given(
            st.sampled_from(list(pb.DESCRIPTOR.services_by_name["QueryService"].methods_by_name)), st.binary()
        )
        def raw(method: str, payload: bytes) -> None:
            """Bytes that may not even be the request message."""
            call = channel.unary_unary(
                f"/llm_observer.query.v1.QueryService/{method}",
                request_serializer=lambda data: data,
                response_deserializer=lambda data: data,
            )
            try:
                if method == "TailSpans":
                    stream = channel.unary_stream(
                        f"/llm_observer.query.v1.QueryService/{method}",
                        request_serializer=lambda data: data,
                        response_deserializer=lambda data: data,
                    )(payload, metadata=metadata, timeout=60)
                    stream.initial_metadata()
                    stream.cancel()  # type: ignore[no-untyped-call]
                else:
                    call(payload, metadata=metadata, timeout=60)
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.CANCELLED and method == "TailSpans":
                    return
                assert code not in SERVER_FAULTS, (method, payload, code, exc.details())

        await run_blocking(rpc)
        await run_blocking(raw)
    await _still_answers(running)
