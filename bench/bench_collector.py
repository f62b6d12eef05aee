"""Collector throughput, latency, memory and compression, end to end.

Starts ``llm-observer collector`` as a subprocess (WAL on, fsync on, chDB storage, GenAI span metrics),
then load-generator processes send realistic GenAI traces (5 spans per trace, ~1 KB spans with prompt
content, unique ids) over OTLP/gRPC:

1. peak: closed loop, several calls in flight per sender, for ``--seconds``; reports acked spans/s and
   stored spans/s (spans the ClickHouse exporter has delivered, from the collector's own counters);
2. half rate: an open loop at half the sustainable (stored) peak rate; reports p50 / p99 export latency.

Also: peak RSS of the collector process and the ClickHouse compression ratio of what was stored.

    .venv/bin/python bench/bench_collector.py [--seconds 20] [--senders 2] [--processors normalize,attribute,cost]

``--up`` measures ``llm-observer up`` as shipped instead: the default pipeline (every default processor, the
ClickHouse, span-metrics and vector exporters, Prometheus) and the query service, only the endpoints moved.
The load the speed goals are stated for is eight concurrent streams of 500-span requests, 200k spans:

    .venv/bin/python bench/bench_collector.py --up --senders 2 --inflight 4 --spans 200000

The peak phase also reports where the CPU went until the last span was stored (``cpu``: the collector's
cores, its CPU per stored span by thread (the stage, the exporters' pool, merges…), the load generator's, and the stored rate at which both would
fill every core). With ``--up``, ``--reads`` adds REST reads to the half-rate phase (the query service's
latency while spans are ingested; its result cache is off in ``--up`` runs).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import psutil
import yaml

from llm_observer.collector.testing import free_port, genai_request
from llm_observer.kernel.cpu import pool_name, process_cpu_seconds, thread_cpu_seconds

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _payloads(count: int, traces: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [genai_request(traces=traces, rng=rng).SerializeToString() for _ in range(count)]


def _sender(
    port: int, seconds: float, rate: float, inflight: int, traces: int, seed: int, budget: int, out: Any
) -> None:
    """Send for ``seconds`` (or until ``budget`` requests are sent, when not 0); ``rate`` requests/s (open
    loop) or as fast as acks allow when 0."""
    payloads = _payloads(64, traces, seed)
    spans = traces * 5
    latencies: list[float] = []
    acked = refused = 0
    lock = threading.Lock()
    slots = threading.Semaphore(inflight)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 << 20)])
    export = channel.unary_unary(EXPORT)
    start = time.perf_counter()
    cpu_start = time.process_time()  # the sending, not the interpreter's start-up and payload building
    deadline = start + seconds
    sent = 0

    def done(future: Any, began: float) -> None:
        nonlocal acked, refused
        elapsed = time.perf_counter() - began
        with lock:
            if future.exception() is None:
                acked += spans
                latencies.append(elapsed)
            else:
                refused += spans
        slots.release()

    while True:
        now = time.perf_counter()
        if now >= deadline or (budget and sent >= budget):
            break
        if rate:
            due = start + sent / rate
            if due > now:
                time.sleep(min(due - now, deadline - now))
                continue
        slots.acquire()
        began = time.perf_counter()
        future = export.future(payloads[sent % len(payloads)], timeout=30)
        future.add_done_callback(lambda f, b=began: done(f, b))
        sent += 1
    for _ in range(inflight):
        slots.acquire()
    channel.close()
    out.put(
        {
            "acked": acked,
            "refused": refused,
            "latencies": latencies,
            "elapsed": time.perf_counter() - start,
            "cpu_s": time.process_time() - cpu_start,
        }
    )


def _p99(ordered: list[float]) -> float:
    """The 99th percentile of ``ordered`` (sorted, not empty): the value 99% of them do not exceed."""
    return ordered[max(0, int(len(ordered) * 0.99) - 1)]


def _run_senders(
    port: int, senders: int, seconds: float, rate: float, inflight: int, traces: int, spans: int = 0
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue: Any = ctx.Queue()
    procs = [
        ctx.Process(
            target=_sender,
            args=(
                port,
                seconds,
                rate / senders,
                inflight,
                traces,
                i,
                -(-spans // (senders * traces * 5)),
                queue,
            ),
        )
        for i in range(senders)
    ]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    latencies = sorted(x for r in results for x in r["latencies"])
    elapsed = max(r["elapsed"] for r in results)
    acked = sum(r["acked"] for r in results)
    return {
        "acked_spans": acked,
        "refused_spans": sum(r["refused"] for r in results),
        "elapsed_s": round(elapsed, 2),
        "acked_spans_per_s": round(acked / elapsed),
        "latency_ms_p50": round(1000 * statistics.median(latencies), 2) if latencies else None,
        "latency_ms_p99": round(1000 * _p99(latencies), 2) if latencies else None,
        "senders_cpu_s": sum(r["cpu_s"] for r in results),
    }


def _metric(port: int, name: str, labels: str = "") -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (not labels or labels in line):
            match = re.search(r" ([0-9.e+]+)$", line)
            if match:
                total += float(match.group(1))
    return total


def _vector_lag(prom_port: int, accepted: float, started: float, acked_after: float) -> dict[str, Any]:
    """How long after the last ack the vector exporter caught up (or gave up, within two minutes)."""
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        if _metric(prom_port, "llm_observer_spans_exported_total", 'exporter="vectors"') >= accepted:
            return {"caught_up_after_last_ack_s": round(time.perf_counter() - started - acked_after, 1)}
        time.sleep(0.5)
    done = _metric(prom_port, "llm_observer_spans_exported_total", 'exporter="vectors"')
    return {"caught_up_after_last_ack_s": None, "spans_done_after_120_s": int(done)}


def _dir_bytes(root: Path) -> int:
    """Bytes under the data dir, less the embedding model copied there and the benchmark's own files."""
    total = 0
    for path in root.rglob("*"):
        if path.is_file() and "models" not in path.relative_to(root).parts[:1]:
            total += path.stat().st_size
    return total - sum(p.stat().st_size for p in (root / "bench.yaml", root / "collector.log") if p.exists())


