"""Prompt versions: model calls grouped by the prompt version they used, their figures, and a side-by-side
comparison of two versions.

A call's version is, first match wins:

- its prompt name and version attributes (``PROMPT_NAME_KEYS`` / ``PROMPT_VERSION_KEYS`` of
  ``prompt_reads``: ``gen_ai.prompt.name`` / ``gen_ai.prompt.version``, or OpenInference's
  ``llm.prompt_template.version``): id ``NAME@VERSION`` (``NAME`` alone without a version attribute);
- else the fingerprint of its template (``fingerprint``: the prompt with its variable parts masked, or
  the ``llm.prompt_template.template`` attribute): id ``fp:FINGERPRINT``, or ``fp:FINGERPRINT@VERSION``
  when a version attribute came without a name.

Calls with neither a name nor any prompt text (content capture off) have no version; they are counted
(``unidentified_calls``) and left out. Latency percentiles are exact and interpolated between closest
ranks, as ClickHouse's ``quantileExactInclusive`` the metrics API uses.

The comparison gives, for version B against version A, the difference of every figure (B - A) and two
cheap significance tests: Fisher's exact test on the error counts (two-sided; the p-value sums the
probabilities of every table with the same margins that is no more likely than the one observed) and the
Mann-Whitney U test on the latencies (two-sided, normal approximation with tie and continuity
corrections), with its effect size: the share of (A, B) call pairs in which the B call was slower
(ties count one half).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt

from llm_observer.query.insights.fingerprint import fingerprint, prompt_template
from llm_observer.storage.clickhouse.prompt_reads import PromptCalls
from llm_observer.storage.clickhouse.queries import InvalidArgument

Source = Literal["attribute", "fingerprint"]

TEMPLATE_EXCERPT_CHARS = 500


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """One prompt version and the figures of its calls.

    JSON (``version_document``): ``{id, source: "attribute"|"fingerprint", name, version, fingerprint,
    template, first_seen, last_seen (RFC 3339), calls, errors, error_rate, input_tokens, output_tokens,
    cost_usd, cost_per_call_usd, latency_ms: {p50, p95}, models: [..], example: {trace_id, span_id}}``.
    ``template`` is the masked template (cut to 500 characters; empty for named versions that carry no
    template attribute).
    """

    id: str
    source: Source
    name: str
    version: str
    fingerprint: str
    template: str
    first_seen_ns: int
    last_seen_ns: int
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_p50_ms: float
    latency_p95_ms: float
    models: tuple[str, ...]
    example_trace_id: str
    example_span_id: str

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0

    @property
    def cost_per_call_usd(self) -> float:
        return self.cost_usd / self.calls if self.calls else 0.0


@dataclass(frozen=True, slots=True)
class PromptVersionReport:
    """Every version seen over a window, most calls first.

    JSON: ``{start_time, end_time, total_calls, identified_calls, unidentified_calls, truncated,
    versions: [PromptVersion…]}``; ``truncated`` when the window held more calls than were read.
    """

    start_ns: int
    end_ns: int
    total_calls: int
    unidentified_calls: int
    truncated: bool
    versions: tuple[PromptVersion, ...]

    @property
    def identified_calls(self) -> int:
        return self.total_calls - self.unidentified_calls


@dataclass(frozen=True, slots=True)
class VersionComparison:
    """Version ``b`` against version ``a``: both, the differences (b - a) and two significance tests.

    JSON: ``{a: PromptVersion, b: PromptVersion, delta: {calls, error_rate, latency_p50_ms, latency_p95_ms,
    cost_per_call_usd, input_tokens_per_call, output_tokens_per_call}, error_rate_test: {method:
    "fisher_exact", p_value}, latency_test: {method: "mann_whitney_u", u, p_value,
    probability_b_slower}}``. A p-value is null when a side has no calls (no latencies).
    """

    a: PromptVersion
    b: PromptVersion
    error_rate_p_value: float | None
    latency_u: float | None
    latency_p_value: float | None
    probability_b_slower: float | None

    @property
    def error_rate_delta(self) -> float:
        return self.b.error_rate - self.a.error_rate

    @property
    def latency_p50_delta_ms(self) -> float:
        return self.b.latency_p50_ms - self.a.latency_p50_ms

    @property
    def latency_p95_delta_ms(self) -> float:
        return self.b.latency_p95_ms - self.a.latency_p95_ms

    @property
    def cost_per_call_delta_usd(self) -> float:
        return self.b.cost_per_call_usd - self.a.cost_per_call_usd

    @property
    def input_tokens_per_call_delta(self) -> float:
        return _per_call(self.b.input_tokens, self.b.calls) - _per_call(self.a.input_tokens, self.a.calls)

    @property
    def output_tokens_per_call_delta(self) -> float:
        return _per_call(self.b.output_tokens, self.b.calls) - _per_call(self.a.output_tokens, self.a.calls)


def _per_call(total: float, calls: int) -> float:
    return total / calls if calls else 0.0


# --- which version a call used ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Key:
    id: str
    source: Source
    name: str
    version: str
    fingerprint: str
    template: str


@lru_cache(maxsize=65536)
def _template(input_messages: str, system_instructions: str, template: str) -> tuple[str, str]:
    # Templated prompts repeat (the same rendering, the same system prompt): mask each text once.
    masked = prompt_template(input_messages, system_instructions, template)
    return masked, fingerprint(masked) if masked else ""


def version_key(calls: PromptCalls, row: int) -> _Key | None:
    """The version call ``row`` used, or None when it carries neither a prompt name nor prompt text."""
    name, version = calls.prompt_name[row], calls.prompt_version[row]
    template_attr = calls.template[row]
    if name:
        masked = _template("", "", template_attr)[0] if template_attr else ""
        return _Key(f"{name}@{version}" if version else name, "attribute", name, version, "", masked)
    masked, print_ = _template(calls.input_messages[row], calls.system_instructions[row], template_attr)
    if not print_:
        return None
    key = f"fp:{print_}@{version}" if version else f"fp:{print_}"
    return _Key(key, "fingerprint", "", version, print_, masked)


@dataclass(frozen=True, slots=True)
class _Grouped:
    keys: dict[str, _Key]
    rows: dict[str, npt.NDArray[np.int64]]
    unidentified: int


def _group(calls: PromptCalls) -> _Grouped:
    keys: dict[str, _Key] = {}
    rows: dict[str, list[int]] = {}
    unidentified = 0
    for row in range(len(calls)):
        key = version_key(calls, row)
        if key is None:
            unidentified += 1
            continue
        keys.setdefault(key.id, key)
        rows.setdefault(key.id, []).append(row)
    return _Grouped(keys, {k: np.asarray(v, dtype=np.int64) for k, v in rows.items()}, unidentified)


@dataclass(frozen=True, slots=True)
class _Columns:
    start: npt.NDArray[np.int64]
    duration_ms: npt.NDArray[np.float64]
    error: npt.NDArray[np.bool_]
    input_tokens: npt.NDArray[np.int64]
    output_tokens: npt.NDArray[np.int64]
    cost: npt.NDArray[np.float64]

    @classmethod
    def of(cls, calls: PromptCalls) -> _Columns:
        return cls(
            np.asarray(calls.start_ns, dtype=np.int64),
            np.asarray(calls.duration_ns, dtype=np.float64) / 1e6,
            np.asarray(calls.error, dtype=np.bool_),
            np.asarray(calls.input_tokens, dtype=np.int64),
            np.asarray(calls.output_tokens, dtype=np.int64),
            np.asarray(calls.cost_usd, dtype=np.float64),
        )


def _quantiles(values: npt.NDArray[np.float64]) -> tuple[float, float]:
    if values.size == 0:
        return 0.0, 0.0
    p50, p95 = np.percentile(values, [50.0, 95.0], method="linear")
    return float(p50), float(p95)


def _version(key: _Key, rows: npt.NDArray[np.int64], calls: PromptCalls, columns: _Columns) -> PromptVersion:
    p50, p95 = _quantiles(columns.duration_ms[rows])
    models = Counter(calls.model[int(r)] for r in rows)
    first = int(rows[int(np.argmin(columns.start[rows]))])
    last = int(rows[int(np.argmax(columns.start[rows]))])
    return PromptVersion(
        id=key.id,
        source=key.source,
        name=key.name,
        version=key.version,
        fingerprint=key.fingerprint,
        template=key.template[:TEMPLATE_EXCERPT_CHARS],
        first_seen_ns=int(columns.start[first]),
        last_seen_ns=int(columns.start[last]),
        calls=int(rows.size),
        errors=int(np.count_nonzero(columns.error[rows])),
        input_tokens=int(columns.input_tokens[rows].sum()),
        output_tokens=int(columns.output_tokens[rows].sum()),
        cost_usd=math.fsum(columns.cost[rows].tolist()),
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        models=tuple(model for model, _ in sorted(models.items(), key=lambda item: (-item[1], item[0]))),
        example_trace_id=calls.trace_id[last],
        example_span_id=calls.span_id[last],
    )


# --- the figures -----------------------------------------------------------------------------------------


def prompt_versions(
    calls: PromptCalls, start_ns: int, end_ns: int, *, min_calls: int = 1, limit: int = 100
) -> PromptVersionReport:
    """The versions of ``calls`` with at least ``min_calls`` calls, most calls first (ties: newest last
    seen first, then id), at most ``limit`` of them."""
    if min_calls < 1:
        raise InvalidArgument("min_calls must be at least 1")
    if limit < 1:
        raise InvalidArgument("limit must be at least 1")
    grouped = _group(calls)
    columns = _Columns.of(calls)
    versions = [
        _version(grouped.keys[key], rows, calls, columns)
        for key, rows in grouped.rows.items()
        if rows.size >= min_calls
    ]
    versions.sort(key=lambda v: (-v.calls, -v.last_seen_ns, v.id))
    return PromptVersionReport(
        start_ns=start_ns,
        end_ns=end_ns,
        total_calls=len(calls),
        unidentified_calls=grouped.unidentified,
        truncated=calls.truncated,
        versions=tuple(versions[:limit]),
    )


def compare_versions(calls: PromptCalls, a: str, b: str) -> VersionComparison:
    """Version ``b`` against version ``a`` (ids as ``prompt_versions`` gives them) over ``calls``.

    Raises ``KeyError`` naming the id that no call used.
    """
    grouped = _group(calls)
    for wanted in (a, b):
        if wanted not in grouped.rows:
            raise KeyError(wanted)
    columns = _Columns.of(calls)
    rows_a, rows_b = grouped.rows[a], grouped.rows[b]
    version_a = _version(grouped.keys[a], rows_a, calls, columns)
    version_b = _version(grouped.keys[b], rows_b, calls, columns)
    u, p_latency, slower = mann_whitney_u(columns.duration_ms[rows_a], columns.duration_ms[rows_b])
    return VersionComparison(
        a=version_a,
        b=version_b,
        error_rate_p_value=fisher_exact(
            version_a.errors,
            version_a.calls - version_a.errors,
            version_b.errors,
            version_b.calls - version_b.errors,
        ),
        latency_u=u,
        latency_p_value=p_latency,
        probability_b_slower=slower,
    )


# --- significance ------------------------------------------------------------------------------------------


def fisher_exact(errors_a: int, ok_a: int, errors_b: int, ok_b: int) -> float | None:
    """Two-sided p-value of Fisher's exact test on the 2x2 table ``[[errors_a, ok_a], [errors_b, ok_b]]``;
    None when a row is empty."""
    n_a, n_b = errors_a + ok_a, errors_b + ok_b
    if n_a == 0 or n_b == 0:
        return None
    total = n_a + n_b
    errors = errors_a + errors_b

    def log_choose(n: int, k: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)

    base = log_choose(total, n_a)

    def log_p(x: int) -> float:
        return log_choose(errors, x) + log_choose(total - errors, n_a - x) - base

    observed = log_p(errors_a)
    # Relative tolerance as in the usual implementations: tables as likely as the observed one count.
    limit = observed + math.log1p(1e-7)
    low, high = max(0, n_a - (total - errors)), min(errors, n_a)
    p = math.fsum(math.exp(lp) for lp in (log_p(x) for x in range(low, high + 1)) if lp <= limit)
    return min(1.0, p)


def mann_whitney_u(
    a: Sequence[float] | npt.NDArray[np.float64], b: Sequence[float] | npt.NDArray[np.float64]
) -> tuple[float | None, float | None, float | None]:
    """``(U_b, p_value, probability_b_greater)`` of the Mann-Whitney U test of ``b`` against ``a``.

    ``U_b`` counts the (a, b) pairs with b > a, ties one half; the p-value is two-sided (normal
    approximation, tie-corrected variance, continuity correction); all three None when a side is empty.
    """
    xa = np.asarray(a, dtype=np.float64)
    xb = np.asarray(b, dtype=np.float64)
    n_a, n_b = xa.size, xb.size
    if n_a == 0 or n_b == 0:
        return None, None, None
    values = np.concatenate([xa, xb])
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    # Mid-ranks: each run of equal values gets the mean of the ranks it spans.
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    ends = np.concatenate([starts[1:], [ordered.size]])
    run_ranks = (starts + ends + 1) / 2.0
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(run_ranks, ends - starts)
    u_b = float(ranks[n_a:].sum() - n_b * (n_b + 1) / 2.0)
    n = n_a + n_b
    ties = (ends - starts).astype(np.float64)
    tie_term = float(((ties**3) - ties).sum()) / (n * (n - 1)) if n > 1 else 0.0
    variance = n_a * n_b / 12.0 * ((n + 1) - tie_term)
    mean = n_a * n_b / 2.0
    if variance <= 0:
        p = 1.0
    else:
        z = max(0.0, abs(u_b - mean) - 0.5) / math.sqrt(variance)
        p = math.erfc(z / math.sqrt(2.0))
    return u_b, min(1.0, p), u_b / (n_a * n_b)
