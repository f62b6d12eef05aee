"""One-line instrumentation of provider SDKs for users of :class:`llm_observer.LLMObserverTracer`::

    from llm_observer import LLMObserverTracer
    from llm_observer.integrations import OpenAIIntegration

    tracer = LLMObserverTracer(endpoint="http://127.0.0.1:4318", project_id="chatbot")
    OpenAIIntegration.instrument(tracer)      # every openai call now becomes a span sent by `tracer`

Each integration enables the same instrumentor that ``opentelemetry-instrument`` loads from the
``opentelemetry_instrumentor`` entry points, wired to the tracer's provider instead of the global one.
``instrument()`` without a tracer uses the global providers; ``uninstrument()`` restores the SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from llm_observer.instrumentation.tracer import LLMObserverTracer

__all__ = [
    "AnthropicIntegration",
    "BedrockIntegration",
    "CohereIntegration",
    "GoogleGenAIIntegration",
    "HuggingFaceIntegration",
    "Integration",
    "MistralIntegration",
    "OllamaIntegration",
    "OpenAIIntegration",
]


class Integration:
    """Base of the provider integrations: names the instrumentor class to load."""

    instrumentor_path: ClassVar[str] = ""

    @classmethod
    def _instrumentor(cls) -> Any:
        module, name = cls.instrumentor_path.split(":")
        return getattr(importlib.import_module(module), name)()

    @classmethod
    def instrument(cls, tracer: LLMObserverTracer | None = None, **kwargs: Any) -> None:
        """Instrument the SDK, sending spans through ``tracer`` (else the global provider). Extra keyword
        arguments go to the instrumentor (``capture_content``, ``meter_provider``…). Idempotent."""
        if tracer is not None:
            kwargs.setdefault("tracer_provider", tracer.tracer_provider)
        cls._instrumentor().instrument(**kwargs)

    @classmethod
    def uninstrument(cls) -> None:
        """Restore the SDK's original methods."""
        cls._instrumentor().uninstrument()


class OpenAIIntegration(Integration):
    """The ``openai`` SDK (and OpenAI-compatible servers, Azure OpenAI)."""

    instrumentor_path = "llm_observer.instrumentation.openai:OpenAIInstrumentor"


class AnthropicIntegration(Integration):
    """The ``anthropic`` SDK."""

    instrumentor_path = "llm_observer.instrumentation.anthropic:AnthropicInstrumentor"


class CohereIntegration(Integration):
    """The ``cohere`` SDK."""

    instrumentor_path = "llm_observer.instrumentation.cohere:CohereInstrumentor"


class GoogleGenAIIntegration(Integration):
    """The ``google-genai`` SDK."""

    instrumentor_path = "llm_observer.instrumentation.google_genai:GoogleGenAIInstrumentor"


class HuggingFaceIntegration(Integration):
    """``huggingface_hub``'s InferenceClient."""

    instrumentor_path = "llm_observer.instrumentation.huggingface:HuggingFaceInstrumentor"


class OllamaIntegration(Integration):
    """The native ``ollama`` client."""

    instrumentor_path = "llm_observer.instrumentation.ollama:OllamaInstrumentor"


class MistralIntegration(Integration):
    """The ``mistralai`` SDK."""

    instrumentor_path = "llm_observer.instrumentation.mistral:MistralInstrumentor"


class BedrockIntegration(Integration):
    """AWS Bedrock through ``boto3``."""

    instrumentor_path = "llm_observer.instrumentation.bedrock:BedrockInstrumentor"
