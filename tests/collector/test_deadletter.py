"""The dead-letter store and ``llm-observer deadletter``: quarantined spans keep their rows, order and
tenants; an operator lists, shows, replays and drops them; a replay reaches only the exporter that could not
deliver them, while the collector runs or at its next start, and never stores a span twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from llm_observer.collector.cli import main
from llm_observer.collector.deadletter import DeadLetterStore, metas_of
from llm_observer.collector.service import DEADLETTER_DIR
from llm_observer.collector.testing import FlakyExporter, running
from llm_observer.kernel.batch import Event, IngestMeta, Provenance, SpanBatch
from tests.collector.test_pipeline_faults import RefusingExporter, append, config, request
from tests.support import add_span, wait_for


def test_deadletter_keeps_rows_in_order_with_their_tenants(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / "dl", sync=False)
    batch = SpanBatch(origin="traces:4-9")
    shared = {"service.name": "a", "llm_observer.organization.id": "orgA"}
    other = {"service.name": "b"}
    for n, resource in enumerate([shared, other, shared, shared]):
        add_span(
            batch,
            {"n": n, "f": 1.5, "ok": True, "list": ["x", 2]},
            resource=resource,
            span_id=bytes([n + 1]) * 8,
            events=[Event(10 + n, "e", {"k": "v"})],
        )
    metas = [IngestMeta("orgA"), IngestMeta("orgB", "p1"), IngestMeta("orgA"), None]
    entry = store.quarantine(
        batch,
        metas,
        pipeline="traces",
        exporter="x",
        consumer="traces/x",
        reason="invalid_data",
        message="refused",
        origin=batch.origin,
        wal_range=(4, 9),
        problems={1: "bad time"},
    )
    assert entry.organizations == {"orgA": 3, "orgB": 1}
    loaded_entry, loaded = store.load(entry.id)
    assert loaded_entry.wal_range == [4, 9] and loaded.origin == "traces:4-9"
    assert loaded.span_id == batch.span_id
    assert loaded.attributes == batch.attributes and loaded.events == batch.events
    assert [r["service.name"] for r in loaded.resource] == ["a", "b", "a", "a"]
    assert metas_of(loaded) == metas
    assert loaded_entry.problems[0]["problem"] == "bad time"
    assert [p.meta for p in loaded.provenance] == [
        IngestMeta("orgA"),
        IngestMeta("orgB", "p1"),
        IngestMeta("orgA"),
    ]
    assert all(isinstance(p, Provenance) for p in loaded.provenance)


def test_deadletter_cli_lists_shows_and_drops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = DeadLetterStore(tmp_path / DEADLETTER_DIR, sync=False)
    batch = SpanBatch()
    add_span(batch, span_id=b"\x07" * 8, name="the refused one")
    entry = store.quarantine(
        batch,
        [None],
        pipeline="traces",
        exporter="clickhouse",
        consumer="traces/clickhouse",
        reason="invalid_data",
        message="start_time_unix_nano is past 2262",
    )
    assert main(["deadletter", "list", "--data-dir", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert entry.id in listed and "start_time_unix_nano" in listed and "default=1" in listed
    assert main(["deadletter", "show", entry.id, "--data-dir", str(tmp_path)]) == 0
    assert "the refused one" in capsys.readouterr().out
    assert main(["deadletter", "show", "no-such-entry", "--data-dir", str(tmp_path)]) == 1
    assert main(["deadletter", "drop", "--all", "--data-dir", str(tmp_path)]) == 0
    assert store.entries() == []


async def test_deadletter_replay_while_running_reaches_only_its_exporter_once(tmp_path: Path) -> None:
    async with running(config(tmp_path, ["clickhouse", "refusing"])) as service:
        names = ["chat", "poison", "chat"]
        await append(service, request("orgA", [time.time_ns() + i for i in range(3)], names, seed=20), "orgA")
        store = DeadLetterStore(tmp_path / DEADLETTER_DIR)
        await wait_for(lambda: store.entries(), 20, "the refused span to be quarantined")
        (entry,) = store.entries()
        assert entry.exporter == "refusing" and entry.spans == 1 and entry.organizations == {"orgA": 1}
        refusing = service.exporters["refusing"]
        assert isinstance(refusing, RefusingExporter)
        await wait_for(lambda: service.pipelines[0].caught_up(), 20, "the cursor to move on")
        assert len(refusing.span_ids) == 2
        refusing.poison = "nothing any more"  # the operator fixed the store
        assert main(["deadletter", "replay", entry.id, "--data-dir", str(tmp_path)]) == 0
        await wait_for(lambda: not store.entries(), 20, "the replay to be delivered")
        assert sorted(refusing.span_ids) == sorted(
            s.span_id for s in request("orgA", [0, 0, 0], seed=20).resource_spans[0].scope_spans[0].spans
        )
        rows = service.exporters["clickhouse"].client.rows(  # type: ignore[attr-defined]
            "SELECT count() AS n FROM otel.otel_traces"
        )
        assert rows == [{"n": 3}]  # storage had them all along and got nothing again


async def test_deadletter_replay_after_a_restart_and_refused_again_keeps_its_tenant(tmp_path: Path) -> None:
    cfg = config(tmp_path, {"clickhouse": {}, "flaky": {"retry_on_failure": {"max_elapsed_seconds": 0.2}}})
    store = DeadLetterStore(tmp_path / DEADLETTER_DIR)
    async with running(cfg) as service:
        await append(service, request("orgA", [time.time_ns() + i for i in range(4)], seed=21), "orgA")
        now = time.time_ns()
        await append(service, request("orgB", [now, 2**63 + 7], seed=22), "orgB")
        await wait_for(lambda: service.pipelines[0].caught_up(), 20, "both exporters to move on")
    entries = store.entries()
    assert {(e.exporter, e.reason) for e in entries} == {
        ("flaky", "retries_exhausted"),
        ("clickhouse", "invalid_data"),
    }
    assert sum(e.spans for e in entries if e.exporter == "flaky") == 6
    assert main(["deadletter", "replay", "--all", "--data-dir", str(tmp_path)]) == 0
    healthy = config(tmp_path, {"clickhouse": {}, "flaky": {"fail": False}})
    async with running(healthy) as service:
        flaky = service.exporters["flaky"]
        assert isinstance(flaky, FlakyExporter)
        await wait_for(lambda: len(flaky.span_ids) == 6, 20, "the replays to reach the flaky exporter")
        # Both replayed entries go, and the row no store can hold comes back as a new entry (a replay_of):
        # waiting for "one entry" alone could see the old one before its replay was refused again.
        await wait_for(
            lambda: [bool(e.replay_of) for e in store.entries()] == [True],
            20,
            "the replayed entries removed and the refused row quarantined again",
        )
        # The row no store can hold is refused again: quarantined again, for the same tenant.
        (again,) = store.entries()
        assert again.exporter == "clickhouse" and again.organizations == {"orgB": 1} and again.replay_of
        assert not again.replay_requested
        assert len(set(flaky.span_ids)) == 6
