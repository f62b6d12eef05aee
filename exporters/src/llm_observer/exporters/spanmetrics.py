"""The ``spanmetrics`` connector: GenAI client metrics derived from spans, for the metrics pipelines that
name it (the ``prometheus`` exporter exposes them).

Metrics follow the GenAI conventions' names and bucket boundaries: ``gen_ai_client_token_usage``
(label ``gen_ai_token_type``), ``gen_ai_client_operation_duration_seconds`` and ``llm_observer_cost_usd_total``,
labelled by provider, model, operation, organization and project — never by user or trace. Label sets are
capped per organization (``max_series_per_organization``) and overall (``max_series``): past either cap an
organization's new combinations fold into its own ``_other`` series (every label ``_other`` but
``organization``), so one tenant's cardinality never folds another's series. Those per-organization
``_other`` series are capped by ``max_series`` too, past which they fold into the all-``_other`` series: at
most ``2 * max_series + 1`` label sets in all. Observations are aggregated per batch in plain Python: one dict
lookup and one bisect per span.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from pydantic import Field

from llm_observer.kernel.batch import STATUS_ERROR, SpanBatch
from llm_observer.kernel.component import ComponentConfig, Connector, CreateContext, Factory, MetricsSource
from llm_observer.semconv import attributes as A

TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1, 4, 16, … 67108864
DURATION_BUCKETS = tuple(0.01 * 2**i for i in range(14))  # 0.01, 0.02, … 81.92
LABELS = ("gen_ai_provider_name", "gen_ai_request_model", "gen_ai_operation_name", "organization", "project")
OTHER = "_other"
_ORGANIZATION = LABELS.index("organization")
_ALL_OTHER = (OTHER,) * len(LABELS)


class SpanMetricsConfig(ComponentConfig):
    max_series: int = Field(5000, gt=0, description="label combinations kept before folding into _other")
    max_series_per_organization: int = Field(
        1000, gt=0, description="label combinations one organization may add before its own fold into _other"
    )


class _Histogram:
    __slots__ = ("buckets", "count", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * (size + 1)  # the last one is +Inf
        self.count = 0
        self.total = 0.0


class GenAIMetrics:
    """Aggregates GenAI metrics from span batches; a prometheus_client custom collector."""

    def __init__(self, max_series: int, max_series_per_organization: int | None = None) -> None:
        self.max_series = max_series
        self.max_series_per_organization = min(max_series_per_organization or max_series, max_series)
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, ...], _Histogram] = {}
        self._durations: dict[tuple[str, ...], _Histogram] = {}
        self._cost: dict[tuple[str, ...], float] = {}
        self._series: set[tuple[str, ...]] = set()
        self._per_organization: dict[str, int] = {}
        self._folded: set[tuple[str, ...]] = set()  # the per-organization _other series

    def _key(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        if labels in self._series:
            return labels
        organization = labels[_ORGANIZATION]
        count = self._per_organization.get(organization, 0)
        if count < self.max_series_per_organization and len(self._series) < self.max_series:
            self._series.add(labels)
            self._per_organization[organization] = count + 1
            return labels
        folded = (*_ALL_OTHER[:_ORGANIZATION], organization, *_ALL_OTHER[_ORGANIZATION + 1 :])
        if folded in self._folded or len(self._folded) < self.max_series:
            self._folded.add(folded)
            return folded
        return _ALL_OTHER

    def observe(self, batch: SpanBatch) -> None:
        with self._lock:
            for row, attrs in enumerate(batch.attributes):
                operation = attrs.get(A.GEN_AI_OPERATION_NAME)
                if operation is None:
                    continue
                resource = batch.resource[row]
                labels = self._key(
                    (
                        str(attrs.get(A.GEN_AI_PROVIDER_NAME, "")),
                        str(attrs.get(A.GEN_AI_REQUEST_MODEL) or attrs.get(A.GEN_AI_RESPONSE_MODEL) or ""),
                        str(operation),
                        str(
                            attrs.get(A.ORGANIZATION_ID)
                            or resource.get(A.ORGANIZATION_ID)
                            or A.DEFAULT_ORGANIZATION
                        ),
                        str(attrs.get(A.PROJECT_ID) or resource.get(A.PROJECT_ID) or A.DEFAULT_PROJECT),
                    )
                )
                for token_type, key in (
                    ("input", A.GEN_AI_USAGE_INPUT_TOKENS),
                    ("output", A.GEN_AI_USAGE_OUTPUT_TOKENS),
                ):
                    value = attrs.get(key)
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        self._add(self._tokens, (*labels, token_type), TOKEN_BUCKETS, float(value))
                error_type = str(attrs.get(A.ERROR_TYPE, "")) or (
                    A.ERROR_TYPE_OTHER if batch.status_code[row] == STATUS_ERROR else ""
                )
                seconds = max(0, batch.end_time_unix_nano[row] - batch.start_time_unix_nano[row]) / 1e9
                self._add(self._durations, (*labels, error_type), DURATION_BUCKETS, seconds)
                cost = attrs.get(A.COST_USD)
                if isinstance(cost, int | float) and not isinstance(cost, bool):
                    self._cost[labels] = self._cost.get(labels, 0.0) + float(cost)

    @staticmethod
    def _add(
        table: dict[tuple[str, ...], _Histogram],
        key: tuple[str, ...],
        bounds: tuple[float, ...],
        value: float,
    ) -> None:
        hist = table.get(key)
        if hist is None:
            hist = table[key] = _Histogram(len(bounds))
        hist.buckets[bisect.bisect_left(bounds, value)] += 1
        hist.count += 1
        hist.total += value

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            yield self._family(
                "gen_ai_client_token_usage",
                "Number of input and output tokens used.",
                [*LABELS, "gen_ai_token_type"],
                self._tokens,
                TOKEN_BUCKETS,
            )
            yield self._family(
                "gen_ai_client_operation_duration_seconds",
                "GenAI operation duration.",
                [*LABELS, "error_type"],
                self._durations,
                DURATION_BUCKETS,
            )
            cost = CounterMetricFamily(
                "llm_observer_cost_usd", "Cost of GenAI operations in USD.", labels=list(LABELS)
            )
            for labels, value in self._cost.items():
                cost.add_metric(list(labels), value)
            yield cost

    @staticmethod
    def _family(
        name: str,
        doc: str,
        labels: list[str],
        table: dict[tuple[str, ...], _Histogram],
        bounds: tuple[float, ...],
    ) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, doc, labels=labels)
        for key, hist in table.items():
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip((*[repr(b) for b in bounds], "+Inf"), hist.buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric(list(key), buckets, hist.total)
        return family


class SpanMetrics:
    """A connector: ``send`` folds a batch into the GenAI metrics; ``metrics`` is what they expose."""

    def __init__(self, config: SpanMetricsConfig) -> None:
        self.aggregate = GenAIMetrics(config.max_series, config.max_series_per_organization)

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def send(self, batch: SpanBatch) -> None:
        # Off the event loop, which answers OTLP clients: a large batch is milliseconds of Python.
        await asyncio.to_thread(self.aggregate.observe, batch)

    def metrics(self) -> MetricsSource:
        return self.aggregate


def _create(ctx: CreateContext, config: SpanMetricsConfig) -> Connector:
    return SpanMetrics(config)


factory = Factory("spanmetrics", SpanMetricsConfig, _create)
