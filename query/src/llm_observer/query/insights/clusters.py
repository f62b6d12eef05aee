"""Prompt clusters: what a project's users ask, from the prompt embeddings the vector store already holds.

The prompt vectors a vector exporter wrote for a project's spans (unit-length all-MiniLM-L6-v2 vectors, with
trace id, span id, time and an excerpt of the text in the payload) are read back, clustered, and joined by
span id to the model calls in ClickHouse for each cluster's volume, cost, latency and error rate. Each
cluster is labelled by its most distinctive terms and followed over time.

Why k-means, and how k is chosen. HDBSCAN would find the number of clusters itself, but no package for it
is installed (neither ``hdbscan`` nor scikit-learn, nor SciPy), and adding them (~100 MB of wheels) to the
query service for one view is not worth it; HDBSCAN also leaves a share of points as noise, while every
prompt here must belong to a cluster so that the clusters' volumes and costs add up to the project's.
So: spherical k-means in NumPy (cosine similarity on unit vectors; k-means++ seeding; best of a few
seeded restarts), with k either given or chosen as the one of ``k_min..k_max`` whose clustering has the
highest mean silhouette (cosine distance) on a sample. The candidates are fitted on a sample of
``FIT_SAMPLE`` points and the winner is refined on all points, so the cost of choosing k does not grow
with the project.

Labels are c-TF-IDF terms: the words and word pairs of a cluster's prompts weighted by their frequency
in the cluster against their frequency over all clusters (``tf(t, c) * log(1 + A / f(t))``, ``A`` the
mean number of terms per cluster), English stop words and numbers left out.

Drift: each cluster's share of the prompts per UTC day, and the Jensen-Shannon divergence (base 2: 0 =
the same mix, 1 = disjoint) between the cluster mix of the window's first half and that of its second.

Reading the store: Qdrant points are scrolled in id order; ids are hashes of the span ids, so stopping at
``max_prompts`` keeps an unbiased sample of the window. The ClickHouse store (the ``vectors`` exporter) is
read in the order of a hash of the span ids, to the same effect.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from llm_observer.storage.clickhouse.prompt_reads import PromptCalls
from llm_observer.storage.clickhouse.queries import InvalidArgument

if TYPE_CHECKING:
    from llm_observer.storage.vectors.store import VectorStore

Matrix = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]

DAY_NS = 86_400 * 10**9
FIT_SAMPLE = 4000  # points the candidate k are fitted on
SILHOUETTE_SAMPLE = 2000  # points the silhouette is computed on (quadratic in this)
MAX_PROMPTS = 200_000
# A sample of 5,000 prompts estimates shares to about +-1.4 points (95%) and reads from a local store in
# seconds (Qdrant's local mode filters and copies points in Python, ~1 ms each).
DEFAULT_MAX_PROMPTS = 5000
TERMS_PER_CLUSTER = 5
EXAMPLES_PER_CLUSTER = 3
_TERM_SAMPLE = 2000  # prompts per cluster whose terms are counted
_PAGE = 4096  # points per scroll call: local mode pays a fixed cost per call


# --- results -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayShare:
    """Prompts of one cluster on one UTC day and their share of that day's prompts."""

    day_ns: int
    prompts: int
    share: float


@dataclass(frozen=True, slots=True)
class PromptCluster:
    """One cluster of prompts and the figures of its calls.

    JSON (``cluster_document``): ``{id, label, terms: [{term, score}], prompts, share, calls, errors,
    error_rate, cost_usd, input_tokens, output_tokens, latency_ms: {p50, p95}, models: [..], examples:
    [..], first_half_share, second_half_share, share_change, daily: [{day, prompts, share}]}``.
    ``prompts`` counts the clustered points; ``calls`` those of them found in ClickHouse (what the
    figures are over).
    """

    id: int
    label: str
    terms: tuple[tuple[str, float], ...]
    prompts: int
    share: float
    calls: int
    errors: int
    cost_usd: float
    input_tokens: int
    output_tokens: int
    latency_p50_ms: float
    latency_p95_ms: float
    models: tuple[str, ...]
    examples: tuple[str, ...]
    first_half_share: float
    second_half_share: float
    daily: tuple[DayShare, ...]

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


