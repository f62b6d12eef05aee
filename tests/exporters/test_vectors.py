"""The ``vectors`` exporter: the real bundled model, real chDB in a tmp dir, each unique text stored once."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from llm_observer.exporters.clickhouse import ClickHouseExporterConfig
from llm_observer.exporters.vectors import VectorsExporter, factory
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.errors import ConfigError, RetryableError
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.storage.clickhouse.vector_schema import VECTOR_SPANS_TABLE, VECTORS_TABLE
from tests.exporters.test_qdrant import make_batch as qdrant_batch
from tests.support import add_span, wait_for


def now() -> datetime:
    """The current time, read when a batch is made: a module-level constant would age while a long suite runs,
    and batches meant to be fresh would look like a backlog."""
    return datetime.now(UTC).replace(microsecond=0)


TEXTS = [
    "How do I reset my password?",
    "What's the weather forecast for Paris tomorrow?",
    "Write a haiku about autumn leaves falling",
    "Explain the difference between TCP and UDP",
]


def make_batch(
    prompts: Sequence[str],
    *,
    org: str = "acme",
    project: str = "support",
    model: str = "gpt-4o-mini",
    start: datetime | None = None,
    first_span: int = 1,
    outputs: Sequence[str] | None = None,
) -> SpanBatch:
    """The Qdrant tests' chat spans (a system message, then the prompt), a second apart from ``start``
    (default: a minute ago, so that the exporter is not behind)."""
    return qdrant_batch(
        prompts,
        org=org,
        project=project,
        model=model,
        start=start if start is not None else now() - timedelta(minutes=1),
        first_span=first_span,
        outputs=outputs,
    )


def make_exporter(
    data_dir: Path, telemetry: Telemetry | None = None, *, ttl_days: int = 90, **config: object
) -> VectorsExporter:
    ctx = CreateContext(
        component_id="vectors",
        data_dir=data_dir,
        telemetry=telemetry or Telemetry(),
        logger=logging.getLogger("test.vectors"),
        configs={"exporters": {"clickhouse": ClickHouseExporterConfig(ttl_days=ttl_days)}},
    )
    return factory.create(ctx, factory.config_model.model_validate(config))


def event(telemetry: Telemetry, name: str) -> float:
    value = telemetry.registry.get_sample_value(
        "llm_observer_component_events_total", {"component": "vectors", "event": name}
    )
    return value or 0.0


def count(exporter: VectorsExporter, table: str) -> int:
    assert exporter.client is not None
    rows = exporter.client.rows(f"SELECT count() AS n FROM `{exporter.database}`.{table} FINAL")
    return int(rows[0]["n"])


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


async def test_vectors_unique_texts_are_embedded_and_stored_once(data_dir: Path) -> None:
    telemetry = Telemetry()
    exporter = make_exporter(data_dir, telemetry)
    await exporter.start()
    try:
        prompts = [TEXTS[i % 4] for i in range(12)]  # 12 spans, 4 texts
        await exporter.send(make_batch(prompts))
        assert exporter.counts.embedded == 4
        assert count(exporter, VECTORS_TABLE) == 4
        assert count(exporter, VECTOR_SPANS_TABLE) == 12
        assert event(telemetry, "texts_embedded") == 4
        assert event(telemetry, "texts_deduplicated") == 8
        # The same texts from new spans: their rows only.
        await exporter.send(make_batch(prompts[:6], first_span=100))
        assert exporter.counts.embedded == 4
        assert count(exporter, VECTORS_TABLE) == 4
        assert count(exporter, VECTOR_SPANS_TABLE) == 18
    finally:
        await exporter.shutdown()

    # A restart (nothing cached in memory) finds the stored texts in the table, in one lookup.
    again = make_exporter(data_dir)
    await again.start()
    try:
        await again.send(make_batch([*TEXTS, "A fifth, new question about invoices"], first_span=200))
        assert again.counts.embedded == 1
        assert count(again, VECTORS_TABLE) == 5
        assert count(again, VECTOR_SPANS_TABLE) == 23
    finally:
        await again.shutdown()


async def test_vectors_second_exporter_on_the_same_store_embeds_nothing_stored(data_dir: Path) -> None:
    # Two exporters on one store (as two collectors on one server): the second finds the first one's texts.
    first, second = make_exporter(data_dir), make_exporter(data_dir)
    await first.start()
    await second.start()
    try:
        await first.send(make_batch(TEXTS))
        await second.send(make_batch(list(reversed(TEXTS)), first_span=50))
        assert first.counts.embedded == 4
        assert second.counts.embedded == 0
        assert count(second, VECTORS_TABLE) == 4
        assert count(second, VECTOR_SPANS_TABLE) == 8
    finally:
        await first.shutdown()
        await second.shutdown()


async def test_vectors_embedding_thread_runs_at_low_priority(data_dir: Path) -> None:
    exporter = make_exporter(data_dir, nice=7)
    await exporter.start()
    try:
        await exporter.send(make_batch(TEXTS[:1]))
        assert exporter.thread_priority == 7
        threads = [t for t in threading.enumerate() if t.name.startswith("embed-vectors")]
        assert len(threads) == 1 and threads[0].native_id is not None
        assert os.getpriority(os.PRIO_PROCESS, threads[0].native_id) == 7
        # The rest of the process keeps its priority.
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < 7
    finally:
        await exporter.shutdown()


async def test_vectors_backlog_embeds_a_counted_sample(data_dir: Path) -> None:
    telemetry = Telemetry()
    exporter = make_exporter(data_dir, telemetry, max_lag_seconds=600, lag_sample_texts=3)
    await exporter.start()
    try:
        fresh = [f"Fresh question number {i} about my invoice" for i in range(2)]
        await exporter.send(make_batch(fresh))
        # Spans an hour old: the exporter is behind and embeds 3 of the 10 new texts.
        old = [f"Backlog question number {i} about shipping" for i in range(10)]
        late = make_batch([*old, fresh[0]], start=now() - timedelta(hours=1), first_span=100)
        await exporter.send(late)
        assert exporter.counts.embedded == 2 + 3
        assert exporter.sampled_out == 7
        assert event(telemetry, "texts_sampled_out") == 7
        assert count(exporter, VECTORS_TABLE) == 5
        # Every span keeps its row: a sampled-out text becomes findable once some span gets it embedded.
        assert count(exporter, VECTOR_SPANS_TABLE) == 2 + 11
        await exporter.send(make_batch(old, first_span=300))
        assert exporter.counts.embedded == 2 + 10
        assert exporter.sampled_out == 7
    finally:
        await exporter.shutdown()


async def test_vectors_span_rows_expire_with_the_retention(data_dir: Path) -> None:
    exporter = make_exporter(data_dir, retention_days=2)
    await exporter.start()
    try:
        await exporter.send(make_batch(TEXTS[:2], start=now() - timedelta(days=5)))
        await exporter.send(make_batch(TEXTS[2:], first_span=10))
        assert exporter.client is not None
        engine = exporter.client.rows(
            "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            {"db": exporter.database, "t": VECTOR_SPANS_TABLE},
        )[0]["engine_full"]
        assert "toIntervalDay(2)" in engine
        exporter.client.command(f"OPTIMIZE TABLE `{exporter.database}`.{VECTOR_SPANS_TABLE} FINAL")
        rows = exporter.client.rows(
            f"SELECT lower(hex(SpanId)) AS s FROM `{exporter.database}`.{VECTOR_SPANS_TABLE} ORDER BY s"
        )
        assert [r["s"] for r in rows] == [(10).to_bytes(8, "big").hex(), (11).to_bytes(8, "big").hex()]
    finally:
        await exporter.shutdown()


async def test_vectors_retention_defaults_to_the_span_store(data_dir: Path) -> None:
    exporter = make_exporter(data_dir, ttl_days=30)
    await exporter.start()
    try:
        await exporter.send(make_batch(TEXTS[:1]))
        assert exporter.client is not None
        engine = exporter.client.rows(
            "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            {"db": exporter.database, "t": VECTOR_SPANS_TABLE},
        )[0]["engine_full"]
        assert "toIntervalDay(30)" in engine
    finally:
        await exporter.shutdown()


async def test_vectors_outputs_are_embedded_when_asked(data_dir: Path) -> None:
    exporter = make_exporter(data_dir, embed_outputs=True)
    await exporter.start()
    try:
        await exporter.send(make_batch(TEXTS[:2], outputs=["Click 'forgot password'.", "Sunny, 21 C."]))
        assert exporter.client is not None
        kinds = exporter.client.rows(
            f"SELECT Kind AS k, count() AS n FROM `{exporter.database}`.{VECTOR_SPANS_TABLE} GROUP BY k ORDER BY k"
        )
        assert [(r["k"], r["n"]) for r in kinds] == [("output", 2), ("prompt", 2)]
        assert exporter.counts.embedded == 4
    finally:
        await exporter.shutdown()


async def test_vectors_config_refuses_qdrant_options_and_unknown_storage(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="locate a Qdrant store"):
        factory.config_model.model_validate({"url": "http://qdrant:6333"})
    exporter = make_exporter(data_dir, storage="nope")
    with pytest.raises(ConfigError):
        await exporter.start()
    refs: Any = factory.references
    assert [(r.field, r.component_id) for r in refs(factory.config_model())] == [("storage", "clickhouse")]


async def test_vectors_spans_without_text_are_counted(data_dir: Path) -> None:
    telemetry = Telemetry()
    exporter = make_exporter(data_dir, telemetry)
    await exporter.start()
    try:
        batch = make_batch(TEXTS[:1])
        add_span(batch, {"gen_ai.operation.name": "chat"}, trace_id=b"\x09" * 16, span_id=b"\x09" * 8)
        await exporter.send(batch)
        await wait_for(lambda: event(telemetry, "spans_without_text") == 1, what="spans_without_text")
        assert count(exporter, VECTOR_SPANS_TABLE) == 1
    finally:
        await exporter.shutdown()


async def test_vectors_start_does_not_wait_on_the_store(data_dir: Path) -> None:
    # A ClickHouse server that is not there: start still returns, and sends fail as retryable until it is.
    from tests.support import free_port

    ctx = CreateContext(
        component_id="vectors",
        data_dir=data_dir,
        telemetry=Telemetry(),
        logger=logging.getLogger("test.vectors"),
        configs={
            "exporters": {
                "clickhouse": ClickHouseExporterConfig(
                    endpoint=f"http://127.0.0.1:{free_port()}", timeout_seconds=1
                )
            }
        },
    )
    exporter = factory.create(ctx, factory.config_model())
    await exporter.start()
    try:
        assert exporter.client is None
        for _ in range(2):  # each send tries to open the store again
            with pytest.raises(RetryableError, match="cannot start embedding"):
                await exporter.send(make_batch(TEXTS[:1]))
    finally:
        await exporter.shutdown()


async def test_vectors_sweep_deletes_vectors_whose_spans_expired(data_dir: Path) -> None:
    from llm_observer.storage.clickhouse.vector_writes import insert_vectors
    from llm_observer.storage.vectors.embed import content_hash

    exporter = make_exporter(data_dir, retention_days=2)
    await exporter.start()
    try:
        await exporter.send(make_batch(TEXTS[:2]))
        assert exporter.client is not None and exporter.embedder is not None
        # A text seen long ago whose spans are gone, and one as old that a span still names.
        orphan, kept = "An old question nobody asks any more", TEXTS[0]
        old = (now() - timedelta(days=10)).timestamp()
        model = exporter.embedder.cache_key
        for text in (orphan, kept):
            insert_vectors(
                exporter.client, exporter.database, model, [content_hash(text)], [text], [[0.0] * 384], old
            )
        exporter.sweep()
        texts = exporter.client.rows(f"SELECT DISTINCT Text AS t FROM `{exporter.database}`.{VECTORS_TABLE}")
        assert sorted(r["t"] for r in texts) == sorted(TEXTS[:2])
        # Known hashes are forgotten: a text swept and sent again is embedded again.
        await exporter.send(make_batch([orphan], first_span=40))
        assert exporter.counts.embedded == 3
    finally:
        await exporter.shutdown()
