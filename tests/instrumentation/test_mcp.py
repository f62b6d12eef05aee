"""MCP client and server spans: an instrumented client in the test process and an instrumented FastMCP server
(``mcp_app/server.py``) in a subprocess, over stdio and over streamable HTTP, make one trace (the server span's
parent is the client span, carried in ``params._meta``); names and attributes follow the MCP conventions, a
tool error marks both sides, tool content is recorded only under content capture, and ``uninstrument()``
restores the SDK. The server exports over OTLP/HTTP to a local receiver."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, McpError, StdioServerParameters
from mcp.client.stdio import stdio_client

try:
    from mcp.client.streamable_http import streamable_http_client
except ImportError:  # mcp < 1.24 spells it without the underscore
    from mcp.client.streamable_http import streamablehttp_client as streamable_http_client
from mcp.server.fastmcp import Context, FastMCP
from mcp.shared.memory import create_connected_server_and_client_session
from mcp.shared.session import BaseSession
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from llm_observer.instrumentation.mcp import MCPInstrumentor
from llm_observer.instrumentation.testing import ReplayServer, TelemetryCapture
from llm_observer.instrumentation.testing.otlp import ExportedSpan, otlp_trace_route, spans_from_requests
from tests.support.ports import free_port
from tests.support.waiting import wait_until

SERVER = Path(__file__).parent / "mcp_app" / "server.py"
SCOPE = "llm_observer.instrumentation.mcp"
OTLP_SERVER, OTLP_CLIENT, OTLP_STATUS_ERROR = 2, 3, 2

Instrument = Callable[[type[MCPInstrumentor]], Callable[[], MCPInstrumentor]]


@pytest.fixture
def receiver() -> Iterator[ReplayServer]:
    with ReplayServer([otlp_trace_route()]) as server:
        yield server


def _server_env(receiver: ReplayServer, capture: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "PYTEST_"))}
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = receiver.url + "/v1/traces"
    env["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = capture
    return env


def _server_spans(receiver: ReplayServer, names: set[str]) -> dict[str, ExportedSpan]:
    """The server's spans by name, once all of ``names`` arrived."""

    def arrived() -> dict[str, ExportedSpan]:
        spans = {span.name: span for span in spans_from_requests(receiver.requests)}
        return spans if names <= spans.keys() else {}

    return wait_until(
        arrived, timeout=30, what=lambda: sorted(s.name for s in spans_from_requests(receiver.requests))
    )


def _client_span(telemetry: TelemetryCapture, name: str) -> ReadableSpan:
    return next(span for span in telemetry.spans() if span.name == name and span.kind is SpanKind.CLIENT)


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    assert context is not None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def _assert_parent(server: ExportedSpan, client: ReadableSpan) -> None:
    trace_id, span_id = _ids(client)
    assert (server.trace_id, server.parent_span_id) == (trace_id, span_id)


