"""The ``spanmetrics`` connector: GenAI client metrics derived from spans, for the metrics pipelines that
name it (the ``prometheus`` exporter exposes them).

Metrics follow the GenAI conventions' names and bucket boundaries: ``gen_ai_client_token_usage``
(label ``gen_ai_token_type``), ``gen_ai_client_operation_duration_seconds`` and ``llm_observer_cost_usd_total``,
labelled by provider, model, operation, organization and project — never by user or trace. Label sets are
capped per organization (``max_series_per_organization``) and overall (``max_series``): past either cap an
organization's new combinations fold into its own ``_other`` series (every label ``_other`` but
``organization``), so one tenant's cardinality never folds another's series. Those per-organization
``_other`` series are capped by ``max_series`` too, past which they fold into the all-``_other`` series: at
most ``2 * max_series + 1`` label sets in all. Observations are aggregated per batch in plain Python: a
batch's label sets are looked up once each, then one bisect per histogram a span counts in.
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


_NUMBER = (int, float)  # exactly: a bool is not a count


class _Histogram:
    __slots__ = ("buckets", "count", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * (size + 1)  # the last one is +Inf
        self.count = 0
        self.total = 0.0

    def add(self, bucket: int, value: float) -> None:
        self.buckets[bucket] += 1
        self.count += 1
        self.total += value


class _Series:
    """One label set's histograms within one batch: the token ones, and the durations by error type."""

    __slots__ = ("durations", "input", "labels", "output")

    def __init__(self, labels: tuple[str, ...]) -> None:
        self.labels = labels
        self.input: _Histogram | None = None
        self.output: _Histogram | None = None
        self.durations: dict[str, _Histogram] = {}


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
        bounds_t, bounds_d, bisect_left, str_ = TOKEN_BUCKETS, DURATION_BUCKETS, bisect.bisect_left, str
        # A batch repeats a handful of label sets: each is looked up, and its histograms found, once.
        found: dict[tuple[str, ...], _Series] = {}
        with self._lock:
            for attrs, resource, status, start, end in zip(
                batch.attributes,
                batch.resource,
                batch.status_code,
                batch.start_time_unix_nano,
                batch.end_time_unix_nano,
                strict=True,
            ):
                operation = attrs.get(A.GEN_AI_OPERATION_NAME)
                if operation is None:
                    continue
                raw = (
                    attrs.get(A.GEN_AI_PROVIDER_NAME, ""),
                    attrs.get(A.GEN_AI_REQUEST_MODEL) or attrs.get(A.GEN_AI_RESPONSE_MODEL) or "",
                    operation,
                    attrs.get(A.ORGANIZATION_ID) or resource.get(A.ORGANIZATION_ID) or A.DEFAULT_ORGANIZATION,
                    attrs.get(A.PROJECT_ID) or resource.get(A.PROJECT_ID) or A.DEFAULT_PROJECT,
                )
                # Only label sets of strings are remembered: 1, 1.0 and True are equal keys but distinct labels.
                provider, model, _, organization, project = raw
                if (
                    provider.__class__ is str_
                    and model.__class__ is str_
                    and operation.__class__ is str_
                    and organization.__class__ is str_
                    and project.__class__ is str_
                ):
                    series = found.get(raw)
                    if series is None:
                        series = found[raw] = _Series(self._key(raw))
                else:
                    series = _Series(self._key(tuple(map(str_, raw))))
                value = attrs.get(A.GEN_AI_USAGE_INPUT_TOKENS)
                if value.__class__ in _NUMBER:
                    if series.input is None:
                        series.input = self._histogram(self._tokens, (*series.labels, "input"), bounds_t)
                    series.input.add(bisect_left(bounds_t, value), float(value))
                value = attrs.get(A.GEN_AI_USAGE_OUTPUT_TOKENS)
                if value.__class__ in _NUMBER:
                    if series.output is None:
                        series.output = self._histogram(self._tokens, (*series.labels, "output"), bounds_t)
                    series.output.add(bisect_left(bounds_t, value), float(value))
                error = attrs.get(A.ERROR_TYPE, "")
                error_type = (error if error.__class__ is str_ else str_(error)) or (
                    A.ERROR_TYPE_OTHER if status == STATUS_ERROR else ""
                )
                durations = series.durations.get(error_type)
                if durations is None:
                    durations = series.durations[error_type] = self._histogram(
                        self._durations, (*series.labels, error_type), bounds_d
                    )
                seconds = max(0, end - start) / 1e9
                durations.add(bisect_left(bounds_d, seconds), seconds)
                cost = attrs.get(A.COST_USD)
                if cost.__class__ in _NUMBER:
                    self._cost[series.labels] = self._cost.get(series.labels, 0.0) + float(cost)

    @staticmethod
    def _histogram(
        table: dict[tuple[str, ...], _Histogram], key: tuple[str, ...], bounds: tuple[float, ...]
    ) -> _Histogram:
        hist = table.get(key)
        if hist is None:
            hist = table[key] = _Histogram(len(bounds))
        return hist

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
