"""The part of the OpenTelemetry semantic-conventions registry that llm-observer's instrumentation targets,
pinned to one release (:data:`SEMCONV_VERSION`): every attribute the GenAI client instrumentation may write
(``gen_ai.*``, ``openai.*``, ``server.*``, ``error.type``) with its type and well-known values, the GenAI
client metrics with instrument, unit and allowed attributes, and the content event.

It is what the instrumentation's conformance test checks emitted telemetry against, without the network.
When moving to a newer release, change :data:`SEMCONV_VERSION` and these tables together, from the release's
``model/`` YAML. Pure constants: safe to import anywhere.

Two things release v1.41.0 brought that earlier releases lack: ``gen_ai.request.stream``,
``gen_ai.response.time_to_first_chunk`` and the ``gen_ai.client.operation.time_to_first_chunk`` metric
(unknown to v1.40.0 and older), and the ``openai.api.type`` attribute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from llm_observer.semconv import attributes as attr
from llm_observer.semconv import genai_values as gv

__all__ = [
    "ATTRIBUTES",
    "CUSTOM_VALUES",
    "EVENTS",
    "METRICS",
    "SCHEMA_URL",
    "SEMCONV_VERSION",
    "AttributeSpec",
    "MetricSpec",
]

SEMCONV_VERSION: Final = "1.41.0"
SCHEMA_URL: Final = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"

AttributeType = Literal["string", "int", "double", "boolean", "string[]", "any"]


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """One registry attribute: its type and, for enums, the well-known values (``members``; the
    conventions allow other values where none applies, see :data:`CUSTOM_VALUES`)."""

    name: str
    type: AttributeType
    members: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One registry metric: instrument, unit and the attributes it may carry."""

    name: str
    instrument: Literal["histogram", "counter", "updowncounter", "gauge"]
    unit: str
    attributes: frozenset[str]


def _enum(name: str, *members: str) -> AttributeSpec:
    return AttributeSpec(name, "string", frozenset(members))


_SPECS: tuple[AttributeSpec, ...] = (
    _enum(
        attr.GEN_AI_PROVIDER_NAME,
        *(
            gv.PROVIDER_OPENAI,
            gv.PROVIDER_GCP_GEN_AI,
            gv.PROVIDER_GCP_VERTEX_AI,
            gv.PROVIDER_GCP_GEMINI,
            gv.PROVIDER_ANTHROPIC,
            gv.PROVIDER_COHERE,
            gv.PROVIDER_AZURE_AI_INFERENCE,
            gv.PROVIDER_AZURE_AI_OPENAI,
            gv.PROVIDER_IBM_WATSONX_AI,
            gv.PROVIDER_AWS_BEDROCK,
            gv.PROVIDER_PERPLEXITY,
            gv.PROVIDER_X_AI,
            gv.PROVIDER_DEEPSEEK,
            gv.PROVIDER_GROQ,
            gv.PROVIDER_MISTRAL_AI,
        ),
    ),
    _enum(
        attr.GEN_AI_OPERATION_NAME,
        *(
            gv.OP_CHAT,
            gv.OP_GENERATE_CONTENT,
            gv.OP_TEXT_COMPLETION,
            gv.OP_EMBEDDINGS,
            gv.OP_RETRIEVAL,
            gv.OP_CREATE_AGENT,
            gv.OP_INVOKE_AGENT,
            gv.OP_EXECUTE_TOOL,
            gv.OP_INVOKE_WORKFLOW,
        ),
    ),
    AttributeSpec(attr.GEN_AI_REQUEST_MODEL, "string"),
    AttributeSpec(attr.GEN_AI_REQUEST_MAX_TOKENS, "int"),
    AttributeSpec(attr.GEN_AI_REQUEST_CHOICE_COUNT, "int"),
    AttributeSpec(attr.GEN_AI_REQUEST_TEMPERATURE, "double"),
    AttributeSpec(attr.GEN_AI_REQUEST_TOP_P, "double"),
    AttributeSpec(attr.GEN_AI_REQUEST_TOP_K, "double"),
    AttributeSpec(attr.GEN_AI_REQUEST_STOP_SEQUENCES, "string[]"),
    AttributeSpec(attr.GEN_AI_REQUEST_FREQUENCY_PENALTY, "double"),
    AttributeSpec(attr.GEN_AI_REQUEST_PRESENCE_PENALTY, "double"),
    AttributeSpec(gv.GEN_AI_REQUEST_ENCODING_FORMATS, "string[]"),
    AttributeSpec(attr.GEN_AI_REQUEST_SEED, "int"),
    AttributeSpec(attr.GEN_AI_REQUEST_STREAM, "boolean"),
    AttributeSpec(attr.GEN_AI_RESPONSE_ID, "string"),
    AttributeSpec(attr.GEN_AI_RESPONSE_MODEL, "string"),
    AttributeSpec(attr.GEN_AI_RESPONSE_FINISH_REASONS, "string[]"),
    AttributeSpec(attr.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, "double"),
    AttributeSpec(attr.GEN_AI_USAGE_INPUT_TOKENS, "int"),
    AttributeSpec(attr.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, "int"),
    AttributeSpec(attr.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, "int"),
    AttributeSpec(attr.GEN_AI_USAGE_OUTPUT_TOKENS, "int"),
    AttributeSpec(attr.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, "int"),
    _enum(attr.GEN_AI_TOKEN_TYPE, gv.TOKEN_TYPE_INPUT, gv.TOKEN_TYPE_OUTPUT),
    AttributeSpec(attr.GEN_AI_CONVERSATION_ID, "string"),
    AttributeSpec(attr.GEN_AI_AGENT_ID, "string"),
    AttributeSpec(attr.GEN_AI_AGENT_NAME, "string"),
    AttributeSpec(gv.GEN_AI_AGENT_DESCRIPTION, "string"),
    AttributeSpec(attr.GEN_AI_AGENT_VERSION, "string"),
    AttributeSpec(attr.GEN_AI_TOOL_NAME, "string"),
    AttributeSpec(attr.GEN_AI_TOOL_CALL_ID, "string"),
    AttributeSpec(gv.GEN_AI_TOOL_DESCRIPTION, "string"),
    AttributeSpec(attr.GEN_AI_TOOL_TYPE, "string"),
    AttributeSpec(gv.GEN_AI_TOOL_CALL_ARGUMENTS, "any"),
    AttributeSpec(gv.GEN_AI_TOOL_CALL_RESULT, "any"),
    AttributeSpec(attr.GEN_AI_TOOL_DEFINITIONS, "any"),
    AttributeSpec(attr.GEN_AI_DATA_SOURCE_ID, "string"),
    _enum(
        gv.GEN_AI_OUTPUT_TYPE,
        gv.OUTPUT_TYPE_TEXT,
        gv.OUTPUT_TYPE_JSON,
        gv.OUTPUT_TYPE_IMAGE,
        gv.OUTPUT_TYPE_SPEECH,
    ),
    AttributeSpec(gv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, "int"),
    AttributeSpec(attr.GEN_AI_SYSTEM_INSTRUCTIONS, "any"),
    AttributeSpec(attr.GEN_AI_INPUT_MESSAGES, "any"),
    AttributeSpec(attr.GEN_AI_OUTPUT_MESSAGES, "any"),
    AttributeSpec(attr.GEN_AI_WORKFLOW_NAME, "string"),
    _enum(gv.GEN_AI_OPENAI_REQUEST_SERVICE_TIER, "auto", "default"),
    _enum(gv.GEN_AI_OPENAI_API_TYPE, gv.OPENAI_API_TYPE_CHAT_COMPLETIONS, gv.OPENAI_API_TYPE_RESPONSES),
    AttributeSpec(gv.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER, "string"),
    AttributeSpec(gv.GEN_AI_OPENAI_RESPONSE_SYSTEM_FINGERPRINT, "string"),
    AttributeSpec(gv.SERVER_ADDRESS, "string"),
    AttributeSpec(gv.SERVER_PORT, "int"),
    _enum(attr.ERROR_TYPE, attr.ERROR_TYPE_OTHER),
)

