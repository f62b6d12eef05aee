"""The insight RPCs of ``llm_observer.query.v1.QueryService`` (ForecastSpend, GetCostAdvice,
GetPromptClusters, ListPromptVersions, ComparePromptVersions, ReplayTrace): each a function of the backend,
the caller's scope and the request message, giving the response message.

They compute exactly what the REST routes do (the same functions of ``cost_routes``, ``prompt_routes`` and
``replay_routes``), and the answer messages mirror the REST documents field for field, so a document is
turned into its message by name (``json_format.ParseDict``): a field added to one and not the other fails
loudly in the tests instead of going missing.
"""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from pydantic import BaseModel

from llm_observer.query.backend import QueryBackend, ReadScope
from llm_observer.query.insights import cost_routes, prompt_routes, replay_routes
from llm_observer.query.insights.advice import AdviceSettings
from llm_observer.query.insights.clusters import DEFAULT_MAX_PROMPTS
from llm_observer.query.insights.forecast import DEFAULT_HISTORY_DAYS
from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
from llm_observer.storage.clickhouse.queries import SpanFilter

M = TypeVar("M", bound=Message)


def _message(document: BaseModel, message: M) -> M:
    """The message of a REST document (same field names; None leaves a field unset)."""
    json_format.ParseDict(document.model_dump(mode="json"), message)
    return message


async def forecast_spend(
    backend: QueryBackend, scope: ReadScope, request: pb.ForecastSpendRequest
) -> pb.ForecastSpendResponse:
    answer = await cost_routes.forecast_answer(
        backend,
        scope,
        period=request.period or "month",
        group_by=tuple(
            part.strip() for value in request.group_by for part in value.split(",") if part.strip()
        ),
        budget_usd=request.budget_usd if request.HasField("budget_usd") else None,
        confidence=request.confidence or 0.9,
        history_days=request.history_days if request.HasField("history_days") else DEFAULT_HISTORY_DAYS,
        as_of_ns=request.as_of_unix_nano or None,
    )
    return _message(answer, pb.ForecastSpendResponse())


async def cost_advice(
    backend: QueryBackend, scope: ReadScope, request: pb.CostAdviceRequest
) -> pb.CostAdviceResponse:
    defaults = AdviceSettings()
    settings = AdviceSettings(
        near_threshold=request.near_threshold or defaults.near_threshold,
        min_prefix_tokens=request.min_prefix_tokens or defaults.min_prefix_tokens,
        examples=request.examples or defaults.examples,
    )
    answer = await cost_routes.advice_answer(
        backend,
        scope,
        kinds=cost_routes.advice_kinds(list(request.kinds)),
        near=not request.skip_near_duplicates,
        settings=settings,
    )
    return _message(answer, pb.CostAdviceResponse())


async def prompt_clusters(
    backend: QueryBackend, scope: ReadScope, request: pb.PromptClustersRequest
) -> pb.PromptClustersResponse:
    report = await prompt_routes.prompt_clusters(
        backend,
        scope,
        k=request.k or None,
        k_min=request.k_min or 2,
        k_max=request.k_max or 12,
        max_prompts=request.max_prompts or DEFAULT_MAX_PROMPTS,
    )
    return _message(prompt_routes.clusters_document(report), pb.PromptClustersResponse())


async def prompt_versions(
    backend: QueryBackend, scope: ReadScope, spans: SpanFilter, request: pb.PromptVersionsRequest
) -> pb.PromptVersionsResponse:
    report = await prompt_routes.prompt_version_report(
        backend, scope, spans, min_calls=request.min_calls or 1, limit=request.limit or 100
    )
    return _message(prompt_routes.versions_document(report), pb.PromptVersionsResponse())


async def compare_prompt_versions(
    backend: QueryBackend, scope: ReadScope, spans: SpanFilter, request: pb.ComparePromptVersionsRequest
) -> pb.ComparePromptVersionsResponse:
    comparison = await prompt_routes.prompt_version_comparison(backend, scope, spans, request.a, request.b)
    document = prompt_routes.comparison_document(comparison, scope.start_ns, scope.end_ns)
    return _message(document, pb.ComparePromptVersionsResponse())


async def replay_trace(
    backend: QueryBackend, scope: ReadScope, request: pb.ReplayTraceRequest
) -> pb.ReplayTraceResponse:
    """Raises ``replay_routes.ReplayRefused`` (mapped to a status by the caller) when it cannot start."""
    optional: dict[str, Any] = {
        name: getattr(request, name) for name in ("span_id", "model", "base_url") if request.HasField(name)
    }
    asked = replay_routes.ReplayRequest(
        **optional, base_urls=dict(request.base_urls), api_keys=dict(request.api_keys)
    )
    result = await replay_routes.run_replay(
        backend,
        scope,
        request.trace_id,
        asked,
        replay_routes.backend_otlp_endpoint(backend),
        replay_routes.env_otlp_headers(),
    )
    return _message(result, pb.ReplayTraceResponse())
