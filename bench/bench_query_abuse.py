"""Hostile-client benchmark: what a login flood and a crowd of live tails cost everybody else.

Starts ``llm-observer up`` in a subprocess (auth on: one API key, one user with the default PBKDF2 cost; a
``traces`` pipeline into ClickHouse), then measures, from this process:

* ``login``: OTLP/HTTP export latency (one small request at a time) alone, then while ``--login-clients``
  clients post wrong passwords to ``/api/v1/auth/login`` as fast as they are answered. Reports both medians,
  their ratio, and how the logins were answered (401 / 429 …). ``--flood-health`` floods ``/health``
  instead: the cost of any request flood on the same port, for comparison.
* ``tail``: ``GET /api/v1/traces`` latency alone, then with ``--tails`` Server-Sent-Events tails open on
  ``/api/v1/tail`` (each with its own filter when ``--distinct-filters``) while spans keep arriving. Reports
  both medians, their ratio, how the tails were answered (200 / 429) and the service's resident memory.

Usage: ``python bench/bench_query_abuse.py [--phase login|tail|both] [--seconds 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from llm_observer.collector.testing import genai_request
from llm_observer.kernel.auth import hash_api_key, hash_password

KEY = "bench-abuse-key"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(ports: dict[str, int]) -> dict[str, Any]:
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"127.0.0.1:{ports['otlp_grpc']}"},
                    "http": {"endpoint": f"127.0.0.1:{ports['otlp_http']}"},
                }
            }
        },
        "exporters": {"prometheus": {"endpoint": f"127.0.0.1:{ports['prometheus']}"}},
        "service": {"pipelines": {"traces": {"exporters": ["clickhouse"]}}},
        "query": {
            "http": {"endpoint": f"127.0.0.1:{ports['http']}"},
            "grpc": {"endpoint": f"127.0.0.1:{ports['grpc']}"},
            "vectors": {"enabled": False},
        },
        "auth": {
            "enabled": True,
            "api_keys": [{"id": "bench", "key_sha256": hash_api_key(KEY), "organization_id": "acme"}],
            "users": [
                {"username": "alice", "password_hash": hash_password("right"), "organization_id": "acme"}
            ],
            "jwt_secret": "b" * 40,
        },
    }


def _rss_mib(pid: int) -> float:
    total = 0
    for child in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


async def _latency(call: Any, seconds: float) -> list[float]:
    out = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        await call()
        out.append((time.perf_counter() - began) * 1000)
    return out


def _describe(name: str, alone: list[float], loaded: list[float]) -> dict[str, Any]:
    a, b = statistics.median(alone), statistics.median(loaded)
    return {
        f"{name}_alone_ms_p50": round(a, 1),
        f"{name}_loaded_ms_p50": round(b, 1),
        f"{name}_loaded_ms_max": round(max(loaded), 1),
        f"{name}_ratio": round(b / a, 1),
    }


async def _login_phase(
    http: httpx.AsyncClient, otlp: httpx.AsyncClient, clients: int, seconds: float, health: bool
) -> Any:
    payload = genai_request(1, 2).SerializeToString()
    headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {KEY}"}

    async def export() -> None:
        response = await otlp.post("/v1/traces", content=payload, headers=headers)
        assert response.status_code == 200, response.text

    alone = await _latency(export, seconds)
    answers: Counter[int] = Counter()
    stop = asyncio.Event()

    async def flood(n: int) -> None:
        async with httpx.AsyncClient(base_url=str(http.base_url), timeout=60) as own:
            while not stop.is_set():
                body = {"username": random.choice(["alice", f"nobody-{n}"]), "password": "wrong"}
                try:
                    if health:
                        response = await own.get("/health")
                    else:
                        response = await own.post("/api/v1/auth/login", json=body)
                    answers[response.status_code] += 1
                except httpx.HTTPError:
                    answers[0] += 1

    tasks = [asyncio.create_task(flood(n)) for n in range(clients)]
    await asyncio.sleep(1)
    loaded = await _latency(export, seconds)
    stop.set()
    await asyncio.gather(*tasks)
    return {**_describe("otlp_export", alone, loaded), "login_answers": dict(answers)}


async def _tail_phase(
    http: httpx.AsyncClient, otlp: httpx.AsyncClient, tails: int, distinct: bool, seconds: float, pid: int
) -> Any:
    headers = {"Authorization": f"Bearer {KEY}"}
    payload = genai_request(5, 4).SerializeToString()
    for _ in range(20):
        await otlp.post(
            "/v1/traces", content=payload, headers={**headers, "Content-Type": "application/x-protobuf"}
        )

    async def search() -> None:
        response = await http.get("/api/v1/traces", headers=headers, params={"limit": 50})
        assert response.status_code == 200, response.text

    alone = await _latency(search, seconds)
    rss_before = _rss_mib(pid)
    answers: Counter[int] = Counter()
    stop = asyncio.Event()

    async def tail(n: int) -> None:
        params = {"q": f"needle-{n}"} if distinct else {}
        async with httpx.AsyncClient(base_url=str(http.base_url), timeout=None) as own:
            try:
                async with own.stream("GET", "/api/v1/tail", headers=headers, params=params) as response:
                    answers[response.status_code] += 1
                    if response.status_code != 200:
                        return
                    async for _ in response.aiter_raw():
                        if stop.is_set():
                            return
            except httpx.HTTPError:
                answers[0] += 1

    async def feed() -> None:
        while not stop.is_set():
            await otlp.post(
                "/v1/traces",
                content=genai_request(5, 4).SerializeToString(),
                headers={**headers, "Content-Type": "application/x-protobuf"},
            )
            await asyncio.sleep(0.2)

    tasks = [asyncio.create_task(tail(n)) for n in range(tails)]
    feeder = asyncio.create_task(feed())
    await asyncio.sleep(3)
    loaded = await _latency(search, seconds)
    rss_loaded = _rss_mib(pid)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, feeder, return_exceptions=True)
    return {
        **_describe("traces_search", alone, loaded),
        "tail_answers": dict(answers),
        "rss_mib_before": round(rss_before),
        "rss_mib_with_tails": round(rss_loaded),
    }


async def _run(args: argparse.Namespace, ports: dict[str, int], pid: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['http']}", timeout=120) as http,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['otlp_http']}", timeout=120) as otlp,
    ):
        deadline = time.monotonic() + 120
        while True:
            try:
                if (await http.get("/health")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the service did not come up")
            await asyncio.sleep(0.2)
        if args.phase in ("login", "both"):
            results["login"] = await _login_phase(
                http, otlp, args.login_clients, args.seconds, args.flood_health
            )
        if args.phase in ("tail", "both"):
            results["tail"] = await _tail_phase(
                http, otlp, args.tails, args.distinct_filters, args.seconds, pid
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--phase", choices=["login", "tail", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--login-clients", type=int, default=32)
    parser.add_argument("--tails", type=int, default=40)
    parser.add_argument("--distinct-filters", action="store_true", help="every tail with its own filter")
    parser.add_argument(
        "--flood-health",
        action="store_true",
        help="login phase: flood GET /health instead (what any request flood costs, for comparison)",
    )
    args = parser.parse_args()
    names = ("otlp_grpc", "otlp_http", "prometheus", "http", "grpc")
    ports = {name: _port() for name in names}
    workdir = Path(tempfile.mkdtemp(prefix="bench-abuse-"))
    config = workdir / "config.yaml"
    config.write_text(json.dumps(_config(ports)))
    command = [
        str(Path(sys.executable).with_name("llm-observer")),
        "up",
        "--config",
        str(config),
        "--data-dir",
        str(workdir / "data"),
    ]
    log = (workdir / "service.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        results = asyncio.run(_run(args, ports, process.pid))
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
