"""Memory and speed of the bundled embedding model: fastembed's session against ``BundledModel``.

Each runner is measured in a fresh subprocess (so one's allocations do not hide the other's): anonymous RSS
after loading, and its peak after embedding ``--texts`` prompts of realistic lengths (a few words to ~2,000
characters, cut at 128 word pieces) in batches of 16 on one thread, with texts/s; rounds alternate.

    .venv/bin/python bench/bench_embed_memory.py [--texts 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = [
    "refund",
    "order",
    "shipping",
    "invoice",
    "account",
    "password",
    "reset",
    "the",
    "a",
    "of",
    "to",
    "and",
    "my",
    "your",
    "please",
    "help",
    "with",
    "summarise",
    "translate",
    "explain",
    "code",
    "error",
    "python",
    "function",
    "customer",
    "ticket",
    "billing",
    "plan",
    "upgrade",
]


def _anon_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _peak_anon_mb() -> float:
    # VmHWM is peak RSS (file + anonymous); the anonymous part is what the runner allocates.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(runner: str, texts: int, models: Path) -> None:
    from llm_observer.storage.vectors import embed as E

    rng = random.Random(7)
    prompts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 350))) for _ in range(texts)]
    before = _anon_mb()
    folder = E.prepare_bundled_model(models)
    if runner == "fastembed":
        from fastembed import TextEmbedding

        E._register_bundled_model()
        model: object = TextEmbedding(
            model_name=E.BUNDLED_MODEL,
            cache_dir=str(models / "fastembed"),
            threads=1,
            specific_model_path=str(folder),
            local_files_only=True,
        )
    else:
        from llm_observer.storage.vectors.onnx_model import BundledModel

        model = BundledModel(folder, E.BUNDLED_MODEL_DIM, threads=1)
    loaded = _anon_mb()
    began = time.perf_counter()
    vectors = list(model.embed(prompts, batch_size=16))  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - began
    print(
        json.dumps(
            {
                "load_mb": round(loaded - before),
                "after_embedding_mb": round(_anon_mb() - before),
                "peak_rss_mb": round(_peak_anon_mb()),
                "texts_per_s": round(len(vectors) / elapsed, 1),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=("fastembed", "bundled"), help=argparse.SUPPRESS)
    parser.add_argument("--models", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.texts, args.models)
        return
    models = Path(tempfile.mkdtemp(prefix="llm-observer-embed-mem-"))
    results: dict[str, list[dict[str, float]]] = {"fastembed": [], "bundled": []}
    try:
        for _ in range(args.rounds):
            for runner in results:
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        runner,
                        "--texts",
                        str(args.texts),
                        "--models",
                        str(models),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                results[runner].append(json.loads(out.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(models, ignore_errors=True)
    summary = {
        runner: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for runner, runs in results.items()
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
