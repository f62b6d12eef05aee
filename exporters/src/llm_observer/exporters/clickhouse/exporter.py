"""The ClickHouse storage exporter: spans into ``otel_traces`` (chDB in-process, or a ClickHouse server)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa

from llm_observer.exporters.clickhouse.config import ClickHouseExporterConfig
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.errors import PermanentError, RetryableError
from llm_observer.storage.clickhouse import schema
from llm_observer.storage.clickhouse.arrow import to_arrow
from llm_observer.storage.clickhouse.client import ClickHouseClient, open_client
from llm_observer.storage.clickhouse.migrate import ensure_schema

logger = logging.getLogger(__name__)

# Exporters in one process that share a store must not migrate it at the same time.
_schema_lock = threading.Lock()

# Raised by Arrow for values no column can hold (e.g. times past 2262): the batch can never be stored.
_BAD_DATA = (pa.ArrowException, OverflowError, ValueError, TypeError, UnicodeError)


def dedup_token(batch: SpanBatch) -> str:
    """The insert's idempotency key: the batch's WAL range, plus its size and first and last span.

    Replaying a range yields the same spans in the same order, hence the same token, and ClickHouse drops the
    repeated insert. The span ids keep two different batches from sharing a token should the WAL's numbering
    start over (a new data dir) while the store lives on. Empty when the batch has no ``origin``.
    """
    if not batch.origin or not len(batch):
        return ""
    return (
        f"{batch.origin}/{len(batch)}/{batch.trace_id[0].hex()}{batch.span_id[0].hex()}/"
        f"{batch.trace_id[-1].hex()}{batch.span_id[-1].hex()}"
    )


def _without_credentials(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.password is None and parts.username is None:
        return endpoint
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


class ClickHouseExporter:
    """Stores span batches in ``{database}.otel_traces``; the schema is created and migrated on ``start``."""

    def __init__(self, ctx: CreateContext, config: ClickHouseExporterConfig) -> None:
        self.config = config
        self._ctx = ctx
        self._table = f"`{config.database}`.{schema.TRACES_TABLE}"
        self._client: ClickHouseClient | None = None
        self._lock = asyncio.Lock()
        self._inflight: set[asyncio.Future[None]] = set()

    @property
    def client(self) -> ClickHouseClient | None:
        """The open client between ``start`` and ``shutdown``."""
        return self._client

    async def start(self) -> None:
        """Open the store and bring its schema up to date (when ``create_schema``). Idempotent."""
        async with self._lock:
            if self._client is not None:
                return
            config = self.config
            client = await asyncio.to_thread(
                open_client,
                config.endpoint,
                self._ctx.data_dir,
                config.username,
                config.password,
                config.timeout_seconds,
            )
            try:
                if config.create_schema:
                    await asyncio.to_thread(self._migrate, client)
            except BaseException:
                client.close()
                raise
            self._client = client
            logger.info(
                "Exporter %s stores spans in %s at %s",
                self._ctx.component_id,
                self._table,
                _without_credentials(config.endpoint),
            )

    def _migrate(self, client: ClickHouseClient) -> None:
        with _schema_lock:
            ensure_schema(client, self.config.database, self.config.ttl_days)

    async def shutdown(self) -> None:
        """Close the store once the inserts under way have finished. Idempotent, and safe before ``start``."""
        async with self._lock:
            client, self._client = self._client, None
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
            if client is not None:
                await asyncio.to_thread(client.close)

    async def send(self, batch: SpanBatch) -> None:
        """Insert every span of ``batch``, once: a batch replayed with the same ``origin`` is not stored again.

        Raises ``PermanentError`` for data or SQL ClickHouse refuses, ``RetryableError`` while the store is
        unavailable (or this exporter is not started).
        """
        client = self._client
        if client is None:
            raise RetryableError(f"exporter {self._ctx.component_id} is not started")
        if not len(batch):
            return
        settings: dict[str, Any] = {}
        token = dedup_token(batch)
        if token:
            # The token also reaches the trace-id lookup table through its materialized view.
            settings = {
                "insert_deduplication_token": token,
                "deduplicate_blocks_in_dependent_materialized_views": 1,
            }
        # Conversion and insert both off the event loop: the loop stays responsive while Python converts, and
        # chDB releases the GIL while it inserts. The worker cannot be stopped once it runs, so a cancelled
        # send leaves it to finish (a retry of the batch is then deduplicated), and shutdown waits for it
        # before it closes the client.
        work = asyncio.ensure_future(asyncio.to_thread(self._insert, client, batch, settings))
        self._inflight.add(work)
        work.add_done_callback(self._done)
        await asyncio.shield(work)

    def _done(self, work: asyncio.Future[None]) -> None:
        self._inflight.discard(work)
        if not work.cancelled():
            work.exception()  # retrieved here too: nobody awaits the work of a cancelled send

    def _insert(self, client: ClickHouseClient, batch: SpanBatch, settings: dict[str, Any]) -> None:
        try:
            table = to_arrow(batch)
        except _BAD_DATA as exc:
            raise PermanentError(f"cannot convert {len(batch)} spans for ClickHouse: {exc}") from exc
        client.insert_arrow(self._table, schema.INSERT_COLUMNS, table, settings)


def create(ctx: CreateContext, config: ClickHouseExporterConfig) -> ClickHouseExporter:
    """The exporter for ``config``; nothing is opened before ``start``."""
    return ClickHouseExporter(ctx, config)
