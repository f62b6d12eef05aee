"""Configuration of the ``vectors`` exporter (prompt embeddings in ClickHouse, beside the spans)."""

from __future__ import annotations

from pydantic import Field

from llm_observer.exporters.embedding import EmbeddingSettings
from llm_observer.storage.vectors.embed import DEFAULT_MODEL_BATCH
from llm_observer.storage.vectors.settings import ClickHouseVectorSettings


class VectorsExporterConfig(ClickHouseVectorSettings, EmbeddingSettings):
    """What is embedded and how much CPU it may take; where it goes is the store ``storage`` names.

    Texts are cut to ``max_text_chars`` before they are hashed and embedded; ``excerpt_chars`` of each are
    kept beside its vector. ``retention_days`` of the span rows (None: the ``ttl_days`` of the ClickHouse
    exporter ``storage`` names, as its spans).

    Cost bounds: the model runs on one dedicated thread at OS priority ``nice`` (0 = unchanged, 19 = lowest)
    with ``threads`` model threads (the default 1 is at most one core's worth). When the newest span of a
    batch is older than ``max_lag_seconds``, the exporter is behind: it embeds at most
    ``lag_sample_texts`` of the batch's new texts, counts the others as ``texts_sampled_out`` and still
    writes every span's row (a text stored before stays findable from its new spans).

    ``send_budget_seconds``: a send that has not embedded all its new texts by then stores what it has and
    fails with a retryable error; its retry finds those stored and carries on.
    """

    retention_days: int | None = Field(default=None, gt=0, le=10_000)
    nice: int = Field(default=10, ge=0, le=19)
    max_lag_seconds: float = Field(default=300.0, gt=0)
    lag_sample_texts: int = Field(default=DEFAULT_MODEL_BATCH, ge=0)
