"""Logs and metrics through the REST and gRPC query APIs: the logs of a trace, log search with paging, metric
names, and metric series aggregated in storage (counter rates across a reset, quantiles from histogram
buckets), all confined to the caller's tenant.

Rows are planted with SQL in the ``otel_logs`` / ``otel_metrics_*`` shape the ClickHouse exporter writes;
every expected value below is worked out by hand from the planted points.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from llm_observer.query.formats import rfc3339
from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
from llm_observer.query.v1 import llm_observer_query_v1_pb2_grpc as pb_grpc
from tests.query.conftest import KEY_A, KEY_A_WEB, KEY_B

S = 10**9
TRACE = "ab" * 16
OTHER_TRACE = "cd" * 16
SPAN1, SPAN2 = "01" * 8, "02" * 8
MD_A = (("authorization", f"Bearer {KEY_A}"),)
MD_B = (("authorization", f"Bearer {KEY_B}"),)


class Ns(int):
    """A time in Unix nanoseconds, written as a DateTime64(9) literal."""


def _literal(value: Any) -> str:
    if isinstance(value, Ns):
        return f"fromUnixTimestamp64Nano({int(value)})"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map(" + ", ".join(f"{_literal(k)}, {_literal(v)}" for k, v in value.items()) + ")"
    raise TypeError(value)


def _insert(running: Any, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """One INSERT per column set (one block: identical rows in it are all kept, where identical blocks
    inserted apart would be deduplicated by the table)."""
    client = running.service.backend.store.client
    database = running.service.storage.database
    by_columns: dict[tuple[str, ...], list[str]] = {}
    for row in rows:
        values = ", ".join(_literal(value) for value in row.values())
        by_columns.setdefault(tuple(row), []).append(f"({values})")
    for names, values in by_columns.items():
        columns = ", ".join(f"`{name}`" for name in names)
        client.command(f"INSERT INTO `{database}`.{table} ({columns}) VALUES {', '.join(values)}")


def _resource(org: str, project: str, service: str) -> dict[str, str]:
    return {
        "service.name": service,
        "llm_observer.organization.id": org,
        "llm_observer.project.id": project,
    }


@dataclass
class Plant:
    base: int  # W0: the start of the metric window, in ns

    def at(self, seconds: float) -> Ns:
        return Ns(self.base + int(seconds * S))

    @property
    def window(self) -> dict[str, str]:
        return {"start_time": rfc3339(self.base), "end_time": rfc3339(self.base + 120 * S)}


def _log(
    plant: Plant,
    seconds: float,
    body: str,
    severity: tuple[str, int],
    *,
    org: str = "org-a",
    project: str = "web",
    service: str = "chatbot",
    trace: str = "",
    span: str = "",
    attributes: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "Timestamp": plant.at(seconds),
        "TraceId": trace,
        "SpanId": span,
        "TraceFlags": 1 if trace else 0,
        "SeverityText": severity[0],
        "SeverityNumber": severity[1],
        "ServiceName": service,
        "Body": body,
        "ResourceAttributes": _resource(org, project, service),
        "ScopeName": "tests",
        "ScopeVersion": "1",
        "LogAttributes": attributes or {},
    }


def plant_logs(running: Any, plant: Plant) -> None:
    info, debug, error = ("INFO", 9), ("DEBUG", 5), ("ERROR", 17)
    _insert(
        running,
        "otel_logs",
        [
            _log(
                plant,
                5,
                "calling model gpt-4o",
                info,
                trace=TRACE,
                span=SPAN1,
                attributes={"gen_ai.usage.input_tokens": "12", "code.function": "chat"},
            ),
            _log(plant, 2, "request prepared", debug, trace=TRACE, span=SPAN1),
            _log(plant, 9, "Rate limit exceeded", error, trace=TRACE, span=SPAN2),
            # A record sent with only a severity text.
            _log(plant, 9, "disk almost full", ("WARNING", 0), service="worker"),
            # Two identical records and a third in the same nanosecond: paging must keep all three.
            _log(plant, 20, "heartbeat", info),
            _log(plant, 20, "heartbeat", info),
            _log(plant, 20, "heartbeat 2", info),
            _log(plant, 30, "tool failed", error, project="api", service="agent-svc", trace=OTHER_TRACE),
            # Another organization, in the same trace id: never visible to org-a.
            _log(plant, 6, "org-b secret", error, org="org-b", project="default", trace=TRACE),
        ],
    )


def _point(
    plant: Plant,
    seconds: float,
    name: str,
    unit: str,
    attributes: dict[str, str],
    start: float,
    **values: Any,
) -> dict[str, Any]:
    org = values.pop("org", "org-a")
    return {
        "ResourceAttributes": _resource(org, "web" if org == "org-a" else "default", "chatbot"),
        "ServiceName": "chatbot",
        "ScopeName": "tests",
        "MetricName": name,
        "MetricUnit": unit,
        "MetricDescription": f"{name} for tests",
        "Attributes": attributes,
        "StartTimeUnix": plant.at(start),
        "TimeUnix": plant.at(seconds),
        **values,
    }


def plant_metrics(running: Any, plant: Plant) -> None:
    counter: list[dict[str, Any]] = []
    # gpt-4o: a cumulative counter that resets (restarts, new start time) between 25 s and 40 s.
    for seconds, value, start in (
        (-10, 100, -600),  # in the step before the window: the baseline of the first increase
        (10, 110, -600),
        (25, 130, -600),
        (40, 5, 35),
        (55, 20, 35),
        (70, 50, 35),
        (100, 80, 35),
    ):
        counter.append(
            _point(
                plant,
                seconds,
                "llm.requests",
                "{request}",
                {"model": "gpt-4o"},
                start,
                Value=float(value),
                AggregationTemporality=2,
                IsMonotonic=True,
            )
        )
    for seconds, value in ((-5, 0), (15, 3), (45, 9), (75, 9), (105, 12)):
        counter.append(
            _point(
                plant,
                seconds,
                "llm.requests",
                "{request}",
                {"model": "claude"},
                -600,
                Value=float(value),
                AggregationTemporality=2,
                IsMonotonic=True,
            )
        )
    for seconds, value in ((10, 1000), (20, 5000)):
        counter.append(
            _point(
                plant,
                seconds,
                "llm.requests",
                "{request}",
                {"model": "gpt-4o"},
                -600,
                org="org-b",
                Value=float(value),
                AggregationTemporality=2,
                IsMonotonic=True,
            )
        )
    for seconds, value in ((10, 4), (20, 7), (50, 3)):
        counter.append(
            _point(
                plant,
                seconds,
                "llm.active_sessions",
                "{session}",
                {},
                -600,
                Value=float(value),
                AggregationTemporality=2,
                IsMonotonic=False,
            )
        )
    # Exported once a minute: the point before the first in the window is 50 s back, more than a step.
    for seconds, value in ((-50, 10), (10, 16), (70, 19)):
        counter.append(
            _point(
                plant,
                seconds,
                "llm.sparse",
                "1",
                {},
                -600,
                Value=float(value),
                AggregationTemporality=2,
                IsMonotonic=True,
            )
        )
    # Started inside the window: its first point counts from 0.
    counter.append(
        _point(plant, 10, "llm.fresh", "1", {}, 2, Value=4.0, AggregationTemporality=2, IsMonotonic=True)
    )
    # Delta points: each one is its own increase.
    for seconds, value in ((5, 3), (20, 4), (40, 5)):
        counter.append(
            _point(
                plant,
                seconds,
                "llm.delta_tokens",
                "{token}",
                {},
                seconds - 15,
                Value=float(value),
                AggregationTemporality=1,
                IsMonotonic=True,
            )
        )
    counter.append(
        _point(plant, 10, "dup.metric", "1", {}, -600, Value=1.0, AggregationTemporality=2, IsMonotonic=True)
    )
    _insert(running, "otel_metrics_sum", counter)

    gauge = [
        _point(plant, seconds, "llm.queue_depth", "{item}", {"host": host}, 0, Value=float(value))
        for host, seconds, value in (("a", 5, 2), ("a", 15, 6), ("a", 40, 4), ("b", 10, 10), ("b", 35, 1))
    ]
    gauge.append(_point(plant, 12, "dup.metric", "1", {}, 0, Value=7.0))
    gauge.append(_point(plant, 12, "orgb.only", "1", {}, 0, Value=7.0, org="org-b"))
    _insert(running, "otel_metrics_gauge", gauge)

    bounds = [0.5, 1.0, 2.0, 5.0]
    histogram = [
        _point(
            plant,
            seconds,
            "gen_ai.client.operation.duration",
            "s",
            {"model": "gpt-4o"},
            start,
            Count=sum(counts),
            Sum=total,
            BucketCounts=counts,
            ExplicitBounds=bounds,
            AggregationTemporality=2,
        )
        for seconds, counts, total, start in (
            (-10, [1, 1, 0, 0, 0], 1.2, -600),
            (20, [3, 4, 2, 1, 0], 11.0, -600),
            (50, [3, 6, 6, 1, 0], 20.0, -600),
            (80, [0, 1, 0, 0, 1], 7.5, 60),  # reset
        )
    ]
    _insert(running, "otel_metrics_histogram", histogram)

    exponential = [
        _point(
            plant,
            10,
            "llm.token_size",
            "{token}",
            {},
            0,
            Count=10,
            Sum=12.0,
            Scale=1,
            ZeroCount=1,
            PositiveOffset=2,
            PositiveBucketCounts=[2, 3],
            NegativeOffset=0,
            NegativeBucketCounts=[4],
            AggregationTemporality=1,
        ),
        _point(
            plant,
            20,
            "llm.token_size",
            "{token}",
            {},
            10,
            Count=3,
            Sum=10.5,
            Scale=1,
            ZeroCount=0,
            PositiveOffset=2,
            PositiveBucketCounts=[0, 3],
            NegativeOffset=0,
            NegativeBucketCounts=[],
            AggregationTemporality=1,
        ),
    ]
    # Cumulative, scale 0 (base 2), the positive offset moving from 1 to 0 between the two points.
    for seconds, zero, offset, positive in ((-10, 1, 1, [1, 2]), (20, 2, 0, [1, 3, 5])):
        exponential.append(
            _point(
                plant,
                seconds,
                "llm.token_size_cumulative",
                "{token}",
                {},
                -600,
                Count=zero + sum(positive),
                Sum=0.0,
                Scale=0,
                ZeroCount=zero,
                PositiveOffset=offset,
                PositiveBucketCounts=positive,
                NegativeOffset=0,
                NegativeBucketCounts=[],
                AggregationTemporality=2,
            )
        )
    _insert(running, "otel_metrics_exponential_histogram", exponential)

    summary = [
        _point(
            plant,
            seconds,
            "llm.latency_summary",
            "s",
            {},
            -600,
            Count=count,
            Sum=total,
            **{"ValueAtQuantiles.Quantile": [0.5, 0.99], "ValueAtQuantiles.Value": quantiles},
        )
        for seconds, count, total, quantiles in (
            (-20, 4, 2.0, [0.3, 1.0]),
            (10, 10, 5.0, [0.4, 1.9]),
            (25, 20, 11.0, [0.45, 2.5]),
        )
    ]
    _insert(running, "otel_metrics_summary", summary)


@pytest.fixture
async def planted(running: Any) -> Plant:
    plant = Plant(base=(time.time_ns() // (60 * S) - 120) * 60 * S)
    plant_logs(running, plant)
    plant_metrics(running, plant)
    return plant


async def _get(running: Any, path: str, key: str = KEY_A, **params: Any) -> Any:
    response = await running.http.get(path, params=params, headers=running.headers(key))
    assert response.status_code == 200, response.text
    return response.json()


async def _series(
    running: Any, plant: Plant, key: str = KEY_A, **params: Any
) -> dict[tuple[Any, ...], list[Any]]:
    doc = await _get(running, "/api/v1/metrics/series", key, **plant.window, **params)
    out = {}
    for series in doc["series"]:
        times = [(int(_ns(point["time"]) - plant.base) // S, point["value"]) for point in series["points"]]
        out[tuple(series["labels"].items())] = times
    return out


def _ns(text: str) -> int:
    from llm_observer.query.formats import parse_time

    value = parse_time(text, "time")
    assert value is not None
    return value


def _approx(series: Mapping[Any, list[Any]]) -> dict[Any, list[Any]]:
    return {
        k: [(t, None if v is None else pytest.approx(v)) for t, v in points] for k, points in series.items()
    }


# --- logs ------------------------------------------------------------------------------------------


async def test_logs_of_a_trace_come_in_time_order_with_their_fields(running: Any, planted: Plant) -> None:
    doc = await _get(running, f"/api/v1/traces/{TRACE.upper()}/logs")
    assert doc["trace_id"] == TRACE and doc["next_cursor"] is None
    assert [log["body"] for log in doc["logs"]] == [
        "request prepared",
        "calling model gpt-4o",
        "Rate limit exceeded",
    ]
    first = doc["logs"][1]
    assert first == {
        "time": rfc3339(planted.at(5)),
        "trace_id": TRACE,
        "span_id": SPAN1,
        "trace_flags": 1,
        "severity_text": "INFO",
        "severity_number": 9,
        "service_name": "chatbot",
        "body": "calling model gpt-4o",
        "event_name": None,
        "organization_id": "org-a",
        "project_id": "web",
        "scope_name": "tests",
        "scope_version": "1",
        "attributes": {"code.function": "chat", "gen_ai.usage.input_tokens": 12},
        "resource": _resource("org-a", "web", "chatbot"),
    }
    assert [log["span_id"] for log in doc["logs"]] == [SPAN1, SPAN1, SPAN2]
    # Paged one at a time, the same records in the same order.
    seen, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = await _get(running, f"/api/v1/traces/{TRACE}/logs", **params)
        seen.extend(log["body"] for log in page["logs"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [log["body"] for log in doc["logs"]]
    # Org-b's record in the same trace id is org-b's alone.
    other = await _get(running, f"/api/v1/traces/{TRACE}/logs", KEY_B)
    assert [log["body"] for log in other["logs"]] == ["org-b secret"]
    none = await _get(running, f"/api/v1/traces/{'ef' * 16}/logs")
    assert none["logs"] == [] and none["next_cursor"] is None


async def test_logs_search_filters_by_severity_text_service_and_trace(running: Any, planted: Plant) -> None:
    window = {"start_time": rfc3339(planted.base), "end_time": rfc3339(planted.base + 60 * S)}

    async def bodies(key: str = KEY_A, **params: Any) -> list[str]:
        doc = await _get(running, "/api/v1/logs", key, **window, **params)
        return [log["body"] for log in doc["logs"]]

    everything = await bodies()
    assert everything[0] == "tool failed" and everything[-2:] == ["calling model gpt-4o", "request prepared"]
    assert sorted(everything[1:4]) == ["heartbeat", "heartbeat", "heartbeat 2"]
    assert sorted(everything[4:6]) == ["Rate limit exceeded", "disk almost full"]
    assert len(everything) == 8
    # WARNING sent as text only counts as warn (13).
    assert sorted(await bodies(severity_min="warn")) == [
        "Rate limit exceeded",
        "disk almost full",
        "tool failed",
    ]
    assert sorted(await bodies(severity_min="17")) == ["Rate limit exceeded", "tool failed"]
    assert await bodies(q="RATE LIMIT") == ["Rate limit exceeded"]
    assert await bodies(service="worker") == ["disk almost full"]
    assert await bodies(trace_id=TRACE) == ["Rate limit exceeded", "calling model gpt-4o", "request prepared"]
    assert await bodies(severity_min="error", service="chatbot") == ["Rate limit exceeded"]
    # The window bounds the search: [10 s, 25 s) holds the heartbeats only.
    narrow = {"start_time": rfc3339(planted.at(10)), "end_time": rfc3339(planted.at(25))}
    doc = await _get(running, "/api/v1/logs", **narrow)
    assert sorted(log["body"] for log in doc["logs"]) == ["heartbeat", "heartbeat", "heartbeat 2"]


async def test_logs_search_pages_neither_skip_nor_repeat(running: Any, planted: Plant) -> None:
    window = {"start_time": rfc3339(planted.base), "end_time": rfc3339(planted.base + 60 * S)}
    whole = await _get(running, "/api/v1/logs", **window)
    # Page sizes that split the three records of one nanosecond (two of them identical) every way.
    for limit in (1, 2, 3, 5):
        seen: list[Any] = []
        cursor = None
        while True:
            params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            page = await _get(running, "/api/v1/logs", **window, **params)
            assert len(page["logs"]) <= limit
            seen.extend(page["logs"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == whole["logs"], limit


async def test_logs_are_confined_to_the_callers_tenant(running: Any, planted: Plant) -> None:
    window = {"start_time": rfc3339(planted.base), "end_time": rfc3339(planted.base + 60 * S)}
    org_b = await _get(running, "/api/v1/logs", KEY_B, **window)
    assert [log["body"] for log in org_b["logs"]] == ["org-b secret"]
    web = await _get(running, "/api/v1/logs", KEY_A_WEB, **window)
    assert {log["project_id"] for log in web["logs"]} == {"web"} and len(web["logs"]) == 7
    api = await _get(running, "/api/v1/logs", KEY_A, **window, project_id="api")
    assert [log["body"] for log in api["logs"]] == ["tool failed"]
    for path in ("/api/v1/logs", f"/api/v1/traces/{TRACE}/logs", "/api/v1/metrics/names"):
        response = await running.http.get(
            path, params={"organization_id": "org-b"}, headers=running.headers(KEY_A)
        )
        assert response.status_code == 403, path
        assert (await running.http.get(path)).status_code == 401, path
    response = await running.http.get(
        f"/api/v1/traces/{TRACE}/logs", params={"project_id": "api"}, headers=running.headers(KEY_A_WEB)
    )
    assert response.status_code == 403


# --- metrics ---------------------------------------------------------------------------------------


async def test_metric_names_lists_kinds_units_and_counts(running: Any, planted: Plant) -> None:
    doc = await _get(running, "/api/v1/metrics/names", **planted.window)
    by_key = {(m["name"], m["kind"]): m for m in doc["metrics"]}
    assert list(by_key) == sorted(by_key)
    assert set(by_key) == {
        ("dup.metric", "gauge"),
        ("dup.metric", "sum"),
        ("gen_ai.client.operation.duration", "histogram"),
        ("llm.active_sessions", "sum"),
        ("llm.delta_tokens", "sum"),
        ("llm.fresh", "sum"),
        ("llm.latency_summary", "summary"),
        ("llm.queue_depth", "gauge"),
        ("llm.requests", "sum"),
        ("llm.sparse", "sum"),
        ("llm.token_size", "exponential_histogram"),
        ("llm.token_size_cumulative", "exponential_histogram"),
    }
    assert by_key["llm.delta_tokens", "sum"]["temporality"] == "delta"
    requests = by_key["llm.requests", "sum"]
    # Points in [0, 120 s): 6 of gpt-4o and 4 of claude (org-b's two are not org-a's).
    assert requests == {
        "name": "llm.requests",
        "kind": "sum",
        "unit": "{request}",
        "description": "llm.requests for tests",
        "points": 10,
        "monotonic": True,
        "temporality": "cumulative",
    }
    assert by_key["llm.active_sessions", "sum"]["monotonic"] is False
    assert by_key["llm.token_size", "exponential_histogram"]["temporality"] == "delta"
    assert by_key["llm.queue_depth", "gauge"]["monotonic"] is None
    org_b = await _get(running, "/api/v1/metrics/names", KEY_B, **planted.window)
    assert {m["name"] for m in org_b["metrics"]} == {"llm.requests", "orgb.only"}
    assert (await _get(running, "/api/v1/metrics/names", service="nobody", **planted.window))["metrics"] == []


async def test_metric_series_counter_rate_survives_a_reset(running: Any, planted: Plant) -> None:
    # gpt-4o increases: [0,30): 10 + 20; [30,60): 5 (after the reset) + 15; [60,90): 30; [90,120): 30.
    # claude: 3; 6; 0; 3.
    by_model = await _series(
        running, planted, name="llm.requests", step="30s", agg="increase", group_by="model"
    )
    assert by_model == {
        (("model", "claude"),): [(0, 3.0), (30, 6.0), (60, 0.0), (90, 3.0)],
        (("model", "gpt-4o"),): [(0, 30.0), (30, 20.0), (60, 30.0), (90, 30.0)],
    }
    rate = await _series(running, planted, name="llm.requests", step="30")
    assert _approx(rate) == _approx({(): [(0, 33 / 30), (30, 26 / 30), (60, 1.0), (90, 33 / 30)]})
    # value: the sum over series of each one's latest value in the step.
    value = await _series(running, planted, name="llm.requests", step="30s", agg="value")
    assert value == {(): [(0, 133.0), (30, 29.0), (60, 59.0), (90, 92.0)]}
    # One step over the whole window: the baseline point before it still counts as the start.
    whole = await _series(running, planted, name="llm.requests", step="2m", agg="increase", group_by="model")
    assert whole == {(("model", "claude"),): [(0, 12.0)], (("model", "gpt-4o"),): [(0, 110.0)]}
    filtered = await _series(
        running, planted, name="llm.requests", step="30s", agg="increase", attribute="model=claude"
    )
    assert filtered == {(): [(0, 3.0), (30, 6.0), (60, 0.0), (90, 3.0)]}
    # Org-b's counter of the same name is org-b's alone.
    org_b = await _series(running, planted, KEY_B, name="llm.requests", step="30s", agg="increase")
    assert org_b == {(): [(0, 4000.0)]}


async def test_metric_series_counter_edges_sparse_fresh_and_delta(running: Any, planted: Plant) -> None:
    sparse = await _series(running, planted, name="llm.sparse", step="30s", agg="increase")
    assert sparse == {(): [(0, 6.0), (60, 3.0)]}
    fresh = await _series(running, planted, name="llm.fresh", step="30s", agg="increase")
    assert fresh == {(): [(0, 4.0)]}
    delta = await _series(running, planted, name="llm.delta_tokens", step="30s")
    assert _approx(delta) == _approx({(): [(0, 7 / 30), (30, 5 / 30)]})
    assert await _series(running, planted, name="llm.delta_tokens", step="30s", agg="value") == {
        (): [(0, 7.0), (30, 5.0)]
    }


async def test_metric_series_up_down_counter_and_gauge(running: Any, planted: Plant) -> None:
    sessions = await _series(running, planted, name="llm.active_sessions", step="30s")
    assert sessions == {(): [(0, 7.0), (30, 3.0)]}
    doc = await _get(running, "/api/v1/metrics/series", name="llm.active_sessions", **planted.window)
    assert doc["agg"] == "value" and doc["kind"] == "sum" and doc["unit"] == "{session}"
    assert doc["step_seconds"] == 1.0  # 120 s over about 120 steps

    assert await _series(running, planted, name="llm.queue_depth", step="30s", group_by="host") == {
        (("host", "a"),): [(0, 4.0), (30, 4.0)],
        (("host", "b"),): [(0, 10.0), (30, 1.0)],
    }
    expected = {
        "avg": [6.0, 2.5],
        "min": [2.0, 1.0],
        "max": [10.0, 4.0],
        "last": [6.0, 4.0],
        "count": [3.0, 2.0],
    }
    for agg, values in expected.items():
        got = await _series(running, planted, name="llm.queue_depth", step="30s", agg=agg)
        assert got == {(): [(0, values[0]), (30, values[1])]}, agg
    # Grouped by a resource attribute and by service.name.
    by_service = await _series(
        running, planted, name="llm.queue_depth", step="2m", group_by="service.name,host"
    )
    assert by_service == {
        (("service.name", "chatbot"), ("host", "a")): [(0, 4.0)],
        (("service.name", "chatbot"), ("host", "b")): [(0, 5.5)],
    }


async def test_metric_series_histogram_quantiles_from_buckets(running: Any, planted: Plant) -> None:
    name = "gen_ai.client.operation.duration"
    # Increases per step (bounds 0.5, 1, 2, 5): [0,30): [2,3,2,1,0] (8); [30,60): [0,2,4,0,0] (6);
    # [60,90): the reset point as it is, [0,1,0,0,1] (2).
    p50 = await _series(running, planted, name=name, step="30s")
    # rank 4 of 8 falls in (0.5, 1] after 2: 0.5 + 0.5 * 2/3; rank 3 of 6 in (1, 2] after 2: 1 + 1/4;
    # rank 1 of 2 in (0.5, 1] after 0: 1.0.
    assert _approx(p50) == _approx({(): [(0, 0.5 + 0.5 * 2 / 3), (30, 1.25), (60, 1.0)]})
    p90 = await _series(running, planted, name=name, step="30s", agg="p90")
    # rank 7.2 of 8 in (2, 5] after 7: 2 + 3 * 0.2; rank 5.4 of 6 in (1, 2] after 2: 1 + 3.4/4;
    # rank 1.8 of 2 in the overflow bucket: its lower bound, 5.
    assert _approx(p90) == _approx({(): [(0, 2.6), (30, 1.85), (60, 5.0)]})
    assert await _series(running, planted, name=name, step="30s", agg="count") == {
        (): [(0, 8.0), (30, 6.0), (60, 2.0)]
    }
    avg = await _series(running, planted, name=name, step="30s", agg="avg")
    assert _approx(avg) == _approx({(): [(0, 9.8 / 8), (30, 9.0 / 6), (60, 7.5 / 2)]})
    rate = await _series(running, planted, name=name, step="30s", agg="rate", group_by="model")
    assert _approx(rate) == _approx({(("model", "gpt-4o"),): [(0, 8 / 30), (30, 6 / 30), (60, 2 / 30)]})


async def test_metric_series_exponential_histogram_and_summary(running: Any, planted: Plant) -> None:
    base = 2**0.5  # scale 1
    # Delta points, one step: negative bucket 0 [-base, -1): 4, zero: 1, (base^2, base^3]: 2,
    # (base^3, base^4]: 3 + 3 = 6; 13 in all.
    p50 = await _series(running, planted, name="llm.token_size", step="30s")
    # rank 6.5: after 4 + 1, in (2, base^3] holding 2: 2 + (base^3 - 2) * 1.5/2.
    assert _approx(p50) == _approx({(): [(0, 2 + (base**3 - 2) * 0.75)]})
    p10 = await _series(running, planted, name="llm.token_size", step="30s", agg="p10")
    # rank 1.3 in [-base, -1) holding 4.
    assert _approx(p10) == _approx({(): [(0, -base + (base - 1) * 1.3 / 4)]})
    p80 = await _series(running, planted, name="llm.token_size", step="30s", agg="p80")
    assert _approx(p80) == _approx({(): [(0, base**3 + (4 - base**3) * (10.4 - 7) / 6)]})
    assert await _series(running, planted, name="llm.token_size", step="30s", agg="count") == {
        (): [(0, 13.0)]
    }

    # Increases: zero bucket 1, (1, 2] 1 (new), (2, 4] 3 - 1, (4, 8] 5 - 2; rank 3.5 of 7 in (2, 4] after 2.
    cumulative = await _series(running, planted, name="llm.token_size_cumulative", step="30s")
    assert _approx(cumulative) == _approx({(): [(0, 2 + 2 * 1.5 / 2)]})
    assert await _series(running, planted, name="llm.token_size_cumulative", step="30s", agg="count") == {
        (): [(0, 7.0)]
    }

    # A summary's quantiles are stored: the newest point of the step gives them; count and sum are
    # cumulative: [0,30) increases 6 + 10 over the point before the window.
    assert await _series(running, planted, name="llm.latency_summary", step="30s", agg="p99") == {
        (): [(0, 2.5)]
    }
    assert await _series(running, planted, name="llm.latency_summary", step="30s", agg="p75") == {
        (): [(0, None)]
    }
    rate = await _series(running, planted, name="llm.latency_summary", step="30s", agg="rate")
    assert _approx(rate) == _approx({(): [(0, 16 / 30)]})
    assert await _series(running, planted, name="llm.latency_summary", step="30s", agg="avg") == {
        (): [(0, 9.0 / 16)]
    }


async def test_metric_series_of_an_unknown_name_is_empty(running: Any, planted: Plant) -> None:
    doc = await _get(running, "/api/v1/metrics/series", name="no.such.metric", **planted.window)
    assert doc["kind"] is None and doc["series"] == []
    # Another organization's metric is unknown here.
    doc = await _get(running, "/api/v1/metrics/series", name="orgb.only", **planted.window)
    assert doc["series"] == []


async def test_metric_and_log_parameters_are_checked(running: Any, planted: Plant) -> None:
    bad = [
        ("/api/v1/metrics/series", {"name": "llm.requests", "step": "0"}, "step"),
        ("/api/v1/metrics/series", {"name": "llm.requests", "step": "soon"}, "step"),
        ("/api/v1/metrics/series", {"name": "llm.requests", "step": "0.5s"}, "step"),
        ("/api/v1/metrics/series", {"name": "llm.requests", "agg": "median"}, "agg"),
        ("/api/v1/metrics/series", {"name": "llm.requests", "agg": "p50"}, "agg"),
        ("/api/v1/metrics/series", {"name": "llm.active_sessions", "agg": "rate"}, "monotonic"),
        ("/api/v1/metrics/series", {"name": "llm.queue_depth", "agg": "p101"}, "agg"),
        ("/api/v1/metrics/series", {"name": "gen_ai.client.operation.duration", "agg": "p101"}, "p100"),
        ("/api/v1/metrics/series", {"name": "dup.metric"}, "kind"),
        ("/api/v1/metrics/series", {"name": "llm.requests", "kind": "counter"}, "kind"),
        (
            "/api/v1/metrics/series",
            {"name": "llm.requests", "step": "1s", "start_time": "2020-01-01T00:00:00Z"},
            "steps",
        ),
        (
            "/api/v1/metrics/series",
            {"name": "llm.requests", "group_by": ",".join(f"k{i}" for i in range(11))},
            "group_by",
        ),
        ("/api/v1/metrics/series", {"name": "llm.requests", "attribute": "model"}, "KEY=VALUE"),
        ("/api/v1/metrics/series", {}, "name"),
        ("/api/v1/metrics/series", {"name": "llm.requests", "end_time": "yesterday"}, "end_time"),
        ("/api/v1/logs", {"severity_min": "loud"}, "severity_min"),
        ("/api/v1/logs", {"severity_min": "25"}, "severity_min"),
        ("/api/v1/logs", {"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
        ("/api/v1/logs", {"trace_id": "xyz"}, "trace_id"),
        ("/api/v1/logs", {"limit": "0"}, "limit"),
        (f"/api/v1/traces/{TRACE}/logs", {"cursor": "!!"}, "cursor"),
        ("/api/v1/traces/not-a-trace/logs", {}, "trace_id"),
    ]
    for path, params, word in bad:
        response = await running.http.get(path, params=params, headers=running.headers(KEY_A))
        assert response.status_code == 400, (path, params, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_argument" and word in error["message"], (params, error)
    # A cursor of the trace logs is not one of the search, and the other way round.
    page = await _get(running, f"/api/v1/traces/{TRACE}/logs", limit=1)
    response = await running.http.get(
        "/api/v1/logs", params={"cursor": page["next_cursor"]}, headers=running.headers(KEY_A)
    )
    assert response.status_code == 400
    # With a kind, a name stored as two kinds is fine.
    doc = await _get(
        running, "/api/v1/metrics/series", name="dup.metric", kind="gauge", step="2m", **planted.window
    )
    assert doc["series"][0]["points"][0]["value"] == 7.0


async def test_openapi_documents_the_log_and_metric_routes(running: Any) -> None:
    spec = (await running.http.get("/openapi.json")).json()
    for path in (
        "/api/v1/logs",
        "/api/v1/traces/{trace_id}/logs",
        "/api/v1/metrics/series",
        "/api/v1/metrics/names",
    ):
        assert "get" in spec["paths"][path], path
    names = {p["name"] for p in spec["paths"]["/api/v1/metrics/series"]["get"]["parameters"]}
    assert {"name", "step", "agg", "group_by", "kind", "attribute", "start_time", "end_time"} <= names


# --- gRPC ------------------------------------------------------------------------------------------


def _rest_time(ns: int) -> str:
    return rfc3339(ns)


async def test_grpc_logs_match_rest(running: Any, planted: Plant) -> None:
    window = {"start_time": rfc3339(planted.base), "end_time": rfc3339(planted.base + 60 * S)}
    rest = await _get(running, "/api/v1/logs", **window)
    async with grpc.aio.insecure_channel(running.grpc_target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        seen: list[pb.LogRecord] = []
        cursor = ""
        while True:
            response = await stub.SearchLogs(
                pb.SearchLogsRequest(
                    start_time_unix_nano=planted.base,
                    end_time_unix_nano=planted.base + 60 * S,
                    limit=3,
                    cursor=cursor,
                ),
                metadata=MD_A,
            )
            seen.extend(response.logs)
            cursor = response.next_cursor
            if not cursor:
                break
        assert [(_rest_time(r.time_unix_nano), r.body, r.severity_number) for r in seen] == [
            (log["time"], log["body"], log["severity_number"]) for log in rest["logs"]
        ]
        warn = await stub.SearchLogs(
            pb.SearchLogsRequest(start_time_unix_nano=planted.base, severity_min="WARN", text="disk"),
            metadata=MD_A,
        )
        assert [r.body for r in warn.logs] == ["disk almost full"]

        trace = await stub.GetTraceLogs(pb.GetTraceLogsRequest(trace_id=TRACE), metadata=MD_A)
        assert [r.body for r in trace.logs] == [
            "request prepared",
            "calling model gpt-4o",
            "Rate limit exceeded",
        ]
        record = trace.logs[1]
        assert record.span_id == SPAN1 and record.trace_flags == 1 and record.scope_name == "tests"
        assert record.attributes["gen_ai.usage.input_tokens"].number_value == 12
        assert record.resource["llm_observer.organization.id"].string_value == "org-a"
        other = await stub.GetTraceLogs(pb.GetTraceLogsRequest(trace_id=TRACE), metadata=MD_B)
        assert [r.body for r in other.logs] == ["org-b secret"]

        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.GetTraceLogs(
                pb.GetTraceLogsRequest(trace_id=TRACE, organization_id="org-b"), metadata=MD_A
            )
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as unauthenticated:
            await stub.SearchLogs(pb.SearchLogsRequest())
        assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await stub.SearchLogs(pb.SearchLogsRequest(severity_min="loud"), metadata=MD_A)
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_grpc_metrics_match_rest(running: Any, planted: Plant) -> None:
    window = {"start_time_unix_nano": planted.base, "end_time_unix_nano": planted.base + 120 * S}
    async with grpc.aio.insecure_channel(running.grpc_target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        names = await stub.ListMetricNames(pb.ListMetricNamesRequest(**window), metadata=MD_A)
        rest_names = await _get(running, "/api/v1/metrics/names", **planted.window)
        assert [(m.name, m.kind, m.unit, m.points) for m in names.metrics] == [
            (m["name"], m["kind"], m["unit"], m["points"]) for m in rest_names["metrics"]
        ]
        sessions = next(m for m in names.metrics if m.name == "llm.active_sessions")
        assert sessions.HasField("monotonic") and sessions.monotonic is False
        assert not next(m for m in names.metrics if m.kind == "gauge").HasField("monotonic")

        for params in (
            {"name": "llm.requests", "agg": "increase", "group_by": ["model"]},
            {"name": "gen_ai.client.operation.duration", "agg": "p90"},
            {"name": "llm.latency_summary", "agg": "p75"},
        ):
            response = await stub.GetMetricSeries(
                pb.GetMetricSeriesRequest(step_seconds=30, **window, **params), metadata=MD_A
            )
            rest = await _get(
                running,
                "/api/v1/metrics/series",
                step="30",
                **planted.window,
                **{k: ",".join(v) if isinstance(v, list) else v for k, v in params.items()},
            )
            assert (
                response.kind == rest["kind"] and response.agg == rest["agg"] and response.step_seconds == 30
            )
            got = [
                (
                    dict(series.labels),
                    [
                        (_rest_time(p.time_unix_nano), p.value if p.HasField("value") else None)
                        for p in series.points
                    ],
                )
                for series in response.series
            ]
            want = [
                (series["labels"], [(p["time"], p["value"]) for p in series["points"]])
                for series in rest["series"]
            ]
            assert got == want, params

        org_b = await stub.GetMetricSeries(
            pb.GetMetricSeriesRequest(name="llm.requests", agg="increase", step_seconds=30, **window),
            metadata=MD_B,
        )
        assert [p.value for s in org_b.series for p in s.points] == [4000.0]
        for request in (
            pb.GetMetricSeriesRequest(name="llm.requests", agg="bogus", **window),
            pb.GetMetricSeriesRequest(name="llm.requests", step_seconds=0.25, **window),
            pb.GetMetricSeriesRequest(name="", **window),
            pb.GetMetricSeriesRequest(name="llm.requests", step_seconds=math.nan, **window),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as invalid:
                await stub.GetMetricSeries(request, metadata=MD_A)
            assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.ListMetricNames(pb.ListMetricNamesRequest(organization_id="org-b"), metadata=MD_A)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


# --- written by the ClickHouse exporter -----------------------------------------------------------


def _otlp_logs(base: int, body: str) -> bytes:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    record = LogRecord(
        time_unix_nano=base + 3 * S,
        severity_number=17,
        severity_text="ERROR",
        body=AnyValue(string_value=body),
        trace_id=bytes.fromhex("9a" * 16),
        span_id=bytes.fromhex("9b" * 8),
        attributes=[KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="gpt-4o"))],
    )
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="sdk-app"))])
    request = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=[record])])]
    )
    return request.SerializeToString()


def _otlp_metrics(base: int, scale: float) -> bytes:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    cumulative = m.AGGREGATION_TEMPORALITY_CUMULATIVE
    start = base - 600 * S
    counter = m.Metric(
        name="sdk.requests",
        unit="{request}",
        sum=m.Sum(
            aggregation_temporality=cumulative,
            is_monotonic=True,
            data_points=[
                m.NumberDataPoint(
                    start_time_unix_nano=start, time_unix_nano=base + t * S, as_double=v * scale
                )
                for t, v in ((-10, 10), (10, 25), (40, 40))
            ],
        ),
    )
    histogram = m.Metric(
        name="sdk.duration",
        unit="s",
        histogram=m.Histogram(
            aggregation_temporality=cumulative,
            data_points=[
                m.HistogramDataPoint(
                    start_time_unix_nano=start,
                    time_unix_nano=base + t * S,
                    count=sum(counts),
                    sum=total,
                    bucket_counts=counts,
                    explicit_bounds=[1.0, 2.0],
                )
                for t, counts, total in ((-10, [1, 0, 0], 0.5), (20, [1, 4, 1], 9.0))
            ],
        ),
    )
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="sdk-app"))])
    request = ExportMetricsServiceRequest(
        resource_metrics=[
            m.ResourceMetrics(resource=resource, scope_metrics=[m.ScopeMetrics(metrics=[counter, histogram])])
        ]
    )
    return request.SerializeToString()


async def test_logs_and_metrics_stored_by_the_exporter_read_back(running: Any) -> None:
    from llm_observer.kernel.batch import IngestMeta
    from llm_observer.kernel.component import SIGNAL_LOGS, SIGNAL_METRICS
    from llm_observer.kernel.signals import SignalBatch, SignalRecord

    base = (time.time_ns() // (60 * S) - 30) * 60 * S
    plant = Plant(base=base)
    web, org_b = IngestMeta(organization_id="org-a", project_id="web"), IngestMeta(organization_id="org-b")
    await running.exporter.send_logs(
        SignalBatch(
            SIGNAL_LOGS,
            [
                SignalRecord(1, _otlp_logs(base, "quota exceeded"), web),
                SignalRecord(2, _otlp_logs(base, "b"), org_b),
            ],
            origin="test:logs:1-2",
        )
    )
    await running.exporter.send_metrics(
        SignalBatch(
            SIGNAL_METRICS,
            [
                SignalRecord(1, _otlp_metrics(base, 1.0), web),
                SignalRecord(2, _otlp_metrics(base, 100.0), org_b),
            ],
            origin="test:metrics:1-2",
        )
    )
    logs = await _get(running, f"/api/v1/traces/{'9a' * 16}/logs")
    assert [
        (log["body"], log["severity_number"], log["span_id"], log["project_id"]) for log in logs["logs"]
    ] == [("quota exceeded", 17, "9b" * 8, "web")]
    assert logs["logs"][0]["attributes"] == {"gen_ai.request.model": "gpt-4o"}
    assert logs["logs"][0]["service_name"] == "sdk-app"
    names = await _get(running, "/api/v1/metrics/names", **plant.window)
    assert [(n["name"], n["kind"], n["unit"], n["points"]) for n in names["metrics"]] == [
        ("sdk.duration", "histogram", "s", 1),
        ("sdk.requests", "sum", "{request}", 2),
    ]
    assert await _series(running, plant, name="sdk.requests", step="30s", agg="increase") == {
        (): [(0, 15.0), (30, 15.0)]
    }
    # Increase [0, 4, 1] over bounds 1, 2: rank 2.5 of 5 in (1, 2] after 0: 1 + 2.5/4.
    p50 = await _series(running, plant, name="sdk.duration", step="30s")
    assert _approx(p50) == _approx({(): [(0, 1.625)]})
    org_b_series = await _series(running, plant, KEY_B, name="sdk.requests", step="30s", agg="increase")
    assert org_b_series == {(): [(0, 1500.0), (30, 1500.0)]}
