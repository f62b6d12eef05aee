"""Tables that map the GenAI spellings of other instrumentation schemes onto the current conventions.

Sources: OpenLLMetry (Traceloop) ``opentelemetry-semantic-conventions-ai`` and its instrumentations, old
(indexed ``gen_ai.prompt.{i}.*``, ``gen_ai.usage.prompt_tokens``) and new (v1.37-style JSON messages);
OpenInference ``openinference-semantic-conventions`` (``llm.*``, ``openinference.span.kind``); OpenLIT's
``SemanticConvention`` (``gen_ai.system`` values such as ``gemini``/``vertex_ai``,
``gen_ai.request.is_stream``,
content events); and the OpenTelemetry GenAI conventions v1.28 to v1.41 (``gen_ai.system`` → provider,
``cache_write`` from the genai repo). Pure data and tiny helpers: safe to import anywhere.

Every source list is in priority order: the first key present on a span wins.
"""

from __future__ import annotations

from typing import Final

from llm_observer.semconv import attributes as A
from llm_observer.semconv import genai_values as V

# --- attributes that only llm-observer writes --------------------------------------------------------
USAGE_UNCACHED_INPUT_TOKENS: Final = "llm_observer.usage.uncached_input_tokens"
"""Set when the normaliser folded cache tokens into ``gen_ai.usage.input_tokens``: the count the source
reported before folding. Its presence is also what keeps the fold from happening twice."""

# --- provider ------------------------------------------------------------------------------------------
PROVIDER_SOURCES: Final = (A.GEN_AI_PROVIDER_NAME, A.GEN_AI_SYSTEM)

PROVIDER_ALIASES: Final[dict[str, str]] = {
    # keys are lower-cased source values
    "openai": V.PROVIDER_OPENAI,
    "anthropic": V.PROVIDER_ANTHROPIC,
    "aws.bedrock": V.PROVIDER_AWS_BEDROCK,
    "aws_bedrock": V.PROVIDER_AWS_BEDROCK,
    "bedrock": V.PROVIDER_AWS_BEDROCK,
    "aws": V.PROVIDER_AWS_BEDROCK,
    "azure.ai.openai": V.PROVIDER_AZURE_AI_OPENAI,
    "az.ai.openai": V.PROVIDER_AZURE_AI_OPENAI,
    "azure": V.PROVIDER_AZURE_AI_OPENAI,
    "azure_openai": V.PROVIDER_AZURE_AI_OPENAI,
    "azure.ai.inference": V.PROVIDER_AZURE_AI_INFERENCE,
    "az.ai.inference": V.PROVIDER_AZURE_AI_INFERENCE,
    "cohere": V.PROVIDER_COHERE,
    "deepseek": V.PROVIDER_DEEPSEEK,
    "gcp.gemini": V.PROVIDER_GCP_GEMINI,
    "gemini": V.PROVIDER_GCP_GEMINI,
    "google.ai.studio": V.PROVIDER_GCP_GEMINI,
    "gcp.vertex_ai": V.PROVIDER_GCP_VERTEX_AI,
    "vertex_ai": V.PROVIDER_GCP_VERTEX_AI,
    "vertexai": V.PROVIDER_GCP_VERTEX_AI,
    "gcp.gen_ai": V.PROVIDER_GCP_GEN_AI,
    "google": V.PROVIDER_GCP_GEN_AI,
    "google_genai": V.PROVIDER_GCP_GEN_AI,
    "groq": V.PROVIDER_GROQ,
    "ibm.watsonx.ai": V.PROVIDER_IBM_WATSONX_AI,
    "ibm.watson.ai": V.PROVIDER_IBM_WATSONX_AI,
    "watsonx": V.PROVIDER_IBM_WATSONX_AI,
    "mistral_ai": V.PROVIDER_MISTRAL_AI,
    "mistralai": V.PROVIDER_MISTRAL_AI,
    "mistral": V.PROVIDER_MISTRAL_AI,
    "perplexity": V.PROVIDER_PERPLEXITY,
    "x_ai": V.PROVIDER_X_AI,
    "xai": V.PROVIDER_X_AI,
    "ollama": V.PROVIDER_OLLAMA,
    "vllm": V.PROVIDER_VLLM,
    "localai": V.PROVIDER_LOCALAI,
    "huggingface": V.PROVIDER_HUGGING_FACE,
    "hugging_face": V.PROVIDER_HUGGING_FACE,
    "openrouter": V.PROVIDER_OPENROUTER,
    "together": V.PROVIDER_TOGETHER_AI,
    "together_ai": V.PROVIDER_TOGETHER_AI,
    "togetherai": V.PROVIDER_TOGETHER_AI,
    "fireworks": V.PROVIDER_FIREWORKS_AI,
    "fireworks_ai": V.PROVIDER_FIREWORKS_AI,
}

