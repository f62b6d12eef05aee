"""The schema's cluster form (``cluster: NAME``): its structure, and every statement checked by ClickHouse's own
parser (chDB's ``formatQuery``). No ClickHouse cluster runs here, so the cluster DDL is parsed, not executed;
the one-server form is executed on chDB."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest

from llm_observer.storage.clickhouse import schema
from llm_observer.storage.clickhouse.client import ChdbClient, open_client, tls_options
from llm_observer.storage.clickhouse.cluster import all_on_cluster, on_cluster
from llm_observer.storage.clickhouse.migrate import current_ttl_days, ensure_schema
from llm_observer.storage.clickhouse.settings import ClickHouseSettings, ClickHouseTls


def _every_statement(cluster: str | None) -> tuple[str, ...]:
    statements = list(all_on_cluster(schema.bootstrap("otel"), cluster))
    for migration in schema.migrations("otel", 30):
        statements += all_on_cluster(migration.statements, cluster)
    statements += all_on_cluster(schema.retention_statements("otel", 30), cluster)
    return tuple(statements)


@pytest.fixture
def chdb(tmp_path: Path) -> Iterator[ChdbClient]:
    client = open_client("chdb://engine", tmp_path)
    assert isinstance(client, ChdbClient)
    yield client
    client.close()


def test_cluster_ddl_one_server_form_is_unchanged_and_runs(chdb: ChdbClient) -> None:
    assert on_cluster("CREATE DATABASE x", None) == ("CREATE DATABASE x",)
    assert ensure_schema(chdb, "otel", 30, cluster=None) == [m.version for m in schema.migrations("otel", 30)]
    assert current_ttl_days(chdb, "otel") == 30
    tables = {row["name"] for row in chdb.rows("SELECT name FROM system.tables WHERE database = 'otel'")}
    assert {schema.TRACES_TABLE, schema.TRACE_ID_TS_TABLE, schema.MIGRATIONS_TABLE} <= tables
    assert not any(name.endswith("_local") for name in tables)


def test_cluster_ddl_every_statement_parses(chdb: ChdbClient) -> None:
    for statement in _every_statement("prod_cluster"):
        formatted = chdb.rows("SELECT formatQuery({q:String}) AS f", {"q": statement})[0]["f"]
        if not statement.lstrip().upper().startswith("INSERT"):
            assert "ON CLUSTER prod_cluster" in formatted, statement[:120]


def test_cluster_ddl_traces_are_replicated_local_tables_behind_distributed_ones() -> None:
    statements = _every_statement("c1")
    creates = {
        m.group(1): s
        for s in statements
        if (m := re.match(r"\s*CREATE TABLE IF NOT EXISTS `otel`\.`(\w+)`", s))
    }
    local = creates["otel_traces_local"]
    assert (
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/otel_traces_local', '{replica}')"
        in local
    )
    assert "replicated_deduplication_window = 10000" in local and "non_replicated" not in local
    assert (
        "PARTITION BY toDate(Timestamp)" in local and "TTL toDateTime(Timestamp) + toIntervalDay(30)" in local
    )
    assert creates["otel_traces"] == (
        "CREATE TABLE IF NOT EXISTS `otel`.`otel_traces` ON CLUSTER `c1` AS `otel`.`otel_traces_local`\n"
        "ENGINE = Distributed('c1', 'otel', 'otel_traces_local', cityHash64(TraceId))"
    )
    # The lookup table sits on the same shard as the trace's spans.
    assert (
        "Distributed('c1', 'otel', 'otel_traces_trace_id_ts_local', cityHash64(TraceId))"
        in creates["otel_traces_trace_id_ts"]
    )
    # The migrations table: one replicated table over every node, no Distributed table.
    migrations = creates[schema.MIGRATIONS_TABLE]
    assert (
        "'/clickhouse/tables/llm_observer/{database}/llm_observer_schema_migrations', '{shard}-{replica}'"
        in (migrations)
    )
    assert f"{schema.MIGRATIONS_TABLE}_local" not in creates
    view = next(s for s in statements if "MATERIALIZED VIEW" in s)
    assert "ON CLUSTER `c1` TO `otel`.`otel_traces_trace_id_ts_local`" in view
    assert "FROM `otel`.`otel_traces_local`" in view
    alters = [s for s in statements if s.startswith("ALTER")]
    assert (
        "ALTER TABLE `otel`.`otel_traces_local` ON CLUSTER `c1` MODIFY TTL toDateTime(Timestamp) + toIntervalDay(30)"
    ) in alters
    # Table settings (the part format) live on the local tables only.
    assert [s for s in alters if "min_bytes_for_wide_part" in s and "otel_traces" in s] == [
        "ALTER TABLE `otel`.`otel_traces_local` ON CLUSTER `c1` "
        f"MODIFY SETTING min_bytes_for_wide_part = {schema.WIDE_PART_BYTES}"
    ]
    assert all("_local` ON CLUSTER `c1`" in s for s in alters)
    # Every sharded table (whatever module added it) is keyed by its row, never by rand().
    assert not any("rand()" in s for s in statements)
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS `otel` ON CLUSTER `c1`"


def test_cluster_ddl_generic_rules_for_later_migrations() -> None:
    table = (
        "CREATE TABLE IF NOT EXISTS `otel`.things (Id String, Ver UInt64) ENGINE = ReplacingMergeTree(Ver)\n"
        "ORDER BY (Id, Ver)\nSETTINGS non_replicated_deduplication_window = 100"
    )
    local, distributed = on_cluster(table, "c")
    assert (
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/things_local', '{replica}', Ver)"
        in local
    )
    assert distributed.endswith("Distributed('c', 'otel', 'things_local', cityHash64(Id, Ver))")
    add = on_cluster("ALTER TABLE `otel`.things ADD COLUMN IF NOT EXISTS X String", "c")
    assert add == (
        "ALTER TABLE `otel`.`things_local` ON CLUSTER `c` ADD COLUMN IF NOT EXISTS X String",
        "ALTER TABLE `otel`.`things` ON CLUSTER `c` ADD COLUMN IF NOT EXISTS X String",
    )
    assert on_cluster("DROP TABLE IF EXISTS `otel`.things", "c") == (
        "DROP TABLE IF EXISTS `otel`.`things` ON CLUSTER `c` SYNC",
        "DROP TABLE IF EXISTS `otel`.`things_local` ON CLUSTER `c` SYNC",
    )
    insert = "INSERT INTO `otel`.llm_observer_schema_migrations (version) VALUES (1)"
    assert on_cluster(insert, "c") == (insert,)
    with pytest.raises(ValueError, match="no cluster form"):
        on_cluster("OPTIMIZE TABLE `otel`.things FINAL", "c")
    with pytest.raises(ValueError, match="only \\*MergeTree"):
        on_cluster("CREATE TABLE IF NOT EXISTS `otel`.m (a UInt8) ENGINE = Memory", "c")


def test_cluster_ddl_settings_validate_cluster_and_tls(tmp_path: Path) -> None:
    settings = ClickHouseSettings(
        endpoint="https://ch.example:8443",
        cluster="prod-1",
        tls=ClickHouseTls(ca_file=tmp_path / "ca.pem", insecure_skip_verify=False),
    )
    assert settings.cluster == "prod-1"
    assert tls_options(settings.tls) == {"ca_cert": str(tmp_path / "ca.pem")}
    assert tls_options(ClickHouseTls(insecure_skip_verify=True)) == {"verify": False}
    assert tls_options(None) == {}
    for bad in (
        {"endpoint": "http://h:8123", "cluster": "bad name"},
        {"endpoint": "http://h:8123", "cluster": "{cluster}"},
        {"endpoint": "chdb://x", "cluster": "c"},
        {"endpoint": "http://h:8123", "tls": {"insecure_skip_verify": True}},
    ):
        with pytest.raises(pydantic.ValidationError):
            ClickHouseSettings.model_validate(bad)
