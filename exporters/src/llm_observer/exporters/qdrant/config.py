"""Configuration of the Qdrant vector exporter (prompt embeddings)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llm_observer.storage.vectors.embed import DEFAULT_MODEL_BATCH
from llm_observer.storage.vectors.settings import VectorSettings


class QdrantExporterConfig(VectorSettings):
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

    embed_outputs: bool = False
    prompt_roles: tuple[str, ...] = Field(default=("user",), min_length=1)
    prompt_scope: Literal["last", "all"] = "last"
    batch_size: int = Field(default=DEFAULT_MODEL_BATCH, ge=1, le=4096)
    send_budget_seconds: float = Field(default=20.0, gt=0)
    max_text_chars: int = Field(default=2000, ge=16, le=100_000)
    excerpt_chars: int = Field(default=500, ge=0, le=100_000)
    cache_size: int = Field(default=10_000, ge=0)
    # Like the span store's TTL, so that a search never finds a trace that storage already dropped.
    retention_days: float | None = Field(default=90, gt=0)
