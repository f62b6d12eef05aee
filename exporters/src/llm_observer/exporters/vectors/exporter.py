"""The ``vectors`` exporter: embeds each unique span text once and stores it beside the spans in ClickHouse.

It runs behind its own WAL cursor like every exporter, so embedding never slows ingestion. All of its work —
opening the store, loading the model, lookups, model runs, inserts — runs on one dedicated thread at a lowered
OS priority, so the model takes at most ``threads`` cores' worth of CPU and yields to ingestion; ``start``
only schedules the opening and returns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from llm_observer.exporters.embedding import await_write
from llm_observer.exporters.vectors.config import VectorsExporterConfig
from llm_observer.exporters.vectors.rows import span_rows
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.errors import ConfigError, LLMObserverError, RetryableError
from llm_observer.kernel.threads import name_native_thread
from llm_observer.storage.clickhouse.client import ClickHouseClient, open_client_for
from llm_observer.storage.clickhouse.settings import ClickHouseSettings
from llm_observer.storage.clickhouse.vector_schema import ensure_vector_schema
from llm_observer.storage.clickhouse.vector_writes import (
    delete_orphan_vectors,
    insert_span_rows,
    insert_vectors,
    stored_hashes,
)
from llm_observer.storage.vectors.embed import (
    EmbedCounts,
    Embedder,
    release_embedder,
    shared_embedder,
    span_texts,
)

logger = logging.getLogger(__name__)

_DEFAULT_TTL_DAYS = 90
# Hashes known to be stored, per exporter: a repeat costs neither a lookup nor a model run. ~100 B each.
_KNOWN_PER_CACHED_VECTOR = 10
_SWEEP_SECONDS = 3600.0


def lower_thread_priority(nice: int) -> int:
    """Set the calling thread's OS priority to ``nice`` (never raising it back; Linux schedules threads
    apart). Returns the thread's priority afterwards."""
    tid = threading.get_native_id()
    current = os.getpriority(os.PRIO_PROCESS, tid)
    if nice > current:
        os.setpriority(os.PRIO_PROCESS, tid, nice)
    return os.getpriority(os.PRIO_PROCESS, tid)