# OpenInference: ``llm.provider`` is who hosts the model, ``llm.system`` the API family.
OI_LLM_PROVIDER: Final = "llm.provider"
OI_LLM_SYSTEM: Final = "llm.system"
OI_PROVIDER_SYSTEM: Final[dict[tuple[str, str], str]] = {
    ("azure", "openai"): V.PROVIDER_AZURE_AI_OPENAI,
    ("google", "vertexai"): V.PROVIDER_GCP_VERTEX_AI,
    ("google", "gemini"): V.PROVIDER_GCP_GEMINI,
    ("aws", "anthropic"): V.PROVIDER_AWS_BEDROCK,
    ("aws", "amazon"): V.PROVIDER_AWS_BEDROCK,
}


def provider_alias(value: str) -> str:
    """The current ``gen_ai.provider.name`` for a source value; unknown values pass through unchanged."""
    return PROVIDER_ALIASES.get(value.lower(), value)


# --- operation -----------------------------------------------------------------------------------------
OPERATION_ALIASES: Final[dict[str, str]] = {
    "chat": V.OP_CHAT,
    "completion": V.OP_TEXT_COMPLETION,
    "completions": V.OP_TEXT_COMPLETION,
    "text_completion": V.OP_TEXT_COMPLETION,
    "generate_content": V.OP_GENERATE_CONTENT,
    "embedding": V.OP_EMBEDDINGS,
    "embeddings": V.OP_EMBEDDINGS,
    "retrieval": V.OP_RETRIEVAL,
    "execute_tool": V.OP_EXECUTE_TOOL,
    "create_agent": V.OP_CREATE_AGENT,
    "invoke_agent": V.OP_INVOKE_AGENT,
    "agent": V.OP_INVOKE_AGENT,  # OpenLIT
    "invoke_workflow": V.OP_INVOKE_WORKFLOW,
    "workflow": V.OP_INVOKE_WORKFLOW,
    "rerank": V.OP_RERANK,
}

OPERATIONS: Final = frozenset(
    {
        V.OP_CHAT,
        V.OP_TEXT_COMPLETION,
        V.OP_GENERATE_CONTENT,
        V.OP_EMBEDDINGS,
        V.OP_RETRIEVAL,
        V.OP_EXECUTE_TOOL,
        V.OP_CREATE_AGENT,
        V.OP_INVOKE_AGENT,
        V.OP_INVOKE_WORKFLOW,
    }
)
"""The operation values of the conventions (v1.41.1)."""

LLM_REQUEST_TYPE: Final = "llm.request.type"  # OpenLLMetry: chat, completion, embedding, rerank
TRACELOOP_SPAN_KIND: Final = "traceloop.span.kind"
TRACELOOP_SPAN_KIND_OPERATIONS: Final[dict[str, str]] = {
    "workflow": V.OP_INVOKE_WORKFLOW,
    "agent": V.OP_INVOKE_AGENT,
    "tool": V.OP_EXECUTE_TOOL,
}
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
OPENINFERENCE_KIND_OPERATIONS: Final[dict[str, str]] = {
    "LLM": V.OP_CHAT,
    "EMBEDDING": V.OP_EMBEDDINGS,
    "TOOL": V.OP_EXECUTE_TOOL,
    "AGENT": V.OP_INVOKE_AGENT,
    "RETRIEVER": V.OP_RETRIEVAL,
    "RERANKER": V.OP_RERANK,
}
# Span names: OpenLLMetry ``<vendor>.<operation>``, OpenInference's OpenAI class names.
SPAN_NAME_SUFFIX_OPERATIONS: Final[dict[str, str]] = {
    "chat": V.OP_CHAT,
    "completion": V.OP_TEXT_COMPLETION,
    "embeddings": V.OP_EMBEDDINGS,
    "embedding": V.OP_EMBEDDINGS,
    "rerank": V.OP_RERANK,
}
SPAN_NAME_OPERATIONS: Final[dict[str, str]] = {
    "ChatCompletion": V.OP_CHAT,
    "Completion": V.OP_TEXT_COMPLETION,
    "CreateEmbeddings": V.OP_EMBEDDINGS,
}

