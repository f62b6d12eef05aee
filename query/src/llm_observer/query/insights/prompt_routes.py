"""The REST API of prompt insights: ``GET /api/v1/insights/prompt-clusters``,
``GET /api/v1/insights/prompt-versions`` and ``GET /api/v1/insights/prompt-versions/compare?a=…&b=…``.

Tenant-scoped as every read (``organization_id`` / ``project_id``, API keys or JWT); the window is
``start_time`` / ``end_time`` in RFC 3339 (default: the last ``query.default_lookback_hours``). Clusters
are per project: ``project_id``, else the key's only project, else ``default``; they need the vector store
(503 ``unavailable`` when semantic search is off). The computations run in a worker thread and their
results go through the query service's result cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query
from pydantic import BaseModel

from llm_observer.query.backend import NotFound, QueryBackend, ReadScope
from llm_observer.query.deps import Backend, Scope, Spans
from llm_observer.query.formats import rfc3339
from llm_observer.query.insights.clusters import (
    DEFAULT_MAX_PROMPTS,
    MAX_PROMPTS,
    PromptCluster,
    PromptClusterReport,
    cluster_report,
    cluster_vectors,
    prompt_points_of,
)
from llm_observer.query.insights.versions import (
    PromptVersion,
    PromptVersionReport,
    VersionComparison,
    compare_versions,
    prompt_versions,
)
from llm_observer.semconv import attributes as attrs
from llm_observer.storage.clickhouse.prompt_reads import MAX_CALLS, PromptCalls, PromptStore
from llm_observer.storage.clickhouse.queries import InvalidArgument, SpanFilter, Tenant

T = TypeVar("T")

# --- response models ----------------------------------------------------------------------------------


class Latency(BaseModel):
    p50: float
    p95: float


class Example(BaseModel):
    trace_id: str
    span_id: str


class PromptVersionDocument(BaseModel):
    id: str
    source: str
    name: str
    version: str
    fingerprint: str
    template: str
    first_seen: str
    last_seen: str
    calls: int
    errors: int
    error_rate: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cost_per_call_usd: float
    latency_ms: Latency
    models: list[str]
    example: Example


class PromptVersionsDocument(BaseModel):
    start_time: str
    end_time: str
    total_calls: int
    identified_calls: int
    unidentified_calls: int
    truncated: bool
    versions: list[PromptVersionDocument]


class VersionDelta(BaseModel):
    calls: int
    error_rate: float
    latency_p50_ms: float
    latency_p95_ms: float
    cost_per_call_usd: float
    input_tokens_per_call: float
    output_tokens_per_call: float


class ErrorRateTest(BaseModel):
    method: str = "fisher_exact"
    p_value: float | None


class LatencyTest(BaseModel):
    method: str = "mann_whitney_u"
    u: float | None
    p_value: float | None
    probability_b_slower: float | None


class VersionComparisonDocument(BaseModel):
    start_time: str
    end_time: str
    a: PromptVersionDocument
    b: PromptVersionDocument
    delta: VersionDelta
    error_rate_test: ErrorRateTest
    latency_test: LatencyTest


class Term(BaseModel):
    term: str
    score: float


class DayShareDocument(BaseModel):
    day: str
    prompts: int
    share: float


class PromptClusterDocument(BaseModel):
    id: int
    label: str
    terms: list[Term]
    prompts: int
    share: float
    calls: int
    errors: int
    error_rate: float
    cost_usd: float
    input_tokens: int
    output_tokens: int
    latency_ms: Latency
    models: list[str]
    examples: list[str]
    first_half_share: float
    second_half_share: float
    share_change: float
    daily: list[DayShareDocument]


class SilhouetteScore(BaseModel):
    k: int
    silhouette: float


class Drift(BaseModel):
    js_divergence: float | None
    first_half_prompts: int
    second_half_prompts: int


class PromptClustersDocument(BaseModel):
    project_id: str
    start_time: str
    end_time: str
    method: str = "spherical_kmeans"
    k: int
    k_chosen_by: str
    silhouette: float | None
    silhouette_by_k: list[SilhouetteScore]
    prompts: int
    matched_calls: int
    truncated: bool
    drift: Drift
    days: list[str]
    clusters: list[PromptClusterDocument]


# --- documents ------------------------------------------------------------------------------------------


def version_document(version: PromptVersion) -> PromptVersionDocument:
    return PromptVersionDocument(
        id=version.id,
        source=version.source,
        name=version.name,
        version=version.version,
        fingerprint=version.fingerprint,
        template=version.template,
        first_seen=rfc3339(version.first_seen_ns),
        last_seen=rfc3339(version.last_seen_ns),
        calls=version.calls,
        errors=version.errors,
        error_rate=version.error_rate,
        input_tokens=version.input_tokens,
        output_tokens=version.output_tokens,
        cost_usd=version.cost_usd,
        cost_per_call_usd=version.cost_per_call_usd,
        latency_ms=Latency(p50=version.latency_p50_ms, p95=version.latency_p95_ms),
        models=list(version.models),
        example=Example(trace_id=version.example_trace_id, span_id=version.example_span_id),
    )


def versions_document(report: PromptVersionReport) -> PromptVersionsDocument:
    return PromptVersionsDocument(
        start_time=rfc3339(report.start_ns),
        end_time=rfc3339(report.end_ns),
        total_calls=report.total_calls,
        identified_calls=report.identified_calls,
        unidentified_calls=report.unidentified_calls,
        truncated=report.truncated,
        versions=[version_document(v) for v in report.versions],
    )


def comparison_document(
    comparison: VersionComparison, start_ns: int, end_ns: int
) -> VersionComparisonDocument:
    return VersionComparisonDocument(
        start_time=rfc3339(start_ns),
        end_time=rfc3339(end_ns),
        a=version_document(comparison.a),
        b=version_document(comparison.b),
        delta=VersionDelta(
            calls=comparison.b.calls - comparison.a.calls,
            error_rate=comparison.error_rate_delta,
            latency_p50_ms=comparison.latency_p50_delta_ms,
            latency_p95_ms=comparison.latency_p95_delta_ms,
            cost_per_call_usd=comparison.cost_per_call_delta_usd,
            input_tokens_per_call=comparison.input_tokens_per_call_delta,
            output_tokens_per_call=comparison.output_tokens_per_call_delta,
        ),
        error_rate_test=ErrorRateTest(p_value=comparison.error_rate_p_value),
        latency_test=LatencyTest(
            u=comparison.latency_u,
            p_value=comparison.latency_p_value,
            probability_b_slower=comparison.probability_b_slower,
        ),
    )


def cluster_document(cluster: PromptCluster) -> PromptClusterDocument:
    return PromptClusterDocument(
        id=cluster.id,
        label=cluster.label,
        terms=[Term(term=term, score=score) for term, score in cluster.terms],
        prompts=cluster.prompts,
        share=cluster.share,
        calls=cluster.calls,
        errors=cluster.errors,
        error_rate=cluster.error_rate,
        cost_usd=cluster.cost_usd,
        input_tokens=cluster.input_tokens,
        output_tokens=cluster.output_tokens,
        latency_ms=Latency(p50=cluster.latency_p50_ms, p95=cluster.latency_p95_ms),
        models=list(cluster.models),
        examples=list(cluster.examples),
        first_half_share=cluster.first_half_share,
        second_half_share=cluster.second_half_share,
        share_change=cluster.second_half_share - cluster.first_half_share,
        daily=[
            DayShareDocument(day=rfc3339(d.day_ns), prompts=d.prompts, share=d.share) for d in cluster.daily
        ],
    )


def clusters_document(report: PromptClusterReport) -> PromptClustersDocument:
    return PromptClustersDocument(
        project_id=report.project_id,
        start_time=rfc3339(report.start_ns),
        end_time=rfc3339(report.end_ns),
        k=report.k,
        k_chosen_by=report.k_chosen_by,
        silhouette=report.silhouette,
        silhouette_by_k=[SilhouetteScore(k=k, silhouette=s) for k, s in report.silhouette_by_k],
        prompts=report.prompts,
        matched_calls=report.matched_calls,
        truncated=report.truncated,
        drift=Drift(
            js_divergence=report.js_divergence,
            first_half_prompts=report.first_half_prompts,
            second_half_prompts=report.second_half_prompts,
        ),
        days=[rfc3339(day) for day in report.days],
        clusters=[cluster_document(c) for c in report.clusters],
    )


# --- what REST and gRPC share -------------------------------------------------------------------------


async def _cached(backend: QueryBackend, key: tuple[Any, ...], fn: Callable[[], T]) -> T:
    async def compute() -> T:
        return await asyncio.to_thread(fn)

    return await backend.cache.get_or_compute(key, compute)


def cluster_project(scope: ReadScope) -> str:
    """The one project a cluster request is about: the one named (or the key's only one), else default."""
    projects = scope.tenant.project_ids
    if projects is None:
        return attrs.DEFAULT_PROJECT
    if len(projects) == 1:
        return next(iter(projects))
    raise InvalidArgument("prompt clusters are per project: name one with project_id")


async def prompt_clusters(
    backend: QueryBackend,
    scope: ReadScope,
    *,
    k: int | None = None,
    k_min: int = 2,
    k_max: int = 12,
    max_prompts: int = DEFAULT_MAX_PROMPTS,
) -> PromptClusterReport:
    """The clusters of one project's prompts over the scope's window."""
    if k is not None and not 1 <= k <= 100:
        raise InvalidArgument("k must be between 1 and 100")
    if not 2 <= k_min <= k_max <= 100:
        raise InvalidArgument("k_min and k_max must satisfy 2 <= k_min <= k_max <= 100")
    if not 1 <= max_prompts <= MAX_PROMPTS:
        raise InvalidArgument(f"max_prompts must be between 1 and {MAX_PROMPTS}")
    project = cluster_project(scope)
    organization = scope.tenant.organization_id or attrs.DEFAULT_ORGANIZATION
    # The backend's shared vector search (store and collection as the config names them); it raises
    # Unavailable (503) when semantic search is off or the store cannot be opened.
    search = await backend.vector_search()
    start, end = scope.start_ns, scope.end_ns
    tenant = Tenant(organization_id=organization, project_ids=frozenset({project}))
    prompts = PromptStore.beside(backend.store)

    def compute() -> PromptClusterReport:
        points = prompt_points_of(search, organization, project, start, end, max_prompts)
        calls = prompts.calls(tenant, start, end)
        clustering = cluster_vectors(points.vectors, k, k_min=k_min, k_max=k_max)
        return cluster_report(points, calls, clustering, project, start, end)

    key = ("prompt-clusters", organization, project, start, end, k, k_min, k_max, max_prompts)
    return await _cached(backend, key, compute)


async def version_calls(
    backend: QueryBackend, scope: ReadScope, spans: SpanFilter, max_calls: int = 200_000
) -> PromptCalls:
    """The model calls of the scope with the prompt identity and text versions are recovered from."""
    if not 1 <= max_calls <= MAX_CALLS:
        raise InvalidArgument(f"max_calls must be between 1 and {MAX_CALLS}")
    prompts = PromptStore.beside(backend.store)
    tenant, start, end = scope.tenant, scope.start_ns, scope.end_ns
    return await _cached(
        backend,
        ("prompt-calls", tenant, start, end, spans, max_calls),
        lambda: prompts.calls(tenant, start, end, spans, with_text=True, limit=max_calls),
    )


async def prompt_version_report(
    backend: QueryBackend, scope: ReadScope, spans: SpanFilter, *, min_calls: int = 1, limit: int = 100
) -> PromptVersionReport:
    """Every prompt version of the scope's window, most calls first."""
    if not 1 <= limit <= 1000:
        raise InvalidArgument("limit must be between 1 and 1000")
    calls = await version_calls(backend, scope, spans)
    return await asyncio.to_thread(
        prompt_versions, calls, scope.start_ns, scope.end_ns, min_calls=min_calls, limit=limit
    )


async def prompt_version_comparison(
    backend: QueryBackend, scope: ReadScope, spans: SpanFilter, a: str, b: str
) -> VersionComparison:
    """Version ``b`` against version ``a``; ``NotFound`` naming an id no call of the window used."""
    if not a or not b:
        raise InvalidArgument("give the two version ids to compare as a and b")
    calls = await version_calls(backend, scope, spans)
    try:
        return await asyncio.to_thread(compare_versions, calls, a, b)
    except KeyError as exc:
        raise NotFound(f"no call in the window used prompt version {exc.args[0]!r}") from exc


# --- the router ---------------------------------------------------------------------------------------


def build_router() -> APIRouter:
    router = APIRouter(tags=["insights"])

    @router.get("/api/v1/insights/prompt-clusters")
    async def get_prompt_clusters(
        scope: Scope,
        backend: Backend,
        k: Annotated[
            int | None, Query(description="number of clusters; default: chosen by silhouette")
        ] = None,
        k_min: Annotated[int, Query(description="smallest k tried when k is not given")] = 2,
        k_max: Annotated[int, Query(description="largest k tried when k is not given")] = 12,
        max_prompts: Annotated[
            int, Query(description="prompts clustered at most (a sample beyond)")
        ] = DEFAULT_MAX_PROMPTS,
    ) -> PromptClustersDocument:
        """A project's prompts clustered by meaning: each cluster's label (its most distinctive terms),
        volume, cost, latency and error rate, its share per day, and the drift of the mix between the
        window's halves."""
        report = await prompt_clusters(backend, scope, k=k, k_min=k_min, k_max=k_max, max_prompts=max_prompts)
        return clusters_document(report)

    @router.get("/api/v1/insights/prompt-versions")
    async def get_prompt_versions(
        scope: Scope,
        backend: Backend,
        spans: Spans,
        min_calls: Annotated[int, Query(description="only versions with at least this many calls")] = 1,
        limit: Annotated[int, Query(description="versions returned at most (most calls first)")] = 100,
    ) -> PromptVersionsDocument:
        """Prompt versions (by name and version attributes, else by template fingerprint) with first and
        last seen, traffic, tokens, cost, latency and error rate."""
        report = await prompt_version_report(backend, scope, spans, min_calls=min_calls, limit=limit)
        return versions_document(report)

    @router.get("/api/v1/insights/prompt-versions/compare")
    async def get_prompt_version_comparison(
        scope: Scope,
        backend: Backend,
        spans: Spans,
        a: Annotated[str, Query(description="the baseline version id (as prompt-versions lists it)")],
        b: Annotated[str, Query(description="the version compared with it")],
    ) -> VersionComparisonDocument:
        """Two prompt versions side by side: the differences (b - a) and whether the error-rate and
        latency differences are significant."""
        comparison = await prompt_version_comparison(backend, scope, spans, a, b)
        return comparison_document(comparison, scope.start_ns, scope.end_ns)

    return router
