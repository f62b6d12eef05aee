"""The one owner of storage: the ClickHouse schema, migrations, client and reads (``clickhouse``), and the
vector store with its embedder (``vectors``). The writing exporters and the query service both build on it."""