@dataclass(frozen=True, slots=True)
class PromptClusterReport:
    """The clusters of one project's prompts over ``[start_ns, end_ns)``, largest first.

    JSON: ``{project_id, start_time, end_time, method: "spherical_kmeans", k, k_chosen_by: "silhouette" |
    "fixed", silhouette, silhouette_by_k: [{k, silhouette}], prompts, matched_calls, truncated,
    drift: {js_divergence, first_half_prompts, second_half_prompts}, days: [..], clusters: [..]}``.
    ``silhouette`` is null with fewer than three prompts; ``js_divergence`` when a half has none.
    """

    project_id: str
    start_ns: int
    end_ns: int
    k: int
    k_chosen_by: str
    silhouette: float | None
    silhouette_by_k: tuple[tuple[int, float], ...]
    prompts: int
    matched_calls: int
    truncated: bool
    js_divergence: float | None
    first_half_prompts: int
    second_half_prompts: int
    days: tuple[int, ...]
    clusters: tuple[PromptCluster, ...]


@dataclass(frozen=True, slots=True)
class PromptPoints:
    """Prompts read from the vector store: one row of ``vectors`` per entry of the other columns."""

    trace_id: tuple[str, ...]
    span_id: tuple[str, ...]
    time_ns: tuple[int, ...]
    text: tuple[str, ...]
    vectors: Matrix
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.span_id)


# --- reading the vector store ----------------------------------------------------------------------------


def load_prompt_points(
    store: VectorStore,
    collection: str,
    organization_id: str,
    project_id: str,
    start_ns: int,
    end_ns: int,
    max_prompts: int = DEFAULT_MAX_PROMPTS,
) -> PromptPoints:
    """The prompt points of one project whose span started in ``[start_ns, end_ns)``, at most
    ``max_prompts`` of them (an unbiased sample when there are more: see the module docstring)."""
    from llm_observer.storage.vectors.search import search_filter

    if not 1 <= max_prompts <= MAX_PROMPTS:
        raise InvalidArgument(f"max_prompts must be between 1 and {MAX_PROMPTS}")
    dim = store.collection_dim(collection)
    empty = PromptPoints((), (), (), (), np.zeros((0, dim or 1), dtype=np.float32))
    if dim is None:
        return empty
    flt = search_filter(
        organization_id,
        project_id,
        start=datetime.fromtimestamp(start_ns / 1e9, tz=UTC),
        end=datetime.fromtimestamp(end_ns / 1e9, tz=UTC),
        kind="prompt",
    )
    vectors = np.zeros((min(max_prompts, _PAGE), dim), dtype=np.float32)
    traces: list[str] = []
    spans: list[str] = []
    times: list[int] = []
    texts: list[str] = []
    offset: Any = None
    truncated = False
    while True:
        records, offset = _scroll(store, collection, flt, min(_PAGE, max_prompts + 1 - len(spans)), offset)
        for record in records:
            vector = record.vector
            if not isinstance(vector, list) or len(vector) != dim:
                continue
            if len(spans) == max_prompts:
                truncated = True
                break
            body = record.payload or {}
            if len(spans) == vectors.shape[0]:
                grown = np.zeros((min(max_prompts, 2 * vectors.shape[0]), dim), dtype=np.float32)
                grown[: vectors.shape[0]] = vectors
                vectors = grown
            vectors[len(spans)] = vector
            traces.append(str(body.get("trace_id") or ""))
            spans.append(str(body.get("span_id") or ""))
            times.append(round(float(body.get("time_unix") or 0.0) * 1e9))
            texts.append(str(body.get("text") or ""))
        if truncated or offset is None or not records:
            break
    return PromptPoints(
        tuple(traces), tuple(spans), tuple(times), tuple(texts), vectors[: len(spans)], truncated
    )


