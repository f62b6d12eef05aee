"""The query service: REST (``/api/v1``), Jaeger-compatible (``/jaeger``) and gRPC APIs over stored spans.

``QueryService(config, auth, data_dir, ingest, telemetry)`` serves them in the running event loop;
``QueryConfig`` is its configuration (``query:`` in the YAML). See ``rest``, ``jaeger`` and ``grpc_api`` for
the front ends, ``store`` for the SQL and ``cli_commands`` for ``llm-observer traces``.
"""