def _cpu_by_thread(pid: int) -> tuple[float, dict[str, float]]:
    """The process's CPU seconds (threads that have exited included) and its live threads' by thread name,
    the threads of one pool together (``asyncio_0``, ``asyncio_1``… as ``asyncio``). The collector names its
    interpreter threads (``llm_observer.kernel.threads``): the event loop keeps the executable's name
    (``python``), ``stage-<pipeline>`` decodes and processes, ``asyncio`` is the pool the exporters convert and
    insert in (with the engine work an insert calls into, such as parsing its Arrow stream), ``embed-<id>``
    runs the embedding model, ``wal-writer`` writes and syncs the WAL; chDB's own threads are named for their
    pool (``MergeMutate`` for merges, ``ThreadPool`` for its query pool)."""
    total = process_cpu_seconds(pid)
    if total is None:
        raise SystemExit("the CPU by thread needs /proc (Linux)")
    by_name: dict[str, float] = {}
    for raw_name, cpu in thread_cpu_seconds(pid).values():
        name = pool_name(raw_name)
        by_name[name] = by_name.get(name, 0.0) + cpu
    return total, by_name


def _cpu_per_span(
    before: tuple[float, dict[str, float]],
    after: tuple[float, dict[str, float]],
    window_s: float,
    spans: int,
    senders_cpu_s: float,
) -> dict[str, Any]:
    """Where the CPU of storing ``spans`` went, in µs per span, and the stored rate it allows on this machine.

    ``machine_bound_spans_per_s`` is the rate at which the collector and the load generator together would
    keep every core busy: the ceiling the stored rate can reach with this CPU per span."""
    total = after[0] - before[0]
    names = {
        name: cpu - before[1].get(name, 0.0)
        for name, cpu in after[1].items()
        if cpu - before[1].get(name, 0.0) > 0
    }
    listed = dict(sorted(names.items(), key=lambda kv: -kv[1])[:8])
    per_span = 1e6 / max(1, spans)
    by_thread = {name: round(cpu * per_span, 1) for name, cpu in listed.items()}
    by_thread["other (and exited threads)"] = round((total - sum(listed.values())) * per_span, 1)
    collector_us, senders_us = total * per_span, senders_cpu_s * per_span
    return {
        "collector_cores": round(total / window_s, 2),
        "collector_us_per_span": round(collector_us, 1),
        "collector_by_thread_us_per_span": by_thread,
        "senders_us_per_span": round(senders_us, 1),
        "machine_bound_spans_per_s": round((os.cpu_count() or 1) * 1e6 / (collector_us + senders_us)),
    }


def _maps_file(pid: int, part: str) -> bool:
    """Whether process ``pid`` maps a file whose path contains ``part``."""
    return part in Path(f"/proc/{pid}/maps").read_text()


