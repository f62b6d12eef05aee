"""The alerting state file: one SQLite database that every stateful part of alerting keeps its tables in.

SQLite because the state is small, must survive a restart and a crash (WAL journal, ``synchronous=FULL``),
and lives beside the collector's data; each module creates its own tables with ``CREATE TABLE IF NOT
EXISTS`` through ``StateDb.ensure``. Access is serialised by one lock: calls are short, and callers in the
event loop run them in a thread (``asyncio.to_thread``) when they may touch the disk.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


class StateDb:
    """A SQLite file opened once, shared by the engine, silences, the dispatcher and the outbox."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path) if str(path) != ":memory:" else path
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")

    def ensure(self, statements: Iterable[str]) -> None:
        """Run schema statements (``CREATE TABLE IF NOT EXISTS …``) in one transaction."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                for statement in statements:
                    self._conn.execute(statement)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write; the number of rows it changed."""
        with self._lock:
            return self._conn.execute(sql, params).rowcount

    def transaction(self, writes: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """Run several writes atomically: all of them or none."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                for sql, params in writes:
                    self._conn.execute(sql, params)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """The rows of one read."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
