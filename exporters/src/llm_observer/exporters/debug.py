"""The ``debug`` exporter: keeps the last spans in memory and logs a one-line summary per batch at DEBUG.

Useful to see what a pipeline produces, and in tests as an in-memory sink (``DebugExporter.spans``).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from pydantic import Field

from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import ComponentConfig, CreateContext, Exporter, Factory

logger = logging.getLogger(__name__)


class DebugExporterConfig(ComponentConfig):
    keep_last: int = Field(10_000, ge=0, description="how many spans to keep in memory")


class DebugExporter:
    """An in-memory sink. ``spans`` holds dicts of the last ``keep_last`` spans; ``batches`` counts sends."""

    def __init__(self, config: DebugExporterConfig) -> None:
        self.spans: deque[dict[str, Any]] = deque(maxlen=config.keep_last)
        self.batches = 0
        self.origins: list[str] = []

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def send(self, batch: SpanBatch) -> None:
        self.batches += 1
        self.origins.append(batch.origin)
        for row in range(len(batch)):
            self.spans.append({name: column[row] for name, column in batch.columns()})
        logger.debug("batch %s: %d spans", batch.origin, len(batch))


def _create(ctx: CreateContext, config: DebugExporterConfig) -> Exporter:
    return DebugExporter(config)


factory = Factory("debug", DebugExporterConfig, _create)
