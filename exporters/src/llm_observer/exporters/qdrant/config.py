"""Configuration of the Qdrant vector exporter (prompt embeddings)."""

from __future__ import annotations

from pydantic import Field

from llm_observer.exporters.embedding import EmbeddingSettings
from llm_observer.storage.vectors.settings import VectorSettings


class QdrantExporterConfig(VectorSettings, EmbeddingSettings):
    """What is embedded, beside where the vectors go and with which model (the settings search also reads).

    Texts are cut to ``max_text_chars`` before they are hashed and embedded; ``excerpt_chars`` of each are kept
    in the point's payload. Points of spans older than ``retention_days`` are deleted (at start, then hourly);
    ``None`` keeps them.

    ``batch_size`` is the number of texts per model run. A send works through its batch in slices, storing
    each; once ``send_budget_seconds`` have passed it stops after the slice in hand and fails with a
    retryable error saying how far it got, and the retry of the same batch resumes there. Keep the budget
    under the collector's ``service.delivery.timeout_seconds`` (30 by default) so that no send is cut off
    by the collector's timeout instead.
    """

    # Like the span store's TTL, so that a search never finds a trace that storage already dropped.
    retention_days: float | None = Field(default=90, gt=0)
