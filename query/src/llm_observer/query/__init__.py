"""The query service: REST (``/api/v1``), Jaeger-compatible (``/jaeger``) and gRPC APIs over stored spans.

It is an extension the collector's runtime starts (``component.factory``, entry point ``query`` in
``llm_observer.extensions``), configured by ``QueryConfig`` (``query:`` in the YAML). ``rest``, ``jaeger`` and
``grpc_api`` present storage's typed rows, ``app`` assembles the HTTP application, ``deps`` holds what its
routes share, ``cli_commands`` ``llm-observer traces``.
"""
