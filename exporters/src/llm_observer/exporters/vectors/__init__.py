"""The ``vectors`` exporter (entry point ``vectors``): prompt embeddings in ClickHouse, beside the spans.

Each unique text (content hash, per embedding model) is embedded once and stored once, in the same store as
the spans (embedded chDB in ``up``, or a ClickHouse server); each span gets a small row naming its text's
hash. The tables, writes and search live in ``llm_observer.storage.clickhouse.vector_*``.
"""

from __future__ import annotations

from collections.abc import Sequence

from llm_observer.exporters.vectors.config import VectorsExporterConfig
from llm_observer.exporters.vectors.exporter import VectorsExporter, create
from llm_observer.kernel.component import Factory, Reference
from llm_observer.storage.clickhouse.settings import ClickHouseSettings


def references(config: VectorsExporterConfig) -> Sequence[Reference]:
    """The ClickHouse exporter whose store the vectors share."""
    return [Reference("storage", "exporters", config.storage, ClickHouseSettings)]


factory: Factory[VectorsExporterConfig, VectorsExporter] = Factory(
    "vectors", VectorsExporterConfig, create, references=references
)

__all__ = ["VectorsExporter", "VectorsExporterConfig", "create", "factory"]
