"""Exporter doubles for the fault suite, and a launcher that runs the real ``llm-observer`` CLI with them
known (``python -m tests.support.fault_doubles up --config ...``), so that a subprocess test can inject
store errors and slowness into a real ``llm-observer up``."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from pydantic import Field

from llm_observer.collector import config as config_module
from llm_observer.collector.cli import main
from llm_observer.exporters.clickhouse import ClickHouseExporter, ClickHouseExporterConfig
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import ComponentConfig, CreateContext, Factory
from llm_observer.storage.clickhouse.client import classify


class ChaosClickHouseConfig(ClickHouseExporterConfig):
    fail_first: int = Field(5, description="sends that fail with an injected ClickHouse error")
    delay_seconds: float = 0.0


class ChaosClickHouseExporter(ClickHouseExporter):
    """The real ClickHouse exporter, whose first ``fail_first`` sends fail as an overloaded ClickHouse
    answers (TOO_MANY_PARTS while merges are behind: retryable), each send slowed by ``delay_seconds``."""

    def __init__(self, ctx: CreateContext, config: ChaosClickHouseConfig) -> None:
        super().__init__(ctx, config)
        self.remaining_failures = config.fail_first
        self.delay = config.delay_seconds

    async def send(self, batch: SpanBatch) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.remaining_failures > 0:
            self.remaining_failures -= 1
            raise classify(
                "Code: 252. DB::Exception: Too many parts (600). Merges are processing "
                "significantly slower than inserts. (TOO_MANY_PARTS)",
                "ClickHouse insert failed",
            )
        await super().send(batch)


class SlowConfig(ComponentConfig):
    delay_seconds: float = 1.0


class SlowExporter:
    """An optional exporter far slower than the ingest rate (as semantic search was)."""

    def __init__(self, config: SlowConfig) -> None:
        self.delay = config.delay_seconds

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def send(self, batch: SpanBatch) -> None:
        await asyncio.sleep(self.delay)


def _chaos(ctx: CreateContext, config: ChaosClickHouseConfig) -> ChaosClickHouseExporter:
    return ChaosClickHouseExporter(ctx, config)


def _slow(ctx: CreateContext, config: SlowConfig) -> SlowExporter:
    return SlowExporter(config)


FACTORIES: dict[str, dict[str, Factory[Any, Any]]] = {
    "exporters": {
        "chaos_clickhouse": Factory("chaos_clickhouse", ChaosClickHouseConfig, _chaos),
        "slow": Factory("slow", SlowConfig, _slow),
    }
}


def _install() -> None:
    discover = config_module.discover_factories

    def with_doubles(extra: Any = None) -> Any:
        found = discover(extra)
        for kind, factories in FACTORIES.items():
            found.setdefault(kind, {}).update(factories)
        return found

    config_module.discover_factories = with_doubles  # type: ignore[assignment]


if __name__ == "__main__":
    _install()
    sys.exit(main(sys.argv[1:]))
