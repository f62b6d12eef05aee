"""One-line instrumentation of provider SDKs for users of :class:`llm_observer.LLMObserverTracer`::

    from llm_observer import LLMObserverTracer
    from llm_observer.integrations import OpenAIIntegration

    tracer = LLMObserverTracer(endpoint="http://127.0.0.1:4318", project_id="chatbot")
    OpenAIIntegration.instrument(tracer)      # every openai call now becomes a span sent by `tracer`
    OpenAIIntegration.instrument(tracer, capture_content=True)  # … with prompts and answers on the span

Each integration loads the instrumentor that ``opentelemetry-instrument`` loads: the entry point
``llm_observer_<provider>`` of the ``opentelemetry_instrumentor`` group, which this distribution declares,
wired to the tracer's provider instead of the global one. ``instrument()`` without a tracer uses the
global providers; ``uninstrument()`` restores the SDK. There is one integration per such entry point.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar

from llm_observer.instrumentation.handler import content_capture

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

    from llm_observer.instrumentation.tracer import LLMObserverTracer

__all__ = [
    "AnthropicIntegration",
    "BedrockIntegration",
    "CohereIntegration",
    "CrewAIIntegration",
    "GoogleGenAIIntegration",
    "HaystackIntegration",
    "HuggingFaceIntegration",
    "Integration",
    "LangChainIntegration",
    "LlamaIndexIntegration",
    "MCPIntegration",
    "MistralIntegration",
    "OllamaIntegration",
    "OpenAIAgentsIntegration",
    "OpenAIIntegration",
]

_GROUP = "opentelemetry_instrumentor"


class Integration:
    """Base of the provider integrations: ``entry_point`` names the instrumentor to load."""

    entry_point: ClassVar[str]

    @classmethod
    def _instrumentor(cls) -> BaseInstrumentor:
        for entry in entry_points(group=_GROUP, name=cls.entry_point):
            return entry.load()()
        raise LookupError(
            f"No {_GROUP!r} entry point named {cls.entry_point!r}: is llm-observer-instrumentation installed?"
        )

    @classmethod
    def instrument(cls, tracer: LLMObserverTracer | None = None, **kwargs: Any) -> None:
        """Instrument the SDK, sending spans through ``tracer`` (else the global provider). Extra keyword
        arguments go to the instrumentor (``meter_provider``…; ``capture_content``: ``True``/``False`` or
        ``"NO_CONTENT"``, ``"SPAN_ONLY"``, ``"EVENT_ONLY"``, ``"SPAN_AND_EVENT"`` in any case, else
        ValueError). Idempotent."""
        # Checked here too: the instrumentor does not run at all when its SDK is missing.
        content_capture(kwargs.get("capture_content"))
        if tracer is not None:
            kwargs.setdefault("tracer_provider", tracer.tracer_provider)
        cls._instrumentor().instrument(**kwargs)

    @classmethod
    def uninstrument(cls) -> None:
        """Restore the SDK's original methods."""
        cls._instrumentor().uninstrument()


class OpenAIIntegration(Integration):
    """The ``openai`` SDK (and OpenAI-compatible servers, Azure OpenAI)."""

    entry_point = "llm_observer_openai"


class AnthropicIntegration(Integration):
    """The ``anthropic`` SDK."""

    entry_point = "llm_observer_anthropic"


class CohereIntegration(Integration):
    """The ``cohere`` SDK."""

    entry_point = "llm_observer_cohere"


class GoogleGenAIIntegration(Integration):
    """The ``google-genai`` SDK."""

    entry_point = "llm_observer_google_genai"


class HuggingFaceIntegration(Integration):
    """``huggingface_hub``'s InferenceClient."""

    entry_point = "llm_observer_huggingface"


class OllamaIntegration(Integration):
    """The native ``ollama`` client."""

    entry_point = "llm_observer_ollama"


class MistralIntegration(Integration):
    """The ``mistralai`` SDK."""

    entry_point = "llm_observer_mistral"


class BedrockIntegration(Integration):
    """AWS Bedrock through ``boto3``."""

    entry_point = "llm_observer_bedrock"


class LangChainIntegration(Integration):
    """LangChain and LangGraph runs (``langchain-core`` callbacks): workflow, agent, tool and retrieval spans."""

    entry_point = "llm_observer_langchain"


class LlamaIndexIntegration(Integration):
    """LlamaIndex workflows, agents, tools, retrievers and model calls (``llama-index-core``)."""

    entry_point = "llm_observer_llama_index"


class CrewAIIntegration(Integration):
    """CrewAI crews and flows (its event bus): workflow, task, agent, tool, knowledge and model spans."""

    entry_point = "llm_observer_crewai"


class OpenAIAgentsIntegration(Integration):
    """OpenAI Agents SDK runs (its tracing processor): workflow, agent, tool, handoff and retrieval spans."""

    entry_point = "llm_observer_openai_agents"


class HaystackIntegration(Integration):
    """Haystack pipelines and agents (``haystack-ai`` 3.x, its tracer): workflow, agent, tool, retrieval and
    model spans."""

    entry_point = "llm_observer_haystack"


class MCPIntegration(Integration):
    """The ``mcp`` SDK 1.x, client and server: MCP spans, with the trace context carried in ``params._meta``."""

    entry_point = "llm_observer_mcp"
