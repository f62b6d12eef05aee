"""A GenAI agent trace from Python to llm-observer with the plain OpenTelemetry SDK over OTLP/gRPC.

OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 .venv/bin/python examples/python_otel_sdk/agent.py
"""

from __future__ import annotations

import json
import os

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


def main() -> None:
    resource = Resource.create(
        {
            "service.name": "python-travel-agent",
            "llm_observer.project.id": os.environ.get("LLM_OBSERVER_PROJECT", "examples"),
        }
    )
    provider = TracerProvider(resource=resource)
    # The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4317).
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(insecure=True)))
    tracer = provider.get_tracer("examples.python_otel_sdk", "1.0.0")
    with tracer.start_as_current_span("invoke_agent travel", kind=SpanKind.INTERNAL) as agent:
        agent.set_attributes({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "travel"})
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as llm:
            llm.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 640,
                    "gen_ai.usage.output_tokens": 120,
                    "gen_ai.input.messages": json.dumps(
                        [
                            {
                                "role": "user",
                                "parts": [
                                    {"type": "text", "content": "Find me a flight to Lisbon on Friday"}
                                ],
                            }
                        ]
                    ),
                }
            )
        with tracer.start_as_current_span("execute_tool search_flights") as tool:
            tool.set_attributes(
                {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search_flights"}
            )
            tool.set_status(Status(StatusCode.ERROR, "no flights found"))
    provider.shutdown()
    print("sent 3 spans")


if __name__ == "__main__":
    main()
