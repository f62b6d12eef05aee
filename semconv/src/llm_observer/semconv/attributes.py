"""Attribute names of the OpenTelemetry GenAI semantic conventions (v1.41.1 plus genai-repo spellings)
and llm-observer's own derived attributes. Pure constants: safe to import anywhere."""

from __future__ import annotations

from typing import Final

# --- GenAI conventions: operation, provider, model -----------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"  # before v1.37; normalised to gen_ai.provider.name
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"

# --- request parameters ----------------------------------------------------------------------------
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"

# --- usage -----------------------------------------------------------------------------------------
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"  # includes cached tokens
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"  # genai repo
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"

# --- agents, tools, conversations ------------------------------------------------------------------
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_AGENT_ID: Final = "gen_ai.agent.id"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_AGENT_VERSION: Final = "gen_ai.agent.version"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_DATA_SOURCE_ID: Final = "gen_ai.data_source.id"
GEN_AI_WORKFLOW_NAME: Final = "gen_ai.workflow.name"

# --- content (opt-in; JSON strings on spans) -------------------------------------------------------
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
GEN_AI_TOOL_DEFINITIONS: Final = "gen_ai.tool.definitions"

GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
ERROR_TYPE: Final = "error.type"
ERROR_TYPE_OTHER: Final = "_OTHER"

# --- general conventions ---------------------------------------------------------------------------
SERVICE_NAME: Final = "service.name"
USER_ID: Final = "user.id"
SESSION_ID: Final = "session.id"

# --- llm-observer's own attributes (INTERFACES.md) -------------------------------------------------
ORGANIZATION_ID: Final = "llm_observer.organization.id"
PROJECT_ID: Final = "llm_observer.project.id"
TEAM_ID: Final = "llm_observer.team.id"
COST_USD: Final = "llm_observer.cost.usd"
COST_INPUT_USD: Final = "llm_observer.cost.input_usd"
COST_OUTPUT_USD: Final = "llm_observer.cost.output_usd"
COST_CACHE_READ_USD: Final = "llm_observer.cost.cache_read_usd"
COST_CACHE_WRITE_USD: Final = "llm_observer.cost.cache_write_usd"
COST_SOURCE: Final = "llm_observer.cost.source"  # "computed" or "provided"
# Sums over the model calls beneath a workflow / agent / step span (framework instrumentors, the collector's
# ``rollup`` processor and the query service's read-time roll-up write them).
SUBTREE_INPUT_TOKENS: Final = "llm_observer.subtree.input_tokens"
SUBTREE_OUTPUT_TOKENS: Final = "llm_observer.subtree.output_tokens"
SUBTREE_COST_USD: Final = "llm_observer.subtree.cost_usd"

DEFAULT_PROJECT: Final = "default"
DEFAULT_ORGANIZATION: Final = "default"
