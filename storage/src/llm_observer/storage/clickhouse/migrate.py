"""Applying the versioned schema (``schema.migrations``) to a store, once, and keeping its retention current."""

from __future__ import annotations

import logging
import re

from llm_observer.storage.clickhouse import schema
from llm_observer.storage.clickhouse.client import ClickHouseClient
from llm_observer.storage.clickhouse.cluster import all_on_cluster, ttl_table

logger = logging.getLogger(__name__)

_TTL_DAYS = re.compile(r"\bTTL\b.*?toIntervalDay\((\d+)\)")


def applied_versions(client: ClickHouseClient, database: str) -> set[int]:
    """The migration versions recorded in ``database``."""
    rows = client.rows(f"SELECT version FROM `{database}`.{schema.MIGRATIONS_TABLE}")
    return {int(row["version"]) for row in rows}


def current_ttl_days(client: ClickHouseClient, database: str, cluster: str | None = None) -> int | None:
    """The retention ``otel_traces`` has now, read from the table itself (``None`` when it has none); on a
    cluster, from the local table of the node the client talks to (``ON CLUSTER`` keeps them alike)."""
    rows = client.rows(
        "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {table:String}",
        {"db": database, "table": ttl_table(schema.TRACES_TABLE, cluster)},
    )
    if not rows:
        return None
    found = _TTL_DAYS.search(str(rows[0]["engine_full"]))
    return int(found.group(1)) if found else None


def ensure_schema(
    client: ClickHouseClient,
    database: str,
    ttl_days: int,
    migrations: tuple[schema.Migration, ...] | None = None,
    cluster: str | None = None,
) -> list[int]:
    """Bring ``database`` to the newest schema version with a retention of ``ttl_days``.

    Runs each migration not yet recorded in the migrations table, in order, and records it; a store that is
    already current is left as it is. When the tables' retention differs from ``ttl_days`` it is changed
    with ``schema.retention_statements``. With ``cluster`` every statement runs in its ``ON CLUSTER`` form
    (``storage.clickhouse.cluster``); the migrations table is then replicated to every node. Returns the
    versions applied by this call.
    """
    for statement in all_on_cluster(schema.bootstrap(database), cluster):
        client.command(statement)
    done = applied_versions(client, database)
    applied: list[int] = []
    for migration in migrations if migrations is not None else schema.migrations(database, ttl_days):
        if migration.version in done:
            continue
        for statement in all_on_cluster(migration.statements, cluster):
            client.command(statement)
        client.command(
            f"INSERT INTO `{database}`.{schema.MIGRATIONS_TABLE} (version, description) "
            "VALUES ({version:UInt32}, {description:String})",
            {"version": migration.version, "description": migration.description},
        )
        applied.append(migration.version)
        logger.info(
            "Applied schema migration %d to %s: %s", migration.version, database, migration.description
        )
    current = current_ttl_days(client, database, cluster)
    if current != ttl_days:
        for statement in all_on_cluster(schema.retention_statements(database, ttl_days), cluster):
            client.command(statement)
        logger.info("Changed the retention of %s from %s to %d days", database, current, ttl_days)
    return applied
