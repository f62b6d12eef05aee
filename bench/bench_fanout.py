"""What fan-out to Kafka and the scale-out path cost, against ClickHouse alone, in one run.

Three set-ups, each a fresh data dir, measured in alternating rounds under the same OTLP/gRPC load as
``bench_collector.py`` (WAL fsynced, chDB storage, GenAI span metrics for Prometheus):

1. ``clickhouse``: ``otlp -> clickhouse + spanmetrics`` (the single-node default, without vectors);
2. ``clickhouse+kafka``: the same pipeline with a ``kafka`` exporter beside ClickHouse;
3. ``edge->kafka->storage``: an edge collector (``otlp -> kafka``) and a storage collector (``kafka receiver ->
   clickhouse + spanmetrics``) as two processes, the scale-out path of the README's "Scaling out".

A real Kafka broker (KRaft, from the jars ``tests/support/kafka.py`` installs) runs on loopback throughout.
Reports acked spans/s (at the receiving collector) and stored spans/s (until the ClickHouse exporter has
delivered everything acknowledged), and the ratio of each set-up's stored rate to ClickHouse alone.

    .venv/bin/python bench/bench_fanout.py [--seconds 15] [--rounds 2] [--partitions 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_collector import _metric, _RssSampler, _run_senders

from llm_observer.collector.testing import free_port
from tests.support.kafka import KafkaBroker

_COMMAND = (sys.executable, "-m", "llm_observer.collector.cli", "collector")
SETUPS = ("clickhouse", "clickhouse+kafka", "edge->kafka->storage")


def _otlp(grpc_port: int) -> dict[str, Any]:
    return {
        "protocols": {
            "grpc": {"endpoint": f"127.0.0.1:{grpc_port}", "max_recv_msg_size_mib": 64},
            "http": {"enabled": False},
        }
    }


def _config(receivers: dict[str, Any], exporters: dict[str, Any], pipeline: dict[str, Any]) -> dict[str, Any]:
    return {
        "receivers": receivers,
        "exporters": exporters,
        "service": {
            "wal": {"mode": "disk"},
            "telemetry": {"logs": {"level": "warning"}},
            # Only the spans pipeline under test: no default logs or metrics pipelines, no vectors.
            "pipelines": {"traces": pipeline, "metrics/genai": None, "logs": None, "metrics/otlp": None},
        },
    }


class _Collector:
    def __init__(self, name: str, config: dict[str, Any], data_dir: Path, prom_port: int) -> None:
        self.prom_port = prom_port
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        self.log_path = data_dir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*_COMMAND, "--config", str(path), "--data-dir", str(data_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.time() + 90
        while True:
            try:
                _metric(prom_port, "llm_observer_spans_accepted_total")
                return
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"{name} collector did not start; see {self.log_path}") from None
                time.sleep(0.2)

    def metric(self, name: str, labels: str = "") -> float:
        return _metric(self.prom_port, name, labels)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _run(setup: str, broker: KafkaBroker, topic: str, args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="llm-observer-fanout-"))
    grpc_port = free_port()
    prom = {"endpoint": f"127.0.0.1:{free_port()}"}
    kafka = {"brokers": [broker.bootstrap], "topic": topic}
    storing = {"receivers": ["otlp"], "exporters": ["clickhouse", "spanmetrics"]}
    collectors: list[_Collector] = []
    try:
        if setup == "clickhouse":
            edge = _Collector(
                "single",
                _config({"otlp": _otlp(grpc_port)}, {"prometheus": prom}, storing),
                data_dir,
                int(prom["endpoint"].rsplit(":", 1)[1]),
            )
            collectors.append(edge)
            store = edge
        elif setup == "clickhouse+kafka":
            pipeline = {"receivers": ["otlp"], "exporters": ["clickhouse", "kafka", "spanmetrics"]}
            edge = _Collector(
                "single",
                _config({"otlp": _otlp(grpc_port)}, {"prometheus": prom, "kafka": kafka}, pipeline),
                data_dir,
                int(prom["endpoint"].rsplit(":", 1)[1]),
            )
            collectors.append(edge)
            store = edge
        else:
            edge_prom = {"endpoint": f"127.0.0.1:{free_port()}"}
            edge = _Collector(
                "edge",
                _config(
                    {"otlp": _otlp(grpc_port)},
                    {"prometheus": edge_prom, "kafka": kafka},
                    {"receivers": ["otlp"], "exporters": ["kafka"]},
                ),
                data_dir / "edge",
                int(edge_prom["endpoint"].rsplit(":", 1)[1]),
            )
            collectors.append(edge)
            receiver = {
                "brokers": [broker.bootstrap],
                "topic": topic,
                "group_id": f"bench-{os.getpid()}-{topic}",
            }
            store = _Collector(
                "storage",
                _config(
                    {"kafka": receiver, "otlp": _otlp(free_port())},
                    {"prometheus": prom},
                    {"receivers": ["kafka"], "exporters": ["clickhouse", "spanmetrics"]},
                ),
                data_dir / "storage",
                int(prom["endpoint"].rsplit(":", 1)[1]),
            )
            collectors.append(store)
        samplers = [_RssSampler(c.proc.pid, c.prom_port) for c in collectors]
        for sampler in samplers:
            sampler.start()
        started = time.perf_counter()
        peak = _run_senders(grpc_port, args.senders, args.seconds, 0, args.inflight, args.traces_per_request)
        acked = edge.metric("llm_observer_spans_accepted_total")
        deadline = time.time() + 600
        while store.metric("llm_observer_spans_exported_total", 'exporter="clickhouse"') < acked:
            if time.time() > deadline:
                raise SystemExit(f"{setup}: not everything acknowledged was stored within 10 minutes")
            time.sleep(0.1)
        stored_elapsed = time.perf_counter() - started
        for sampler in samplers:
            sampler.stop.set()
        return {
            "setup": setup,
            "acked_spans_per_s": peak["acked_spans_per_s"],
            "stored_spans_per_s": round(acked / stored_elapsed),
            "peak_rss_mb": [round(s.peak / 1e6) for s in samplers],
        }
    finally:
        for collector in collectors:
            collector.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the three set-ups")
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--inflight", type=int, default=8)
    parser.add_argument("--traces-per-request", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    setups = [s for s in args.setups.split(",") if s]
    runs: list[dict[str, Any]] = []
    broker_dir = Path(tempfile.mkdtemp(prefix="llm-observer-kafka-"))
    broker = KafkaBroker(broker_dir)
    broker.start()
    try:
        for round_no in range(args.rounds):
            for setup in setups:
                topic = f"bench_{round_no}_{SETUPS.index(setup)}"
                broker.create_topic(topic, args.partitions)
                result = _run(setup, broker, topic, args)
                print(json.dumps(result), flush=True)
                runs.append(result)
    finally:
        broker.stop()
        shutil.rmtree(broker_dir, ignore_errors=True)
    summary: dict[str, Any] = {"cpus": os.cpu_count(), "runs": runs, "median": {}}
    for setup in setups:
        mine = [r for r in runs if r["setup"] == setup]
        summary["median"][setup] = {
            "acked_spans_per_s": round(statistics.median(r["acked_spans_per_s"] for r in mine)),
            "stored_spans_per_s": round(statistics.median(r["stored_spans_per_s"] for r in mine)),
        }
    if "clickhouse" in summary["median"]:
        base = summary["median"]["clickhouse"]["stored_spans_per_s"]
        for figures in summary["median"].values():
            figures["stored_vs_clickhouse_alone"] = round(figures["stored_spans_per_s"] / base, 2)
    print(json.dumps(summary["median"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
