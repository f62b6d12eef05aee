"""llm-observer: OpenTelemetry-native observability for LLM applications and AI agents.

Importing this package is cheap; the programmatic tracing API loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from llm_observer.instrumentation.tracer import LLMObserverTracer, observe

__all__ = ["LLMObserverTracer", "__version__", "observe"]


def __getattr__(name: str) -> Any:
    if name in ("LLMObserverTracer", "observe"):
        from llm_observer.instrumentation import tracer

        return getattr(tracer, name)
    raise AttributeError(f"module 'llm_observer' has no attribute {name!r}")