# --- models --------------------------------------------------------------------------------------------
REQUEST_MODEL_SOURCES: Final = (A.GEN_AI_REQUEST_MODEL, "llm.request.model_name")
RESPONSE_MODEL_SOURCES: Final = (A.GEN_AI_RESPONSE_MODEL, "llm.response.model_name", "llm.model_name")
# OpenInference's ``llm.model_name`` is what the response said; its request model is in the invocation
# parameters, so these only fill the request model when nothing better is there.
FALLBACK_REQUEST_MODEL_SOURCES: Final = ("llm.model_name", "embedding.model_name")
FALLBACK_RESPONSE_MODEL_SOURCES: Final = ("embedding.model_name",)

# --- usage ---------------------------------------------------------------------------------------------
INPUT_TOKENS_SOURCES: Final = (
    A.GEN_AI_USAGE_INPUT_TOKENS,
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "llm.usage.prompt_tokens",
)
OUTPUT_TOKENS_SOURCES: Final = (
    A.GEN_AI_USAGE_OUTPUT_TOKENS,
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "llm.usage.completion_tokens",
)
CACHE_READ_SOURCES: Final = (
    A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
CACHE_CREATION_SOURCES: Final = (
    A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    A.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
REASONING_SOURCES: Final = (
    A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    "gen_ai.usage.reasoning_tokens",
    "llm.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
)

# --- request parameters --------------------------------------------------------------------------------
REQUEST_PARAM_SOURCES: Final[dict[str, tuple[str, ...]]] = {
    A.GEN_AI_REQUEST_TOP_K: ("llm.top_k",),
    A.GEN_AI_REQUEST_FREQUENCY_PENALTY: ("llm.frequency_penalty",),
    A.GEN_AI_REQUEST_PRESENCE_PENALTY: ("llm.presence_penalty",),
    A.GEN_AI_REQUEST_STOP_SEQUENCES: ("llm.chat.stop_sequences",),
}
STREAM_SOURCES: Final = ("llm.is_streaming", "gen_ai.is_streaming", "gen_ai.request.is_stream")
USER_SOURCES: Final = ("llm.user", "gen_ai.request.user")

# OpenInference ``llm.invocation_parameters`` (JSON of the provider request's parameters).
OI_INVOCATION_PARAMETERS: Final = ("llm.invocation_parameters", "embedding.invocation_parameters")
INVOCATION_PARAMETERS: Final[dict[str, str]] = {
    "temperature": A.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": A.GEN_AI_REQUEST_TOP_P,
    "top_k": A.GEN_AI_REQUEST_TOP_K,
    "max_tokens": A.GEN_AI_REQUEST_MAX_TOKENS,
    "max_completion_tokens": A.GEN_AI_REQUEST_MAX_TOKENS,
    "max_output_tokens": A.GEN_AI_REQUEST_MAX_TOKENS,
    "frequency_penalty": A.GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": A.GEN_AI_REQUEST_PRESENCE_PENALTY,
    "stop": A.GEN_AI_REQUEST_STOP_SEQUENCES,
    "stop_sequences": A.GEN_AI_REQUEST_STOP_SEQUENCES,
    "seed": A.GEN_AI_REQUEST_SEED,
    "n": A.GEN_AI_REQUEST_CHOICE_COUNT,
}

# --- user / session ------------------------------------------------------------------------------------
TRACELOOP_ASSOCIATION_PREFIX: Final = "traceloop.association.properties."
ASSOCIATION_USER_KEYS: Final = ("user_id", "user.id", "userId")
ASSOCIATION_SESSION_KEYS: Final = ("session_id", "session.id", "sessionId", "conversation_id", "thread_id")

# --- messages ------------------------------------------------------------------------------------------
OLLM_PROMPT_PREFIX: Final = "gen_ai.prompt."
OLLM_COMPLETION_PREFIX: Final = "gen_ai.completion."
OI_INPUT_MESSAGES_PREFIX: Final = "llm.input_messages."
OI_OUTPUT_MESSAGES_PREFIX: Final = "llm.output_messages."
OLD_PROMPT: Final = "gen_ai.prompt"  # before v1.28, and OpenLIT: JSON or plain text
OLD_COMPLETION: Final = "gen_ai.completion"
OI_INPUT_VALUE: Final = "input.value"
OI_OUTPUT_VALUE: Final = "output.value"
OI_FINISH_REASON: Final = "llm.finish_reason"

# Event names of v1.28 to v1.36 content events, on spans or (once attached) from logs.
EVENT_SYSTEM_MESSAGE: Final = "gen_ai.system.message"
EVENT_USER_MESSAGE: Final = "gen_ai.user.message"
EVENT_ASSISTANT_MESSAGE: Final = "gen_ai.assistant.message"
EVENT_TOOL_MESSAGE: Final = "gen_ai.tool.message"
EVENT_TOOLS_MESSAGE: Final = "gen_ai.tools.message"  # OpenLIT's spelling
EVENT_CHOICE: Final = "gen_ai.choice"
EVENT_ROLES: Final[dict[str, str]] = {
    EVENT_SYSTEM_MESSAGE: "system",
    EVENT_USER_MESSAGE: "user",
    EVENT_ASSISTANT_MESSAGE: "assistant",
    EVENT_TOOL_MESSAGE: "tool",
    EVENT_TOOLS_MESSAGE: "tool",
}
OPENLIT_PROMPT_EVENT: Final = "gen_ai.content.prompt"
OPENLIT_COMPLETION_EVENT: Final = "gen_ai.content.completion"
EVENT_INFERENCE_DETAILS: Final = "gen_ai.client.inference.operation.details"
"""v1.37+ (event-only content mode): one event per call carrying ``gen_ai.input.messages`` etc. as
structured values."""
CONTENT_EVENT_NAMES: Final = frozenset(
    {*EVENT_ROLES, EVENT_CHOICE, OPENLIT_PROMPT_EVENT, OPENLIT_COMPLETION_EVENT, EVENT_INFERENCE_DETAILS}
)
EVENT_BODY: Final = "gen_ai.event.content"
"""Span-event attribute holding a log record's body as JSON (the ``logjoin`` processor writes it)."""

# Tool definitions: OpenLLMetry ``llm.request.functions.{i}.{name,description,parameters}``, OpenInference
# ``llm.tools.{i}.tool.json_schema`` (the provider's tool JSON).
OLLM_FUNCTIONS_PREFIX: Final = "llm.request.functions."
OI_TOOLS_PREFIX: Final = "llm.tools."
TOOL_SENTINELS: Final = frozenset({"llm.request.functions.0.name", "llm.tools.0.tool.json_schema"})

# --- what makes a span GenAI-ish -------------------------------------------------------------------------
EXACT_TRIGGER_KEYS: Final = frozenset(
    {
        *PROVIDER_SOURCES,
        A.GEN_AI_OPERATION_NAME,
        OI_LLM_PROVIDER,
        OI_LLM_SYSTEM,
        LLM_REQUEST_TYPE,
        TRACELOOP_SPAN_KIND,
        OPENINFERENCE_SPAN_KIND,
        *REQUEST_MODEL_SOURCES,
        *RESPONSE_MODEL_SOURCES,
        *FALLBACK_REQUEST_MODEL_SOURCES,
        *INPUT_TOKENS_SOURCES,
        *OUTPUT_TOKENS_SOURCES,
        OLD_PROMPT,
        OLD_COMPLETION,
    }
)
"""A span none of whose attribute keys is here (and that has no content event) is not GenAI."""

# Legacy keys that ``keep_original=False`` removes once mapped (prefix families are handled apart).
LEGACY_KEYS: Final = frozenset(
    {
        A.GEN_AI_SYSTEM,
        OI_LLM_PROVIDER,
        OI_LLM_SYSTEM,
        LLM_REQUEST_TYPE,
        "llm.request.model_name",
        "llm.response.model_name",
        "llm.model_name",
        "embedding.model_name",
        *INPUT_TOKENS_SOURCES[1:],
        *OUTPUT_TOKENS_SOURCES[1:],
        *CACHE_READ_SOURCES[1:],
        *CACHE_CREATION_SOURCES[2:],
        *REASONING_SOURCES[1:],
        *(key for keys in REQUEST_PARAM_SOURCES.values() for key in keys),
        *STREAM_SOURCES,
        *OI_INVOCATION_PARAMETERS,
        OLD_PROMPT,
        OLD_COMPLETION,
        OI_FINISH_REASON,
    }
)
LEGACY_CONTENT_KEYS: Final = frozenset({OLD_PROMPT, OLD_COMPLETION})
LEGACY_PREFIXES: Final = (
    OLLM_FUNCTIONS_PREFIX,
    OI_TOOLS_PREFIX,
    OLLM_PROMPT_PREFIX,
    OLLM_COMPLETION_PREFIX,
    OI_INPUT_MESSAGES_PREFIX,
    OI_OUTPUT_MESSAGES_PREFIX,
)

# Prompt identity under the content prefixes above: which prompt (template) and version a call used. Not
# content: kept when content is dropped or legacy keys removed (prompt versions are told by them).
PROMPT_IDENTITY_KEYS: Final = frozenset(
    {"gen_ai.prompt.name", "gen_ai.prompt.version", "llm.prompt_template.version"}
)

# --- key groups the normaliser checks with one set intersection per span ---------------------------------
USAGE_KEYS: Final = frozenset(
    {
        *INPUT_TOKENS_SOURCES,
        *OUTPUT_TOKENS_SOURCES,
        *CACHE_READ_SOURCES,
        *CACHE_CREATION_SOURCES,
        *REASONING_SOURCES,
    }
)
_ASSOCIATION_KEYS: Final = tuple(
    TRACELOOP_ASSOCIATION_PREFIX + key for key in (*ASSOCIATION_USER_KEYS, *ASSOCIATION_SESSION_KEYS)
)
ASSOCIATION_USER_SOURCES: Final = tuple(TRACELOOP_ASSOCIATION_PREFIX + key for key in ASSOCIATION_USER_KEYS)
ASSOCIATION_SESSION_SOURCES: Final = tuple(
    TRACELOOP_ASSOCIATION_PREFIX + key for key in ASSOCIATION_SESSION_KEYS
)
USER_SESSION_KEYS: Final = frozenset({*USER_SOURCES, A.SESSION_ID, *_ASSOCIATION_KEYS})
LEGACY_PARAM_KEYS: Final = frozenset(key for keys in REQUEST_PARAM_SOURCES.values() for key in keys)
PARAM_KEYS: Final = frozenset(
    {
        *(key for keys in REQUEST_PARAM_SOURCES.values() for key in keys),
        *STREAM_SOURCES,
        A.GEN_AI_REQUEST_STREAM,
        *OI_INVOCATION_PARAMETERS,
    }
)
# Indexed families start at index 0; one of these keys is on every span that uses the family.
OLLM_PROMPT_SENTINELS: Final = frozenset({"gen_ai.prompt.0.role", "gen_ai.prompt.0.content"})
OLLM_COMPLETION_SENTINELS: Final = frozenset(
    {
        "gen_ai.completion.0.role",
        "gen_ai.completion.0.content",
        "gen_ai.completion.0.finish_reason",
        "gen_ai.completion.0.tool_calls.0.name",
    }
)
OI_INPUT_SENTINELS: Final = frozenset(
    {"llm.input_messages.0.message.role", "llm.input_messages.0.message.content"}
)
OI_OUTPUT_SENTINELS: Final = frozenset(
    {"llm.output_messages.0.message.role", "llm.output_messages.0.message.content"}
)
MESSAGE_KEYS: Final = frozenset(
    {
        *OLLM_PROMPT_SENTINELS,
        *OLLM_COMPLETION_SENTINELS,
        *OI_INPUT_SENTINELS,
        *OI_OUTPUT_SENTINELS,
        OLD_PROMPT,
        OLD_COMPLETION,
        OI_INPUT_VALUE,
        OI_OUTPUT_VALUE,
        *TOOL_SENTINELS,
    }
)
KNOWN_KEYS: Final = frozenset(
    {
        *EXACT_TRIGGER_KEYS,
        *USAGE_KEYS,
        *USER_SESSION_KEYS,
        *PARAM_KEYS,
        *MESSAGE_KEYS,
        A.GEN_AI_INPUT_MESSAGES,
        A.GEN_AI_OUTPUT_MESSAGES,
        A.GEN_AI_TOOL_DEFINITIONS,
        A.GEN_AI_RESPONSE_FINISH_REASONS,
        OI_FINISH_REASON,
        USAGE_UNCACHED_INPUT_TOKENS,
    }
)
"""Every key the normaliser reads; ``attributes.keys() & KNOWN_KEYS`` is all it looks at per span."""