def prompt_points_of(
    search: Any,
    organization_id: str,
    project_id: str,
    start_ns: int,
    end_ns: int,
    max_prompts: int = DEFAULT_MAX_PROMPTS,
) -> PromptPoints:
    """``load_prompt_points`` from the store behind ``search``, the backend's vector search: ClickHouse
    tables beside the spans (``ClickHouseVectorSearch``) or a Qdrant collection (``VectorSearch``)."""
    from llm_observer.storage.clickhouse.vector_reads import ClickHouseVectorSearch

    if not 1 <= max_prompts <= MAX_PROMPTS:
        raise InvalidArgument(f"max_prompts must be between 1 and {MAX_PROMPTS}")
    if isinstance(search, ClickHouseVectorSearch):
        found = search.prompt_vectors(organization_id, project_id, start_ns, end_ns, max_prompts)
        # k-means seeding depends on the order of the points: by text, then ids, the same prompts cluster
        # the same way whatever their spans' ids.
        order = sorted(
            range(len(found.span_ids)), key=lambda i: (found.texts[i], found.trace_ids[i], found.span_ids[i])
        )
        return PromptPoints(
            tuple(found.trace_ids[i] for i in order),
            tuple(found.span_ids[i] for i in order),
            tuple(found.times_ns[i] for i in order),
            tuple(found.texts[i] for i in order),
            found.vectors[order],
            found.truncated,
        )
    return load_prompt_points(
        search.store, search.collection, organization_id, project_id, start_ns, end_ns, max_prompts
    )


def _scroll(store: VectorStore, collection: str, flt: Any, limit: int, offset: Any) -> tuple[list[Any], Any]:
    return store.scroll(
        collection, flt, limit, offset, fields=("trace_id", "span_id", "time_unix", "text"), with_vectors=True
    )


# --- k-means ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Clustering:
    """Cluster ``labels[i]`` of each point, the unit-length ``centroids``, and how k was chosen."""

    labels: Labels
    centroids: Matrix
    k: int
    chosen_by: str
    silhouette: float | None
    silhouette_by_k: tuple[tuple[int, float], ...]


def _normalize(matrix: Matrix) -> Matrix:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: Matrix = (matrix / norms).astype(np.float32, copy=False)
    return out


def _seed_centroids(x: Matrix, k: int, rng: np.random.Generator) -> Matrix:
    """k-means++ seeding under cosine distance."""
    n = x.shape[0]
    chosen = [int(rng.integers(n))]
    distance = np.maximum(0.0, 1.0 - x @ x[chosen[0]])
    for _ in range(1, k):
        weights = distance.astype(np.float64) ** 2
        total = weights.sum()
        pick = int(rng.integers(n)) if total <= 0 else int(rng.choice(n, p=weights / total))
        chosen.append(pick)
        distance = np.minimum(distance, np.maximum(0.0, 1.0 - x @ x[pick]))
    return x[chosen].copy()


def _lloyd(x: Matrix, centroids: Matrix, max_iter: int) -> tuple[Labels, Matrix, float]:
    """Spherical k-means from ``centroids``: labels, centroids and the summed cosine distance."""
    k = centroids.shape[0]
    labels: Labels = np.full(x.shape[0], -1, dtype=np.int64)
    for _ in range(max_iter):
        similarity = x @ centroids.T
        new_labels = np.argmax(similarity, axis=1).astype(np.int64)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        counts = np.bincount(labels, minlength=k)
        onehot = np.zeros((k, x.shape[0]), dtype=np.float32)
        onehot[labels, np.arange(x.shape[0])] = 1.0
        sums = onehot @ x
        for empty in np.flatnonzero(counts == 0):
            # An emptied cluster restarts at the point its centroid fits worst.
            worst = int(np.argmin(similarity[np.arange(x.shape[0]), labels]))
            sums[empty] = x[worst]
        centroids = _normalize(sums)
    similarity = x @ centroids.T
    labels = np.argmax(similarity, axis=1).astype(np.int64)
    inertia = float((1.0 - similarity[np.arange(x.shape[0]), labels]).sum())
    return labels, centroids, inertia


def kmeans(
    x: Matrix, k: int, *, seed: int = 0, restarts: int = 10, max_iter: int = 50
) -> tuple[Labels, Matrix, float]:
    """The best of ``restarts`` seeded spherical k-means runs on the unit vectors ``x`` (rows)."""
    rng = np.random.default_rng(seed)
    best: tuple[Labels, Matrix, float] | None = None
    for _ in range(max(1, restarts)):
        run = _lloyd(x, _seed_centroids(x, k, rng), max_iter)
        if best is None or run[2] < best[2]:
            best = run
    assert best is not None
    return best


