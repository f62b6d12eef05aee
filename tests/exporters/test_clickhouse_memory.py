"""``llm_observer_memory_bytes``: the process's memory by part, with the embedded engine's own figure."""

from __future__ import annotations

import logging
from pathlib import Path

from llm_observer.exporters.clickhouse import ClickHouseExporterConfig, factory
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.telemetry import Telemetry
from tests.support import add_span
from tests.support.memory import memory_parts


def test_memory_parts_of_the_process_without_a_store() -> None:
    telemetry = Telemetry()
    telemetry.memory_parts["model"] = lambda: 12_345
    telemetry.memory_parts["gone"] = lambda: None  # a part that cannot say is left out
    parts = memory_parts(telemetry)
    assert parts["rss_anonymous"] > 0
    assert parts["rss_file"] > 0
    assert parts["model"] == 12_345
    assert "gone" not in parts


async def test_memory_parts_include_the_embedded_engine_once_it_stores(tmp_path: Path) -> None:
    telemetry = Telemetry()
    exporter = factory.create(
        CreateContext("clickhouse", tmp_path, telemetry, logging.getLogger("test")),
        ClickHouseExporterConfig(),
    )
    assert "chdb_tracked" not in memory_parts(telemetry)
    assert "chdb_heap_resident" not in memory_parts(telemetry)
    await exporter.start()
    try:
        batch = SpanBatch()
        for n in range(50):
            add_span(batch, {"gen_ai.operation.name": "chat"}, span_id=(n + 1).to_bytes(8, "big"))
        await exporter.send(batch)
        parts = memory_parts(telemetry)
        assert parts["chdb_tracked"] > 0
        # The engine's own allocator: what it allocated lies in its active pages; resident pages are read
        # from the allocator, not derived from the other two.
        assert 0 < parts["chdb_heap_allocated"] <= parts["chdb_heap_active"]
        assert parts["chdb_heap_resident"] > 0
        # The engine library is a mapped file: resident, counted in rss_file, and not the process's heap.
        assert 0 < parts["rss_engine_library"] <= parts["rss_file"]
    finally:
        await exporter.shutdown()