def _memory_parts(port: int) -> dict[str, int]:
    """``llm_observer_memory_bytes{part}`` in MB, as the collector reports it."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    parts = {}
    for line in text.splitlines():
        match = re.match(r'llm_observer_memory_bytes\{part="([a-z_]+)"\} ([0-9.e+]+)$', line)
        if match:
            parts[match.group(1)] = round(float(match.group(2)) / 1e6)
    return parts


class _RssSampler(threading.Thread):
    def __init__(self, pid: int, prom_port: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.prom_port = prom_port
        self.peak = 0
        self.peak_private = 0  # anonymous RSS: RSS less mapped files (chDB's engine library is ~370 MB)
        self.parts_at_peak: dict[str, int] = {}  # the collector's own breakdown, read about once a second
        self.stop = threading.Event()

    def run(self) -> None:
        last_parts = 0.0
        while not self.stop.is_set():
            if time.monotonic() - last_parts > 1.0:
                last_parts = time.monotonic()
                try:
                    parts = _memory_parts(self.prom_port)
                except OSError:
                    parts = {}
                if parts.get("rss_anonymous", 0) + parts.get("rss_file", 0) >= sum(
                    self.parts_at_peak.get(k, 0) for k in ("rss_anonymous", "rss_file")
                ):
                    self.parts_at_peak = parts
            try:
                rss = self.proc.memory_info().rss
                status = Path(f"/proc/{self.proc.pid}/status").read_text()
            except (psutil.Error, OSError):
                return
            anon = next(
                (int(ln.split()[1]) * 1024 for ln in status.splitlines() if ln.startswith("RssAnon:")), 0
            )
            self.peak = max(self.peak, rss)
            self.peak_private = max(self.peak_private, anon)
            time.sleep(0.1)


class _ReadProbe(threading.Thread):
    """What a user of the query service waits for while spans are ingested: the trace list and the metrics
    summary of the last 24 hours through REST, one request at a time, every 100 ms."""

    READS = {"traces": "/api/v1/traces?limit=20", "summary": "/api/v1/metrics/summary"}

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.latencies: dict[str, list[float]] = {name: [] for name in self.READS}
        self.failed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for name, path in self.READS.items():
                began = time.perf_counter()
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30).read()
                except OSError:
                    self.failed += 1
                    continue
                self.latencies[name].append(time.perf_counter() - began)
            self.stop.wait(0.1)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"failed": self.failed}
        for name, values in self.latencies.items():
            values = sorted(values)
            if values:
                out[name] = {
                    "n": len(values),
                    "p50_ms": round(1000 * statistics.median(values), 1),
                    "p99_ms": round(1000 * _p99(values), 1),
                    "max_ms": round(1000 * values[-1], 1),
                }
        return out


def _collector_config(args: argparse.Namespace, grpc_port: int, prom_port: int) -> str:
    return yaml.safe_dump(
        {
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"127.0.0.1:{grpc_port}", "max_recv_msg_size_mib": 64},
                        "http": {"enabled": False},
                    }
                }
            },
            "exporters": {"prometheus": {"endpoint": f"127.0.0.1:{prom_port}"}},
            "service": {
                "wal": {"mode": args.wal},
                "telemetry": {"logs": {"level": "warning"}},
                "pipelines": {
                    "traces": {
                        "receivers": ["otlp"],
                        "processors": [p for p in args.processors.split(",") if p],
                        # spanmetrics derives the GenAI metrics prometheus serves, as by default.
                        "exporters": ["clickhouse", "spanmetrics"],
                    }
                },
            },
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--inflight", type=int, default=8, help="calls in flight per sender (peak phase)")
    parser.add_argument("--traces-per-request", type=int, default=100)
    parser.add_argument("--processors", default="", help="comma-separated, e.g. normalize,attribute,cost")
    parser.add_argument("--wal", choices=["disk", "memory"], default="disk")
    parser.add_argument("--skip-half-rate", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--up", action="store_true", help="measure `llm-observer up` as shipped")
    parser.add_argument(
        "--max-batch-mib",
        type=float,
        default=0,
        help="with --up: service.delivery.max_batch_mib (0: the default)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the data dir (printed) instead of deleting it"
    )
    parser.add_argument(
        "--spans", type=int, default=0, help="stop the peak phase after this many spans (0: after --seconds)"
    )
    parser.add_argument(
        "--reads",
        action="store_true",
        help="with --up: during the half-rate phase also read the trace list and the metrics summary through "
        "REST, one request every 100 ms, and report their latency (the load of goal 2 has no reads)",
    )
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="llm-observer-bench-"))
    grpc_port, prom_port, query_port = free_port(), free_port(), free_port()
    config = data_dir / "bench.yaml"
    if args.up:
        # Only the endpoints move: merged over the built-in default, the pipeline stays ``up``'s.
        config.write_text(
            yaml.safe_dump(
                {
                    "receivers": {
                        "otlp": {
                            "protocols": {
                                "grpc": {"endpoint": f"127.0.0.1:{grpc_port}", "max_recv_msg_size_mib": 64},
                                "http": {"endpoint": f"127.0.0.1:{free_port()}"},
                            }
                        }
                    },
                    "exporters": {"prometheus": {"endpoint": f"127.0.0.1:{prom_port}"}},
                    "query": {
                        "http": {"endpoint": f"127.0.0.1:{query_port}"},
                        "grpc": {"endpoint": f"127.0.0.1:{free_port()}"},
                        # The reads made during the half-rate phase reach the store, not the result cache.
                        "cache_ttl_seconds": 0,
                    },
                    "service": {
                        "telemetry": {"logs": {"level": "warning"}},
                        **({"delivery": {"max_batch_mib": args.max_batch_mib}} if args.max_batch_mib else {}),
                    },
                }
            )
        )
    else:
        config.write_text(_collector_config(args, grpc_port, prom_port))
    log = (data_dir / "collector.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llm_observer.collector.cli",
            "up" if args.up else "collector",
            "--config",
            str(config),
            "--data-dir",
            str(data_dir),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    sampler = _RssSampler(proc.pid, prom_port)
    results: dict[str, Any] = {
        "processors": "up's default pipeline" if args.up else args.processors or "none",
        "wal": args.wal,
        "cpus": os.cpu_count(),
        "data_dir": str(data_dir),
    }
    try:
        deadline = time.time() + 60
        while True:
            try:
                _metric(prom_port, "llm_observer_spans_accepted_total")
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise SystemExit(
                        "collector did not start; see " + str(data_dir / "collector.log")
                    ) from None
                time.sleep(0.2)
        sampler.start()
        cpu_before = _cpu_by_thread(proc.pid)
        started = time.perf_counter()
        peak = _run_senders(
            grpc_port, args.senders, args.seconds, 0, args.inflight, args.traces_per_request, args.spans
        )
        accepted = _metric(prom_port, "llm_observer_spans_accepted_total")
        while _metric(prom_port, "llm_observer_spans_exported_total", 'exporter="clickhouse"') < accepted:
            time.sleep(0.1)
        stored_elapsed = time.perf_counter() - started
        peak["stored_spans_per_s"] = round(accepted / stored_elapsed)
        # WAL records an exporter decoded and processed again because the ring had moved past them: work
        # that costs the stage's CPU twice (0 when every exporter kept up with the ring).
        peak["records_reprocessed"] = int(
            _metric(prom_port, "llm_observer_component_events_total", 'event="records_reprocessed"')
        )
        # Up to the last span stored (merges and the vector exporter may still run after it).
        peak["cpu"] = _cpu_per_span(
            cpu_before, _cpu_by_thread(proc.pid), stored_elapsed, int(accepted), peak.pop("senders_cpu_s")
        )
        if args.up:
            peak["vectors"] = _vector_lag(prom_port, accepted, started, peak["elapsed_s"])
        results["peak"] = peak
        if not args.skip_half_rate:
            # Half the sustainable rate: what storage keeps up with, not the burst the WAL absorbs.
            sustained = min(peak["acked_spans_per_s"], peak["stored_spans_per_s"])
            rate = sustained / 2 / (args.traces_per_request * 5)
            reads = _ReadProbe(query_port) if args.up and args.reads else None
            if reads is not None:
                reads.start()
            results["half_rate"] = _run_senders(
                grpc_port, args.senders, args.seconds, rate, 64, args.traces_per_request
            )
            if reads is not None:
                reads.stop.set()
                reads.join()
                results["half_rate"]["reads"] = reads.summary()
            results["half_rate"].pop("senders_cpu_s")
        results["peak_rss_mb"] = round(sampler.peak / 1e6)
        results["peak_anon_rss_mb"] = round(sampler.peak_private / 1e6)
        results["memory_parts_mb_near_peak"] = sampler.parts_at_peak
        # pandas adds ~55 MB when anything loads it (see storage.clickhouse.pandas_check): it should not.
        results["pandas_loaded"] = _maps_file(proc.pid, "/pandas/")
    finally:
        sampler.stop.set()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=300)
    from llm_observer.storage.clickhouse.client import open_client

    client = open_client("chdb://clickhouse", data_dir)
    row = client.rows(
        "SELECT sum(data_compressed_bytes) AS c, sum(data_uncompressed_bytes) AS u, "
        # system.parts, not system.columns: compact parts report no size per column.
        "(SELECT count() FROM otel.otel_traces) AS n FROM system.parts "
        "WHERE active AND database = 'otel' AND table = 'otel_traces'"
    )[0]
    client.close()
    results["stored_rows"] = row["n"]
    results["disk_bytes_per_stored_span"] = round(_dir_bytes(data_dir) / max(1, row["n"]))
    results["compression_ratio"] = round(row["u"] / max(1, row["c"]), 1)
    if not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
