"""A FastMCP server with two tools, instrumented with ``MCPInstrumentor`` in its own process and exporting
its spans over OTLP/HTTP (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), for the two-process MCP tests.

``python server.py stdio`` serves over stdin/stdout; ``python server.py http PORT`` serves streamable HTTP
on ``127.0.0.1:PORT`` at ``/mcp``. Content capture follows
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.
"""

from __future__ import annotations

import sys

from mcp.server.fastmcp import FastMCP
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from llm_observer.instrumentation.mcp import MCPInstrumentor

# Spans leave as they end, so a client that has its answer finds the server's span already sent.
provider = TracerProvider(resource=Resource.create({"service.name": "mcp-weather-server"}))
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
MCPInstrumentor().instrument(tracer_provider=provider)
tracer = trace.get_tracer("weather-app", tracer_provider=provider)

port = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
server = FastMCP("weather", host="127.0.0.1", port=port, log_level="WARNING")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@server.tool()
def forecast(city: str) -> str:
    """Tomorrow's weather in a city."""
    with tracer.start_as_current_span("lookup forecast"):
        if city == "Atlantis":
            raise ValueError("no forecast for Atlantis")
        return f"Sunny in {city}"


if __name__ == "__main__":
    try:
        server.run(transport="stdio" if sys.argv[1] == "stdio" else "streamable-http")
    finally:
        provider.shutdown()