#: Registry attributes by name.
ATTRIBUTES: Final[Mapping[str, AttributeSpec]] = MappingProxyType({spec.name: spec for spec in _SPECS})

#: Values outside an enum's well-known members that the instrumentation writes knowingly (the conventions
#: allow a custom value where no member applies): self-hosted servers and hubs the provider list lacks,
#: provider error codes and exception names for ``error.type``, service tiers newer than the registry.
CUSTOM_VALUES: Final[Mapping[str, frozenset[str] | None]] = MappingProxyType(
    {
        attr.GEN_AI_PROVIDER_NAME: frozenset(
            {
                gv.PROVIDER_OLLAMA,
                gv.PROVIDER_VLLM,
                gv.PROVIDER_LOCALAI,
                gv.PROVIDER_HUGGING_FACE,
                gv.PROVIDER_OPENROUTER,
                gv.PROVIDER_TOGETHER_AI,
                gv.PROVIDER_FIREWORKS_AI,
            }
        ),
        attr.GEN_AI_OPERATION_NAME: frozenset({gv.OP_RERANK}),
        # None: any value (an error code or an exception's name; a tier such as "flex" or "priority").
        attr.ERROR_TYPE: None,
        gv.GEN_AI_OPENAI_REQUEST_SERVICE_TIER: None,
    }
)

_METRIC_BASE = frozenset(
    {
        gv.SERVER_ADDRESS,
        gv.SERVER_PORT,
        attr.GEN_AI_RESPONSE_MODEL,
        attr.GEN_AI_REQUEST_MODEL,
        attr.GEN_AI_PROVIDER_NAME,
        attr.GEN_AI_OPERATION_NAME,
    }
)

#: The GenAI client metrics by name.
METRICS: Final[Mapping[str, MetricSpec]] = MappingProxyType(
    {
        gv.METRIC_TOKEN_USAGE: MetricSpec(
            gv.METRIC_TOKEN_USAGE, "histogram", "{token}", _METRIC_BASE | {attr.GEN_AI_TOKEN_TYPE}
        ),
        gv.METRIC_OPERATION_DURATION: MetricSpec(
            gv.METRIC_OPERATION_DURATION, "histogram", "s", _METRIC_BASE | {attr.ERROR_TYPE}
        ),
        gv.METRIC_TIME_TO_FIRST_CHUNK: MetricSpec(
            gv.METRIC_TIME_TO_FIRST_CHUNK, "histogram", "s", _METRIC_BASE
        ),
    }
)

#: Events by name, each with the registry attributes it may carry (the inference attributes of a span).
EVENTS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {gv.EVENT_INFERENCE_OPERATION_DETAILS: frozenset(ATTRIBUTES)}
)
