"""The ClickHouse storage exporter: spans into ``otel_traces`` (chDB in-process, or a ClickHouse server)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa

from llm_observer.exporters.clickhouse.config import ClickHouseExporterConfig
from llm_observer.exporters.clickhouse.signals import store_signals
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.errors import PartialFailure, PermanentError, RetryableError
from llm_observer.kernel.signals import SignalBatch
from llm_observer.storage.clickhouse import schema
from llm_observer.storage.clickhouse.arrow import to_arrow, unstorable_rows
from llm_observer.storage.clickhouse.client import (
    ClickHouseClient,
    embedded_engine_allocator,
    embedded_engine_memory_bytes,
    open_client_for,
)
from llm_observer.storage.clickhouse.migrate import ensure_schema

logger = logging.getLogger(__name__)

# Exporters in one process that share a store must not migrate it at the same time.
_schema_lock = threading.Lock()

# Raised by Arrow for values no column can hold (e.g. strings that are not UTF-8): those rows can never be stored.
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


def source_token(batch: SpanBatch, source: str, rows: Sequence[int]) -> str:
    """The idempotency key of the rows ``rows`` of ``batch`` read from ``source`` (``IngestMeta.source``).

    Any collector that reads the same source records processes them into the same spans in the same order, so
    it derives the same key whatever WAL range they landed in; the count and the first and last span keep a
    part of those rows (a batch narrowed down after a refusal) from sharing the key of the whole.
    """
    first, last = rows[0], rows[-1]
    return (
        f"{source}/{len(rows)}/{batch.trace_id[first].hex()}{batch.span_id[first].hex()}/"
        f"{batch.trace_id[last].hex()}{batch.span_id[last].hex()}"
    )


def sourced_ranges(batch: SpanBatch) -> list[tuple[str, int, int]] | None:
    """``(source, start, end)`` of every provenance range that names a source, in row order; ``[]`` when none
    does, ``None`` when the ranges do not fit the batch (out of bounds, overlapping or out of order).

    The decoder writes one range per WAL record and every processor keeps rows where they are, so the ranges
    hold; a processor that dropped or moved rows without mapping them would leave ranges that no longer fit,
    and then no row may be keyed by its source.
    """
    out: list[tuple[str, int, int]] = []
    previous_end = 0
    for provenance in batch.provenance:
        start, end = provenance.start, provenance.end
        if not previous_end <= start < end <= len(batch):
            return None
        previous_end = end
        if provenance.meta.source:
            out.append((provenance.meta.source, start, end))
    return out


def insert_units(
    batch: SpanBatch, rows: Sequence[int] | None
) -> tuple[list[tuple[str, list[int] | None]], bool]:
    """The inserts ``rows`` (all rows when None) go in, as ``(token, rows)`` in row order (``rows`` None: all),
    and whether the provenance was refused as not fitting the batch.

    Rows read from a replayable source (``IngestMeta.source``, e.g. a Kafka chunk) form one insert per source,
    keyed by ``source_token``, so the same chunk stored by another collector after a rebalance is dropped; the
    other rows form one insert keyed by the WAL range (``dedup_token``), as a batch without sources does.
    """
    ranges = sourced_ranges(batch)
    if not ranges:
        return [(dedup_token(batch), None if rows is None else list(rows))], ranges is None
    keep = None if rows is None else set(rows)
    units: list[tuple[int, str, list[int]]] = []
    sourced: set[int] = set()
    for source, start, end in ranges:
        unit = [row for row in range(start, end) if keep is None or row in keep]
        sourced.update(range(start, end))
        if unit:
            units.append((unit[0], source_token(batch, source, unit), unit))
    rest = [row for row in (range(len(batch)) if rows is None else rows) if row not in sourced]
    if rest:
        units.append((rest[0], dedup_token(batch), rest))
    units.sort(key=lambda unit: unit[0])
    return [(token, unit) for _, token, unit in units], False


def _allocator_part(key: str) -> Callable[[], int | None]:
    def read() -> int | None:
        return (embedded_engine_allocator() or {}).get(key)

    return read


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
        self._misfit_logged = False
        # On a cluster the insert goes to the Distributed table, which returns only once every shard has
        # its part (no background queue on the node we talk to): an acknowledged insert is on the shards,
        # and a retry with the same tokens is dropped there by the replicated tables' own deduplication.
        self._insert_settings: dict[str, Any] = {"insert_distributed_sync": 1} if config.cluster else {}

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
            client = await asyncio.to_thread(open_client_for, config, self._ctx.data_dir)
            try:
                if config.create_schema:
                    await asyncio.to_thread(self._migrate, client)
            except BaseException:
                client.close()
                raise
            self._client = client
            if config.endpoint.startswith("chdb://"):
                parts = self._ctx.telemetry.memory_parts
                parts["chdb_tracked"] = embedded_engine_memory_bytes
                for key in ("resident", "active", "allocated"):
                    parts[f"chdb_heap_{key}"] = _allocator_part(key)
            logger.info(
                "Exporter %s stores spans in %s at %s",
                self._ctx.component_id,
                self._table,
                _without_credentials(config.endpoint),
            )

    def _migrate(self, client: ClickHouseClient) -> None:
        with _schema_lock:
            ensure_schema(client, self.config.database, self.config.ttl_days, cluster=self.config.cluster)

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

        Rows no column can hold (see ``unstorable_rows``) and rows ClickHouse refuses cost only themselves:
        the rest is stored and ``PartialFailure`` names the rows left out. Raises ``RetryableError`` while
        the store is unavailable (or this exporter is not started); sending the same batch again then stores
        only what is missing, as every insert carries a deduplication token derived from the batch.
        """
        client = self._client
        if client is None:
            raise RetryableError(f"exporter {self._ctx.component_id} is not started")
        if not len(batch):
            return
        # Conversion and insert both off the event loop: the loop stays responsive while Python converts, and
        # chDB releases the GIL while it inserts. The worker cannot be stopped once it runs, so a cancelled
        # send leaves it to finish (a retry of the batch is then deduplicated), and shutdown waits for it
        # before it closes the client.
        work = asyncio.ensure_future(asyncio.to_thread(self._insert, client, batch))
        self._inflight.add(work)
        work.add_done_callback(self._done)
        await asyncio.shield(work)

    def _done(self, work: asyncio.Future[None]) -> None:
        self._inflight.discard(work)
        if not work.cancelled():
            work.exception()  # retrieved here too: nobody awaits the work of a cancelled send

    def _insert(self, client: ClickHouseClient, batch: SpanBatch) -> None:
        problems = unstorable_rows(batch)
        rows = [row for row in range(len(batch)) if row not in problems] if problems else None
        converted = _convert(batch, rows, problems)
        refused: list[int] = []
        reason = "invalid_data"
        refusal = ""
        units, misfit = insert_units(batch, converted.rows)
        if misfit and not self._misfit_logged:
            self._misfit_logged = True
            logger.warning(  # once per exporter: the cause is the pipeline's processors, not the data
                "exporter %s got a batch whose provenance does not fit its rows (a processor dropped or moved "
                "rows): such batches are keyed by their WAL range, so a source read twice may be stored twice",
                self._ctx.component_id,
            )
        parts: list[tuple[str, list[int] | None]] = []
        for unit_token, unit_rows in units if converted.table is not None else []:
            if unit_rows is not None and not unit_rows:
                continue
            groups = _day_groups(batch, unit_rows)
            if groups is None:
                parts.append((unit_token, unit_rows))
            else:
                # One token per group, derived from the unit's: a replay makes the same groups.
                parts.extend(
                    (f"{unit_token}/g{index}" if unit_token else "", group)
                    for index, group in enumerate(groups)
                )
        for token, (group_rows, table) in zip(
            (token for token, _ in parts), _tables(converted, [part for _, part in parts]), strict=True
        ):
            settings: dict[str, Any] = dict(self._insert_settings)
            if token:
                # The token also reaches the trace-id lookup table through its materialized view.
                settings["insert_deduplication_token"] = token
                settings["deduplicate_blocks_in_dependent_materialized_views"] = 1
            try:
                client.insert_arrow(self._table, schema.INSERT_COLUMNS, table, settings)
            except PermanentError as exc:
                # ClickHouse refused this group: the other groups still go in; the delivery helper narrows
                # the refusal down to the rows that cause it.
                refused.extend(group_rows)
                reason = exc.reason
                refusal = str(exc)
        if problems or refused:
            bad = sorted([*problems, *refused])
            message = f"{len(bad)} of {len(batch)} spans not stored"
            if problems:
                first = min(problems)
                message += f"; row {first}: {problems[first]}"
            if refused:
                message += f"; ClickHouse refused {len(refused)}: {refusal}"
                reason = reason if not problems else "invalid_data"
            raise PartialFailure(message, bad, reason, problems)

    # --- OTLP logs and metrics (``signals.py``) --------------------------------------------------------

    async def send_logs(self, batch: SignalBatch) -> None:
        """Store OTLP log requests in ``otel_logs``, with the guarantees of ``send``."""
        await self._send_signals(batch)

    async def send_metrics(self, batch: SignalBatch) -> None:
        """Store OTLP metric requests in the ``otel_metrics_*`` tables, with the guarantees of ``send``."""
        await self._send_signals(batch)

    async def _send_signals(self, batch: SignalBatch) -> None:
        client = self._client
        if client is None:
            raise RetryableError(f"exporter {self._ctx.component_id} is not started")
        if not len(batch):
            return
        settings = dict(self._insert_settings)
        work = asyncio.ensure_future(
            asyncio.to_thread(store_signals, client, self.config.database, batch, settings)
        )
        self._inflight.add(work)
        work.add_done_callback(self._done)
        await asyncio.shield(work)


