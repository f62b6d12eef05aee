"""The Qdrant exporter: embeds span prompts (and optionally outputs) and upserts them as points.

It runs behind its own WAL cursor like every exporter, so embedding never slows ingestion: when the model
falls behind, the WAL lag of this exporter grows (``llm_observer_wal_lag_records{exporter=...}``) and the
other exporters carry on. The model and the store are used from worker threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time

from llm_observer.collector.batch import SpanBatch
from llm_observer.collector.component import CreateContext
from llm_observer.collector.errors import RetryableError
from llm_observer.exporters.qdrant.config import QdrantExporterConfig
from llm_observer.exporters.qdrant.points import build_points
from llm_observer.exporters.qdrant.store import VectorStore, open_vector_store
from llm_observer.processors.embed import EmbedCounts, Embedder, SpanText, shared_embedder, span_texts

logger = logging.getLogger(__name__)


class QdrantExporter:
    """Embeds the content of each batch and writes one point per span and kind to ``config.collection``.

    Counts (component events): ``texts_embedded`` (model runs), ``texts_deduplicated`` (answered by the
    cache: repeats, or texts embedded before), ``points_written``, ``spans_without_text``.
    ``lag_seconds`` is how old the newest span of the last batch was when its points were written.
    """

    def __init__(self, ctx: CreateContext, config: QdrantExporterConfig) -> None:
        self.config = config
        self._ctx = ctx
        self._metrics = ctx.telemetry.component(ctx.component_id)
        self._store: VectorStore | None = None
        self._embedder: Embedder | None = None
        self._lock = asyncio.Lock()
        self.counts = EmbedCounts()
        self.lag_seconds = 0.0

    @property
    def store(self) -> VectorStore | None:
        """The open store between ``start`` and ``shutdown``."""
        return self._store

    @property
    def embedder(self) -> Embedder | None:
        return self._embedder

    async def start(self) -> None:
        """Load the model and open the store, creating the collection when missing. Idempotent."""
        async with self._lock:
            if self._store is not None:
                return
            config = self.config
            embedder = await asyncio.to_thread(
                shared_embedder,
                config.model,
                self._ctx.data_dir / "models",
                cache_size=config.cache_size,
                threads=config.threads,
            )
            store = await asyncio.to_thread(
                open_vector_store, config.url, self._ctx.data_dir, config.api_key, config.timeout_seconds
            )
            try:
                await asyncio.to_thread(store.ensure_collection, config.collection, embedder.dim)
            except BaseException:
                store.close()
                raise
            self._embedder, self._store = embedder, store
            self._ctx.logger.info(
                "Embedding with %s into %s (collection %s).", config.model, store.location, config.collection
            )

    async def send(self, batch: SpanBatch) -> None:
        """Embed the batch's texts and upsert their points; returns once they are stored."""
        store, embedder = self._store, self._embedder
        if store is None or embedder is None:
            raise RetryableError("the qdrant exporter is not started")
        config = self.config
        items = span_texts(
            batch,
            max_chars=config.max_text_chars,
            embed_outputs=config.embed_outputs,
            roles=config.prompt_roles,
            scope=config.prompt_scope,
        )
        with_text = len({item.row for item in items})
        if with_text < len(batch):
            self._metrics.event("spans_without_text", len(batch) - with_text)
        if not items:
            return
        counts = EmbedCounts()
        await asyncio.to_thread(self._write, store, embedder, batch, items, counts)
        self.counts.add(counts)
        if counts.embedded:
            self._metrics.event("texts_embedded", counts.embedded)
        if counts.deduplicated:
            self._metrics.event("texts_deduplicated", counts.deduplicated)
        self._metrics.event("points_written", len(items))
        newest = max(batch.end_time_unix_nano[item.row] for item in items)
        self.lag_seconds = max(0.0, time.time() - newest / 1e9)

    def _write(
        self,
        store: VectorStore,
        embedder: Embedder,
        batch: SpanBatch,
        items: list[SpanText],
        counts: EmbedCounts,
    ) -> None:
        config = self.config
        vectors = embedder.embed(
            [item.text for item in items],
            store=store.cache(config.collection),
            batch_size=config.batch_size,
            counts=counts,
        )
        store.upsert(config.collection, build_points(batch, items, vectors, config.excerpt_chars))

    async def shutdown(self) -> None:
        """Release the store (the model stays loaded for other users in the process). Idempotent."""
        async with self._lock:
            store, self._store, self._embedder = self._store, None, None
            if store is not None:
                await asyncio.to_thread(store.close)


def create(ctx: CreateContext, config: QdrantExporterConfig) -> QdrantExporter:
    return QdrantExporter(ctx, config)
