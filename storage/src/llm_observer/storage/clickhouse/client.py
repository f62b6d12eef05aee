"""One small client interface over chDB (ClickHouse in-process) and a ClickHouse server.

Endpoints: ``chdb://<path>`` (relative paths are resolved against the data dir) or ``http(s)://host:port``
(clickhouse-connect). All SQL is parameterised with ClickHouse's ``{name:Type}`` placeholders.

chDB lets only one process open a path, and one session per path per process; ``open_client`` therefore
returns the same shared, reference-counted client to every caller in the process (the storage exporter
and the query service share it).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from llm_observer.kernel.errors import ConfigError, LLMObserverError, PermanentError, RetryableError
from llm_observer.storage.clickhouse.pandas_check import settle_without_pandas
from llm_observer.storage.clickhouse.settings import ClickHouseSettings, ClickHouseTls

Params = Mapping[str, Any] | None


class ClickHouseClient(Protocol):
    endpoint: str

    def command(self, sql: str, params: Params = None) -> None:
        """Run a statement that returns nothing."""
        ...

    def rows(self, sql: str, params: Params = None) -> list[dict[str, Any]]:
        """Run a query; one dict per row (64-bit integers come back as ``int``)."""
        ...

    def arrow(self, sql: str, params: Params = None) -> pa.Table:
        """Run a query; the result as an Arrow table."""
        ...

    def insert_arrow(
        self, table: str, columns: Sequence[str], data: pa.Table, settings: Mapping[str, Any] | None = None
    ) -> None:
        """Insert ``data`` (whose columns are ``columns``, in order) into ``table``."""
        ...

    def close(self) -> None: ...


def _settings_clause(settings: Mapping[str, Any] | None) -> str:
    if not settings:
        return ""
    parts = []
    for key, value in settings.items():
        if not key.replace("_", "").isalnum():
            raise ValueError(f"bad setting name {key!r}")
        literal = (
            str(int(value)) if isinstance(value, bool | int) else "'" + str(value).replace("'", "\\'") + "'"
        )
        parts.append(f"{key} = {literal}")
    return " SETTINGS " + ", ".join(parts)


# ClickHouse error codes that describe the moment rather than the data: the same statement may succeed later.
RETRYABLE_CODES = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        243,  # NOT_ENOUGH_SPACE
        252,  # TOO_MANY_PARTS
        394,  # QUERY_WAS_CANCELLED
        425,  # SYSTEM_ERROR
    }
)
_CODE = re.compile(r"\bCode: (\d+)")


# Conditions a retry of the *same statement* can never change, although their codes are also used for passing
# ones: 252 is both "too many parts, merges are behind" (wait) and "too many partitions for one INSERT
# block" (the data must be split). Each maps to the reason label the self-metrics count it under.
_DATA_SHAPED = (("partitions for single insert block", "too_many_partitions"),)
# The disk under the store filling up is a moment, whatever code the engine wraps it in.
_PASSING = ("no space left on device", "not enough space", "cannot reserve")


def classify(message: str, what: str) -> PermanentError | RetryableError:
    """A ClickHouse error message as ``RetryableError`` (what a later retry of the same statement may get
    past: timeouts, overload, a full disk) or ``PermanentError`` (what it cannot: the data or the SQL)."""
    lowered = message.lower()
    for marker, reason in _DATA_SHAPED:
        if marker in lowered:
            return PermanentError(f"{what}: {message}", reason)
    if any(marker in lowered for marker in _PASSING):
        return RetryableError(f"{what}: {message}")
    found = _CODE.search(message)
    if found and int(found.group(1)) in RETRYABLE_CODES:
        return RetryableError(f"{what}: {message}")
    return PermanentError(f"{what}: {message}", "rejected_by_storage")


# ClickHouse reads a query parameter in its escaped text format: a backslash starts an escape, and a raw tab or
# newline ends the value. A server client (clickhouse-connect) escapes values before sending them; chDB passes
# them as they are, so this client escapes them itself and every value matches literally on both.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0", "'": "\\'"})


def _escaped(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.translate(_ESCAPES) if isinstance(v, str) else v for k, v in params.items()}


def _engine_settings() -> str:
    """Server settings of the embedded engine, sized for the machine it shares with the collector.

    ClickHouse's defaults are a server's: up to 16 background merges at once (32 with its concurrency ratio)
    and 5 GB mark caches. In-process, on a small machine, each concurrent merge holds its own column buffers
    and competes with ingest for the same cores; a merge pool of half the cores (at least 2) and bounded
    caches keep the engine's share of the collector's memory near 100 MB under sustained inserts instead of
    ~300 MB (``llm_observer_memory_bytes{part="chdb_tracked"}``, ``bench/bench_collector.py``)."""
    merges = max(2, (os.cpu_count() or 2) // 2)
    return "&".join(
        f"{key}={value}"
        for key, value in (
            ("background_pool_size", merges),
            ("mark_cache_size", 128 << 20),
            ("index_mark_cache_size", 64 << 20),
        )
    )


class ChdbClient:
    """ClickHouse in this process. Thread-safe: every call into chDB holds ``_engine_lock``.

    The client has one connection to the engine, and chDB wants one call at a time on a connection; it releases
    the GIL while a call runs, and so does waiting on the lock. Several connections would let reads and inserts
    run side by side, but in ``llm-observer up`` that took a core from the thread that acknowledges clients
    (the export p99 at half rate rose in every measured pair; README, "Where the CPU goes").
    """

    def __init__(self, endpoint: str, path: Path) -> None:
        # chDB's allocator reads this when the engine loads. Handing freed pages back after 100 ms instead of
        # its default 10 s keeps ~170 MB less resident under sustained inserts at the same insert rate
        # (measured with bench/bench_clickhouse-sized batches); a value the user set wins.
        os.environ.setdefault("JE_MALLOC_CONF", "dirty_decay_ms:100,muzzy_decay_ms:0")
        settle_without_pandas()
        import chdb.session

        self.endpoint = endpoint
        self.path = path
        try:
            path.mkdir(parents=True, exist_ok=True)
            self._session = chdb.session.Session(f"{path}?{_engine_settings()}")
        except Exception as exc:
            raise ConfigError([("endpoint", f"cannot open chDB store at {path}: {exc}")]) from exc
        self._refs = 0  # guarded by _registry_lock
        self._engine_lock = threading.Lock()

    def _query(self, sql: str, fmt: str, params: Params) -> Any:
        try:
            with self._engine_lock:
                return self._session.query(sql, fmt, params=_escaped(params) if params else None)
        except Exception as exc:  # chDB raises RuntimeError for every SQL error
            raise classify(str(exc), "ClickHouse query failed") from exc

    def command(self, sql: str, params: Params = None) -> None:
        self._query(sql, "CSV", params)

    def rows(self, sql: str, params: Params = None) -> list[dict[str, Any]]:
        result = self._query(sql, "JSONEachRow", params)
        text = result.bytes() if hasattr(result, "bytes") else bytes(result)
        # chDB leaves 64-bit integers unquoted (output_format_json_quote_64bit_integers = 0): they load as int.
        return [json.loads(line) for line in text.splitlines() if line]

    def arrow(self, sql: str, params: Params = None) -> pa.Table:
        result = self._query(sql, "Arrow", params)
        data = result.bytes()
        if not data:
            return pa.table({})
        return pa.ipc.open_file(pa.BufferReader(data)).read_all()

    def insert_arrow(
        self, table: str, columns: Sequence[str], data: pa.Table, settings: Mapping[str, Any] | None = None
    ) -> None:
        # As an Arrow IPC stream through chDB's public insert API. chDB's ``Python()`` table function would read
        # the table in place, but it imports pandas (~30 MB more for the process) to look at it, and stores no
        # faster (bench/bench_collector.py --up, alternating). Handing the stream over in slices, for the
        # engine to parse as they come, stored ~10% less for the same peak.
        cols = ", ".join(f"`{c}`" for c in columns)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, data.schema) as writer:
            writer.write_table(data)
        stream = sink.getvalue()
        try:
            with self._engine_lock:
                inserter = self._session.send_insert(
                    f"INSERT INTO {table} ({cols})" + _settings_clause(settings), "ArrowStream"
                )
                inserter.append(memoryview(stream))
                inserter.finish()
        except Exception as exc:
            raise classify(str(exc), "ClickHouse insert failed") from exc

    def close(self) -> None:
        # Under the registry lock, so that open_client never hands out a client that is being closed.
        with _registry_lock:
            self._refs -= 1
            if self._refs > 0 or _chdb_clients.get(self.path) is not self:
                return
            del _chdb_clients[self.path]
        with self._engine_lock:
            self._session.close()


def tls_options(tls: ClickHouseTls | None) -> dict[str, Any]:
    """clickhouse-connect's options for ``tls`` (``https://`` alone already means TLS with the system's CAs)."""
    if tls is None:
        return {}
    options: dict[str, Any] = {}
    if tls.insecure_skip_verify:
        options["verify"] = False
    if tls.ca_file is not None:
        options["ca_cert"] = str(tls.ca_file)
    return options


class ServerClient:
    """A ClickHouse server over HTTP(S), through clickhouse-connect."""

    def __init__(
        self,
        endpoint: str,
        username: str | None,
        password: str | None,
        timeout_seconds: float | None = None,
        tls: ClickHouseTls | None = None,
    ) -> None:
        import clickhouse_connect

        self.endpoint = endpoint
        timeouts: dict[str, Any] = {}
        if timeout_seconds is not None:
            timeouts = {"connect_timeout": timeout_seconds, "send_receive_timeout": timeout_seconds}
        try:
            self._client = clickhouse_connect.get_client(
                dsn=endpoint,
                username=username or "default",
                password=password or "",
                **timeouts,
                **tls_options(tls),
            )
        except Exception as exc:
            raise RetryableError(f"cannot reach ClickHouse at {endpoint}: {exc}") from exc

    def _wrap(self, exc: Exception) -> Exception:
        from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

        if isinstance(exc, OperationalError):
            return RetryableError(f"ClickHouse unavailable: {exc}")
        if isinstance(exc, DatabaseError):
            return classify(str(exc), "ClickHouse query failed")
        return RetryableError(f"ClickHouse call failed: {exc}")

    def command(self, sql: str, params: Params = None) -> None:
        try:
            self._client.command(sql, parameters=dict(params) if params else None)
        except Exception as exc:
            raise self._wrap(exc) from exc

    def rows(self, sql: str, params: Params = None) -> list[dict[str, Any]]:
        try:
            result = self._client.query(sql, parameters=dict(params) if params else None)
        except Exception as exc:
            raise self._wrap(exc) from exc
        return list(result.named_results())

    def arrow(self, sql: str, params: Params = None) -> pa.Table:
        try:
            return self._client.query_arrow(sql, parameters=dict(params) if params else None)
        except Exception as exc:
            raise self._wrap(exc) from exc

    def insert_arrow(
        self, table: str, columns: Sequence[str], data: pa.Table, settings: Mapping[str, Any] | None = None
    ) -> None:
        try:
            self._client.insert_arrow(
                table, data.rename_columns(list(columns)), settings=dict(settings or {})
            )
        except Exception as exc:
            raise self._wrap(exc) from exc

    def close(self) -> None:
        self._client.close()


_registry_lock = threading.Lock()
_chdb_clients: dict[Path, ChdbClient] = {}


def open_client(
    endpoint: str,
    data_dir: Path,
    username: str | None = None,
    password: str | None = None,
    timeout_seconds: float | None = None,
    tls: ClickHouseTls | None = None,
) -> ClickHouseClient:
    """A client for ``endpoint``; chDB clients are shared per path within the process (``close`` once each).

    ``timeout_seconds`` bounds each server round trip and ``tls`` tunes an ``https://`` connection; chDB runs
    in this process and needs neither.
    """
    if endpoint.startswith("chdb://"):
        raw = endpoint.removeprefix("chdb://")
        path = Path(raw) if raw.startswith("/") else data_dir / raw
        path = path.resolve()
        with _registry_lock:
            client = _chdb_clients.get(path)
            if client is None:
                client = _chdb_clients[path] = ChdbClient(endpoint, path)
            client._refs += 1
        return client
    if endpoint.startswith(("http://", "https://")):
        return ServerClient(endpoint, username, password, timeout_seconds, tls)
    raise ConfigError([("endpoint", f"expected chdb://PATH or http(s)://HOST:PORT, got {endpoint!r}")])


def open_client_for(settings: ClickHouseSettings, data_dir: Path) -> ClickHouseClient:
    """``open_client`` for the store ``settings`` name (a relative ``chdb://`` path is under ``data_dir``)."""
    return open_client(
        settings.endpoint,
        data_dir,
        settings.username,
        settings.password,
        settings.timeout_seconds,
        settings.tls,
    )


def _embedded_client() -> ChdbClient | None:
    with _registry_lock:
        return next(iter(_chdb_clients.values()), None)


# The summary line of jemalloc's malloc_stats_print, which system.jemalloc_stats returns as one text.
_ALLOCATOR_LINE = re.compile(
    r"Allocated: (\d+), active: (\d+), metadata: (\d+).*?, resident: (\d+), mapped: (\d+)"
)
_allocator_read: tuple[float, dict[str, int] | None] = (float("-inf"), None)


def embedded_engine_allocator(max_age: float = 1.0) -> dict[str, int] | None:
    """What the in-process engine's own allocator (chDB links jemalloc; the interpreter and the rest of the
    process use the C library's) holds: ``allocated`` by the engine, ``active`` (the pages those allocations
    lie in), ``resident`` pages, which include pages it freed and has not handed back yet, and ``mapped``.
    Read from ``system.jemalloc_stats`` (~3 ms), at most once per ``max_age`` seconds, so that one scrape of
    its three parts reads it once; None when no chDB store is open in this process or the engine does not
    say. Concurrent callers may both read it: harmless."""
    global _allocator_read
    read_at, value = _allocator_read
    if time.monotonic() - read_at < max_age:
        return value
    client = _embedded_client()
    if client is None:
        return None
    try:
        rows = client.rows("SELECT stats FROM system.jemalloc_stats")
    except LLMObserverError:
        return None
    found = _ALLOCATOR_LINE.search(rows[0]["stats"]) if rows else None
    if found is not None:
        allocated, active, _metadata, resident, mapped = (int(g) for g in found.groups())
        value = {"allocated": allocated, "active": active, "resident": resident, "mapped": mapped}
    else:
        value = None
    _allocator_read = (time.monotonic(), value)
    return value


def embedded_engine_memory_bytes() -> int | None:
    """What the in-process ClickHouse engine (chDB) says it has allocated (its ``MemoryTracking``: caches,
    insert and merge buffers, query state), or None when no chDB store is open in this process."""
    client = _embedded_client()
    if client is None:
        return None
    try:
        rows = client.rows("SELECT toInt64(value) AS v FROM system.metrics WHERE metric = 'MemoryTracking'")
    except LLMObserverError:
        return None
    return int(rows[0]["v"]) if rows else None