# ``toDate(Timestamp)`` partitions the tables by the store's local day. A UTC day overlaps at most two
# local days, so inserts of at most this many UTC days stay within ClickHouse's default
# ``max_partitions_per_insert_block`` (100), whatever the store's time zone.
MAX_DAYS_PER_INSERT = 49
_DAY_NS = 86_400 * 1_000_000_000


class _Converted:
    """The Arrow table of the storable rows (``rows``: their indices in the batch; None means all)."""

    __slots__ = ("rows", "table")

    def __init__(self, rows: list[int] | None, table: pa.Table | None) -> None:
        self.rows = rows
        self.table = table


def _convert(batch: SpanBatch, rows: list[int] | None, problems: dict[int, str]) -> _Converted:
    """Convert the rows (all when ``rows`` is None); a row that fails conversion for a reason
    ``unstorable_rows`` does not know is found by halving and added to ``problems``."""
    if rows is not None and not rows:
        return _Converted([], None)
    try:
        return _Converted(rows, to_arrow(batch if rows is None else batch.take(rows)))
    except _BAD_DATA:
        pass
    candidates = list(range(len(batch))) if rows is None else rows
    stack = [candidates]
    while stack:
        part = stack.pop()
        try:
            to_arrow(batch.take(part))
        except _BAD_DATA as exc:
            if len(part) == 1:
                problems[part[0]] = f"cannot convert for ClickHouse: {exc}"
            else:
                half = len(part) // 2
                stack.extend((part[half:], part[:half]))
    good = [row for row in candidates if row not in problems]
    return _Converted(good, to_arrow(batch.take(good)) if good else None)


