"""A local HTTP server that answers like the OpenAI and Anthropic APIs, for capturing real spans.

The responses have the shapes the providers' SDKs parse (chat completions with tool calls, streamed chunks
with a final usage chunk, embeddings, Anthropic messages with prompt-cache usage). The
numbers in them are the ground truth the corpus' expected results are written from.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CREATED = 1732600000

OPENAI_TOOL_CALL = {
    "id": "chatcmpl-tool-1",
    "object": "chat.completion",
    "created": CREATED,
    "model": "gpt-4o-2024-08-06",
    "system_fingerprint": "fp_corpus",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_weather_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 82,
        "completion_tokens": 17,
        "total_tokens": 99,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    },
}

OPENAI_TEXT = {
    "id": "chatcmpl-text-2",
    "object": "chat.completion",
    "created": CREATED,
    "model": "gpt-4o-2024-08-06",
    "system_fingerprint": "fp_corpus",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "It is 18 degrees and sunny in Paris.",
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 40,
        "total_tokens": 1240,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    },
}

OPENAI_REASONING = {
    "id": "chatcmpl-reason-3",
    "object": "chat.completion",
    "created": CREATED,
    "model": "o3-mini-2025-01-31",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "391", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 15,
        "completion_tokens": 210,
        "total_tokens": 225,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 192, "audio_tokens": 0},
    },
}

STREAM_TEXT = ["Hello", " there", "!"]
STREAM_USAGE = {
    "prompt_tokens": 9,
    "completion_tokens": 3,
    "total_tokens": 12,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
}

EMBEDDING = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.0023, -0.0093, 0.0158]}],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 6, "total_tokens": 6},
}

ANTHROPIC_MESSAGE = {
    "id": "msg_corpus_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-5-sonnet-20241022",
    "content": [{"type": "text", "text": "Paris is the capital of France."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12,
        "cache_creation_input_tokens": 200,
        "cache_read_input_tokens": 1000,
        "output_tokens": 9,
    },
}


def _stream_chunks(model: str) -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-stream-4", "object": "chat.completion.chunk", "created": CREATED, "model": model}
    chunks: list[dict[str, Any]] = [
        {
            **base,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        }
    ]
    for piece in STREAM_TEXT:
        chunks.append({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({**base, "choices": [], "usage": STREAM_USAGE})
    return chunks


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path.endswith("/chat/completions"):
            if request.get("stream"):
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                for chunk in _stream_chunks(request["model"]):
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.write(b"data: [DONE]\n\n")
                return
            if request["model"].startswith("o3"):
                self._json(OPENAI_REASONING)
            elif request.get("tools") and request["messages"][-1]["role"] != "tool":
                self._json(OPENAI_TOOL_CALL)
            else:
                self._json(OPENAI_TEXT)
        elif self.path.endswith("/embeddings"):
            self._json(EMBEDDING)
        elif self.path.endswith("/messages"):
            self._json(ANTHROPIC_MESSAGE, {"request-id": "req_corpus"})
        else:
            self.send_error(404)


def serve() -> tuple[ThreadingHTTPServer, str]:
    """Start the server on a free loopback port; returns it and its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