def silhouette(x: Matrix, labels: Labels) -> float:
    """Mean silhouette under cosine distance (0 for points alone in their cluster)."""
    n = x.shape[0]
    clusters = np.unique(labels)
    if n < 3 or clusters.size < 2:
        return 0.0
    distance = np.maximum(0.0, 1.0 - (x @ x.T).astype(np.float64))
    counts = np.array([np.count_nonzero(labels == c) for c in clusters], dtype=np.float64)
    index = np.searchsorted(clusters, labels)
    # Summed distance of every point to every cluster.
    sums = np.stack([distance[:, labels == c].sum(axis=1) for c in clusters], axis=1)
    own = counts[index]
    a = sums[np.arange(n), index] / np.maximum(own - 1, 1)
    mean_other = sums / counts
    mean_other[np.arange(n), index] = np.inf
    b = mean_other.min(axis=1)
    s = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


def _single_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """One BLAS thread while clustering.

    k-means makes thousands of small matrix products; OpenBLAS's worker threads spin between them, and on
    a busy machine (measured: 2 cores shared by 10 runnable processes) that made clustering 15 times
    slower than one thread.
    """
    limits: contextlib.AbstractContextManager[Any] = threadpool_limits(limits=1, user_api="blas")
    return limits


def cluster_vectors(
    vectors: Matrix, k: int | None = None, *, k_min: int = 2, k_max: int = 12, seed: int = 0
) -> Clustering:
    """Cluster the rows of ``vectors`` (normalised here) into ``k`` clusters, or into the k of
    ``k_min..k_max`` with the best silhouette on a sample when ``k`` is None."""
    with _single_blas_thread():
        return _cluster_vectors(vectors, k, k_min, k_max, seed)


def _cluster_vectors(vectors: Matrix, k: int | None, k_min: int, k_max: int, seed: int) -> Clustering:
    x = _normalize(np.asarray(vectors, dtype=np.float32))
    n = x.shape[0]
    if n == 0:
        return Clustering(np.zeros(0, dtype=np.int64), x[:0], 0, "fixed", None, ())
    rng = np.random.default_rng(seed)
    if k is not None:
        if k < 1:
            raise InvalidArgument("k must be at least 1")
        k = min(k, n)
        if n > FIT_SAMPLE:
            # Restarts on a sample, then one refinement over every point.
            _, centroids, _ = kmeans(x[np.sort(rng.choice(n, FIT_SAMPLE, replace=False))], k, seed=seed)
            labels, centroids, _ = _lloyd(x, centroids, 50)
        else:
            labels, centroids, _ = kmeans(x, k, seed=seed)
        score = _sample_silhouette(x, labels, rng) if n >= 3 and k >= 2 else None
        return Clustering(labels, centroids, k, "fixed", score, ())
    if k_min < 2 or k_max < k_min:
        raise InvalidArgument("k_min must be at least 2 and k_max at least k_min")
    if n < 3:
        labels, centroids, _ = kmeans(x, 1, seed=seed)
        return Clustering(labels, centroids, 1, "silhouette", None, ())
    fit = x if n <= FIT_SAMPLE else x[np.sort(rng.choice(n, FIT_SAMPLE, replace=False))]
    scored: list[tuple[int, float, Labels, Matrix]] = []
    for candidate in range(k_min, min(k_max, fit.shape[0] - 1) + 1):
        labels, centroids, _ = kmeans(fit, candidate, seed=seed)
        score = _sample_silhouette(fit, labels, np.random.default_rng(seed))
        scored.append((candidate, score, labels, centroids))
    if not scored:
        labels, centroids, _ = kmeans(x, 1, seed=seed)
        return Clustering(labels, centroids, 1, "silhouette", None, ())
    # Ties go to the smaller k: the simpler account of the same data.
    best_k, best_score, labels, centroids = max(scored, key=lambda item: (item[1], -item[0]))
    if fit is not x:
        # Refined on every point from the sample's centroids.
        labels, centroids, _ = _lloyd(x, centroids, 50)
        best_score = _sample_silhouette(x, labels, rng)
    return Clustering(
        labels,
        centroids,
        best_k,
        "silhouette",
        best_score,
        tuple((candidate, score) for candidate, score, _, _ in scored),
    )


