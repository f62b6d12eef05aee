"""The Qdrant exporter: embeds span prompts (and optionally outputs) and upserts them as points.

It runs behind its own WAL cursor like every exporter, so embedding never slows ingestion: when the model
falls behind, the WAL lag of this exporter grows (``llm_observer_wal_lag_records{pipeline,exporter}``) and
the other exporters carry on. The model and the store are used from worker threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time

from llm_observer.exporters.embedding import await_write
from llm_observer.exporters.qdrant.config import QdrantExporterConfig
from llm_observer.exporters.qdrant.points import build_points
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.errors import RetryableError
from llm_observer.storage.vectors.embed import (
    EmbedCounts,
    Embedder,
    release_embedder,
    shared_embedder,
    span_texts,
)
from llm_observer.storage.vectors.store import VectorStore, open_vector_store

logger = logging.getLogger(__name__)


class QdrantExporter:
    """Embeds the content of each batch and writes one point per span and kind to ``config.collection``.

    Counts (component events): ``texts_embedded`` (model runs), ``texts_deduplicated`` (answered by the
    cache: repeats, or texts embedded before), ``points_written``, ``spans_without_text``, and
    ``sends_over_budget`` (sends that stopped at ``send_budget_seconds``, to be resumed by their retry).
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
        self._job: asyncio.Future[tuple[int, int]] | None = None
        # (batch origin, spans, texts) of the last batch and how many of its texts are stored.
        self._resume: tuple[tuple[str, int, int], int] = (("", 0, 0), 0)
        self._next_expiry = 0.0
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
            try:
                store = await asyncio.to_thread(
                    open_vector_store, config.url, self._ctx.data_dir, config.api_key, config.timeout_seconds
                )
            except BaseException:
                release_embedder(embedder)
                raise
            try:
                await asyncio.to_thread(store.ensure_collection, config.collection, embedder.dim)
                self._next_expiry = 0.0
                await asyncio.to_thread(self._expire, store)
            except BaseException:
                store.close()
                release_embedder(embedder)
                raise
            self._embedder, self._store = embedder, store
            self._ctx.logger.info(
                "Embedding with %s into %s (collection %s).", config.model, store.location, config.collection
            )

    async def send(self, batch: SpanBatch) -> None:
        """Embed the batch's texts and upsert their points; returns once they are all stored.

        Raises ``RetryableError`` when ``send_budget_seconds`` ran out first (what was stored stays stored and
        the retry of this batch resumes after it) or when the model or the store failed; every message names
        the exporter, the batch and how long the send ran.
        """
        store, embedder = self._store, self._embedder
        if store is None or embedder is None:
            raise RetryableError(f"{self._ctx.component_id}: the qdrant exporter is not started")
        if not len(batch):
            return
        previous = self._job
        if previous is not None and not previous.done():
            # An earlier send was cancelled while its thread kept working (a thread cannot be cancelled): it
            # stops at its own deadline, and is almost surely this very batch, retried, which then resumes.
            await asyncio.wait([previous])
        began = time.monotonic()
        deadline = began + self.config.send_budget_seconds
        # Everything, down to parsing the messages, runs off the event loop that answers the receivers.
        job = asyncio.ensure_future(asyncio.to_thread(self._write, store, embedder, batch, deadline))
        self._job = job
        done, total = await await_write(job, lambda: self._what(batch, began))
        if done < total:
            self._metrics.event("sends_over_budget")
            raise RetryableError(
                f"{self._what(batch, began)}: stored {done} of its {total} texts within send_budget_seconds "
                f"({self.config.send_budget_seconds:g}s); the retry resumes with the other {total - done}"
            )

    def _what(self, batch: SpanBatch, began: float) -> str:
        elapsed = time.monotonic() - began
        return f"exporter {self._ctx.component_id}: a send of {len(batch)} spans, {elapsed:.1f}s in"

    def _expire(self, store: VectorStore) -> None:
        """Delete points past ``retention_days``, at most once an hour."""
        days = self.config.retention_days
        now = time.time()
        if days is None or now < self._next_expiry:
            return
        self._next_expiry = now + 3600.0
        store.delete_before(self.config.collection, now - days * 86400.0)

    def _write(
        self, store: VectorStore, embedder: Embedder, batch: SpanBatch, deadline: float
    ) -> tuple[int, int]:
        """Embed and store the batch's texts slice by slice until done or ``deadline`` (monotonic) has
        passed; returns how many of how many texts are stored."""
        config = self.config
        items = span_texts(
            batch,
            max_chars=config.max_text_chars,
            embed_outputs=config.embed_outputs,
            roles=config.prompt_roles,
            scope=config.prompt_scope,
        )
        key = (batch.origin, len(batch), len(items))
        first = self._resume[1] if batch.origin and self._resume[0] == key else 0
        if first == 0:
            with_text = len({item.row for item in items})
            if with_text < len(batch):
                self._metrics.event("spans_without_text", len(batch) - with_text)
        self._expire(store)
        cache = store.cache(config.collection)
        # A few model runs per slice: each slice is stored when done, so that a send stops soon after its
        # deadline, and its retry starts after what is stored.
        step = config.batch_size * 8
        done = first
        while done < len(items):
            if done > first and time.monotonic() >= deadline:
                break
            part = items[done : done + step]
            counts = EmbedCounts()
            vectors = embedder.embed(
                [item.text for item in part], store=cache, batch_size=config.batch_size, counts=counts
            )
            store.upsert(config.collection, build_points(batch, part, vectors, config.excerpt_chars))
            done += len(part)
            self._resume = (key, done)
            self.counts.add(counts)
            if counts.embedded:
                self._metrics.event("texts_embedded", counts.embedded)
            if counts.deduplicated:
                self._metrics.event("texts_deduplicated", counts.deduplicated)
            self._metrics.event("points_written", len(part))
            newest = max(batch.end_time_unix_nano[item.row] for item in part)
            self.lag_seconds = max(0.0, time.time() - newest / 1e9)
        return done, len(items)

    async def shutdown(self) -> None:
        """Wait for a write still running, then release the store and the model. Idempotent."""
        async with self._lock:
            job, self._job = self._job, None
            if job is not None and not job.done():
                await asyncio.wait([job])
            store, embedder = self._store, self._embedder
            self._store = self._embedder = None
            if store is not None:
                await asyncio.to_thread(store.close)
            if embedder is not None:
                release_embedder(embedder)


def create(ctx: CreateContext, config: QdrantExporterConfig) -> QdrantExporter:
    return QdrantExporter(ctx, config)