def _day_groups(batch: SpanBatch, rows: list[int] | None) -> list[list[int]] | None:
    """Rows in groups of at most ``MAX_DAYS_PER_INSERT`` days, in day order; None when one insert will do."""
    starts = batch.start_time_unix_nano
    picked = starts if rows is None else [starts[row] for row in rows]
    days = {start // _DAY_NS for start in picked}
    if len(days) <= MAX_DAYS_PER_INSERT:
        return None
    ordered = sorted(days)
    group_of = {day: n // MAX_DAYS_PER_INSERT for n, day in enumerate(ordered)}
    groups: list[list[int]] = [[] for _ in range(group_of[ordered[-1]] + 1)]
    for row in range(len(batch)) if rows is None else rows:
        groups[group_of[starts[row] // _DAY_NS]].append(row)
    return groups


def _tables(converted: _Converted, parts: list[list[int] | None]) -> list[tuple[list[int], pa.Table]]:
    """The converted table cut into ``parts`` (row indices of the batch; None: every converted row)."""
    table = converted.table
    rows = converted.rows
    if table is None:
        return []
    every = rows if rows is not None else list(range(table.num_rows))
    if len(parts) == 1 and (parts[0] is None or len(parts[0]) == table.num_rows):
        return [(every, table)]
    # Positions in the converted table of each part's rows.
    position = {row: n for n, row in enumerate(rows)} if rows is not None else None
    out = []
    for part in parts:
        group = every if part is None else part
        indices = group if position is None else [position[row] for row in group]
        out.append((group, table.take(pa.array(indices, pa.int64()))))
    return out


def create(ctx: CreateContext, config: ClickHouseExporterConfig) -> ClickHouseExporter:
    """The exporter for ``config``; nothing is opened before ``start``."""
    return ClickHouseExporter(ctx, config)