async def test_mcp_stdio_client_and_server_processes_make_one_trace(
    telemetry: TelemetryCapture, receiver: ReplayServer, instrument_with: Instrument, capture_content: None
) -> None:
    instrument_with(MCPInstrumentor)()
    params = StdioServerParameters(
        command=sys.executable, args=[str(SERVER), "stdio"], env=_server_env(receiver, "SPAN_ONLY")
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        added = await session.call_tool("add", {"a": 2, "b": 3})
        failed = await session.call_tool("forecast", {"city": "Atlantis"})
    assert not added.isError and failed.isError

    server = _server_spans(
        receiver, {"initialize", "tools/call add", "tools/call forecast", "lookup forecast"}
    )
    client_init, client_add = _client_span(telemetry, "initialize"), _client_span(telemetry, "tools/call add")
    client_forecast = _client_span(telemetry, "tools/call forecast")
    for name, client in (("initialize", client_init), ("tools/call add", client_add)):
        _assert_parent(server[name], client)
        assert client.kind is SpanKind.CLIENT and server[name].kind == OTLP_SERVER
        assert server[name].attributes["jsonrpc.request.id"] == _attrs(client)["jsonrpc.request.id"]
    assert (
        _attrs(client_init)["mcp.protocol.version"] == server["initialize"].attributes["mcp.protocol.version"]
    )

    for span in (_attrs(client_add), server["tools/call add"].attributes):
        assert span["mcp.method.name"] == "tools/call"
        assert span["gen_ai.operation.name"] == "execute_tool"
        assert span["gen_ai.tool.name"] == "add"
        assert json.loads(span["gen_ai.tool.call.arguments"]) == {"a": 2, "b": 3}
        assert json.loads(span["gen_ai.tool.call.result"])["content"] == [{"type": "text", "text": "5"}]
        assert "error.type" not in span
    assert server["tools/call add"].resource["service.name"] == "mcp-weather-server"
    assert server["tools/call add"].scope == SCOPE

    # The tool's own span nests under the server span: the server span is current while the tool runs.
    _assert_parent(server["tools/call forecast"], client_forecast)
    assert server["lookup forecast"].parent_span_id == server["tools/call forecast"].span_id
    assert client_forecast.status.status_code is StatusCode.ERROR
    assert _attrs(client_forecast)["error.type"] == "tool_error"
    assert "no forecast for Atlantis" in (client_forecast.status.description or "")
    assert server["tools/call forecast"].status_code == OTLP_STATUS_ERROR
    assert server["tools/call forecast"].attributes["error.type"] == "tool_error"


@pytest.fixture
def http_server(tmp_path: Path, receiver: ReplayServer) -> Iterator[str]:
    """The instrumented server over streamable HTTP in a subprocess, content capture off: its URL."""
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(SERVER), "http", str(port)],
            env=_server_env(receiver, "NO_CONTENT"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: _listening(port) or process.poll() is not None, timeout=30, what="the MCP server")
        assert process.poll() is None, log_path.read_text()
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_mcp_streamable_http_server_span_carries_session_and_no_content(
    http_server: str, telemetry: TelemetryCapture, receiver: ReplayServer, instrument_with: Instrument
) -> None:
    instrument_with(MCPInstrumentor)()
    async with (
        streamable_http_client(http_server) as (read, write, session_id),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("add", {"a": 20, "b": 22})
        mcp_session = session_id()
    assert result.content[0].text == "42"  # type: ignore[union-attr]
    server = _server_spans(receiver, {"tools/call add"})["tools/call add"]

    client = _client_span(telemetry, "tools/call add")
    _assert_parent(server, client)
    assert server.attributes["mcp.session.id"] == mcp_session
    assert server.attributes["network.transport"] == "tcp"
    assert server.attributes["network.protocol.name"] == "http"
    for attributes in (_attrs(client), server.attributes):
        assert attributes["gen_ai.tool.name"] == "add"
        assert "gen_ai.tool.call.arguments" not in attributes
        assert "gen_ai.tool.call.result" not in attributes


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _meta_server() -> FastMCP:
    server = FastMCP("meta")

    @server.tool()
    def meta(ctx: Context) -> str:  # type: ignore[type-arg]
        """What the request's _meta carried."""
        carried = ctx.request_context.meta
        return json.dumps({} if carried is None else carried.model_dump(exclude_none=True))

    return server


async def test_mcp_jsonrpc_error_marks_client_and_server_spans(
    telemetry: TelemetryCapture, instrument_with: Instrument
) -> None:
    instrument_with(MCPInstrumentor)()
    async with create_connected_server_and_client_session(_meta_server()._mcp_server) as session:
        with pytest.raises(McpError) as raised:
            await session.get_prompt("missing")
        code = str(raised.value.error.code)

    spans = [span for span in telemetry.spans() if span.name == "prompts/get missing"]
    assert sorted(span.kind.name for span in spans) == ["CLIENT", "SERVER"]
    for span in spans:
        assert span.status.status_code is StatusCode.ERROR
        assert _attrs(span)["error.type"] == _attrs(span)["rpc.response.status_code"] == code
        assert _attrs(span)["gen_ai.prompt.name"] == "missing"
    client, server = sorted(spans, key=lambda span: span.kind.name)
    assert server.parent is not None and format(server.parent.span_id, "016x") == _ids(client)[1]


async def test_mcp_uninstrument_restores_the_sdk(
    telemetry: TelemetryCapture, instrument_with: Instrument
) -> None:
    instrumentor = instrument_with(MCPInstrumentor)()
    server = _meta_server()._mcp_server
    async with create_connected_server_and_client_session(server) as session:
        carried = json.loads((await session.call_tool("meta", {})).content[0].text)  # type: ignore[union-attr]
    client = _client_span(telemetry, "tools/call meta")
    trace_id, span_id = _ids(client)
    assert carried["traceparent"].split("-")[1:3] == [trace_id, span_id]
    assert hasattr(BaseSession.send_request, "__wrapped__")

    instrumentor.uninstrument()
    telemetry.clear()
    assert not hasattr(BaseSession.send_request, "__wrapped__")
    async with create_connected_server_and_client_session(server) as session:
        carried = json.loads((await session.call_tool("meta", {})).content[0].text)  # type: ignore[union-attr]
    assert "traceparent" not in carried
    assert not telemetry.spans()
