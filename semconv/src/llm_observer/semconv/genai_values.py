"""Enumerated values and extra attribute names of the GenAI conventions (semconv v1.41.1 plus genai-repo
additions) that the instrumentation writes. Pure constants: safe to import anywhere."""

from __future__ import annotations

from typing import Final

# --- gen_ai.operation.name ---------------------------------------------------------------------------
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_GENERATE_CONTENT: Final = "generate_content"
OP_EMBEDDINGS: Final = "embeddings"
OP_RETRIEVAL: Final = "retrieval"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_CREATE_AGENT: Final = "create_agent"
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_INVOKE_WORKFLOW: Final = "invoke_workflow"
# Not in v1.41.1: rerank has no operation value yet; peers (OpenLLMetry) call it "rerank".
OP_RERANK: Final = "rerank"

# --- gen_ai.provider.name ----------------------------------------------------------------------------
PROVIDER_OPENAI: Final = "openai"
PROVIDER_ANTHROPIC: Final = "anthropic"
PROVIDER_AWS_BEDROCK: Final = "aws.bedrock"
PROVIDER_AZURE_AI_OPENAI: Final = "azure.ai.openai"
PROVIDER_AZURE_AI_INFERENCE: Final = "azure.ai.inference"
PROVIDER_COHERE: Final = "cohere"
PROVIDER_DEEPSEEK: Final = "deepseek"
PROVIDER_GCP_GEMINI: Final = "gcp.gemini"
PROVIDER_GCP_VERTEX_AI: Final = "gcp.vertex_ai"
PROVIDER_GCP_GEN_AI: Final = "gcp.gen_ai"
PROVIDER_GROQ: Final = "groq"
PROVIDER_IBM_WATSONX_AI: Final = "ibm.watsonx.ai"
PROVIDER_MISTRAL_AI: Final = "mistral_ai"
PROVIDER_PERPLEXITY: Final = "perplexity"
PROVIDER_X_AI: Final = "x_ai"
# Not enumerated by the conventions (custom values are allowed): self-hosted OpenAI-compatible servers
# and hubs the conventions do not list yet.
PROVIDER_OLLAMA: Final = "ollama"
PROVIDER_VLLM: Final = "vllm"
PROVIDER_LOCALAI: Final = "localai"
PROVIDER_HUGGING_FACE: Final = "hugging_face"
PROVIDER_OPENROUTER: Final = "openrouter"
PROVIDER_TOGETHER_AI: Final = "together_ai"
PROVIDER_FIREWORKS_AI: Final = "fireworks_ai"

# --- gen_ai.token.type -------------------------------------------------------------------------------
TOKEN_TYPE_INPUT: Final = "input"
TOKEN_TYPE_OUTPUT: Final = "output"

# --- gen_ai.tool.type --------------------------------------------------------------------------------
TOOL_TYPE_FUNCTION: Final = "function"
TOOL_TYPE_EXTENSION: Final = "extension"
TOOL_TYPE_DATASTORE: Final = "datastore"

# --- gen_ai.output.type ------------------------------------------------------------------------------
OUTPUT_TYPE_TEXT: Final = "text"
OUTPUT_TYPE_JSON: Final = "json"
OUTPUT_TYPE_IMAGE: Final = "image"
OUTPUT_TYPE_SPEECH: Final = "speech"

# --- attribute names not in semconv/attributes.py ----------------------------------------------------
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"
GEN_AI_REQUEST_ENCODING_FORMATS: Final = "gen_ai.request.encoding_formats"
GEN_AI_EMBEDDINGS_DIMENSION_COUNT: Final = "gen_ai.embeddings.dimension.count"
GEN_AI_TOOL_DESCRIPTION: Final = "gen_ai.tool.description"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
GEN_AI_AGENT_DESCRIPTION: Final = "gen_ai.agent.description"
GEN_AI_OPENAI_REQUEST_SERVICE_TIER: Final = "openai.request.service_tier"
GEN_AI_OPENAI_RESPONSE_SERVICE_TIER: Final = "openai.response.service_tier"
GEN_AI_OPENAI_RESPONSE_SYSTEM_FINGERPRINT: Final = "openai.response.system_fingerprint"
GEN_AI_OPENAI_API_TYPE: Final = "openai.api.type"

# --- openai.api.type ---------------------------------------------------------------------------------
OPENAI_API_TYPE_CHAT_COMPLETIONS: Final = "chat_completions"
OPENAI_API_TYPE_RESPONSES: Final = "responses"

# --- metrics: names, units, and the GenAI conventions' advisory buckets (tokens by powers of 4, durations
# doubling from 10 ms) -----------------------------------------------------------------------------------
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
TOKEN_USAGE_BUCKETS: Final = tuple(float(4**exponent) for exponent in range(14))  # 1 … 67108864
DURATION_BUCKETS: Final = tuple(round(0.01 * 2**exponent, 2) for exponent in range(14))  # 0.01 … 81.92 s

# --- content-capture event (v1.37+: one event per operation carrying the messages) -------------------
EVENT_INFERENCE_OPERATION_DETAILS: Final = "gen_ai.client.inference.operation.details"
