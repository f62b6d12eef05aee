"""From rules to samples: one evaluation of every rule at an instant, over ClickHouse aggregates.

Rules are batched by the data they read, so a thousand rules cost a handful of queries:

* threshold, anomaly and SLO rules with the same filters (organization, ``where``) and ``group_by`` share
  one ``AlertStore.windows`` query, whatever their measures, windows and latency thresholds (each window is
  a conditional aggregate of one scan of the longest, at most an hour as a rule);
* anomaly rules of the same filters, ``group_by`` and ``window`` share one history of grid windows, read
  whole once and then only for the windows completed since (``anomaly.WindowHistory``); SLO windows longer
  than an hour are summed the same way from grid windows of counts;
* budget rules of the same filters, scope and period share one spend series, whose complete days are read
  once and whose forecast model is refitted only when a day completes.

With 1,000 mixed rules over 10 million spans a round makes about 70 queries (``bench/bench_alert_eval.py``).

Windows end ``evaluation_delay_s`` before the evaluation time, as spans arrive late. A failing query costs
only the rules that share it, and a failing rule only itself: both are reported in ``Evaluation.errors``.
"""

from __future__ import annotations

import calendar
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from llm_observer.query.alerting import anomaly
from llm_observer.query.alerting.config import (
    AnomalyRule,
    BudgetRule,
    Measure,
    Rule,
    SloRule,
    ThresholdRule,
)
from llm_observer.query.alerting.forecast import DailyModel, fit_daily, forecast_period_end
from llm_observer.query.alerting.measures import ADDITIVE, UNITS, Unit, needs_quantiles, needs_ttft, value_of
from llm_observer.query.alerting.model import ALERTNAME, ORGANIZATION, Sample
from llm_observer.query.alerting.slo import judge
from llm_observer.query.alerting.templates import describe_group, format_value, render_all
from llm_observer.storage.clickhouse.alert_reads import AlertStore, CallWindow, SpendSeries

NS = 10**9
_WHERE_DIMENSIONS = ("organization", "project", "team", "user", "service", "model", "provider", "operation")
_FORECAST_MIN_BUCKETS = 3  # complete days (hours for a daily budget) before a forecast may alert
# Windows up to an hour are read exactly, every round; longer counting windows (SLO burn windows of 6 h or
# 3 d) are summed from cached grid windows of about a seventy-second of their length, so their start is
# rounded up to that grid (a 3-day window may start up to an hour late; a 6-hour one, up to 5 minutes).
_EXACT_WINDOW_NS = 3600 * NS
_GRID_UNIT_NS = 300 * NS