def _sample_silhouette(x: Matrix, labels: Labels, rng: np.random.Generator) -> float:
    if x.shape[0] <= SILHOUETTE_SAMPLE:
        return silhouette(x, labels)
    pick = np.sort(rng.choice(x.shape[0], SILHOUETTE_SAMPLE, replace=False))
    return silhouette(x[pick], labels[pick])


# --- labels -------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
_STOP_WORDS = """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just let me more
    most my myself no nor not now of off on once only or other our ours ourselves out over own please
    same she should so some such than that the their theirs them themselves then there these they this
    those through to too under until up very was we were what when where which while who whom why will
    with would you your yours yourself yourselves i'm i've i'd i'll it's don't can't won't isn't aren't
    doesn't didn't what's where's how's that's there's let's i'd you're we're get got also via us may
    might must shall one two like want need make know tell give"""
STOP_WORDS = frozenset(_STOP_WORDS.split())


def terms(text: str) -> list[str]:
    """The words (lower case, no stop words, no numbers) and adjacent word pairs of ``text``."""
    # Typographic apostrophes as plain ones, so that "I\u2019m" is the stop word "i'm".
    found = (m.group(0).lower().replace("\u2019", "'") for m in _WORD.finditer(text))
    words = [w for w in found if len(w) > 1 and w not in STOP_WORDS]
    return words + [f"{first} {second}" for first, second in itertools.pairwise(words)]


def c_tf_idf(
    texts: Sequence[str], labels: Sequence[int] | Labels, k: int, top: int = TERMS_PER_CLUSTER, seed: int = 0
) -> list[tuple[tuple[str, float], ...]]:
    """The ``top`` most distinctive terms of each of the ``k`` clusters, with their c-TF-IDF scores (terms of
    at most ``_TERM_SAMPLE`` prompts per cluster are counted)."""
    label_array = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    counts: list[Counter[str]] = []
    for cluster in range(k):
        members = np.flatnonzero(label_array == cluster)
        if members.size > _TERM_SAMPLE:
            members = np.sort(rng.choice(members, _TERM_SAMPLE, replace=False))
        counter: Counter[str] = Counter()
        for row in members:
            # A term counts once per prompt: a prompt repeating a word should not make it the label.
            counter.update(set(terms(texts[int(row)])))
        counts.append(counter)
    overall: Counter[str] = Counter()
    for counter in counts:
        overall.update(counter)
    sizes = [sum(counter.values()) for counter in counts]
    average = sum(sizes) / max(1, k)
    out: list[tuple[tuple[str, float], ...]] = []
    for counter, size in zip(counts, sizes, strict=True):
        if size == 0:
            out.append(())
            continue
        scored = [
            (term, count / size * math.log(1.0 + average / overall[term])) for term, count in counter.items()
        ]
        scored.sort(key=lambda item: (-item[1], item[0]))
        out.append(tuple((term, round(score, 6)) for term, score in scored[:top]))
    return out


def _label(top_terms: Sequence[tuple[str, float]]) -> str:
    chosen: list[str] = []
    for term, _ in top_terms:
        # A pair already says what its words say: skip a word inside a chosen pair, and the reverse.
        if any(term in other.split() or other in term.split() for other in chosen):
            continue
        chosen.append(term)
        if len(chosen) == 3:
            break
    return ", ".join(chosen) or "(no terms)"


# --- the report ---------------------------------------------------------------------------------------------


