"""ClickHouse (a server, or chDB in-process): schema, migrations, client, the Arrow write path and typed reads."""
