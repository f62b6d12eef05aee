"""The REST API of cost insights: ``GET /api/v1/insights/forecast`` (period-end spend with an interval and the
day a budget runs out) and ``GET /api/v1/insights/advice`` (what could have been saved over a window, with
the spans that prove it).

Both are confined to the caller's tenant exactly as the other reads (``organization_id`` / ``project_id``
parameters, API key or JWT), answer errors as ``{"error": {"code", "message"}}`` and take and give RFC 3339
times. Results are cached like every read (``query.cache_ttl_seconds``). Near-duplicate prompts are found
with the embedding model of the query service's vector settings (``query.vectors``), loaded on first use
and kept for the life of the process; with vectors disabled (or ``near=false``) that check is skipped and
the answer's ``notes`` say so.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from llm_observer.query.backend import QueryBackend, ReadScope
from llm_observer.query.deps import Backend, QueryPrincipal, Scope
from llm_observer.query.formats import parse_time, rfc3339
from llm_observer.query.insights.advice import (
    ADVICE_KINDS,
    Advice,
    AdviceItem,
    AdviceKind,
    AdviceSettings,
    Pricer,
    TextEmbedder,
    compute_advice,
)
from llm_observer.query.insights.forecast import (
    DEFAULT_HISTORY_DAYS,
    Period,
    SpendForecast,
    forecast_spend,
    period_bounds,
)
from llm_observer.storage.clickhouse.cost_reads import CostStore
from llm_observer.storage.clickhouse.queries import InvalidArgument

__all__ = [
    "AdviceDocument",
    "AdviceItemDocument",
    "ForecastDocument",
    "ForecastsDocument",
    "advice_document",
    "build_router",
    "forecast_document",
]


# --- documents -----------------------------------------------------------------------------------------


class ForecastDocument(BaseModel):
    """One group's forecast (``SpendForecast``)."""

    group: dict[str, str]
    spent_usd: float
    forecast_usd: float
    low_usd: float
    high_usd: float
    confidence: float
    method: str
    budget_usd: float | None
    budget_exhausted_on: str | None = Field(description="UTC date (YYYY-MM-DD) or null")
    daily_usd: list[float]
    expected_cumulative_usd: list[float]


class ForecastsDocument(BaseModel):
    period: str
    period_start: str
    period_end: str
    as_of: str
    forecasts: list[ForecastDocument]


class AdviceItemDocument(BaseModel):
    """One finding (``AdviceItem``)."""

    kind: str
    title: str
    organization_id: str
    project_id: str
    provider: str
    model: str
    saving_usd: float
    spend_usd: float
    calls: int
    groups: int
    span_ids: list[str]
    trace_ids: list[str]
    details: dict[str, Any]


class AdviceDocument(BaseModel):
    start_time: str
    end_time: str
    total_saving_usd: float
    items: list[AdviceItemDocument]
    notes: list[str]


def forecast_document(forecast: SpendForecast) -> ForecastDocument:
    exhausted = forecast.budget_exhausted_on
    return ForecastDocument(
        group=dict(forecast.group),
        spent_usd=forecast.spent_usd,
        forecast_usd=forecast.forecast_usd,
        low_usd=forecast.low_usd,
        high_usd=forecast.high_usd,
        confidence=forecast.confidence,
        method=forecast.method,
        budget_usd=forecast.budget_usd,
        budget_exhausted_on=exhausted.isoformat() if exhausted is not None else None,
        daily_usd=list(forecast.daily_usd),
        expected_cumulative_usd=list(forecast.expected_cumulative_usd),
    )


def advice_item_document(item: AdviceItem) -> AdviceItemDocument:
    return AdviceItemDocument(
        kind=item.kind,
        title=item.title,
        organization_id=item.organization_id,
        project_id=item.project_id,
        provider=item.provider,
        model=item.model,
        saving_usd=item.saving_usd,
        spend_usd=item.spend_usd,
        calls=item.calls,
        groups=item.groups,
        span_ids=list(item.span_ids),
        trace_ids=list(item.trace_ids),
        details=dict(item.details),
    )


def advice_document(advice: Advice) -> AdviceDocument:
    return AdviceDocument(
        start_time=rfc3339(advice.start_ns),
        end_time=rfc3339(advice.end_ns),
        total_saving_usd=advice.total_saving_usd,
        items=[advice_item_document(item) for item in advice.items],
        notes=list(advice.notes),
    )


_MINUTE_NS = 60 * 10**9

# --- what the routes share ---------------------------------------------------------------------------

_embedders: dict[tuple[str, str], TextEmbedder] = {}
_embedders_lock = threading.Lock()


def _embedder(backend: QueryBackend) -> TextEmbedder | None:
    """The embedding model of the query's vector settings (the one semantic search uses), loaded once per
    process; None when vectors are disabled."""
    settings = backend.vectors
    if settings is None:
        return None
    from llm_observer.storage.vectors.embed import shared_embedder

    models = backend.data_dir / "models"
    key = (settings.model, str(models))
    with _embedders_lock:
        found = _embedders.get(key)
        if found is None:
            found = shared_embedder(settings.model, models, threads=settings.threads)
            _embedders[key] = found
        return found


def advice_kinds(values: list[str] | None) -> tuple[AdviceKind, ...]:
    """The finding kinds asked for (repeatable or comma-separated names); all when none."""
    chosen: list[AdviceKind] = []
    for value in values or []:
        for part in value.split(","):
            name = part.strip()
            kind = next((k for k in ADVICE_KINDS if k == name), None)
            if kind is None:
                raise InvalidArgument(f"kind must be among {', '.join(ADVICE_KINDS)}, got {name!r}")
            chosen.append(kind)
    return tuple(chosen) or ADVICE_KINDS


