"""The gRPC API ``llm_observer.query.v1.QueryService`` (proto: ``proto/llm_observer_query_v1.proto``).

The message and service modules are generated from the proto and committed under ``llm_observer.query.v1``
(``query/scripts/generate_protos.py`` regenerates them); clients import them from there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio

from llm_observer.kernel.auth import Principal
from llm_observer.kernel.errors import AuthError, PermanentError, RetryableError
from llm_observer.query.backend import QueryBackend, tail_spans, tenant_for
from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
from llm_observer.query.v1 import llm_observer_query_v1_pb2_grpc as pb_grpc
from llm_observer.semconv import attributes as attrs
from llm_observer.storage.clickhouse.reads import (
    InvalidArgument,
    SpanFilter,
    Tenant,
    TraceQuery,
    message_text,
    normalize_trace_id,
)

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["QueryService"].full_name


def _span_filter(message: Any) -> SpanFilter:
    return SpanFilter(
        service=message.service or None,
        model=message.model or None,
        provider=message.provider or None,
        operation=message.operation or None,
        span_name=message.span_name or None,
        user_id=message.user_id or None,
        team_id=message.team_id or None,
        conversation_id=message.conversation_id or None,
        attributes=tuple(sorted(message.attributes.items())),
        text=message.text or None,
    )


def _fill_metrics(out: Any, row: dict[str, Any]) -> None:
    out.request_count = int(row["request_count"])
    out.error_count = int(row["error_count"])
    out.error_rate = float(row["error_rate"])
    out.latency_p50_ms = row["latency_ms"]["p50"]
    out.latency_p95_ms = row["latency_ms"]["p95"]
    out.latency_p99_ms = row["latency_ms"]["p99"]
    for name in (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    ):
        setattr(out, name, int(row.get(name) or 0))
    out.cost_usd = float(row["cost_usd"])


def _fill_cost(out: Any, row: dict[str, Any]) -> None:
    out.key = str(row.get("key", ""))
    for name in ("request_count", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
        setattr(out, name, int(row.get(name) or 0))
    for name in (
        "cost_usd",
        "input_cost_usd",
        "output_cost_usd",
        "cache_read_cost_usd",
        "cache_write_cost_usd",
    ):
        setattr(out, name, float(row.get(name) or 0.0))


def span_message(row: dict[str, Any]) -> Any:
    attributes: dict[str, str] = row["attributes"]
    span = pb.Span(
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_span_id=row["parent_span_id"],
        name=row["name"],
        kind=row["kind"],
        start_time_unix_nano=int(row["start_ns"]),
        end_time_unix_nano=int(row["end_ns"]),
        duration_ms=int(row["duration_ns"]) / 1e6,
        status=row["status"],
        status_message=row["status_message"],
        service_name=row["service_name"],
        organization_id=row["organization_id"],
        project_id=row["project_id"],
        operation=row["operation"],
        provider=row["provider"],
        request_model=row["request_model"],
        response_model=row["response_model"],
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        cache_read_tokens=int(row["cache_read_tokens"]),
        cache_write_tokens=int(row["cache_write_tokens"]),
        reasoning_tokens=int(row["reasoning_tokens"]),
        cost_usd=float(row["cost_usd"]),
        input=message_text(attributes.get(attrs.GEN_AI_INPUT_MESSAGES, "")),
        output=message_text(attributes.get(attrs.GEN_AI_OUTPUT_MESSAGES, "")),
        attributes=attributes,
        resource=row["resource"],
    )
    for event in row["events"]:
        span.events.add(
            time_unix_nano=int(event["time_ns"]), name=event["name"], attributes=event["attributes"]
        )
    return span


class _Servicer:
    """Implements every RPC over the shared backend."""

    def __init__(self, backend: QueryBackend) -> None:
        self.backend = backend

    def _principal(self, context: grpc.aio.ServicerContext[Any, Any]) -> Principal:
        header = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                header = value if isinstance(value, str) else value.decode("utf-8", "replace")
        return self.backend.auth.authenticate(header, "query")

    def _tenant(self, context: grpc.aio.ServicerContext[Any, Any], request: Any) -> Tenant:
        return tenant_for(
            self._principal(context), request.organization_id or None, request.project_id or None
        )

    async def GetTrace(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        async with _errors(context, self.backend):
            tenant = self._tenant(context, request)
            tid = normalize_trace_id(request.trace_id)
            spans = await self.backend.get_trace(tenant, tid)
            if not spans:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"trace {tid} not found")
            return pb.GetTraceResponse(trace_id=tid, spans=[span_message(span) for span in spans])

    async def SearchTraces(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        async with _errors(context, self.backend):
            tenant = self._tenant(context, request)
            start, end = self.backend.time_range(
                request.start_time_unix_nano or None, request.end_time_unix_nano or None
            )
            query = TraceQuery(
                start_ns=start,
                end_ns=end,
                spans=_span_filter(request.filter),
                status=request.status.lower() or None,
                min_duration_ms=request.min_duration_ms if request.HasField("min_duration_ms") else None,
                max_duration_ms=request.max_duration_ms if request.HasField("max_duration_ms") else None,
                min_cost_usd=request.min_cost_usd if request.HasField("min_cost_usd") else None,
                limit=self.backend.page_size(request.limit or None),
                cursor=request.cursor or None,
            )
            rows, cursor = await self.backend.search_traces(tenant, query)
            response = pb.SearchTracesResponse(next_cursor=cursor or "")
            for row in rows:
                response.traces.add(
                    trace_id=row["trace_id"],
                    root_span_name=row["root_name"],
                    service_name=row["service_name"],
                    organization_id=row["organization_id"],
                    project_id=row["project_id"],
                    start_time_unix_nano=int(row["start_ns"]),
                    duration_ms=(int(row["end_ns"]) - int(row["start_ns"])) / 1e6,
                    span_count=int(row["span_count"]),
                    error_count=int(row["error_count"]),
                    status=row["status"],
                    input_tokens=int(row["input_tokens"]),
                    output_tokens=int(row["output_tokens"]),
                    cost_usd=float(row["cost_usd"]),
                    models=list(row["models"]),
                )
            return response

    async def GetMetricsSummary(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        async with _errors(context, self.backend):
            tenant = self._tenant(context, request)
            start, end = self.backend.time_range(
                request.start_time_unix_nano or None, request.end_time_unix_nano or None
            )
            if request.step_seconds < 0:
                raise InvalidArgument("step_seconds must not be negative")
            result = await self.backend.metrics_summary(
                tenant,
                start,
                end,
                request.group_by or "model",
                _span_filter(request.filter),
                int(request.step_seconds) or None,
            )
            response = pb.GetMetricsSummaryResponse(group_by=result["group_by"])
            _fill_metrics(response.total, result)
            for group in result["groups"]:
                _fill_metrics(response.groups.add(key=str(group["key"])).metrics, group)
            for point in result.get("series", []):
                _fill_metrics(response.series.add(time_unix_nano=int(point["time_ns"])).metrics, point)
            return response

    async def GetCostBreakdown(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        async with _errors(context, self.backend):
            tenant = self._tenant(context, request)
            start, end = self.backend.time_range(
                request.start_time_unix_nano or None, request.end_time_unix_nano or None
            )
            result = await self.backend.cost_breakdown(
                tenant, start, end, request.group_by or "model", _span_filter(request.filter)
            )
            response = pb.GetCostBreakdownResponse(group_by=result["group_by"])
            _fill_cost(response.total, result)
            for group in result["groups"]:
                _fill_cost(response.groups.add(), group)
            return response

    async def SemanticSearch(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        async with _errors(context, self.backend):
            tenant = self._tenant(context, request)
            results = await self.backend.semantic_search(
                tenant,
                request.query,
                request.k or 10,
                request.model or None,
                request.start_time_unix_nano or None,
                request.end_time_unix_nano or None,
                None if request.kind == "all" else (request.kind or "prompt"),
            )
            response = pb.SemanticSearchResponse()
            for item in results:
                response.results.add(
                    trace_id=str(item.get("trace_id", "")),
                    span_id=str(item.get("span_id", "")),
                    score=float(item.get("score", 0.0)),
                    text=str(item.get("text", "")),
                    model=str(item.get("model", "") or ""),
                    fields_json=json.dumps(item, default=str),
                )
            return response

    async def TailSpans(
        self, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        async with _errors(context, self.backend):
            tenant = self._tenant(context, request)
            # Headers now, not with the first span: the client knows at once that the live tail is open.
            await context.send_initial_metadata(())
            async for fresh in tail_spans(self.backend, tenant, _span_filter(request.filter)):
                for span in fresh:
                    yield span_message(span)


class _errors:
    """Maps the package's exceptions to gRPC status codes (as ``context.abort``), counting each."""

    def __init__(self, context: grpc.aio.ServicerContext[Any, Any], backend: QueryBackend) -> None:
        self.context = context
        self.backend = backend

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, grpc.aio.AbortError) or not isinstance(exc, Exception):
            return False
        self.backend.count(f"grpc_error_{type(exc).__name__}")
        if isinstance(exc, AuthError):
            code = grpc.StatusCode.UNAUTHENTICATED if exc.status == 401 else grpc.StatusCode.PERMISSION_DENIED
            await self.context.abort(code, str(exc))
        if isinstance(exc, InvalidArgument):
            await self.context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if isinstance(exc, RetryableError):
            await self.context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        if isinstance(exc, PermanentError):
            logger.error("A query failed: %s", exc)
            await self.context.abort(
                grpc.StatusCode.INTERNAL, "the query failed; see the query service's log"
            )
        logger.error("Unexpected error in a gRPC call: %s", exc, exc_info=exc)
        await self.context.abort(grpc.StatusCode.INTERNAL, "internal error")
        return False


async def start_grpc_server(backend: QueryBackend, endpoint: str) -> tuple[grpc.aio.Server, int]:
    """A started gRPC server for ``backend`` on ``endpoint`` (port 0 picks one) and its port."""
    from grpc_reflection.v1alpha import reflection

    server = grpc.aio.server()
    # The generated registration function is untyped (grpcio-tools writes no stub for it).
    pb_grpc.add_QueryServiceServicer_to_server(_Servicer(backend), server)  # type: ignore[no-untyped-call]
    reflection.enable_server_reflection((SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(endpoint)
    if port == 0:
        raise OSError(f"cannot listen for gRPC on {endpoint}")
    await server.start()
    return server, port
