"""Prompt-cluster benchmark: time and memory to cluster 100,000 prompts.

The prompts are synthetic but shaped like real ones: the labelled test set
(``tests/query/insights/data/labelled_prompts.json``, 112 prompts of 7 intents) is embedded once with the
shipped all-MiniLM-L6-v2 model, and ``--prompts`` vectors are drawn around those embeddings (each a
labelled vector plus Gaussian noise of ``--noise`` per dimension, renormalised), each keeping its source
prompt's text for the labels. Calls with random figures stand in for the ClickHouse join.

Measured, each alone: choosing k by silhouette over ``2..12`` (candidates fitted on a 4,000-point sample,
the winner refined on every point) and with k fixed; labelling (c-TF-IDF) and the per-cluster figures,
daily shares and drift (``cluster_report``); with ``--store N``, also writing N points to a local Qdrant
folder and reading them back through ``load_prompt_points`` (the scroll the REST route makes). Memory is
the peak of Python and NumPy allocations (tracemalloc) during each step, and the process's peak RSS.

Usage: ``.venv/bin/python bench/bench_prompt_clusters.py [--prompts 100000] [--store 20000]``
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llm_observer.query.insights.clusters import (
    PromptPoints,
    cluster_report,
    cluster_vectors,
    load_prompt_points,
)
from llm_observer.storage.clickhouse.prompt_reads import PromptCalls
from llm_observer.storage.vectors.embed import Embedder

DATA = Path(__file__).resolve().parents[1] / "tests" / "query" / "insights" / "data" / "labelled_prompts.json"
DAY = 86_400 * 10**9
T = TypeVar("T")


def measure(name: str, fn: Callable[[], T]) -> tuple[T, dict[str, Any]]:
    tracemalloc.start()
    began = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    figures = {"step": name, "seconds": round(seconds, 3), "peak_mb": round(peak / 2**20, 1)}
    print(json.dumps(figures), flush=True)
    return result, figures


def purity(predicted: np.ndarray, truth: np.ndarray) -> float:
    total = 0
    for cluster in np.unique(predicted):
        total += int(np.bincount(truth[predicted == cluster]).max())
    return total / truth.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=100_000)
    parser.add_argument("--noise", type=float, default=0.02, help="per-dimension noise around each prompt")
    parser.add_argument("--store", type=int, default=0, help="also write and scroll this many points")
    args = parser.parse_args()

    intents = json.loads(DATA.read_text(encoding="utf-8"))["intents"]
    texts = [text for paraphrases in intents.values() for text in paraphrases]
    truth_of = np.repeat(np.arange(len(intents)), [len(p) for p in intents.values()])
    with tempfile.TemporaryDirectory() as tmp:
        embedder = Embedder(models_dir=Path(tmp) / "models")
        base = np.asarray(embedder.embed(texts), dtype=np.float32)
    rng = np.random.default_rng(1)
    source = rng.integers(0, len(texts), size=args.prompts)
    vectors = base[source] + rng.normal(0.0, args.noise, size=(args.prompts, base.shape[1])).astype(
        np.float32
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    truth = truth_of[source]
    print(json.dumps({"prompts": args.prompts, "dimensions": int(base.shape[1]), "intents": len(intents)}))

    chosen, _ = measure("cluster, k by silhouette over 2..12", lambda: cluster_vectors(vectors))
    print(
        json.dumps(
            {
                "k": chosen.k,
                "silhouette": round(chosen.silhouette or 0.0, 3),
                "purity": purity(chosen.labels, truth),
            }
        )
    )
    fixed, _ = measure("cluster, k fixed at 7", lambda: cluster_vectors(vectors, k=7))
    print(json.dumps({"k": fixed.k, "purity": purity(fixed.labels, truth)}))

    start = (time.time_ns() - 7 * DAY) // DAY * DAY
    times = tuple(int(t) for t in start + rng.integers(0, 7 * DAY, size=args.prompts))
    ids = tuple(f"{i:016x}" for i in range(args.prompts))
    traces = tuple(f"{i:032x}" for i in range(args.prompts))
    points = PromptPoints(traces, ids, times, tuple(texts[int(s)] for s in source), vectors)
    n = args.prompts
    calls = PromptCalls(
        trace_id=traces,
        span_id=ids,
        start_ns=times,
        duration_ns=tuple(int(d) for d in rng.integers(10**8, 5 * 10**9, size=n)),
        error=tuple(bool(e) for e in rng.random(n) < 0.02),
        input_tokens=tuple(int(v) for v in rng.integers(10, 2000, size=n)),
        output_tokens=tuple(int(v) for v in rng.integers(10, 500, size=n)),
        cost_usd=tuple(float(v) for v in rng.random(n) / 100),
        model=("gpt-4o",) * n,
        project_id=("default",) * n,
        prompt_name=("",) * n,
        prompt_version=("",) * n,
        template=("",) * n,
        input_messages=("",) * n,
        system_instructions=("",) * n,
    )
    report, _ = measure(
        "labels, figures, daily shares and drift",
        lambda: cluster_report(points, calls, chosen, "default", start, start + 7 * DAY),
    )
    print(json.dumps({"labels": [c.label for c in report.clusters], "js_divergence": report.js_divergence}))

    if args.store:
        from qdrant_client import models as qm

        from llm_observer.storage.vectors.store import open_vector_store

        with tempfile.TemporaryDirectory() as tmp:
            store = open_vector_store("qdrant", Path(tmp))
            try:
                store.ensure_collection("bench_prompts", base.shape[1])
                count = min(args.store, n)
                payloads = [
                    {
                        "trace_id": traces[i],
                        "span_id": ids[i],
                        "organization_id": "default",
                        "project_id": "default",
                        "kind": "prompt",
                        "time_unix": times[i] / 1e9,
                        "text": points.text[i],
                    }
                    for i in range(count)
                ]
                points_to_write = [
                    qm.PointStruct(id=i + 1, vector=vectors[i].tolist(), payload=payloads[i])
                    for i in range(count)
                ]
                measure(
                    f"write {count} points (local Qdrant)",
                    lambda: store.upsert("bench_prompts", points_to_write),
                )
                loaded, _ = measure(
                    f"scroll {count} points back (load_prompt_points)",
                    lambda: load_prompt_points(
                        store,
                        "bench_prompts",
                        "default",
                        "default",
                        start,
                        start + 7 * DAY,
                        max_prompts=count,
                    ),
                )
                print(json.dumps({"loaded": len(loaded)}))
            finally:
                store.close()
    print(json.dumps({"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