class VectorsExporter:
    """Embeds each batch's new texts and writes one row per span and kind.

    Counts (component events): ``texts_embedded`` (model runs), ``texts_deduplicated`` (stored before, here or
    by another collector, or repeated in the batch), ``texts_sampled_out`` (new texts left unembedded while
    behind, see ``max_lag_seconds``), ``vectors_written``, ``span_rows_written``, ``spans_without_text`` and
    ``sends_over_budget``. ``lag_seconds`` is how old the newest span of the last batch was when stored.
    Span rows expire with the retention (a ClickHouse TTL); vectors no span row names any more are deleted
    hourly (``sweep``).
    """

    def __init__(self, ctx: CreateContext, config: VectorsExporterConfig) -> None:
        self.config = config
        self._ctx = ctx
        self._metrics = ctx.telemetry.component(ctx.component_id)
        self._lock = asyncio.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._ready: asyncio.Future[None] | None = None
        self._job: asyncio.Future[tuple[int, int]] | None = None
        self._client: ClickHouseClient | None = None
        self._embedder: Embedder | None = None
        self._database = ""
        self._ttl_days_in_use = _DEFAULT_TTL_DAYS
        self._next_sweep = 0.0
        self._known: OrderedDict[str, None] = OrderedDict()
        self._last_batch: tuple[str, int] = ("", 0)
        self.counts = EmbedCounts()
        self.sampled_out = 0
        self.lag_seconds = 0.0
        self.thread_priority: int | None = None  # the embedding thread's nice value, once it runs

    @property
    def embedder(self) -> Embedder | None:
        return self._embedder

    @property
    def client(self) -> ClickHouseClient | None:
        return self._client

    @property
    def database(self) -> str:
        return self._database

    def _storage(self) -> ClickHouseSettings:
        storage = self._ctx.configs.get("exporters", {}).get(self.config.storage)
        if not isinstance(storage, ClickHouseSettings):
            raise ConfigError(
                [
                    (
                        "storage",
                        f"exporter {self.config.storage!r} is not a ClickHouse exporter defined under exporters",
                    )
                ]
            )
        return storage

    def _ttl_days(self, storage: ClickHouseSettings) -> int:
        if self.config.retention_days is not None:
            return self.config.retention_days
        return int(getattr(storage, "ttl_days", _DEFAULT_TTL_DAYS))

    def _init_thread(self) -> None:
        name_native_thread()
        try:
            self.thread_priority = lower_thread_priority(self.config.nice)
        except OSError as exc:
            logger.warning("Cannot lower the embedding thread's priority: %s", exc)

    async def start(self) -> None:
        """Check the ``storage`` reference and schedule opening the store and loading the model on the
        embedding thread; returns at once (sends wait for the opening). Idempotent."""
        async with self._lock:
            if self._ready is not None:
                return
            storage = self._storage()
            self._executor = ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix=f"embed-{self._ctx.component_id}",
                initializer=self._init_thread,
            )
            self._ready = self._schedule_open(storage)

    def _schedule_open(self, storage: ClickHouseSettings) -> asyncio.Future[None]:
        assert self._executor is not None
        ready = asyncio.get_running_loop().run_in_executor(self._executor, self._open, storage)
        ready.add_done_callback(self._opened)
        return ready

    def _opened(self, ready: asyncio.Future[None]) -> None:
        if ready.cancelled():
            return
        exc = ready.exception()
        if exc is not None:
            logger.error("Exporter %s cannot start embedding: %s", self._ctx.component_id, exc)

    def _open(self, storage: ClickHouseSettings) -> None:
        """On the embedding thread: open the store, create the tables, load the model (threads it starts
        inherit the thread's priority)."""
        config = self.config
        client = open_client_for(storage, self._ctx.data_dir)
        try:
            ensure_vector_schema(client, storage.database, self._ttl_days(storage))
            embedder = shared_embedder(
                config.model,
                self._ctx.data_dir / "models",
                cache_size=config.cache_size,
                threads=config.threads,
            )
        except BaseException:
            client.close()
            raise
        self._client, self._embedder, self._database = client, embedder, storage.database
        self._ttl_days_in_use = self._ttl_days(storage)
        logger.info(
            "Embedding with %s into %s (database %s), at most %s model thread(s) at nice %s.",
            config.model,
            storage.endpoint,
            storage.database,
            config.threads,
            self.thread_priority,
        )

    async def _wait_ready(self) -> None:
        ready = self._ready
        if ready is None or self._executor is None:
            raise RetryableError(f"{self._ctx.component_id}: the vectors exporter is not started")
        if not ready.done():
            done, _ = await asyncio.wait([ready], timeout=self.config.send_budget_seconds)
            if not done:
                raise RetryableError(
                    f"{self._ctx.component_id}: still opening the store and loading the model"
                )
        exc = ready.exception()
        if exc is not None:
            # Try again at the next send: a server may come back; the retry's backoff paces the attempts.
            self._ready = self._schedule_open(self._storage())
            raise RetryableError(f"{self._ctx.component_id}: cannot start embedding: {exc}") from exc

    async def send(self, batch: SpanBatch) -> None:
        """Embed the batch's new texts and write its span rows; returns once they are stored.

        Raises ``RetryableError`` while the store and model are still opening, when ``send_budget_seconds``
        ran out first (the vectors stored stay stored; the retry skips them) or when the model or the store
        failed.
        """
        if not len(batch):
            return
        await self._wait_ready()
        assert self._executor is not None
        previous = self._job
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        began = time.monotonic()
        deadline = began + self.config.send_budget_seconds
        job = asyncio.get_running_loop().run_in_executor(self._executor, self._write, batch, deadline)
        self._job = job
        done, total = await await_write(job, lambda: self._what(batch, began))
        if done < total:
            self._metrics.event("sends_over_budget")
            raise RetryableError(
                f"{self._what(batch, began)}: embedded {done} of its {total} new texts within "
                f"send_budget_seconds ({self.config.send_budget_seconds:g}s); the retry carries on"
            )

    def _what(self, batch: SpanBatch, began: float) -> str:
        elapsed = time.monotonic() - began
        return f"exporter {self._ctx.component_id}: a send of {len(batch)} spans, {elapsed:.1f}s in"

    def _remember(self, hashes: list[str]) -> None:
        limit = max(1000, self.config.cache_size * _KNOWN_PER_CACHED_VECTOR)
        for h in hashes:
            self._known[h] = None
            self._known.move_to_end(h)
        while len(self._known) > limit:
            self._known.popitem(last=False)

    def sweep(self) -> None:
        """Delete the vectors whose spans have all expired (first seen before the retention). On the embedding
        thread, between writes (``_write`` calls it hourly): it forgets the known hashes, so that a text
        swept here and sent again is embedded again."""
        assert self._client is not None
        delete_orphan_vectors(self._client, self._database, self._ttl_days_in_use)
        self._known.clear()
        self._next_sweep = time.monotonic() + _SWEEP_SECONDS

    def _write(self, batch: SpanBatch, deadline: float) -> tuple[int, int]:
        """On the embedding thread: returns how many of the batch's new texts (after sampling) are stored."""
        client, embedder, config = self._client, self._embedder, self.config
        assert client is not None and embedder is not None
        if time.monotonic() >= self._next_sweep:
            # The sweep is housekeeping: when it fails, the writes go on and it is tried again in an hour.
            self._next_sweep = time.monotonic() + _SWEEP_SECONDS
            try:
                self.sweep()
            except LLMObserverError as exc:
                logger.warning("Exporter %s cannot delete expired vectors: %s", self._ctx.component_id, exc)
        items = span_texts(
            batch,
            max_chars=config.max_text_chars,
            embed_outputs=config.embed_outputs,
            roles=config.prompt_roles,
            scope=config.prompt_scope,
        )
        key = (batch.origin, len(batch))
        retry = bool(batch.origin) and key == self._last_batch
        self._last_batch = key
        if not retry:
            with_text = len({item.row for item in items})
            if with_text < len(batch):
                self._metrics.event("spans_without_text", len(batch) - with_text)
        if not items:
            return 0, 0
        model = embedder.cache_key
        texts: dict[str, str] = {}
        for item in items:
            texts.setdefault(item.hash, item.text)
        unknown = [h for h in texts if h not in self._known]
        if unknown:
            stored = stored_hashes(client, self._database, model, unknown)
            self._remember([h for h in unknown if h in stored])
            new = [h for h in unknown if h not in stored]
        else:
            new = []
        newest = max(batch.end_time_unix_nano[item.row] for item in items)
        lag = time.time() - newest / 1e9
        deduplicated = len(items) - len(new)  # repeats in the batch, and texts stored before
        if lag > config.max_lag_seconds and len(new) > config.lag_sample_texts:
            # Behind: a sample of the new texts, chosen by hash so that collectors sharing a store agree.
            skipped = len(new) - config.lag_sample_texts
            new = sorted(new)[: config.lag_sample_texts]
            self.sampled_out += skipped
            self._metrics.event("texts_sampled_out", skipped)
        step = config.batch_size * 8
        done = 0
        while done < len(new):
            if done and time.monotonic() >= deadline:
                break
            part = new[done : done + step]
            counts = EmbedCounts()
            vectors = embedder.embed([texts[h] for h in part], batch_size=config.batch_size, counts=counts)
            excerpts = [texts[h][: config.excerpt_chars] for h in part]
            insert_vectors(client, self._database, model, part, excerpts, vectors)
            self._remember(part)
            self.counts.add(counts)
            if counts.embedded:
                self._metrics.event("texts_embedded", counts.embedded)
            self._metrics.event("vectors_written", len(part))
            done += len(part)
        if done < len(new):
            return done, len(new)
        rows = span_rows(batch, items)
        insert_span_rows(client, self._database, model, rows)
        self._metrics.event("span_rows_written", len(rows))
        if deduplicated > 0 and not retry:
            self._metrics.event("texts_deduplicated", deduplicated)
        self.lag_seconds = max(0.0, time.time() - newest / 1e9)
        return done, len(new)

    async def shutdown(self) -> None:
        """Wait for the opening and a write still running, then release the store, the model and the
        thread. Idempotent."""
        async with self._lock:
            pending = [f for f in (self._ready, self._job) if f is not None and not f.done()]
            if pending:
                await asyncio.wait(pending)
            self._ready = self._job = None
            client, embedder, executor = self._client, self._embedder, self._executor
            self._client = self._embedder = self._executor = None
            if client is not None:
                await asyncio.to_thread(client.close)
            if embedder is not None:
                release_embedder(embedder)
            if executor is not None:
                executor.shutdown(wait=False)


def create(ctx: CreateContext, config: VectorsExporterConfig) -> VectorsExporter:
    return VectorsExporter(ctx, config)
