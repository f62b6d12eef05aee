"""The gRPC API ``llm_observer.query.v1.QueryService`` (proto: ``proto/llm_observer_query_v1.proto``).

The message and service modules are generated from the proto and committed under ``llm_observer.query.v1``
(``query/scripts/generate_protos.py`` regenerates them); clients import them from there. Each RPC resolves
its scope once (``read_scope``) and presents storage's typed rows as messages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

import grpc
import grpc.aio
from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError

from llm_observer.kernel.auth import Principal
from llm_observer.kernel.errors import AuthError, PermanentError, RetryableError
from llm_observer.kernel.servers import grpc_listen
from llm_observer.query import alerts_grpc
from llm_observer.query.backend import NotFound, QueryBackend, ReadScope
from llm_observer.query.formats import finite, parse_step, typed_attributes
from llm_observer.query.insights import grpc_handlers as insights_grpc
from llm_observer.query.insights.replay_routes import ReplayRefused
from llm_observer.query.rollup import with_rollup
from llm_observer.query.tail import TailEnded, TooManyTails
from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
from llm_observer.storage.clickhouse.reads import (
    CallCosts,
    CallStats,
    InvalidArgument,
    SpanFilter,
    SpanRow,
    TraceQuery,
    check_time_ns,
    normalize_trace_id,
)
from llm_observer.storage.clickhouse.signal_reads import (
    LogPage,
    LogQuery,
    LogRow,
    MetricSeriesQuery,
    parse_severity,
)

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["QueryService"].full_name

Context = grpc.aio.ServicerContext[Any, Any]


class _ScopedRequest(Protocol):
    @property
    def organization_id(self) -> str: ...

    @property
    def project_id(self) -> str: ...


def principal_of(backend: QueryBackend, context: Context) -> Principal:
    """The caller of an RPC, from its ``authorization`` metadata (allowed the ``query`` scope)."""
    header = None
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            header = value if isinstance(value, str) else value.decode("utf-8", "replace")
    return backend.auth.authenticate(header, "query")


def read_scope(
    backend: QueryBackend, context: Context, request: _ScopedRequest, start_ns: int = 0, end_ns: int = 0
) -> ReadScope:
    """The caller's scope for an RPC: the principal from the ``authorization`` metadata, the organization and
    project the request names, and the time window ``[start_ns, end_ns)`` (0: the default bound)."""
    principal = principal_of(backend, context)
    organization, project = request.organization_id or None, request.project_id or None
    names = ("start_time_unix_nano", "end_time_unix_nano")
    return backend.scope(principal, organization, project, start_ns or None, end_ns or None, names)


def _optional(request: Any, field: str, name: str | None = None) -> float | None:
    """An ``optional double`` field: None when unset, else a finite, non-negative number."""
    return finite(getattr(request, field), name or field) if request.HasField(field) else None


def _span_filter(message: pb.SpanFilter) -> SpanFilter:
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


def _fill_metrics(out: pb.Metrics, stats: CallStats) -> None:
    out.request_count = stats.request_count
    out.error_count = stats.error_count
    out.error_rate = stats.error_rate
    out.latency_p50_ms = stats.latency_p50_ms
    out.latency_p95_ms = stats.latency_p95_ms
    out.latency_p99_ms = stats.latency_p99_ms
    out.input_tokens = stats.input_tokens
    out.output_tokens = stats.output_tokens
    out.cache_read_tokens = stats.cache_read_tokens
    out.cache_write_tokens = stats.cache_write_tokens
    out.reasoning_tokens = stats.reasoning_tokens
    out.cost_usd = stats.cost_usd


def _fill_cost(out: pb.Cost, costs: CallCosts, key: str = "") -> None:
    out.key = key
    out.request_count = costs.request_count
    out.input_tokens = costs.input_tokens
    out.output_tokens = costs.output_tokens
    out.cache_read_tokens = costs.cache_read_tokens
    out.cache_write_tokens = costs.cache_write_tokens
    out.cost_usd = costs.cost_usd
    out.input_cost_usd = costs.input_cost_usd
    out.output_cost_usd = costs.output_cost_usd
    out.cache_read_cost_usd = costs.cache_read_cost_usd
    out.cache_write_cost_usd = costs.cache_write_cost_usd


def span_message(span: SpanRow) -> pb.Span:
    message = pb.Span(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        name=span.name,
        kind=span.kind,
        start_time_unix_nano=span.start_ns,
        end_time_unix_nano=span.end_ns,
        duration_ms=span.duration_ns / 1e6,
        status=span.status,
        status_message=span.status_message,
        service_name=span.service_name,
        organization_id=span.organization_id,
        project_id=span.project_id,
        operation=span.operation,
        provider=span.provider,
        request_model=span.request_model,
        response_model=span.response_model,
        input_tokens=span.input_tokens,
        output_tokens=span.output_tokens,
        cache_read_tokens=span.cache_read_tokens,
        cache_write_tokens=span.cache_write_tokens,
        reasoning_tokens=span.reasoning_tokens,
        cost_usd=span.cost_usd,
        input=span.input_text,
        output=span.output_text,
    )
    _fill_values(message.attributes, span.attributes)
    _fill_values(message.resource, span.resource)
    for event in span.events:
        _fill_values(
            message.events.add(time_unix_nano=event.time_ns, name=event.name).attributes, event.attributes
        )
    return message


def _fill_values(out: Any, attributes: Mapping[str, str]) -> None:
    """Attributes as ``google.protobuf.Value``s, typed as the REST and Jaeger APIs type them."""
    for key, value in typed_attributes(attributes).items():
        _set_value(out[key], value)


def _set_value(out: struct_pb2.Value, value: Any) -> None:
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int | float):
        out.number_value = value
    elif isinstance(value, list):
        out.list_value.SetInParent()
        for item in value:
            _set_value(out.list_value.values.add(), item)
    elif value is None:
        out.null_value = struct_pb2.NULL_VALUE
    else:
        out.string_value = value if isinstance(value, str) else json.dumps(value)


def log_message(log: LogRow) -> pb.LogRecord:
    message = pb.LogRecord(
        time_unix_nano=log.time_ns,
        trace_id=log.trace_id,
        span_id=log.span_id,
        trace_flags=log.trace_flags,
        severity_text=log.severity_text,
        severity_number=log.severity_number,
        service_name=log.service_name,
        body=log.body,
        event_name=log.event_name,
        organization_id=log.organization_id,
        project_id=log.project_id,
        scope_name=log.scope_name,
        scope_version=log.scope_version,
    )
    _fill_values(message.attributes, log.attributes)
    _fill_values(message.resource, log.resource)
    return message


def _log_messages(page: LogPage) -> list[pb.LogRecord]:
    return [log_message(log) for log in page.logs]


_MAX_STEP_SECONDS = 2**32 - 1


def _peer_host(peer: str | None) -> str:
    """The address part of a gRPC peer (``ipv4:127.0.0.1:5555``, ``ipv6:[::1]:5555``)."""
    if not peer:
        return "unknown"
    address = peer.split(":", 1)[1] if ":" in peer else peer
    return address.rsplit(":", 1)[0] if address.count(":") == 1 or address.startswith("[") else address


class _Servicer:
    """Implements every RPC over the shared backend."""

    def __init__(self, backend: QueryBackend) -> None:
        self.backend = backend

    async def GetTrace(self, request: pb.GetTraceRequest, context: Context) -> pb.GetTraceResponse:
        async with _errors(context, self.backend):
            scope = read_scope(self.backend, context, request)
            tid = normalize_trace_id(request.trace_id)
            spans = await self.backend.get_trace(scope.tenant, tid)
            if not spans:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"trace {tid} not found")
            return pb.GetTraceResponse(
                trace_id=tid, spans=[span_message(span) for span in with_rollup(spans)]
            )

    async def SearchTraces(
        self, request: pb.SearchTracesRequest, context: Context
    ) -> pb.SearchTracesResponse:
        async with _errors(context, self.backend):
            scope = read_scope(
                self.backend, context, request, request.start_time_unix_nano, request.end_time_unix_nano
            )
            query = TraceQuery(
                start_ns=scope.start_ns,
                end_ns=scope.end_ns,
                spans=_span_filter(request.filter),
                status=request.status.lower() or None,
                min_duration_ms=_optional(request, "min_duration_ms"),
                max_duration_ms=_optional(request, "max_duration_ms"),
                min_cost_usd=_optional(request, "min_cost_usd"),
                limit=self.backend.page_size(request.limit or None),
                cursor=request.cursor or None,
                order_by=request.sort or "start",
                ascending=request.ascending,
            )
            page = await self.backend.search_traces(scope.tenant, query)
            response = pb.SearchTracesResponse(next_cursor=page.next_cursor or "")
            for trace in page.traces:
                response.traces.add(
                    trace_id=trace.trace_id,
                    root_span_name=trace.root_span_name,
                    service_name=trace.service_name,
                    organization_id=trace.organization_id,
                    project_id=trace.project_id,
                    start_time_unix_nano=trace.start_ns,
                    duration_ms=trace.duration_ns / 1e6,
                    span_count=trace.span_count,
                    error_count=trace.error_count,
                    status=trace.status,
                    input_tokens=trace.input_tokens,
                    output_tokens=trace.output_tokens,
                    cost_usd=trace.cost_usd,
                    models=trace.models,
                )
            return response

    async def GetMetricsSummary(
        self, request: pb.GetMetricsSummaryRequest, context: Context
    ) -> pb.GetMetricsSummaryResponse:
        async with _errors(context, self.backend):
            scope = read_scope(
                self.backend, context, request, request.start_time_unix_nano, request.end_time_unix_nano
            )
            if not 0 <= request.step_seconds <= _MAX_STEP_SECONDS:
                raise InvalidArgument(f"step_seconds must be between 0 and {_MAX_STEP_SECONDS}")
            if request.group_series and not request.step_seconds:
                raise InvalidArgument("group_series needs step_seconds")
            summary = await self.backend.metrics_summary(
                scope,
                request.group_by or "model",
                _span_filter(request.filter),
                int(request.step_seconds) or None,
                request.group_series,
            )
            response = pb.GetMetricsSummaryResponse(group_by=summary.group_by)
            _fill_metrics(response.total, summary.total)
            for group in summary.groups:
                message = response.groups.add(key=group.key)
                _fill_metrics(message.metrics, group.stats)
                for point in group.series or ():
                    _fill_metrics(message.series.add(time_unix_nano=point.time_ns).metrics, point.stats)
            for point in summary.series or ():
                _fill_metrics(response.series.add(time_unix_nano=point.time_ns).metrics, point.stats)
            return response

    async def GetCostBreakdown(
        self, request: pb.GetCostBreakdownRequest, context: Context
    ) -> pb.GetCostBreakdownResponse:
        async with _errors(context, self.backend):
            scope = read_scope(
                self.backend, context, request, request.start_time_unix_nano, request.end_time_unix_nano
            )
            breakdown = await self.backend.cost_breakdown(
                scope, request.group_by or "model", _span_filter(request.filter)
            )
            response = pb.GetCostBreakdownResponse(group_by=breakdown.group_by)
            _fill_cost(response.total, breakdown.total)
            for group in breakdown.groups:
                _fill_cost(response.groups.add(), group.costs, group.key)
            return response

    async def SemanticSearch(
        self, request: pb.SemanticSearchRequest, context: Context
    ) -> pb.SemanticSearchResponse:
        async with _errors(context, self.backend):
            scope = read_scope(self.backend, context, request)
            start = request.start_time_unix_nano or None
            end = request.end_time_unix_nano or None
            if start is not None:
                check_time_ns(start, "start_time_unix_nano")
            if end is not None:
                check_time_ns(end, "end_time_unix_nano")
            # ``q`` is the name REST uses too; ``query``, its former name here, is still accepted.
            text = request.q or request.query
            if not text:
                raise InvalidArgument("q must be a non-empty text to search for")
            hits = await self.backend.semantic_search(
                scope.tenant,
                text,
                request.k or 10,
                request.model or None,
                start,
                end,
                None if request.kind == "all" else (request.kind or "prompt"),
            )
            response = pb.SemanticSearchResponse()
            for hit in hits:
                response.results.add(
                    trace_id=hit.trace_id,
                    span_id=hit.span_id,
                    score=hit.score,
                    text=hit.text,
                    model=hit.model,
                    fields_json=json.dumps(hit.fields, default=str),
                )
            return response

    async def TailSpans(self, request: pb.TailSpansRequest, context: Context) -> AsyncIterator[pb.Span]:
        async with _errors(context, self.backend):
            scope = read_scope(self.backend, context, request)
            holder = scope.principal.subject
            if scope.principal.unrestricted:
                holder = f"{holder}@{_peer_host(context.peer())}"
            async with self.backend.tails.open(holder, scope.tenant, _span_filter(request.filter)) as tail:
                await self.backend.tails.ready(tail)
                # Headers now, not with the first span: the client knows at once that the live tail is open.
                await context.send_initial_metadata(())
                while True:
                    for span in await tail.next():
                        yield span_message(span)

    async def GetTraceLogs(
        self, request: pb.GetTraceLogsRequest, context: Context
    ) -> pb.GetTraceLogsResponse:
        async with _errors(context, self.backend):
            scope = read_scope(self.backend, context, request)
            tid = normalize_trace_id(request.trace_id)
            limit = self.backend.page_size(request.limit or None, 1000)
            page = await self.backend.trace_logs(scope.tenant, tid, limit, request.cursor or None)
            return pb.GetTraceLogsResponse(
                trace_id=tid, logs=_log_messages(page), next_cursor=page.next_cursor or ""
            )

    async def SearchLogs(self, request: pb.SearchLogsRequest, context: Context) -> pb.SearchLogsResponse:
        async with _errors(context, self.backend):
            scope = read_scope(
                self.backend, context, request, request.start_time_unix_nano, request.end_time_unix_nano
            )
            query = LogQuery(
                start_ns=scope.start_ns,
                end_ns=scope.end_ns,
                service=request.service or None,
                severity_min=parse_severity(request.severity_min),
                text=request.text or None,
                trace_id=normalize_trace_id(request.trace_id) if request.trace_id else None,
                limit=self.backend.page_size(request.limit or None, 100),
                cursor=request.cursor or None,
            )
            page = await self.backend.search_logs(scope.tenant, query)
            return pb.SearchLogsResponse(logs=_log_messages(page), next_cursor=page.next_cursor or "")

    async def GetMetricSeries(
        self, request: pb.GetMetricSeriesRequest, context: Context
    ) -> pb.GetMetricSeriesResponse:
        async with _errors(context, self.backend):
            scope = read_scope(
                self.backend, context, request, request.start_time_unix_nano, request.end_time_unix_nano
            )
            step = repr(request.step_seconds) if request.step_seconds else None
            query = MetricSeriesQuery(
                name=request.name,
                start_ns=scope.start_ns,
                end_ns=scope.end_ns,
                step_ns=parse_step(step, scope.start_ns, scope.end_ns, "step_seconds"),
                agg=request.agg.strip().lower() or None,
                kind=request.kind or None,
                group_by=tuple(key.strip() for key in request.group_by),
                service=request.service or None,
                attributes=tuple(sorted(request.attributes.items())),
            )
            result = await self.backend.metric_series(scope.tenant, query)
            response = pb.GetMetricSeriesResponse(
                name=result.name,
                kind=result.kind or "",
                unit=result.unit,
                agg=result.agg,
                step_seconds=result.step_ns / 1e9,
                group_by=result.group_by,
            )
            for series in result.series:
                out = response.series.add()
                out.labels.update(dict(series.labels))
                for point in series.points:
                    out.points.add(time_unix_nano=point.time_ns, value=point.value)
            return response

    async def ListMetricNames(
        self, request: pb.ListMetricNamesRequest, context: Context
    ) -> pb.ListMetricNamesResponse:
        async with _errors(context, self.backend):
            scope = read_scope(
                self.backend, context, request, request.start_time_unix_nano, request.end_time_unix_nano
            )
            response = pb.ListMetricNamesResponse()
            for info in await self.backend.metric_names(scope, request.service or None):
                response.metrics.add(
                    name=info.name,
                    kind=info.kind,
                    unit=info.unit,
                    description=info.description,
                    points=info.points,
                    monotonic=info.monotonic,
                    temporality=info.temporality or "",
                )
            return response

    # --- alerting (alerts_grpc) ------------------------------------------------------------------------

    async def ListAlerts(self, request: pb.ListAlertsRequest, context: Context) -> pb.ListAlertsResponse:
        async with _errors(context, self.backend):
            return await alerts_grpc.list_alerts(self.backend, principal_of(self.backend, context), request)

    async def ListAlertRules(
        self, request: pb.ListAlertRulesRequest, context: Context
    ) -> pb.ListAlertRulesResponse:
        async with _errors(context, self.backend):
            return await alerts_grpc.list_rules(self.backend, principal_of(self.backend, context), request)

    async def TestAlertRule(
        self, request: pb.TestAlertRuleRequest, context: Context
    ) -> pb.TestAlertRuleResponse:
        async with _errors(context, self.backend):
            return await alerts_grpc.test_rule(self.backend, principal_of(self.backend, context), request)

    async def ListIncidents(
        self, request: pb.ListIncidentsRequest, context: Context
    ) -> pb.ListIncidentsResponse:
        async with _errors(context, self.backend):
            return await alerts_grpc.list_incidents(
                self.backend, principal_of(self.backend, context), request
            )

    async def ListSilences(
        self, request: pb.ListSilencesRequest, context: Context
    ) -> pb.ListSilencesResponse:
        async with _errors(context, self.backend):
            return await alerts_grpc.list_silences(self.backend, principal_of(self.backend, context), request)

    async def CreateSilence(self, request: pb.CreateSilenceRequest, context: Context) -> pb.Silence:
        async with _errors(context, self.backend):
            return await alerts_grpc.create(self.backend, principal_of(self.backend, context), request)

    async def ExpireSilence(self, request: pb.ExpireSilenceRequest, context: Context) -> pb.Silence:
        async with _errors(context, self.backend):
            return await alerts_grpc.expire(self.backend, principal_of(self.backend, context), request)

    # --- insights (insights.grpc_handlers) ----------------------------------------------------------------

    async def ForecastSpend(
        self, request: pb.ForecastSpendRequest, context: Context
    ) -> pb.ForecastSpendResponse:
        async with _errors(context, self.backend):
            scope = read_scope(self.backend, context, request)
            return await insights_grpc.forecast_spend(self.backend, scope, request)

    async def GetCostAdvice(self, request: pb.CostAdviceRequest, context: Context) -> pb.CostAdviceResponse:
        async with _errors(context, self.backend):
            scope = read_scope(
                self.backend, context, request, request.start_time_unix_nano, request.end_time_unix_nano
            )
            return await insights_grpc.cost_advice(self.backend, scope, request)

    async def GetPromptClusters(
        self, request: pb.PromptClustersRequest, context: Context
    ) -> pb.PromptClustersResponse:
        async with _errors(context, self.backend):
            scope = read_scope(
                self.backend, context, request, request.start_time_unix_nano, request.end_time_unix_nano
            )
            return await insights_grpc.prompt_clusters(self.backend, scope, request)

    async def ListPromptVersions(
        self, request: pb.PromptVersionsRequest, context: Context
    ) -> pb.PromptVersionsResponse:
        async with _errors(context, self.backend):
            scope = read_scope(
                self.backend, context, request, request.start_time_unix_nano, request.end_time_unix_nano
            )
            spans = _span_filter(request.filter)
            return await insights_grpc.prompt_versions(self.backend, scope, spans, request)

    async def ComparePromptVersions(
        self, request: pb.ComparePromptVersionsRequest, context: Context
    ) -> pb.ComparePromptVersionsResponse:
        async with _errors(context, self.backend):
            scope = read_scope(
                self.backend, context, request, request.start_time_unix_nano, request.end_time_unix_nano
            )
            spans = _span_filter(request.filter)
            return await insights_grpc.compare_prompt_versions(self.backend, scope, spans, request)

    async def ReplayTrace(self, request: pb.ReplayTraceRequest, context: Context) -> pb.ReplayTraceResponse:
        async with _errors(context, self.backend):
            return await insights_grpc.replay_trace(
                self.backend, read_scope(self.backend, context, request), request
            )


# A replay that cannot start, by its REST status.
_REPLAY_CODES = {
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    501: grpc.StatusCode.UNIMPLEMENTED,
}


class _errors:
    """Maps the package's exceptions to gRPC status codes (as ``context.abort``), counting each."""

    def __init__(self, context: Context, backend: QueryBackend) -> None:
        self.context = context
        self.backend = backend

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        # Returns None, never true: an exception is turned into an abort (which raises), never swallowed.
        if exc is None or isinstance(exc, grpc.aio.AbortError) or not isinstance(exc, Exception):
            return
        self.backend.count(f"grpc_error_{type(exc).__name__}")
        if isinstance(exc, AuthError):
            code = grpc.StatusCode.UNAUTHENTICATED if exc.status == 401 else grpc.StatusCode.PERMISSION_DENIED
            await self.context.abort(code, str(exc))
        if isinstance(exc, InvalidArgument):
            await self.context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if isinstance(exc, ReplayRefused):
            await self.context.abort(
                _REPLAY_CODES.get(exc.status, grpc.StatusCode.FAILED_PRECONDITION), str(exc)
            )
        if isinstance(exc, NotFound):
            await self.context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        if isinstance(exc, TooManyTails | TailEnded):
            await self.context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        if isinstance(exc, RetryableError):
            await self.context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        if isinstance(exc, PermanentError):
            logger.error("A query failed: %s", exc)
            await self.context.abort(
                grpc.StatusCode.INTERNAL, "the query failed; see the query service's log"
            )
        logger.error("Unexpected error in a gRPC call: %s", exc, exc_info=exc)
        await self.context.abort(grpc.StatusCode.INTERNAL, "internal error")