def js_divergence(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between two distributions (normalised here)."""
    pa = np.asarray(p, dtype=np.float64)
    qa = np.asarray(q, dtype=np.float64)
    pa = pa / pa.sum()
    qa = qa / qa.sum()
    m = (pa + qa) / 2.0

    def kl(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
        mask = a > 0
        return float((a[mask] * np.log2(a[mask] / b[mask])).sum())

    return max(0.0, min(1.0, (kl(pa, m) + kl(qa, m)) / 2.0))


def _quantiles(values: npt.NDArray[np.float64]) -> tuple[float, float]:
    if values.size == 0:
        return 0.0, 0.0
    p50, p95 = np.percentile(values, [50.0, 95.0], method="linear")
    return float(p50), float(p95)


def cluster_report(
    points: PromptPoints,
    calls: PromptCalls,
    clustering: Clustering,
    project_id: str,
    start_ns: int,
    end_ns: int,
    *,
    seed: int = 0,
) -> PromptClusterReport:
    """The report of ``clustering`` over ``points``, with the figures of the ``calls`` their span ids match."""
    k = clustering.k
    labels = clustering.labels
    n = len(points)
    by_span = {(t, s): row for row, (t, s) in enumerate(zip(calls.trace_id, calls.span_id, strict=True))}
    matched = np.array(
        [by_span.get((t, s), -1) for t, s in zip(points.trace_id, points.span_id, strict=True)],
        dtype=np.int64,
    )
    duration_ms = np.asarray(calls.duration_ns, dtype=np.float64) / 1e6
    errors = np.asarray(calls.error, dtype=np.bool_)
    cost = np.asarray(calls.cost_usd, dtype=np.float64)
    input_tokens = np.asarray(calls.input_tokens, dtype=np.int64)
    output_tokens = np.asarray(calls.output_tokens, dtype=np.int64)
    times = np.asarray(points.time_ns, dtype=np.int64)

    day0 = start_ns // DAY_NS * DAY_NS
    day_index = (times - day0) // DAY_NS if n else np.zeros(0, dtype=np.int64)
    days = sorted({int(d) for d in day_index})
    per_day = {d: int(np.count_nonzero(day_index == d)) for d in days}
    middle = start_ns + (end_ns - start_ns) // 2
    first_half = times < middle
    first_total = int(np.count_nonzero(first_half))
    second_total = n - first_total

    top_terms = c_tf_idf(points.text, labels, k, seed=seed)
    clusters: list[PromptCluster] = []
    first_counts: list[int] = []
    second_counts: list[int] = []
    for cluster in range(k):
        members = np.flatnonzero(labels == cluster)
        if members.size == 0:
            continue
        rows = matched[members]
        rows = rows[rows >= 0]
        p50, p95 = _quantiles(duration_ms[rows])
        models = Counter(calls.model[int(r)] for r in rows)
        similarity = points.vectors[members] @ clustering.centroids[cluster]
        examples: list[str] = []
        for index in np.argsort(-similarity):
            text = points.text[int(members[int(index)])]
            if text and text not in examples:
                examples.append(text)
            if len(examples) == EXAMPLES_PER_CLUSTER:
                break
        in_first = int(np.count_nonzero(first_half[members]))
        first_counts.append(in_first)
        second_counts.append(int(members.size) - in_first)
        member_days = Counter(int(d) for d in day_index[members])
        clusters.append(
            PromptCluster(
                id=cluster,
                label=_label(top_terms[cluster]),
                terms=top_terms[cluster],
                prompts=int(members.size),
                share=members.size / n,
                calls=int(rows.size),
                errors=int(np.count_nonzero(errors[rows])),
                cost_usd=math.fsum(cost[rows].tolist()),
                input_tokens=int(input_tokens[rows].sum()),
                output_tokens=int(output_tokens[rows].sum()),
                latency_p50_ms=p50,
                latency_p95_ms=p95,
                models=tuple(m for m, _ in sorted(models.items(), key=lambda item: (-item[1], item[0]))),
                examples=tuple(examples),
                first_half_share=in_first / first_total if first_total else 0.0,
                second_half_share=(members.size - in_first) / second_total if second_total else 0.0,
                daily=tuple(
                    DayShare(day0 + d * DAY_NS, member_days.get(d, 0), member_days.get(d, 0) / per_day[d])
                    for d in days
                ),
            )
        )
    divergence = js_divergence(first_counts, second_counts) if first_total and second_total else None
    order = sorted(range(len(clusters)), key=lambda i: (-clusters[i].prompts, clusters[i].id))
    return PromptClusterReport(
        project_id=project_id,
        start_ns=start_ns,
        end_ns=end_ns,
        k=k,
        k_chosen_by=clustering.chosen_by,
        silhouette=clustering.silhouette,
        silhouette_by_k=clustering.silhouette_by_k,
        prompts=n,
        matched_calls=int(np.count_nonzero(matched >= 0)),
        truncated=points.truncated,
        js_divergence=divergence,
        first_half_prompts=first_total,
        second_half_prompts=second_total,
        days=tuple(day0 + d * DAY_NS for d in days),
        clusters=tuple(clusters[i] for i in order),
    )
