"""The corpus' expected results, written by hand from each scenario's ground truth.

Ground truth is what ``fake_provider`` answered and what ``capture.py`` asked (models, token counts,
messages); each case then lists what its instrumentation actually reported (some report no usage on
streams, some leave request parameters out, OpenLIT reports Anthropic's uncached input count). Nothing here
is taken from the normaliser's output. Run ``python expectations.py`` to rewrite ``cases/*.expected.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CASES = Path(__file__).parent.parent / "cases"

SYSTEM = {"role": "system", "parts": [{"type": "text", "content": "You are a weather assistant."}]}
USER = {"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris?"}]}
CALL = {"type": "tool_call", "id": "call_weather_1", "name": "get_weather", "arguments": {"city": "Paris"}}
ASSISTANT_CALL = {"role": "assistant", "parts": [CALL]}
TOOL = {
    "role": "tool",
    "parts": [
        {"type": "tool_call_response", "id": "call_weather_1", "response": '{"temp_c": 18, "sky": "sunny"}'}
    ],
}
ANSWER = {
    "role": "assistant",
    "parts": [{"type": "text", "content": "It is 18 degrees and sunny in Paris."}],
    "finish_reason": "stop",
}
WEATHER_TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
GEO_SYSTEM = {"role": "system", "parts": [{"type": "text", "content": "You are a geography tutor."}]}
GEO_USER = {"role": "user", "parts": [{"type": "text", "content": "What is the capital of France?"}]}
GEO_ANSWER_TEXT = [{"type": "text", "content": "Paris is the capital of France."}]

OPENAI = {"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat"}
TOOL_CALL_USAGE = {"gen_ai.usage.input_tokens": 82, "gen_ai.usage.output_tokens": 17}
TOOL_RESULT_USAGE = {"gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 40}
GPT4O = {"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06"}
CLAUDE = {
    "gen_ai.provider.name": "anthropic",
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "claude-3-5-sonnet-20241022",
    "gen_ai.response.model": "claude-3-5-sonnet-20241022",
    "gen_ai.usage.input_tokens": 1212,  # 12 uncached + 1000 cache read + 200 cache creation
    "gen_ai.usage.output_tokens": 9,
    "gen_ai.usage.cache_read.input_tokens": 1000,
    "gen_ai.usage.cache_creation.input_tokens": 200,
}

O3_MINI = {"gen_ai.request.model": "o3-mini", "gen_ai.response.model": "o3-mini-2025-01-31"}
O3_USER = {"role": "user", "parts": [{"type": "text", "content": "What is 17 * 23?"}]}
O3_ANSWER = {"role": "assistant", "parts": [{"type": "text", "content": "391"}], "finish_reason": "stop"}
FOX = {"role": "user", "parts": [{"type": "text", "content": "The quick brown fox"}]}
EMBEDDINGS = {
    "gen_ai.provider.name": "openai",
    "gen_ai.operation.name": "embeddings",
    "gen_ai.request.model": "text-embedding-3-small",
    "gen_ai.response.model": "text-embedding-3-small",
    "gen_ai.usage.input_tokens": 6,
}

STREAM_USER = {"role": "user", "parts": [{"type": "text", "content": "Say hello."}]}
STREAM_ANSWER = {
    "role": "assistant",
    "parts": [{"type": "text", "content": "Hello there!"}],
    "finish_reason": "stop",
}
STREAM_MODELS = {"gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini"}
STREAM_USAGE = {"gen_ai.usage.input_tokens": 9, "gen_ai.usage.output_tokens": 3}


def span(name: str, attributes: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "attributes": attributes}


EXPECTED: dict[str, list[dict[str, Any]]] = {
    # --- OpenLLMetry 0.33 (indexed prompts, prompt/completion tokens, gen_ai.system "OpenAI") -----------
    "openllmetry_old__openai_chat_tool_call": [
        span(
            "openai.chat",
            {
                **OPENAI,
                **GPT4O,
                **TOOL_CALL_USAGE,
                "gen_ai.request.temperature": 0.2,
                "gen_ai.request.max_tokens": 256,
                "gen_ai.response.finish_reasons": ["tool_calls"],
                "gen_ai.tool.definitions": WEATHER_TOOLS,
                "gen_ai.input.messages": [SYSTEM, USER],
                "gen_ai.output.messages": [{**ASSISTANT_CALL, "finish_reason": "tool_calls"}],
            },
        )
    ],
    "openllmetry_old__openai_chat_tool_result": [
        span(
            "openai.chat",
            {
                **OPENAI,
                **GPT4O,
                **TOOL_RESULT_USAGE,  # 0.33 does not report the cached 1024
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.tool.definitions": WEATHER_TOOLS,
                "gen_ai.input.messages": [SYSTEM, USER, ASSISTANT_CALL, TOOL],
                "gen_ai.output.messages": [ANSWER],
            },
        )
    ],
    "openllmetry_old__openai_chat_stream": [
        span(
            "openai.chat",
            {
                **OPENAI,
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini",
                # 0.33 reports no usage for streams even with include_usage (a known gap)
                "gen_ai.request.stream": True,
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.input.messages": [
                    {"role": "user", "parts": [{"type": "text", "content": "Say hello."}]}
                ],
                "gen_ai.output.messages": [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": "Hello there!"}],
                        "finish_reason": "stop",
                    }
                ],
            },
        )
    ],
    "openllmetry_old__openai_embeddings": [
        span(
            "openai.embeddings",
            {
                "gen_ai.provider.name": "openai",
                "gen_ai.operation.name": "embeddings",
                "gen_ai.request.model": "text-embedding-3-small",
                "gen_ai.response.model": "text-embedding-3-small",
                "gen_ai.usage.input_tokens": 6,
                "gen_ai.input.messages": [
                    {"role": "user", "parts": [{"type": "text", "content": "The quick brown fox"}]}
                ],
            },
        )
    ],
    "openllmetry_old__anthropic_cache": [
        span(
            "anthropic.chat",
            {
                **CLAUDE,  # 0.33 already reports 1212 (input + cache): no fold
                "gen_ai.response.finish_reasons": ["end_turn"],
                "gen_ai.input.messages": [GEO_SYSTEM, GEO_USER],
                "gen_ai.output.messages": [
                    {"role": "assistant", "parts": GEO_ANSWER_TEXT, "finish_reason": "end_turn"}
                ],
            },
        )
    ],
    # --- OpenLLMetry 0.62 (current JSON messages, a few own spellings) ---------------------------------
    "openllmetry_new__anthropic_cache": [
        # The Anthropic SDK's own span (current conventions, cache_write spelling)
        span(
            "anthropic.messages.create",
            {**CLAUDE, "gen_ai.request.max_tokens": 100},
        ),
        span(
            "anthropic.chat",
            {
                **CLAUDE,
                "gen_ai.request.max_tokens": 100,
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.system_instructions": [{"type": "text", "content": "You are a geography tutor."}],
                "gen_ai.input.messages": [GEO_USER],
                "gen_ai.output.messages": [
                    {"role": "assistant", "parts": GEO_ANSWER_TEXT, "finish_reason": "stop"}
                ],
            },
        ),
    ],
    "openllmetry_new__openai_reasoning": [
        span(
            "openai.chat",
            {
                **OPENAI,
                "gen_ai.request.model": "o3-mini",
                "gen_ai.response.model": "o3-mini-2025-01-31",
                "gen_ai.usage.input_tokens": 15,
                "gen_ai.usage.output_tokens": 210,
                "gen_ai.usage.cache_read.input_tokens": 0,
                "gen_ai.usage.reasoning.output_tokens": 192,
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.input.messages": [
                    {"role": "user", "parts": [{"type": "text", "content": "What is 17 * 23?"}]}
                ],
                "gen_ai.output.messages": [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": "391"}],
                        "finish_reason": "stop",
                    }
                ],
            },
        )
    ],
    "openllmetry_new__openai_chat_tool_result": [
        span(
            "openai.chat",
            {
                **OPENAI,
                **GPT4O,
                **TOOL_RESULT_USAGE,
                "gen_ai.usage.cache_read.input_tokens": 1024,
                "gen_ai.usage.reasoning.output_tokens": 0,  # its gen_ai.usage.reasoning_tokens
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.tool.definitions": WEATHER_TOOLS,
                "gen_ai.input.messages": [SYSTEM, USER, ASSISTANT_CALL, TOOL],
                "gen_ai.output.messages": [ANSWER],
            },
        )
    ],
    # --- OpenInference ----------------------------------------------------------------------------------
    "openinference__openai_chat_tool_result": [
        span(
            "ChatCompletion",
            {
                **OPENAI,
                **GPT4O,
                **TOOL_RESULT_USAGE,
                "gen_ai.usage.cache_read.input_tokens": 1024,
                "gen_ai.usage.reasoning.output_tokens": 0,
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.tool.definitions": WEATHER_TOOLS,
                "gen_ai.input.messages": [SYSTEM, USER, ASSISTANT_CALL, TOOL],
                "gen_ai.output.messages": [ANSWER],
            },
        )
    ],
    "openinference__openai_chat_stream": [
        span(
            "ChatCompletion",
            {
                **OPENAI,
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 9,
                "gen_ai.usage.output_tokens": 3,
                "gen_ai.usage.cache_read.input_tokens": 0,
                "gen_ai.usage.reasoning.output_tokens": 0,
                "gen_ai.request.stream": True,  # from llm.invocation_parameters
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.input.messages": [
                    {"role": "user", "parts": [{"type": "text", "content": "Say hello."}]}
                ],
                "gen_ai.output.messages": [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": "Hello there!"}],
                        "finish_reason": "stop",
                    }
                ],
            },
        )
    ],
    "openinference__openai_embeddings": [
        span(
            "CreateEmbeddings",
            {
                "gen_ai.provider.name": "openai",
                "gen_ai.operation.name": "embeddings",
                "gen_ai.request.model": "text-embedding-3-small",
                "gen_ai.response.model": "text-embedding-3-small",
                "gen_ai.usage.input_tokens": 6,
            },
        )
    ],
    "openinference__anthropic_cache": [
        span("anthropic.messages.create", {**CLAUDE, "gen_ai.request.max_tokens": 100}),
        span(
            "messages.create",
            {
                **CLAUDE,  # OpenInference's prompt count already includes the cache: no fold
                "gen_ai.request.max_tokens": 100,
                "gen_ai.response.finish_reasons": ["end_turn"],
                "gen_ai.input.messages": [GEO_SYSTEM, GEO_USER],
                "gen_ai.output.messages": [
                    {"role": "assistant", "parts": GEO_ANSWER_TEXT, "finish_reason": "end_turn"}
                ],
            },
        ),
    ],
    # --- official OTel openai-v2 2.0b0: v1.28 content as log events ---------------------------------------
    "otel_events__openai_chat_tool_result": [
        span(
            "chat gpt-4o",
            {
                **OPENAI,
                **GPT4O,
                **TOOL_RESULT_USAGE,
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.input.messages": [SYSTEM, USER, ASSISTANT_CALL, TOOL],
                "gen_ai.output.messages": [ANSWER],
            },
        )
    ],
    # --- official OTel openai-v2 2.4b0, latest experimental conventions (already current) ----------------
    "otel_latest__openai_chat_tool_call": [
        span(
            "chat gpt-4o",
            {
                **OPENAI,
                **GPT4O,
                **TOOL_CALL_USAGE,
                "gen_ai.request.temperature": 0.2,
                "gen_ai.request.max_tokens": 256,
                "gen_ai.response.finish_reasons": ["tool_calls"],
                "gen_ai.input.messages": [SYSTEM, USER],
                "gen_ai.output.messages": [{**ASSISTANT_CALL, "finish_reason": "tool_calls"}],
            },
        )
    ],
    "otel_latest__openai_chat_stream": [
        span(
            "chat gpt-4o-mini",
            {
                # 2.4b0 sets neither the stream flag nor finish_reasons on stream spans; its own output
                # messages are current already and are not rewritten
                **OPENAI,
                **STREAM_MODELS,
                **STREAM_USAGE,
                "gen_ai.input.messages": [STREAM_USER],
                "gen_ai.output.messages": [STREAM_ANSWER],
            },
        )
    ],
    # --- the same with content in the v1.37+ event (LogRecord event_name, structured values) ---------------
    "otel_latest_events__openai_chat_tool_result": [
        span(
            "chat gpt-4o",
            {
                **OPENAI,
                **GPT4O,
                **TOOL_RESULT_USAGE,  # openai-v2 2.4b0 does not report cached tokens
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.input.messages": [SYSTEM, USER, ASSISTANT_CALL, TOOL],
                "gen_ai.output.messages": [ANSWER],
            },
        )
    ],
    # --- OpenLIT 1.45 (current names, Anthropic's uncached input count) -------------------------------------
    "openlit__anthropic_cache": [
        span("POST", {}),  # the httpx client span: not GenAI, untouched
        span(
            "chat claude-3-5-sonnet-20241022",
            {
                **CLAUDE,
                "llm_observer.usage.uncached_input_tokens": 12,
                "gen_ai.request.max_tokens": 100,
                "gen_ai.request.temperature": 1.0,  # OpenLIT's defaults, reported as if sent
                "gen_ai.response.finish_reasons": ["end_turn"],
                "gen_ai.system_instructions": [{"type": "text", "content": "You are a geography tutor."}],
                "gen_ai.input.messages": [GEO_SYSTEM, GEO_USER],
                "gen_ai.output.messages": [
                    {"role": "assistant", "parts": GEO_ANSWER_TEXT, "finish_reason": "stop"}
                ],
            },
        ),
    ],
    "openlit__openai_chat_stream": [
        span("POST", {}),
        span(
            "chat gpt-4o-mini",
            {
                **OPENAI,
                **STREAM_MODELS,
                **STREAM_USAGE,
                "gen_ai.usage.cache_read.input_tokens": 0,
                "gen_ai.usage.cache_creation.input_tokens": 0,
                "gen_ai.request.stream": True,
                "gen_ai.request.temperature": 1.0,
                "gen_ai.request.seed": 0,
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.input.messages": [STREAM_USER],
                "gen_ai.output.messages": [STREAM_ANSWER],
            },
        ),
    ],
    # --- OpenLIT 1.32 (gen_ai.system, content events with flattened text) ---------------------------------
    "openlit_old__openai_chat_tool_result": [
        span(
            "openai.chat.completions",
            {
                **OPENAI,
                "gen_ai.request.model": "gpt-4o",
                **TOOL_RESULT_USAGE,
                "gen_ai.request.temperature": 1.0,
                "gen_ai.request.max_tokens": -1,
                "gen_ai.request.seed": "",
                "gen_ai.input.messages": [
                    {
                        "role": "user",
                        "parts": [
                            {
                                "type": "text",
                                "content": "system: You are a weather assistant.\nuser: What is the weather in Paris?"
                                '\nassistant: None\ntool: {"temp_c": 18, "sky": "sunny"}',
                            }
                        ],
                    }
                ],
                "gen_ai.output.messages": [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": "Function called with tools"}],
                    }
                ],
            },
        )
    ],
    "openllmetry_old__openai_reasoning": [
        span(
            "openai.chat",
            {
                **OPENAI,
                **O3_MINI,
                "gen_ai.usage.input_tokens": 15,
                "gen_ai.usage.output_tokens": 210,  # 0.33 does not report the 192 reasoning tokens
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.input.messages": [O3_USER],
                "gen_ai.output.messages": [O3_ANSWER],
            },
        )
    ],
    "openllmetry_new__openai_embeddings": [
        span(
            "openai.embeddings",
            {
                **EMBEDDINGS,
                "gen_ai.usage.cache_read.input_tokens": 0,
                "gen_ai.input.messages": [FOX],
            },
        )
    ],
    "openinference__openai_chat_tool_call": [
        span(
            "ChatCompletion",
            {
                **OPENAI,
                **GPT4O,
                **TOOL_CALL_USAGE,
                "gen_ai.usage.cache_read.input_tokens": 0,
                "gen_ai.usage.reasoning.output_tokens": 0,
                "gen_ai.request.temperature": 0.2,  # from llm.invocation_parameters
                "gen_ai.request.max_tokens": 256,
                "gen_ai.response.finish_reasons": ["tool_calls"],
                "gen_ai.tool.definitions": WEATHER_TOOLS,
                "gen_ai.input.messages": [SYSTEM, USER],
                "gen_ai.output.messages": [{**ASSISTANT_CALL, "finish_reason": "tool_calls"}],
            },
        )
    ],
    "openinference__openai_reasoning": [
        span(
            "ChatCompletion",
            {
                **OPENAI,
                **O3_MINI,
                "gen_ai.usage.input_tokens": 15,
                "gen_ai.usage.output_tokens": 210,
                "gen_ai.usage.cache_read.input_tokens": 0,
                "gen_ai.usage.reasoning.output_tokens": 192,
                "gen_ai.request.seed": 7,
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.input.messages": [O3_USER],
                "gen_ai.output.messages": [O3_ANSWER],
            },
        )
    ],
    "otel_events__openai_chat_tool_call": [
        span(
            "chat gpt-4o",
            {
                **OPENAI,
                **GPT4O,
                **TOOL_CALL_USAGE,
                "gen_ai.request.temperature": 0.2,
                "gen_ai.request.max_tokens": 256,
                "gen_ai.response.finish_reasons": ["tool_calls"],
                "gen_ai.input.messages": [SYSTEM, USER],
                "gen_ai.output.messages": [{**ASSISTANT_CALL, "finish_reason": "tool_calls"}],
            },
        )
    ],
    "otel_events__openai_chat_stream": [
        span(
            "chat gpt-4o-mini",
            {
                **OPENAI,
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 9,
                "gen_ai.usage.output_tokens": 3,
                # 2.0b0 sets no stream flag and no finish_reasons on stream spans; the choice event has it
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.input.messages": [
                    {"role": "user", "parts": [{"type": "text", "content": "Say hello."}]}
                ],
                "gen_ai.output.messages": [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": "Hello there!"}],
                        "finish_reason": "stop",
                    }
                ],
            },
        )
    ],
    "otel_latest__openai_embeddings": [span("embeddings text-embedding-3-small", EMBEDDINGS)],
    "openlit__openai_chat_tool_result": [
        span("POST", {}),
        span(
            "chat gpt-4o",
            {
                **OPENAI,
                **GPT4O,
                **TOOL_RESULT_USAGE,
                "gen_ai.usage.cache_read.input_tokens": 1024,  # OpenAI counts cached inside input: no fold
                "gen_ai.usage.cache_creation.input_tokens": 0,
                "gen_ai.request.temperature": 1.0,
                "gen_ai.request.seed": 0,
                "gen_ai.response.finish_reasons": ["stop"],
                # as OpenLIT wrote them (it leaves the assistant's tool call out of the history)
                "gen_ai.system_instructions": [{"type": "text", "content": "You are a weather assistant."}],
                "gen_ai.input.messages": [SYSTEM, USER, TOOL],
                "gen_ai.output.messages": [ANSWER],
            },
        ),
    ],
    "openlit_old__openai_embeddings": [
        span(
            "openai.embeddings",
            {
                **EMBEDDINGS,  # operation "embedding" in OpenLIT 1.32
                "gen_ai.response.model": None,
                "gen_ai.input.messages": [FOX],
            },
        )
    ],
    # --- hand-written OTLP/JSON (a service writing GenAI attributes itself) --------------------------------
    "handwritten__mixed": [
        span(
            "chat gpt-4o",
            {
                "gen_ai.provider.name": "azure.ai.openai",  # v1.28 value az.ai.openai
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-11-20",
                "gen_ai.usage.input_tokens": 31,  # sent as a string
                "gen_ai.usage.output_tokens": 12,
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.input.messages": [
                    {"role": "system", "parts": [{"type": "text", "content": "Answer in French."}]},
                    {"role": "user", "parts": [{"type": "text", "content": "Good morning"}]},
                ],
                "gen_ai.output.messages": [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": "Bonjour"}],
                        "finish_reason": "stop",
                    }
                ],
            },
        ),
        span(
            "messages claude-3-5-haiku",
            {
                "gen_ai.provider.name": "anthropic",
                # no operation: neither an attribute nor the span name ("messages" is no operation) says it
                "gen_ai.request.model": "claude-3-5-haiku-20241022",
                # Anthropic's raw counts: 20 uncached < 3500 cached, so the cache was left out:
                # 20 + 3000 + 500
                "gen_ai.usage.input_tokens": 3520,
                "llm_observer.usage.uncached_input_tokens": 20,
                "gen_ai.usage.output_tokens": 40,
                "gen_ai.usage.cache_read.input_tokens": 3000,
                "gen_ai.usage.cache_creation.input_tokens": 500,
                "user.id": "u-42",
                "gen_ai.conversation.id": "s-7",
                "gen_ai.input.messages": [
                    {"role": "user", "parts": [{"type": "text", "content": "Summarise the invoice."}]}
                ],
                "gen_ai.output.messages": [
                    {"role": "assistant", "parts": [{"type": "text", "content": "Total due: 120 EUR."}]}
                ],
            },
        ),
        span(
            "generate_content gemini-2.0-flash",
            {
                "gen_ai.provider.name": "gcp.gemini",
                "gen_ai.operation.name": "generate_content",
                "gen_ai.request.model": "gemini-2.0-flash",
                "gen_ai.usage.input_tokens": 8,
                "gen_ai.usage.output_tokens": 5,
                "gen_ai.request.stream": True,
            },
        ),
        span(
            "AzureChat",
            {
                "gen_ai.provider.name": "azure.ai.openai",  # llm.provider azure + llm.system openai
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.usage.input_tokens": 11,
                "gen_ai.usage.output_tokens": 2,
                "gen_ai.request.temperature": 0.5,
                "gen_ai.request.max_tokens": 64,
                "user.id": "u-9",
                "gen_ai.conversation.id": "conv-3",
                "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "ping"}]}],
                "gen_ai.output.messages": [
                    {"role": "assistant", "parts": [{"type": "text", "content": "pong"}]}
                ],
            },
        ),
        span("GET /invoices", {}),
    ],
}


def _drop_none(attributes: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in attributes.items() if value is not None}


def main() -> None:
    for case, spans in EXPECTED.items():
        spans = [{**s, "attributes": _drop_none(s["attributes"])} for s in spans]
        path = CASES / f"{case}.expected.json"
        path.write_text(json.dumps({"spans": spans}, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
