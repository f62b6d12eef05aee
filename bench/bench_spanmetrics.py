"""Benchmark of the ``spanmetrics`` connector's aggregation (``GenAIMetrics.observe``) on the batches
``up`` delivers to it: ``bench_arrow``'s generated GenAI requests run through ``up``'s default trace
processors. CPU time per span, best of ``--rounds``, each round observing every batch three times into a
fresh aggregate; also the label sets and the size of the exposition it then renders.

    .venv/bin/python bench/bench_spanmetrics.py [--batch 9000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import gc
import json
import time

from bench_arrow import _processed_batches
from prometheus_client.exposition import generate_latest

from llm_observer.exporters.spanmetrics import GenAIMetrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=9_000, help="spans per batch")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    batches = _processed_batches(args.batch, 4)
    spans = sum(map(len, batches))
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)  # as ``llm-observer collector`` and ``up`` run
    best = float("inf")
    for _ in range(args.rounds):
        metrics = GenAIMetrics(5_000, 1_000)
        started = time.process_time()
        for _ in range(3):
            for batch in batches:
                metrics.observe(batch)
        best = min(best, (time.process_time() - started) / (3 * spans) * 1e6)
    print(
        json.dumps(
            {
                "observe_us_per_span": round(best, 2),
                "label_sets": len(metrics._durations),
                "exposition_bytes": len(generate_latest(metrics)),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
