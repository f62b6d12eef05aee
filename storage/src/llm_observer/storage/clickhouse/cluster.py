"""The schema on a ClickHouse cluster: every migration statement rewritten for ``cluster: NAME``.

The migrations (``schema.migrations``, and whatever other modules append to them) are written once, for one
server. On a cluster each statement becomes the layout ClickHouse's documentation and the Collector's ClickHouse
exporter use:

* ``CREATE TABLE db.T (…) ENGINE = XMergeTree`` → ``db.T_local ON CLUSTER NAME`` with
  ``ReplicatedXMergeTree('/clickhouse/tables/{shard}/{database}/T_local', '{replica}')`` (the server's own
  ``{shard}``/``{replica}`` macros), plus ``db.T ON CLUSTER NAME AS db.T_local ENGINE = Distributed(NAME, db,
  T_local, KEY)`` under the public name, so reads and inserts keep using ``T``. ``KEY`` is ``SHARDING_KEYS[T]``
  (``cityHash64(TraceId)`` for the span tables: a trace stays on one shard, so its lookup row and its spans
  meet there), else a hash of the table's ``ORDER BY`` columns. The key is a function of the row alone:
  a retried insert is split over the shards the same way, and each shard's replicated table drops its part
  as a repeat (same ``insert_deduplication_token``). ``rand()`` would break that.
* ``non_replicated_deduplication_window`` → ``replicated_deduplication_window``, same size.
* The migrations table is one replicated table on every node (one ZooKeeper path for the whole cluster, no
  ``{shard}``): a version recorded through any node is seen by all of them.
* ``CREATE MATERIALIZED VIEW db.V TO db.T AS SELECT … FROM db.S`` → ``ON CLUSTER``, writing ``T_local`` from
  ``S_local``: each shard aggregates its own rows.
* ``ALTER TABLE db.T …`` → ``db.T_local ON CLUSTER NAME`` (TTL, indexes, settings live there); column changes
  also go to the ``Distributed`` table, which has to know the columns.
* ``CREATE DATABASE`` and ``DROP`` get ``ON CLUSTER``; ``INSERT`` is left alone.

A statement of any other shape raises ``ValueError``: a migration that would silently run on one node only is
worse than one that does not run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from llm_observer.storage.clickhouse import schema

LOCAL_SUFFIX = "_local"

# Sharding keys by public table name; other tables hash their ORDER BY columns.
SHARDING_KEYS: dict[str, str] = {
    schema.TRACES_TABLE: "cityHash64(TraceId)",
    schema.TRACE_ID_TS_TABLE: "cityHash64(TraceId)",
}

_NAME = r"(?:`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)"
_CREATE_DATABASE = re.compile(rf"^\s*CREATE\s+DATABASE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_NAME}", re.I)
_CREATE_TABLE = re.compile(
    rf"^\s*CREATE\s+TABLE\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<db>{_NAME})\.(?P<table>{_NAME})\s*(?=\()", re.I
)
_ENGINE = re.compile(r"\bENGINE\s*=\s*(?P<engine>[A-Za-z]*MergeTree)\b(?:\s*\((?P<params>[^()]*)\))?", re.I)
_ORDER_BY = re.compile(r"^\s*ORDER\s+BY\s+(?P<key>.+?)\s*$", re.I | re.M)
_CREATE_VIEW = re.compile(
    rf"^\s*CREATE\s+MATERIALIZED\s+VIEW\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<db>{_NAME})\.(?P<view>{_NAME})"
    rf"\s+TO\s+(?P<tdb>{_NAME})\.(?P<target>{_NAME})\s+(?P<rest>AS\s.*)$",
    re.I | re.S,
)
_ALTER = re.compile(rf"^\s*ALTER\s+TABLE\s+(?P<db>{_NAME})\.(?P<table>{_NAME})\s+(?P<rest>.*)$", re.I | re.S)
_COLUMN_CHANGE = re.compile(r"\b(?:ADD|DROP|MODIFY|RENAME|COMMENT|CLEAR)\s+COLUMN\b", re.I)
_DROP = re.compile(
    rf"^\s*DROP\s+(?P<kind>TABLE|VIEW)\s+(?P<ie>IF\s+EXISTS\s+)?(?P<db>{_NAME})\.(?P<name>{_NAME})\s*$", re.I
)
_INSERT = re.compile(r"^\s*INSERT\s+INTO\b", re.I)


def _bare(name: str) -> str:
    return name.strip("`")


def _quoted(name: str) -> str:
    return f"`{_bare(name)}`"


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def local_name(table: str) -> str:
    """The replicated per-shard table behind the public ``table``."""
    return _bare(table) + LOCAL_SUFFIX


def _on(cluster: str) -> str:
    return f"ON CLUSTER {_quoted(cluster)}"


def sharding_key(table: str, create_statement: str) -> str:
    """The ``Distributed`` sharding expression of ``table``: a deterministic function of the row."""
    known = SHARDING_KEYS.get(_bare(table))
    if known is not None:
        return known
    found = _ORDER_BY.search(create_statement)
    if found is None:
        raise ValueError(f"cannot shard {table}: its CREATE TABLE has no ORDER BY to hash")
    key = found.group("key")
    if key.startswith("(") and key.endswith(")"):
        key = key[1:-1]
    return f"cityHash64({key})"


def _replicated_engine(match: re.Match[str], path: str, replica: str) -> str:
    params = (match.group("params") or "").strip()
    args = f"{_literal(path)}, {_literal(replica)}" + (f", {params}" if params else "")
    return f"ENGINE = Replicated{match.group('engine')}({args})"


def _create_table(statement: str, match: re.Match[str], cluster: str) -> tuple[str, ...]:
    db, table = match.group("db"), _bare(match.group("table"))
    engine = _ENGINE.search(statement)
    if engine is None:
        raise ValueError(f"cannot put {table} on a cluster: only *MergeTree engines are rewritten")
    if engine.group("engine").lower().startswith("replicated"):
        raise ValueError(f"{table} is already replicated: write migrations for one server")
    body = statement[match.end() :]
    body = body.replace("non_replicated_deduplication_window", "replicated_deduplication_window")
    ine = match.group("ine") or ""
    if table == schema.MIGRATIONS_TABLE:
        # One table replicated over every node of the cluster: one path without {shard}, and replica names
        # made unique across shards (a replica macro is often only unique within its shard).
        path = f"/clickhouse/tables/llm_observer/{{database}}/{table}"
        body = _ENGINE.sub(lambda m: _replicated_engine(m, path, "{shard}-{replica}"), body, count=1)
        return (f"CREATE TABLE {ine}{db}.{_quoted(table)} {_on(cluster)} {body.lstrip()}",)
    local = local_name(table)
    path = f"/clickhouse/tables/{{shard}}/{{database}}/{local}"
    body = _ENGINE.sub(lambda m: _replicated_engine(m, path, "{replica}"), body, count=1)
    key = sharding_key(table, statement)
    distributed = (
        f"CREATE TABLE {ine}{db}.{_quoted(table)} {_on(cluster)} AS {db}.{_quoted(local)}\n"
        f"ENGINE = Distributed({_literal(cluster)}, {_literal(_bare(db))}, {_literal(local)}, {key})"
    )
    return (f"CREATE TABLE {ine}{db}.{_quoted(local)} {_on(cluster)} {body.lstrip()}", distributed)


def _create_view(match: re.Match[str], cluster: str) -> tuple[str, ...]:
    db, view = match.group("db"), match.group("view")
    tdb, target = match.group("tdb"), match.group("target")
    # Every table the view reads is read on the shard, where its rows are.
    reads = re.compile(rf"(?P<db>{re.escape(db)}|{_quoted(db)})\.(?P<table>{_NAME})(?!\w)")
    select = reads.sub(
        lambda m: f"{m.group('db')}.{_quoted(local_name(m.group('table')))}", match.group("rest")
    )
    ine = match.group("ine") or ""
    return (
        f"CREATE MATERIALIZED VIEW {ine}{db}.{view} {_on(cluster)} "
        f"TO {tdb}.{_quoted(local_name(target))}\n{select}",
    )


def _alter(match: re.Match[str], cluster: str) -> tuple[str, ...]:
    db, table, rest = match.group("db"), _bare(match.group("table")), match.group("rest")
    if table == schema.MIGRATIONS_TABLE:
        return (f"ALTER TABLE {db}.{_quoted(table)} {_on(cluster)} {rest}",)
    out = [f"ALTER TABLE {db}.{_quoted(local_name(table))} {_on(cluster)} {rest}"]
    if _COLUMN_CHANGE.search(rest):
        out.append(f"ALTER TABLE {db}.{_quoted(table)} {_on(cluster)} {rest}")
    return tuple(out)


def _drop(match: re.Match[str], cluster: str) -> tuple[str, ...]:
    kind, ie, db, name = (
        match.group("kind"),
        match.group("ie") or "",
        match.group("db"),
        _bare(match.group("name")),
    )
    if kind.upper() == "VIEW" or name == schema.MIGRATIONS_TABLE:
        return (f"DROP {kind} {ie}{db}.{_quoted(name)} {_on(cluster)} SYNC",)
    return tuple(
        f"DROP TABLE {ie}{db}.{_quoted(each)} {_on(cluster)} SYNC" for each in (name, local_name(name))
    )


def on_cluster(statement: str, cluster: str | None) -> tuple[str, ...]:
    """``statement`` as the statements that do the same on ``cluster`` (itself alone when ``cluster`` is None)."""
    if cluster is None:
        return (statement,)
    if (found := _CREATE_DATABASE.match(statement)) is not None:
        return (f"{statement[: found.end()]} {_on(cluster)}{statement[found.end() :]}",)
    if (found := _CREATE_TABLE.match(statement)) is not None:
        return _create_table(statement, found, cluster)
    if (found := _CREATE_VIEW.match(statement)) is not None:
        return _create_view(found, cluster)
    if (found := _ALTER.match(statement)) is not None:
        return _alter(found, cluster)
    if (found := _DROP.match(statement)) is not None:
        return _drop(found, cluster)
    if _INSERT.match(statement):
        return (statement,)
    raise ValueError(f"no cluster form for this statement: {statement.strip()[:80]!r}")


def all_on_cluster(statements: Iterable[str], cluster: str | None) -> tuple[str, ...]:
    """Every statement of ``statements`` in its cluster form, in order."""
    return tuple(out for statement in statements for out in on_cluster(statement, cluster))


def ttl_table(table: str, cluster: str | None) -> str:
    """The table whose ``engine_full`` holds ``table``'s retention: the local one on a cluster."""
    return table if cluster is None else local_name(table)
