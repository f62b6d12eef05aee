"""Load the cross-scheme normalisation corpus.

Each case is ``cases/<scheme>__<scenario>.input.json`` (``{"traces": ExportTraceServiceRequest as OTLP/JSON
with hex ids, "logs": ExportLogsServiceRequest OTLP/JSON or null, "captured_with": {package: version}}``) and
``cases/<scheme>__<scenario>.expected.json`` (``{"spans": [{"name", "attributes"}]}`` in span order: the
values every normalised span must carry for ``CHECKED_KEYS``; a checked key missing from ``attributes`` must
be missing from the span). Message attributes are compared as parsed JSON.

Other tests (e.g. end to end through a running collector) can load cases with ``load_case``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.json_format import ParseDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llm_observer.kernel.otlp_codec import hex_ids_to_base64

CASES_DIR = Path(__file__).parent / "cases"

JSON_KEYS = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.definitions",
    }
)
CHECKED_KEYS = (
    "gen_ai.provider.name",
    "gen_ai.operation.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "llm_observer.usage.uncached_input_tokens",
    "gen_ai.request.stream",
    "gen_ai.request.temperature",
    "gen_ai.request.max_tokens",
    "gen_ai.request.seed",
    "gen_ai.response.finish_reasons",
    "user.id",
    "gen_ai.conversation.id",
    *sorted(JSON_KEYS),
)


@dataclass(frozen=True)
class Case:
    name: str
    traces: ExportTraceServiceRequest
    logs: ExportLogsServiceRequest | None
    expected: list[dict[str, Any]]
    captured_with: dict[str, str]


def load_case(name: str) -> Case:
    """The named case as protobuf requests plus its expected spans."""
    raw = json.loads((CASES_DIR / f"{name}.input.json").read_text())
    traces = ParseDict(hex_ids_to_base64(raw["traces"]), ExportTraceServiceRequest())
    logs = ParseDict(hex_ids_to_base64(raw["logs"]), ExportLogsServiceRequest()) if raw.get("logs") else None
    expected = json.loads((CASES_DIR / f"{name}.expected.json").read_text())["spans"]
    return Case(name, traces, logs, expected, raw.get("captured_with", {}))


def case_names() -> list[str]:
    return sorted(p.name.removesuffix(".input.json") for p in CASES_DIR.glob("*.input.json"))


def checked(attributes: dict[str, Any]) -> dict[str, Any]:
    """The checked keys of a span's attributes, JSON message attributes parsed."""
    out: dict[str, Any] = {}
    for key in CHECKED_KEYS:
        if key in attributes:
            value = attributes[key]
            out[key] = json.loads(value) if key in JSON_KEYS and isinstance(value, str) else value
    return out