class _Malformed:
    """A request body that does not parse as the method's message."""

    def __init__(self, message_type: str, problem: str) -> None:
        self.message = f"the request is not a valid {message_type}: {problem}"


def _lenient(message: Any) -> Callable[[bytes], Any]:
    """A request parser that hands on what does not parse (to be refused as INVALID_ARGUMENT) rather than
    failing the call as a server error, as grpc does when a deserializer raises."""

    def parse(data: bytes) -> Any:
        try:
            return message.FromString(data)
        except DecodeError as exc:
            return _Malformed(message.DESCRIPTOR.full_name, str(exc))

    return parse


def _method_handlers(
    servicer: _Servicer, backend: QueryBackend
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """The service's handlers, as the generated registration makes them but with lenient parsers."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def refuse(request: _Malformed, context: Context) -> None:
        backend.count("grpc_error_malformed")
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)

    for method in pb.DESCRIPTOR.services_by_name["QueryService"].methods:
        parse = _lenient(getattr(pb, method.input_type.name))
        serialize = getattr(pb, method.output_type.name).SerializeToString
        behaviour = getattr(servicer, method.name)
        if method.server_streaming:

            async def stream(
                request: Any, context: Context, behaviour: Any = behaviour
            ) -> AsyncIterator[Any]:
                if isinstance(request, _Malformed):
                    await refuse(request, context)
                async for item in behaviour(request, context):
                    yield item

            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                stream, request_deserializer=parse, response_serializer=serialize
            )
        else:

            async def unary(request: Any, context: Context, behaviour: Any = behaviour) -> Any:
                if isinstance(request, _Malformed):
                    await refuse(request, context)
                return await behaviour(request, context)

            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=parse, response_serializer=serialize
            )
    return handlers


async def start_grpc_server(backend: QueryBackend, endpoint: str, key: str) -> tuple[grpc.aio.Server, int]:
    """A started gRPC server for ``backend`` on ``endpoint`` (port 0 picks one) and its port.

    ``key`` names the endpoint's config key in the ``ConfigError`` raised when it cannot listen.
    """
    from grpc_reflection.v1alpha import reflection

    server = grpc.aio.server()
    handlers = _method_handlers(_Servicer(backend), backend)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    reflection.enable_server_reflection((SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = grpc_listen(server, endpoint, key)
    await server.start()
    return server, port
