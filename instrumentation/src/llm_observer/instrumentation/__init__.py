"""Auto-instrumentation of LLM provider SDKs and the programmatic tracing API.

Each provider module (``openai``, ``anthropic``, …) holds one instrumentor registered under the
``opentelemetry_instrumentor`` entry-point group as ``llm_observer_<provider>``; all of them share
:mod:`llm_observer.instrumentation.handler`. Importing this package imports no provider SDK.

Imports go one way: ``handler`` (with ``_content`` and ``_util`` below it) ← ``_wrappers``, ``_streams`` ←
``_instrumentor`` ← the provider modules.
"""

__version__ = "0.1.0"