def _dimensions(values: list[str] | None) -> tuple[str, ...]:
    return tuple(part.strip() for value in values or [] for part in value.split(",") if part.strip())


async def forecast_answer(
    backend: QueryBackend,
    scope: ReadScope,
    *,
    period: str = "month",
    group_by: tuple[str, ...] = (),
    budget_usd: float | None = None,
    confidence: float = 0.9,
    history_days: int = DEFAULT_HISTORY_DAYS,
    as_of_ns: int | None = None,
) -> ForecastsDocument:
    """The forecasts REST and gRPC answer (``as_of_ns`` None: now, to the minute, so the cache can answer)."""
    now = as_of_ns or backend.clock() // _MINUTE_NS * _MINUTE_NS
    if period not in ("month", "week"):
        raise InvalidArgument("period must be month or week")
    chosen: Period = "month" if period == "month" else "week"
    store = CostStore.of(backend.store)
    key = ("insights.forecast", scope.tenant, now, chosen, group_by, budget_usd, confidence, history_days)

    async def compute() -> list[SpendForecast]:
        return await asyncio.to_thread(
            forecast_spend,
            store,
            scope.tenant,
            now,
            period=chosen,
            group_by=group_by,
            budget_usd=budget_usd,
            confidence=confidence,
            history_days=history_days,
        )

    forecasts = await backend.cache.get_or_compute(key, compute)
    start, end = period_bounds(now, chosen)
    return ForecastsDocument(
        period=chosen,
        period_start=rfc3339(start),
        period_end=rfc3339(end),
        as_of=rfc3339(now),
        forecasts=[forecast_document(f) for f in forecasts],
    )


async def advice_answer(
    backend: QueryBackend,
    scope: ReadScope,
    *,
    kinds: tuple[AdviceKind, ...] = ADVICE_KINDS,
    near: bool = True,
    settings: AdviceSettings | None = None,
) -> AdviceDocument:
    """The advice REST and gRPC answer over the scope's window."""
    settings = settings or AdviceSettings()
    settings.check()
    store = CostStore.of(backend.store)
    want_near = near and "response_cache_near" in kinds
    key = ("insights.advice", scope.tenant, scope.start_ns, scope.end_ns, kinds, want_near, settings)

    async def compute() -> Advice:
        embedder = await asyncio.to_thread(_embedder, backend) if want_near else None
        chosen = kinds if near else tuple(k for k in kinds if k != "response_cache_near")
        return await asyncio.to_thread(
            compute_advice,
            store,
            scope.tenant,
            scope.start_ns,
            scope.end_ns,
            pricer=Pricer(),
            embedder=embedder,
            settings=settings,
            kinds=chosen,
        )

    return advice_document(await backend.cache.get_or_compute(key, compute))


def build_router() -> APIRouter:
    router = APIRouter(tags=["insights"])

    @router.get("/api/v1/insights/forecast")
    async def forecast(
        principal: QueryPrincipal,
        backend: Backend,
        organization_id: str | None = None,
        project_id: str | None = None,
        period: Annotated[str, Query(description="month (UTC calendar month) or week (ISO week)")] = "month",
        group_by: Annotated[
            list[str] | None,
            Query(description="project, team, model, provider (repeatable or comma-separated)"),
        ] = None,
        budget_usd: Annotated[
            float | None, Query(description="the budget of each group for the period")
        ] = None,
        confidence: Annotated[float, Query(description="of the interval, 0.5 to 0.99")] = 0.9,
        history_days: Annotated[
            int, Query(description="days before the period the model also learns from")
        ] = DEFAULT_HISTORY_DAYS,
        as_of: Annotated[str | None, Query(description="RFC 3339; default now")] = None,
    ) -> ForecastsDocument:
        """The expected spend of the current period per group, with a prediction interval and the day the
        budget runs out."""
        scope = backend.scope(principal, organization_id, project_id)
        return await forecast_answer(
            backend,
            scope,
            period=period,
            group_by=_dimensions(group_by),
            budget_usd=budget_usd,
            confidence=confidence,
            history_days=history_days,
            as_of_ns=parse_time(as_of, "as_of"),
        )

    @router.get("/api/v1/insights/advice")
    async def advice(
        scope: Scope,
        backend: Backend,
        kind: Annotated[
            list[str] | None,
            Query(description=f"only these findings (repeatable): {', '.join(ADVICE_KINDS)}"),
        ] = None,
        near: Annotated[bool, Query(description="look for near-duplicate prompts (embeds prompts)")] = True,
        near_threshold: Annotated[float, Query(description="cosine similarity of a near duplicate")] = 0.95,
        min_prefix_tokens: Annotated[int, Query(description="the shortest prefix worth caching")] = 1024,
        examples: Annotated[int, Query(description="example spans per finding")] = 5,
    ) -> AdviceDocument:
        """What the calls of the window could have cost less, largest saving first: response caching (exact
        and near duplicates), provider prompt caching, a cheaper model already serving the same prompts,
        and waste (retries, truncations, outputs never used)."""
        settings = AdviceSettings(
            near_threshold=near_threshold, min_prefix_tokens=min_prefix_tokens, examples=examples
        )
        return await advice_answer(backend, scope, kinds=advice_kinds(kind), near=near, settings=settings)

    return router
