"""Delivery faults: one bad row costs only itself, no range blocks a cursor for good, a worker that hits an
unexpected error (a full disk under its cursor) comes back by itself, a slow optional exporter never holds
the WAL, and ``/health`` says when data is not moving.

Records are appended to the WAL directly (as a receiver would after validating), so that rows the
receivers would refuse still reach storage: the delivery path must hold on its own."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pydantic import Field

from llm_observer.collector.deadletter import DeadLetterStore
from llm_observer.collector.service import DEADLETTER_DIR, Service
from llm_observer.collector.testing import running
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import SIGNAL_TRACES, ComponentConfig, CreateContext, Factory, IngestMeta
from llm_observer.kernel.errors import PermanentError
from tests.support import wait_for
from tests.support.collector import collector_config, metrics_port, scrape, stored

DAY_NS = 86_400 * 10**9
ORG_KEY = "llm_observer.organization.id"


# --- doubles --------------------------------------------------------------------------------------------


class RefusingConfig(ComponentConfig):
    poison: str = Field("poison", description="spans with this name are refused for good")
    delay_seconds: float = 0.0
    # One send (the n-th, from 1) takes this long instead: an insert slowed by merges or a busy machine.
    slow_send: int = 0
    slow_send_seconds: float = 0.0


class RefusingExporter:
    """Refuses (``PermanentError``, as a store refusing data would) any batch holding a span named
    ``poison``, without saying which; stores the rest. Optionally slow, every send or one."""

    def __init__(self, config: RefusingConfig) -> None:
        self.config = config
        self.poison = config.poison
        self.span_ids: list[bytes] = []
        self.sends = 0

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def send(self, batch: SpanBatch) -> None:
        self.sends += 1
        delay = (
            self.config.slow_send_seconds
            if self.sends == self.config.slow_send
            else self.config.delay_seconds
        )
        if delay:
            await asyncio.sleep(delay)
        if self.poison in batch.name:
            raise PermanentError("the store refused the batch", "rejected_by_storage")
        self.span_ids.extend(batch.span_id)


def _create_refusing(ctx: CreateContext, config: RefusingConfig) -> RefusingExporter:
    return RefusingExporter(config)


FACTORIES = {"exporters": {"refusing": Factory("refusing", RefusingConfig, _create_refusing)}}


# --- helpers --------------------------------------------------------------------------------------------


def request(
    org: str, starts: Sequence[int], names: Sequence[str] | None = None, seed: int = 0
) -> ExportTraceServiceRequest:
    out = ExportTraceServiceRequest()
    rs = out.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = ORG_KEY, org
    ss = rs.scope_spans.add()
    for n, start in enumerate(starts):
        span = ss.spans.add()
        span.trace_id = bytes([seed % 251 + 1]) * 15 + bytes([n % 251 + 1])
        span.span_id = (seed * 100_000 + n + 1).to_bytes(8, "big")
        span.name = names[n] if names else "chat"
        span.start_time_unix_nano = start
        span.end_time_unix_nano = min(start + 1_000_000, 2**64 - 1)
    return out


async def append(service: Service, req: ExportTraceServiceRequest, org: str | None = None) -> None:
    assert service.log is not None
    await service.log.append(SIGNAL_TRACES, req.SerializeToString(), IngestMeta(org) if org else None)


def config(tmp_path: Path, exporters: Any, delivery: dict[str, Any] | None = None) -> Any:
    return collector_config(
        tmp_path,
        exporters=exporters,
        overrides={
            "service": {
                "delivery": {
                    "initial_backoff_seconds": 0.02,
                    "max_backoff_seconds": 0.1,
                    "linger_seconds": 0.05,
                    **(delivery or {}),
                }
            }
        },
        extra_factories=FACTORIES,
    )


def count(service: Service) -> int:
    return int(stored(service, "SELECT count() AS n FROM otel.otel_traces")[0]["n"])


async def send_past_two_exporters(service: Service, requests: int) -> RefusingExporter:
    """Append ``requests`` requests of 20 spans at once, wait until ``refusing/fast`` and ``refusing/slow``
    both hold every span, and return the slow one."""
    sent = 0
    for n in range(requests):
        await append(
            service,
            request("orgA", [time.time_ns() + i for i in range(20)], ["chat " + "x" * 400] * 20, seed=n),
        )
        sent += 20
    await wait_for(lambda: service.pipelines[0].caught_up(), 60, "both exporters to reach the head")
    fast, slow = service.exporters["refusing/fast"], service.exporters["refusing/slow"]
    assert isinstance(fast, RefusingExporter) and isinstance(slow, RefusingExporter)
    assert len(fast.span_ids) == len(slow.span_ids) == sent
    return slow


async def reprocessed_records(service: Service) -> float:
    """WAL records a worker off the ring decoded and processed again."""
    samples = await scrape(metrics_port(service))
    value = samples.value(
        "llm_observer_component_events_total", component="traces", event="records_reprocessed"
    )
    return value or 0.0


def deadletter(tmp_path: Path) -> DeadLetterStore:
    return DeadLetterStore(tmp_path / DEADLETTER_DIR)


async def health(url: str) -> tuple[int, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(url, timeout=10)
    return response.status_code, response.json()


# --- tests ----------------------------------------------------------------------------------------------


async def test_pipeline_row_past_2262_costs_only_itself_and_is_quarantined_for_its_tenant(
    tmp_path: Path,
) -> None:
    async with running(config(tmp_path, ["clickhouse"])) as service:
        now = time.time_ns()
        await append(service, request("orgA", [now + i for i in range(10)], seed=1), "orgA")
        await append(service, request("orgB", [now, 2**63 + 5, now + 1], seed=2), "orgB")
        await wait_for(lambda: service.pipelines[0].caught_up(), 20, "delivery")
        assert count(service) == 12
        owners = stored(
            service,
            "SELECT OrganizationId AS org, count() AS n FROM otel.otel_traces GROUP BY org ORDER BY org",
        )
        assert owners == [{"org": "orgA", "n": 10}, {"org": "orgB", "n": 2}]
        (entry,) = deadletter(tmp_path).entries()
        assert entry.spans == 1 and entry.organizations == {"orgB": 1}
        assert entry.reason == "invalid_data" and "start_time_unix_nano" in entry.problems[0]["problem"]
        samples = await scrape(metrics_port(service))
        assert samples.value("llm_observer_spans_quarantined_total", organization="orgB") == 1
        assert samples.value("llm_observer_spans_quarantined_total", organization="orgA") is None
        assert samples.value("llm_observer_spans_exported_total", exporter="clickhouse") == 12


async def test_pipeline_refused_batch_is_narrowed_to_the_refused_rows(tmp_path: Path) -> None:
    async with running(config(tmp_path, ["refusing"])) as service:
        names = ["chat"] * 40
        names[7] = names[31] = "poison"
        await append(service, request("orgA", [time.time_ns() + i for i in range(40)], names, seed=3))
        await wait_for(lambda: service.pipelines[0].caught_up(), 20, "delivery")
        refusing = service.exporters["refusing"]
        assert isinstance(refusing, RefusingExporter)
        delivered = refusing.span_ids
        assert len(delivered) == 38 and len(set(delivered)) == 38
        (entry,) = deadletter(tmp_path).entries()
        assert entry.spans == 2 and entry.reason == "rejected_by_storage"
        assert {p["span_id"] for p in entry.problems} == {
            (300_008).to_bytes(8, "big").hex(),
            (300_032).to_bytes(8, "big").hex(),
        }


async def test_pipeline_record_that_does_not_decode_costs_only_itself(tmp_path: Path) -> None:
    async with running(config(tmp_path, ["refusing"])) as service:
        assert service.log is not None
        await service.log.append(SIGNAL_TRACES, b"\xff\xff\xff not a protobuf request")
        await append(service, request("orgA", [time.time_ns() + i for i in range(5)], seed=5))
        await wait_for(lambda: service.pipelines[0].caught_up(), 20, "delivery")
        refusing = service.exporters["refusing"]
        assert isinstance(refusing, RefusingExporter)
        assert len(refusing.span_ids) == 5
        samples = await scrape(metrics_port(service))
        assert (
            samples.value(
                "llm_observer_component_events_total", component="traces", event="undecodable_record"
            )
            == 1
        )


async def test_pipeline_backfill_of_101_days_is_stored_and_the_cursor_moves(tmp_path: Path) -> None:
    async with running(config(tmp_path, ["clickhouse"])) as service:
        now = time.time_ns()
        # Fifty days back to fifty days ahead: inside any retention, one partition a day.
        await append(service, request("orgA", [now + (d - 50) * DAY_NS for d in range(101)], seed=4))
        await wait_for(lambda: service.pipelines[0].caught_up(), 30, "the backfill to be delivered")
        assert count(service) == 101
        assert deadletter(tmp_path).entries() == []


async def test_pipeline_retries_are_bounded_then_the_range_is_quarantined_and_the_cursor_moves(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path, {"clickhouse": {}, "flaky": {"retry_on_failure": {"max_elapsed_seconds": 0.3}}})
    async with running(cfg) as service:
        flaky = service.exporters["flaky"]
        await append(service, request("orgA", [time.time_ns() + i for i in range(5)], seed=5), "orgA")
        await wait_for(lambda: deadletter(tmp_path).entries(), 20, "the range to be quarantined")
        (entry,) = deadletter(tmp_path).entries()
        assert entry.reason == "retries_exhausted" and entry.spans == 5 and entry.exporter == "flaky"
        assert entry.origin.startswith("traces:")  # replayed as the very batch that was sent
        await wait_for(lambda: service.pipelines[0].caught_up(), 20, "the cursor to move on")
        assert count(service) == 5
        flaky.failing = False  # type: ignore[attr-defined]
        await append(service, request("orgA", [time.time_ns() + i for i in range(3)], seed=6), "orgA")
        await wait_for(lambda: len(flaky.span_ids) == 3, 20, "later data to flow")  # type: ignore[attr-defined]


async def test_pipeline_worker_survives_a_full_disk_under_its_cursor_and_health_says_so(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path, ["clickhouse"])
    async with running(cfg, query=True) as service:
        assert service.log is not None
        real_save = service.log.save_cursor
        disk_full = True

        def save(consumer: str, cursor: Any) -> None:
            if disk_full:
                raise OSError(errno.ENOSPC, "No space left on device")
            real_save(consumer, cursor)

        service.log.save_cursor = save  # type: ignore[method-assign]
        urls = [
            f"http://127.0.0.1:{service.endpoints()['otlp.http']}/health",
            f"http://127.0.0.1:{service.query_service.http_port}/health",
        ]
        now = time.time_ns()
        await append(service, request("orgA", [now + i for i in range(5)], seed=7))

        async def unhealthy() -> bool:
            answers = [await health(url) for url in urls]
            return all(status == 503 for status, _ in answers)

        await wait_for(unhealthy, 20, "/health to report the stopped worker")
        _, body = await health(urls[1])
        assert body["status"] == "unhealthy"
        assert any("No space left" in p["reason"] for p in body["problems"])
        samples = await scrape(metrics_port(service))
        assert (samples.value("llm_observer_worker_failures_total", error="OSError") or 0) >= 1
        disk_full = False
        await append(service, request("orgA", [now + 10 + i for i in range(5)], seed=8))
        await wait_for(lambda: service.pipelines[0].caught_up(), 20, "the worker to come back")

        async def healthy() -> bool:
            answers = [await health(url) for url in urls]
            return all(status == 200 for status, _ in answers)

        await wait_for(healthy, 10, "/health to recover")
        rows = stored(service, "SELECT count() AS n, uniqExact(SpanId) AS u FROM otel.otel_traces")
        assert rows == [{"n": 10, "u": 10}]


async def test_pipeline_health_reports_an_exporter_that_makes_no_progress(tmp_path: Path) -> None:
    cfg = config(tmp_path, ["clickhouse", "flaky"], {"stall_seconds": 0.3})
    async with running(cfg) as service:
        url = f"http://127.0.0.1:{service.endpoints()['otlp.http']}/health"
        assert (await health(url))[0] == 200
        await append(service, request("orgA", [time.time_ns()], seed=9))

        async def stalled() -> Any:
            status, body = await health(url)
            return body if status == 503 else None

        body = await wait_for(stalled, 20, "/health to report the stalled exporter")
        (problem,) = body["problems"]
        assert problem["component"] == "pipeline/traces" and "traces/flaky" in problem["reason"]
        assert "failing on purpose" in problem["reason"]
        service.exporters["flaky"].failing = False  # type: ignore[attr-defined]
        await wait_for(lambda: service.pipelines[0].caught_up(), 20, "the exporter to catch up")
        assert (await health(url))[0] == 200


async def test_pipeline_slow_optional_exporter_drops_with_a_count_and_releases_the_wal(
    tmp_path: Path,
) -> None:
    cfg = collector_config(
        tmp_path,
        exporters={
            "clickhouse": {},
            "refusing": {
                "delay_seconds": 0.5,
                "sending_queue": {"on_overflow": "drop", "max_lag_mib": 0.05, "max_lag_seconds": 0},
            },
        },
        overrides={
            "service": {
                "wal": {"segment_size_mib": 1},
                "delivery": {"linger_seconds": 0, "min_batch_mib": 0, "max_batch_mib": 0.05},
            }
        },
        extra_factories=FACTORIES,
    )
    async with running(cfg) as service:
        assert service.log is not None
        sent = 0
        for n in range(60):
            names = ["chat " + "x" * 2000] * 20
            await append(
                service, request("orgA", [time.time_ns() + i for i in range(20)], names, seed=10 + n)
            )
            sent += 20
        await wait_for(lambda: service.pipelines[0].caught_up(), 60, "both exporters to reach the head")
        assert count(service) == sent  # storage blocks: it has everything
        refusing = service.exporters["refusing"]
        assert isinstance(refusing, RefusingExporter)
        assert len(refusing.span_ids) < sent
        samples = await scrape(metrics_port(service))
        dropped = samples.value(
            "llm_observer_wal_records_dropped_total", pipeline="traces", exporter="refusing"
        )
        assert dropped is not None and dropped > 0
        assert service.log.first > 1  # segments behind the slow exporter were released


async def test_pipeline_a_slightly_slower_exporter_stays_on_the_ring_and_nothing_is_processed_twice(
    tmp_path: Path,
) -> None:
    # Storage a little behind span metrics is the usual case: the stage waits for it rather than evicting
    # each chunk the moment the faster exporter is done, which made the slower one decode and process every
    # chunk again from the WAL.
    cfg = config(
        tmp_path,
        {"refusing/fast": {}, "refusing/slow": {"delay_seconds": 0.05}},
        {"linger_seconds": 0, "min_batch_mib": 0, "max_batch_mib": 0.01},
    )
    async with running(cfg) as service:
        slow = await send_past_two_exporters(service, 40)
        assert slow.sends > 10  # many chunks went through the ring
        reprocessed = await reprocessed_records(service)
        assert not reprocessed


async def test_pipeline_storage_slowed_once_past_the_ring_wait_rejoins_the_ring(tmp_path: Path) -> None:
    # Clients sent faster than storage stores, and one insert takes longer than the ring's wait: the stage
    # evicts the chunk storage has in hand, but waits for it on the next one. Evicting that one too made
    # storage decode and process the rest of the backlog again from the WAL while the stage ran ahead.
    cfg = config(
        tmp_path,
        {
            "refusing/fast": {},
            "refusing/slow": {"delay_seconds": 0.05, "slow_send": 3, "slow_send_seconds": 1.4},
        },
        {"linger_seconds": 0, "min_batch_mib": 0, "max_batch_mib": 0.01},
    )
    async with running(cfg) as service:
        pipeline = service.pipelines[0]
        # The slow send outlasts one wait (1.0 s) by 0.4 s and ends 0.6 s before the second runs out.
        pipeline.settings = dataclasses.replace(pipeline.settings, ring_wait_seconds=1.0)
        slow = await send_past_two_exporters(service, 30)
        assert slow.sends > 5  # the slow send came early, with most of the backlog still ahead
        reprocessed = await reprocessed_records(service)
        # The chunk evicted from its hands it still delivers; it takes the next one from the ring.
        assert not reprocessed
