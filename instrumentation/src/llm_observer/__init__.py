"""llm-observer: OpenTelemetry-native observability for LLM applications and AI agents.

Importing this package is cheap; the programmatic tracing API loads on first use.

``llm_observer`` is one namespace spread over several distributions (``llm-observer-semconv``,
``-instrumentation``, ``-kernel``, ``-collector``…). This distribution carries its ``__init__`` so that
``from llm_observer import LLMObserverTracer`` works; ``extend_path`` keeps the namespace whole when the other
distributions live in other folders of ``sys.path`` (editable installs, ``PYTHONPATH``).
"""

from __future__ import annotations

from pkgutil import extend_path
from typing import TYPE_CHECKING, Any

from llm_observer.instrumentation import __version__

__path__ = extend_path(__path__, __name__)

if TYPE_CHECKING:  # pragma: no cover
    from llm_observer.instrumentation.tracer import LLMObserverTracer, observe

__all__ = ["LLMObserverTracer", "__version__", "observe"]


def __getattr__(name: str) -> Any:
    if name in ("LLMObserverTracer", "observe"):
        from llm_observer.instrumentation import tracer

        return getattr(tracer, name)
    raise AttributeError(f"module 'llm_observer' has no attribute {name!r}")