Filters = tuple[tuple[str, str], ...]
GroupKey = tuple[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The samples of one evaluation, and the rules that could not be evaluated (rule name → why).
    ``queries``: how many queries it took."""

    samples: tuple[Sample, ...]
    errors: dict[str, str]
    queries: int = 0


class RuleError(ValueError):
    """A rule could not be evaluated (its message says why)."""


@dataclass
class _WindowPlan:
    """What the rules of one (filters, group_by) need from one ``windows`` query."""

    windows: set[int] = field(default_factory=set)
    quantiles: set[int] = field(default_factory=set)
    ttft: set[int] = field(default_factory=set)
    slow_ms: set[float] = field(default_factory=set)
    # Counting windows longer than ``_EXACT_WINDOW_NS`` (SLO burn windows): summed from cached grid windows.
    counted: set[int] = field(default_factory=set)
    rules: list[str] = field(default_factory=list)


@dataclass
class _Read:
    """One ``windows`` query's result: per window length, the groups' statistics."""

    windows: dict[int, dict[GroupKey, CallWindow]]
    slow_ms: tuple[float, ...]


@dataclass
class _SpendHistory:
    """The complete buckets of one period's spend per group (``[start_ns, complete_until_ns)``), and the
    forecast models fitted to them (refitted only when another bucket completes)."""

    start_ns: int
    complete_until_ns: int
    values: dict[GroupKey, list[float]] = field(default_factory=dict)
    models: dict[tuple[GroupKey, bool], DailyModel | None] = field(default_factory=dict)

    def extend(self, rows: Sequence[SpendSeries], until_ns: int, step_ns: int) -> None:
        """Append the buckets read for ``[complete_until_ns, until_ns)``."""
        before = (self.complete_until_ns - self.start_ns) // step_ns
        added = (until_ns - self.complete_until_ns) // step_ns
        read = {(row.organization_id, row.group): row.values for row in rows}
        for key in set(self.values) | set(read):
            values = self.values.setdefault(key, [0.0] * before)
            values.extend(read.get(key, (0.0,) * added))
        self.complete_until_ns = until_ns
        self.models.clear()

    def model(self, key: GroupKey, complete: list[float], weekly: bool) -> DailyModel | None:
        found = (key, weekly)
        if found not in self.models:
            self.models[found] = fit_daily(complete, first_weekday=_weekday(self.start_ns), weekly=weekly)
        return self.models[found]


@dataclass
class _Caches:
    """What evaluations keep between rounds: anomaly histories and their learned baselines, the grid
    windows of long SLO windows, and the complete buckets of budget periods."""

    histories: dict[tuple[Filters, tuple[str, ...], int], anomaly.WindowHistory] = field(default_factory=dict)
    baselines: dict[tuple[object, ...], anomaly.Baseline | None] = field(default_factory=dict)
    spend: dict[tuple[Filters, tuple[str, ...], str], _SpendHistory] = field(default_factory=dict)
    grids: dict[tuple[Filters, tuple[str, ...], int, tuple[float, ...]], anomaly.WindowHistory] = field(
        default_factory=dict
    )
    lock: threading.Lock = field(default_factory=threading.Lock)


class Evaluator:
    """Evaluates rules into samples; thread-safe.

    ``evaluate`` (the engine's rounds) and ``evaluate_rule_at`` (backtests, stepping forward through past
    data) keep separate caches, so a backtest neither slows the live rounds nor makes them read their
    histories again; calls of each kind are serialised.
    """

    def __init__(self, store: AlertStore, *, evaluation_delay_s: float = 15.0) -> None:
        self.store = store
        self.evaluation_delay_ns = int(evaluation_delay_s * NS)
        self._live = _Caches()
        self._backtests = _Caches()

    def evaluate(self, rules: Sequence[Rule], now_ns: int) -> Evaluation:
        """Every rule's samples at ``now_ns``; a rule that fails is in ``errors`` and costs no other (the
        engine counts it and logs it once per episode, so nothing is logged here every round)."""
        with self._live.lock:
            return _Round(self, now_ns - self.evaluation_delay_ns, None, self._live).run(rules)

    def evaluate_rule_at(self, rule: Rule, now_ns: int, organization_id: str | None) -> tuple[Sample, ...]:
        """One rule's samples as an evaluation at ``now_ns`` would have made them, over ``organization_id``'s
        data only (None: every organization's); ``RuleError`` when it cannot be evaluated. Successive calls
        at increasing times read only the data that is new to them."""
        with self._backtests.lock:
            end = now_ns - self.evaluation_delay_ns
            evaluation = _Round(self, end, organization_id, self._backtests).run([rule])
        if rule.name in evaluation.errors:
            raise RuleError(evaluation.errors[rule.name])
        return evaluation.samples

    def forget(self) -> None:
        """Drop every cache (after a reload that changed the rules, say)."""
        with self._live.lock, self._backtests.lock:
            for caches in (self._live, self._backtests):
                caches.histories.clear()
                caches.baselines.clear()
                caches.spend.clear()
                caches.grids.clear()


def rule_filters(rule: Rule, organization_id: str | None = None) -> Filters:
    """The ``(dimension, value)`` equalities a rule's data must meet: its organization, its ``where`` and
    the caller's organization."""
    out = set()
    if rule.organization is not None:
        out.add(("organization", rule.organization))
    if organization_id is not None:
        out.add(("organization", organization_id))
    for dimension in _WHERE_DIMENSIONS:
        value = getattr(rule.where, dimension)
        if value is not None:
            out.add((dimension, value))
    return tuple(sorted(out))


def group_dimensions(rule: Rule) -> tuple[str, ...]:
    """The dimensions a rule's groups are told apart by, beyond the organization (always one)."""
    if isinstance(rule, BudgetRule):
        return () if rule.scope == "organization" else (rule.scope,)
    return tuple(dict.fromkeys(d for d in rule.group_by if d != "organization"))


def duration_text(seconds: float) -> str:
    """``300`` → ``5m``, ``5400`` → ``1h30m``, ``259200`` → ``3d``."""
    rest = round(seconds)
    if rest == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


class _Round:
    """One evaluation: plans the queries, runs them, then judges each rule."""

    def __init__(
        self, evaluator: Evaluator, end_ns: int, organization_id: str | None, caches: _Caches
    ) -> None:
        self.evaluator = evaluator
        self.store = evaluator.store
        self.end_ns = end_ns
        self.organization_id = organization_id
        self.caches = caches
        self.errors: dict[str, str] = {}
        self.reads: dict[tuple[Filters, tuple[str, ...]], _Read] = {}
        self.histories: dict[tuple[Filters, tuple[str, ...], int], anomaly.WindowHistory] = {}
        self.spend: dict[
            tuple[Filters, tuple[str, ...], str], tuple[_SpendHistory, dict[GroupKey, float]]
        ] = {}

    def run(self, rules: Sequence[Rule]) -> Evaluation:
        before = self.store.queries
        plans: dict[tuple[Filters, tuple[str, ...]], _WindowPlan] = {}
        histories: dict[tuple[Filters, tuple[str, ...], int], tuple[int, bool, bool, list[str]]] = {}
        budgets: dict[tuple[Filters, tuple[str, ...], str], list[str]] = {}
        for rule in rules:
            try:
                self._plan(rule, plans, histories, budgets)
            except Exception as exc:  # a rule the planner cannot read: its own error, nobody else's
                self.errors[rule.name] = _message(exc)
        for (filters, dims), plan in plans.items():
            self._read_windows(filters, dims, plan)
        for key, (history_ns, quantiles, ttft, names) in histories.items():
            self._read_history(key, history_ns, quantiles, ttft, names)
        for spend_key, names in budgets.items():
            self._read_spend(spend_key, names)
        samples: list[Sample] = []
        for rule in rules:
            if rule.name in self.errors:
                continue
            try:
                samples.extend(self._judge(rule))
            except Exception as exc:  # one failing rule never costs the others
                self.errors[rule.name] = _message(exc)
        return Evaluation(tuple(samples), dict(self.errors), self.store.queries - before)

    # --- planning and reading ------------------------------------------------------------------------

    def _plan(
        self,
        rule: Rule,
        plans: dict[tuple[Filters, tuple[str, ...]], _WindowPlan],
        histories: dict[tuple[Filters, tuple[str, ...], int], tuple[int, bool, bool, list[str]]],
        budgets: dict[tuple[Filters, tuple[str, ...], str], list[str]],
    ) -> None:
        filters, dims = rule_filters(rule, self.organization_id), group_dimensions(rule)
        if isinstance(rule, BudgetRule):
            budgets.setdefault((filters, dims, rule.period), []).append(rule.name)
            return
        plan = plans.setdefault((filters, dims), _WindowPlan())
        plan.rules.append(rule.name)
        if isinstance(rule, SloRule):
            for pair in rule.windows:
                for length in (_ns(pair.long), _ns(pair.short)):
                    (plan.counted if length > _EXACT_WINDOW_NS else plan.windows).add(length)
            if rule.sli == "latency" and rule.latency_threshold_ms is not None:
                plan.slow_ms.add(rule.latency_threshold_ms)
            return
        window = _ns(rule.window)
        plan.windows.add(window)
        if needs_quantiles(rule.measure):
            plan.quantiles.add(window)
        if needs_ttft(rule.measure):
            plan.ttft.add(window)
        if isinstance(rule, AnomalyRule):
            key = (filters, dims, window)
            history, quantiles, ttft, names = histories.get(key, (0, False, False, []))
            names.append(rule.name)
            histories[key] = (
                max(history, _ns(rule.history)),
                quantiles or needs_quantiles(rule.measure),
                ttft or needs_ttft(rule.measure),
                names,
            )

    def _fail(self, names: Sequence[str], exc: Exception) -> None:
        for name in names:
            self.errors.setdefault(name, _message(exc))

    def _read_windows(self, filters: Filters, dims: tuple[str, ...], plan: _WindowPlan) -> None:
        slow = tuple(sorted(plan.slow_ms))
        # A long counting window is its grid windows (cached) plus the tail since the last grid line: the
        # tail is one more window of the query, which then scans no more than the longest exact window.
        grids = {length: _grid_step(length) for length in plan.counted}
        tails = {step: self.end_ns - anomaly.grid_floor(self.end_ns, step) for step in set(grids.values())}
        lengths = plan.windows | {tail for tail in tails.values() if tail > 0}
        try:
            rows = (
                self.store.windows(
                    filters,
                    dims,
                    self.end_ns,
                    lengths,
                    quantiles_for=plan.quantiles,
                    ttft_for=plan.ttft,
                    slow_ms=slow,
                )
                if lengths
                else []
            )
            windows: dict[int, dict[GroupKey, CallWindow]] = {w: {} for w in lengths}
            for row in rows:
                windows[row.end_ns - row.start_ns][(row.organization_id, row.group)] = row
            for step in set(grids.values()):
                longest = max(length for length, g in grids.items() if g == step)
                history = self._grid(filters, dims, step, slow, longest)
                for length in (length for length, g in grids.items() if g == step):
                    windows[length] = _summed(
                        history, windows.get(tails[step], {}), self.end_ns, length, step
                    )
        except Exception as exc:
            self._fail(plan.rules, exc)
            return
        self.reads[(filters, dims)] = _Read(windows, slow)

    def _grid(
        self, filters: Filters, dims: tuple[str, ...], step: int, slow: tuple[float, ...], longest: int
    ) -> anomaly.WindowHistory:
        """The grid windows (counts only) of ``step`` covering the ``longest`` window before the last grid
        line, read only where the cached ones stop."""
        cache = self.caches.grids
        key = (filters, dims, step, slow)
        history = cache.get(key)
        if history is None:
            history = anomaly.WindowHistory(step)
            cache[key] = history
        start = anomaly.grid_ceil(self.end_ns - longest, step)
        missing = history.missing(start, anomaly.grid_floor(self.end_ns, step))
        if missing is not None and missing[1] > missing[0]:
            try:
                rows = self.store.buckets(
                    filters, dims, missing[0], missing[1], step, quantiles=False, slow_ms=slow
                )
            except Exception:
                cache.pop(key, None)
                raise
            history.add(rows, missing[0], missing[1])
        return history

    def _read_history(
        self,
        key: tuple[Filters, tuple[str, ...], int],
        history_ns: int,
        quantiles: bool,
        ttft: bool,
        names: Sequence[str],
    ) -> None:
        filters, dims, window = key
        start = anomaly.grid_ceil(self.end_ns - history_ns, window)
        end = anomaly.grid_floor(self.end_ns - window, window)
        cache = self.caches.histories
        history = cache.get(key)
        # A history read without percentiles cannot serve a rule that now needs them: read it again.
        if history is None or (quantiles and not history.quantiles) or (ttft and not history.ttft):
            history = anomaly.WindowHistory(window, quantiles=quantiles, ttft=ttft)
            cache[key] = history
        missing = history.missing(start, end) if end > start else None
        if missing is not None:
            try:
                rows = self.store.buckets(
                    filters,
                    dims,
                    missing[0],
                    missing[1],
                    window,
                    quantiles=history.quantiles,
                    ttft=history.ttft,
                )
            except Exception as exc:
                cache.pop(key, None)
                self._fail(names, exc)
                return
            history.add(rows, missing[0], missing[1])
        self.histories[key] = history

    def _read_spend(self, key: tuple[Filters, tuple[str, ...], str], names: Sequence[str]) -> None:
        """The period's spend: its complete buckets (days; hours of a daily budget) kept from earlier rounds
        and read only as they complete, and the current bucket read afresh."""
        filters, dims, period = key
        start, step, _ = _period(period, self.end_ns)
        current = start + (self.end_ns - start) // step * step
        cache = self.caches.spend
        history = cache.get(key)
        if history is None or history.start_ns != start:
            history = _SpendHistory(start, start)
            cache[key] = history
        try:
            if history.complete_until_ns < current:
                rows = self.store.spend_series(filters, dims, history.complete_until_ns, current, step)
                history.extend(rows, current, step)
            now = (
                self.store.spend_series(filters, dims, current, self.end_ns, step)
                if self.end_ns > current
                else []
            )
        except Exception as exc:
            cache.pop(key, None)
            self._fail(names, exc)
            return
        self.spend[key] = (history, {(row.organization_id, row.group): row.values[0] for row in now})

    # --- judging ---------------------------------------------------------------------------------------

    def _judge(self, rule: Rule) -> list[Sample]:
        if isinstance(rule, ThresholdRule):
            return self._threshold(rule)
        if isinstance(rule, AnomalyRule):
            return self._anomaly(rule)
        if isinstance(rule, BudgetRule):
            return self._budget(rule)
        if isinstance(rule, SloRule):
            return self._slo(rule)
        raise RuleError(f"unknown rule kind {getattr(rule, 'kind', type(rule).__name__)!r}")

    def _labels(self, rule: Rule, key: GroupKey, dims: tuple[str, ...], **extra: str) -> dict[str, str]:
        labels = {ALERTNAME: rule.name, ORGANIZATION: key[0]}
        labels.update(zip(dims, key[1], strict=True))
        labels.update(rule.labels)
        labels.update(extra)
        return labels

    def _threshold(self, rule: ThresholdRule) -> list[Sample]:
        dims = group_dimensions(rule)
        window = _ns(rule.window)
        groups = self.reads[(rule_filters(rule, self.organization_id), dims)].windows[window]
        unit = UNITS[rule.measure]
        resolve = rule.threshold if rule.resolve_threshold is None else rule.resolve_threshold
        out = []
        for key, stats in sorted(groups.items()):
            labels = self._labels(rule, key, dims)
            value = value_of(rule.measure, stats, rule.window)
            if value is None or stats.request_count < rule.min_requests:
                active, clear, value = False, True, value or 0.0
            else:
                active = _compare(value, rule.op, rule.threshold)
                clear = not _compare(value, rule.op, resolve)
            summary = (
                f"{rule.measure} {format_value(value, unit)} {rule.op} {format_value(rule.threshold, unit)}"
                f"{describe_group(labels, dims)}"
            )
            out.append(
                self._sample(rule, labels, value, active, clear, unit, rule.threshold, summary, window)
            )
        return out

    def _anomaly(self, rule: AnomalyRule) -> list[Sample]:
        filters, dims = rule_filters(rule, self.organization_id), group_dimensions(rule)
        window = _ns(rule.window)
        current = self.reads[(filters, dims)].windows[window]
        history = self.histories[(filters, dims, window)]
        additive = rule.measure in ADDITIVE
        keys = set(current) | (history.groups() if additive else set())
        start = anomaly.grid_ceil(self.end_ns - _ns(rule.history), window)
        end = anomaly.grid_floor(self.end_ns - window, window)
        weekly = rule.history >= anomaly.WEEKLY_HISTORY_S
        at = anomaly.season(self.end_ns - window, window, weekly) if rule.baseline == "seasonal" else None
        needed = anomaly.warmup_windows(rule.warmup, rule.window)
        unit = UNITS[rule.measure]
        out = []
        for key in sorted(keys):
            stats = current.get(key)
            labels = self._labels(rule, key, dims)
            value = value_of(rule.measure, stats, rule.window)
            base = self._baseline(
                history, key, rule.measure, start, end, at, rule.min_requests, rule.min_spread
            )
            volume = stats.request_count if stats is not None else 0
            if additive and volume < rule.min_requests:
                # A drop is judged against the volume the group usually has.
                usual = self._baseline(history, key, "request_count", start, end, at, 0, 0.0)
                volume = max(volume, int(usual.median) if usual is not None else 0)
            if value is None or base is None or base.windows < needed or volume < rule.min_requests:
                s = 0.0
                active, clear = False, True
                value = value or 0.0
                summary = f"{rule.measure} {format_value(value, unit)}: baseline still learning"
            else:
                s = anomaly.score(value, base, rule.direction)
                active = s > rule.sensitivity
                clear = s < rule.sensitivity * anomaly.CLEAR_FRACTION
                side = "above" if value >= base.median else "below"
                summary = (
                    f"{rule.measure} {format_value(value, unit)} is {abs(value - base.median) / base.spread:.1f} "
                    f"spreads {side} its {rule.baseline} baseline {format_value(base.median, unit)}"
                )
            summary += describe_group(labels, dims)
            threshold = base.median if base is not None else None
            extra = {"score": f"{s:.2f}"}
            out.append(
                self._sample(rule, labels, value, active, clear, unit, threshold, summary, window, extra)
            )
        return out

    def _baseline(
        self,
        history: anomaly.WindowHistory,
        key: GroupKey,
        measure: Measure,
        start: int,
        end: int,
        at: tuple[int, int] | None,
        min_requests: int,
        min_spread: float,
    ) -> anomaly.Baseline | None:
        memo = self.caches.baselines
        token = (id(history), history.version, key, measure, start, end, at, min_requests, min_spread)
        if token in memo:
            return memo[token]
        if len(memo) > 200_000:
            memo.clear()
        values = history.values(key, measure, start, end, at=at, min_requests=min_requests)
        base = anomaly.learn(values, measure, min_spread)
        memo[token] = base
        return base

    def _budget(self, rule: BudgetRule) -> list[Sample]:
        dims = group_dimensions(rule)
        start, step, buckets = _period(rule.period, self.end_ns)
        history, current = self.spend[(rule_filters(rule, self.organization_id), dims, rule.period)]
        complete_buckets = (history.complete_until_ns - start) // step
        out = []
        for key in sorted(set(history.values) | set(current)):
            complete = history.values.get(key) or [0.0] * complete_buckets
            series = (
                [*complete, current.get(key, 0.0)] if self.end_ns > history.complete_until_ns else complete
            )
            spent = math.fsum(series)
            where = describe_group(dict(zip(dims, key[1], strict=True)), dims)
            for level in rule.levels:
                name = f"{level * 100:g}%"
                labels = self._labels(rule, key, dims, level=name)
                active = spent >= level * rule.amount_usd
                verb = "reached" if active else "is under"
                summary = (
                    f"spend {format_value(spent, 'usd')} {verb} {name} of the {rule.period}ly budget "
                    f"{format_value(rule.amount_usd, 'usd')}{where}"
                )
                out.append(
                    self._sample(
                        rule,
                        labels,
                        spent,
                        active,
                        not active,
                        "usd",
                        level * rule.amount_usd,
                        summary,
                        self.end_ns - start,
                    )
                )
            if rule.forecast:
                model = history.model(key, complete, rule.period == "month")
                out.append(self._forecast(rule, key, dims, series, model, start, step, buckets, where))
        return out

    def _forecast(
        self,
        rule: BudgetRule,
        key: GroupKey,
        dims: tuple[str, ...],
        series: list[float],
        model: DailyModel | None,
        start: int,
        step: int,
        buckets: int,
        where: str,
    ) -> Sample:
        elapsed = self.end_ns - start
        fraction = (elapsed - (len(series) - 1) * step) / step
        forecast = forecast_period_end(
            series,
            buckets,
            last_day_fraction=min(1.0, max(fraction, 1e-9)),
            first_weekday=_weekday(start),
            weekly=rule.period == "month",
            model=model,
        )
        complete = model.days if model is not None else 0
        labels = self._labels(rule, key, dims, level="forecast")
        active = complete >= _FORECAST_MIN_BUCKETS and forecast.total > rule.amount_usd
        usd: Unit = "usd"
        summary = (
            f"{rule.period}-end spend forecast {format_value(forecast.total, usd)} "
            f"({format_value(forecast.low, usd)} to {format_value(forecast.high, usd)}) "
            f"{'exceeds' if forecast.total > rule.amount_usd else 'is within'} the budget "
            f"{format_value(rule.amount_usd, usd)}{where}"
        )
        extra = {"forecast_low": f"{forecast.low:.2f}", "forecast_high": f"{forecast.high:.2f}"}
        day = forecast.runs_out_on(rule.amount_usd)
        if day is not None:
            runs_out = datetime.fromtimestamp((start + day * step) / NS, UTC)
            text = runs_out.strftime("%Y-%m-%d" if rule.period == "month" else "%Y-%m-%d %H:00 UTC")
            extra["runs_out_on"] = text
            if active:
                summary += f"; runs out on {text}"
        return self._sample(
            rule, labels, forecast.total, active, not active, usd, rule.amount_usd, summary, elapsed, extra
        )

    def _slo(self, rule: SloRule) -> list[Sample]:
        dims = group_dimensions(rule)
        read = self.reads[(rule_filters(rule, self.organization_id), dims)]
        slow_index = (
            read.slow_ms.index(rule.latency_threshold_ms)
            if rule.sli == "latency" and rule.latency_threshold_ms is not None
            else None
        )

        def counts(stats: CallWindow | None) -> tuple[int, int]:
            if stats is None:
                return 0, 0
            bad = stats.error_count if slow_index is None else stats.slow_counts[slow_index]
            return bad, stats.request_count

        out = []
        for pair in rule.windows:
            longs, shorts = read.windows[_ns(pair.long)], read.windows[_ns(pair.short)]
            for key in sorted(longs):
                long, short = counts(longs[key]), counts(shorts.get(key))
                labels = self._labels(
                    rule,
                    key,
                    dims,
                    severity=pair.severity,
                    long_window=duration_text(pair.long),
                    short_window=duration_text(pair.short),
                )
                burn = judge(pair, long, short, rule.objective)
                active = burn.active and long[1] >= rule.min_requests
                sli = (
                    "success" if rule.sli == "success" else f"latency under {rule.latency_threshold_ms:g} ms"
                )
                summary = (
                    f"error budget burning {burn.long_rate:.1f}x over {duration_text(pair.long)} and "
                    f"{burn.short_rate:.1f}x over {duration_text(pair.short)} (alerting above "
                    f"{pair.burn_rate:g}x){describe_group(labels, dims)}; objective {rule.objective * 100:g}% {sli}"
                )
                out.append(
                    self._sample(
                        rule,
                        labels,
                        burn.value,
                        active,
                        not active,
                        "burn",
                        pair.burn_rate,
                        summary,
                        _ns(pair.long),
                    )
                )
        return out

    def _sample(
        self,
        rule: Rule,
        labels: dict[str, str],
        value: float,
        active: bool,
        clear: bool,
        unit: Unit,
        threshold: float | None,
        summary: str,
        window_ns: int,
        extra: dict[str, str] | None = None,
    ) -> Sample:
        """A sample with the rule's annotations rendered, the default summary, then ``extra`` (annotations
        the rule does not set itself)."""
        annotations = render_all(
            rule.annotations, value=value, labels=labels, unit=unit, threshold=threshold, summary=summary
        )
        for name, text in (extra or {}).items():
            annotations.setdefault(name, text)
        return Sample(
            rule=rule.name,
            labels=labels,
            value=value,
            active=active,
            clear=clear,
            annotations=annotations,
            window_start_ns=self.end_ns - window_ns,
            window_end_ns=self.end_ns,
        )


def _ns(seconds: float) -> int:
    return round(seconds * NS)


def _compare(value: float, op: str, threshold: float) -> bool:
    match op:
        case ">":
            return value > threshold
        case ">=":
            return value >= threshold
        case "<":
            return value < threshold
        case "<=":
            return value <= threshold
    raise RuleError(f"unknown comparison {op!r}")


def _period(period: str, end_ns: int) -> tuple[int, int, int]:
    """``(start_ns, step_ns, buckets)`` of the UTC period holding ``end_ns``: a month in days, a day in
    hours."""
    moment = datetime.fromtimestamp(end_ns / NS, UTC)
    if period == "month":
        first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        days = calendar.monthrange(moment.year, moment.month)[1]
        return int(first.timestamp()) * NS, 86400 * NS, days
    if period == "day":
        midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return int(midnight.timestamp()) * NS, 3600 * NS, 24
    raise RuleError(f"unknown budget period {period!r}")


def _grid_step(length_ns: int) -> int:
    return max(_GRID_UNIT_NS, length_ns // 72 // _GRID_UNIT_NS * _GRID_UNIT_NS)


def _summed(
    history: anomaly.WindowHistory, tail: dict[GroupKey, CallWindow], end_ns: int, length_ns: int, step: int
) -> dict[GroupKey, CallWindow]:
    """Counts per group over ``[grid_ceil(end - length), end)``: the grid windows inside plus ``tail``."""
    start = anomaly.grid_ceil(end_ns - length_ns, step)
    totals: dict[GroupKey, list[int]] = {}
    parts = [history.windows.get(begin, {}) for begin in range(start, anomaly.grid_floor(end_ns, step), step)]
    for part in [*parts, tail]:
        for key, window in part.items():
            into = totals.get(key)
            if into is None:
                into = totals[key] = [0, 0, *([0] * len(window.slow_counts))]
            into[0] += window.request_count
            into[1] += window.error_count
            for j, slow in enumerate(window.slow_counts):
                into[2 + j] += slow
    return {
        key: CallWindow(key[0], key[1], start, end_ns, n, errors, slow_counts=tuple(slow))
        for key, (n, errors, *slow) in totals.items()
    }


def _weekday(time_ns: int) -> int:
    return datetime.fromtimestamp(time_ns / NS, UTC).weekday()


def _message(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if isinstance(exc, (ValueError, RuleError)) else f"{type(exc).__name__}: {text}"


__all__ = [
    "Evaluation",
    "Evaluator",
    "RuleError",
    "duration_text",
    "group_dimensions",
    "rule_filters",
]
