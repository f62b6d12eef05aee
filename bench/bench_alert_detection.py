"""Alert detection benchmark: precision, recall and time to detect on synthetic streams with labelled
incidents, and the budget forecast's error at mid-month.

Six services send model calls with a daily load (fewer calls at night, ±10% noise) into a chDB store in a
temporary directory, through the real ClickHouse exporter; four of them suffer labelled incidents during
the evaluated days:

* ``latency-svc`` — latency steps (3 times) for 40 minutes;
* ``errors-svc`` — error bursts (25% of calls fail) for 20 minutes;
* ``cost-svc`` — cost ramps (spend per call rising to 4 times over an hour);
* ``outage-svc`` — a model outage (every call fails at once), then one where the calls stop altogether;
* ``seasonal-svc`` and ``steady-svc`` — nothing but their daily load (no alert may fire on them).

A fixed set of rules (an error-rate threshold, robust and seasonal anomalies on latency, spend and volume)
is evaluated by the real ``Evaluator`` with an injected clock every ``--interval`` over the evaluated
days, after a warm-up day; alerts move through the real state machine (``transitions.advance``: ``for:``,
hysteresis). An incident is detected when an alert of its service fires between its start and ``--grace``
after its end; a firing is a true positive when it starts in such an interval of its own service.

Then the budget forecast: ``--months`` synthetic months (trend + weekly seasonality + 5% noise) forecast
from their first 15 days; the mean absolute percentage error of the month's total (goal ≤ 10%).

Usage: ``.venv/bin/python bench/bench_alert_detection.py [--days 2] [--interval 30] [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import TypeAdapter

from llm_observer.exporters.clickhouse import ClickHouseExporterConfig
from llm_observer.exporters.clickhouse import create as create_exporter
from llm_observer.kernel.batch import STATUS_ERROR, STATUS_OK, SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.query.alerting.config import Rule
from llm_observer.query.alerting.evaluate import Evaluator
from llm_observer.query.alerting.forecast import forecast_period_end
from llm_observer.query.alerting.model import Alert, fingerprint
from llm_observer.query.alerting.transitions import advance, vanished
from llm_observer.storage.clickhouse.alert_reads import AlertStore
from tests.support import add_span

S = 10**9
MINUTE = 60 * S
HOUR = 3600 * S
DAY = 86400 * S
WINDOW = 5 * MINUTE

RULES: list[dict[str, Any]] = [
    {
        "name": "HighErrorRate",
        "kind": "threshold",
        "measure": "error_rate",
        "window": "10m",
        "group_by": ["service"],
        "threshold": 0.15,
        "resolve_threshold": 0.05,
        "min_requests": 25,
        "for": "1m",
    },
    {
        "name": "LatencyAnomaly",
        "kind": "anomaly",
        "measure": "latency_p95",
        "window": "5m",
        "history": "1d",
        "group_by": ["service"],
        "sensitivity": 5,
        "min_requests": 10,
        "for": "2m",
    },
    {
        "name": "SpendAnomaly",
        "kind": "anomaly",
        "measure": "cost_per_hour",
        "window": "10m",
        "history": "2d",
        "baseline": "seasonal",
        "group_by": ["service"],
        "sensitivity": 5,
        "min_spread": 0.1,
        "min_requests": 10,
        "for": "2m",
    },
    {
        "name": "TrafficDrop",
        "kind": "anomaly",
        "measure": "request_count",
        "window": "10m",
        "history": "2d",
        "baseline": "seasonal",
        "direction": "down",
        "group_by": ["service"],
        "sensitivity": 5,
        "min_spread": 0.1,
        "min_requests": 20,
        "for": "2m",
    },
]


@dataclass(frozen=True)
class Incident:
    service: str
    kind: str
    start_ns: int
    end_ns: int


def incidents(start: int, days: int) -> list[Incident]:
    """Incidents spread over the evaluated days, at different hours (day and night)."""
    out = []
    for day in range(days):
        base = start + day * DAY
        out += [
            Incident(
                "latency-svc",
                "latency step",
                base + (3 + day * 7) * HOUR,
                base + (3 + day * 7) * HOUR + 40 * MINUTE,
            ),
            Incident(
                "errors-svc",
                "error burst",
                base + (9 + day * 5) * HOUR,
                base + (9 + day * 5) * HOUR + 20 * MINUTE,
            ),
            Incident("cost-svc", "cost ramp", base + (14 - day * 3) * HOUR, base + (15 - day * 3) * HOUR),
            Incident(
                "outage-svc",
                "model outage (errors)" if day % 2 == 0 else "model outage (no calls)",
                base + (19 - day * 4) * HOUR,
                base + (19 - day * 4) * HOUR + 30 * MINUTE,
            ),
        ]
    return out


SERVICES = ("latency-svc", "errors-svc", "cost-svc", "outage-svc", "seasonal-svc", "steady-svc")


def generate(begin: int, end: int, planned: list[Incident], seed: int = 3) -> SpanBatch:
    """Calls of every service over ``[begin, end)``, with the planned incidents."""
    rng = random.Random(seed)
    batch = SpanBatch(origin=f"bench-detection-{begin}")
    by_service: dict[str, list[Incident]] = {}
    for incident in planned:
        by_service.setdefault(incident.service, []).append(incident)
    n = 0
    for service in SERVICES:
        amplitude = 0.7 if service == "seasonal-svc" else 0.5
        for window in range(begin, end, WINDOW):
            hour = (window // HOUR) % 24 + (window % HOUR) / HOUR
            rate = 30 * (1 + amplitude * math.sin(2 * math.pi * (hour - 9) / 24))
            count = max(1, round(rate * rng.uniform(0.9, 1.1)))
            for i in range(count):
                start = window + int((i + rng.random()) * WINDOW / count)
                latency, error, cost = (
                    rng.uniform(80, 160),
                    rng.random() < 0.01,
                    0.002 * rng.uniform(0.8, 1.2),
                )
                skip = False
                for incident in by_service.get(service, ()):
                    if not incident.start_ns <= start < incident.end_ns:
                        continue
                    progress = (start - incident.start_ns) / (incident.end_ns - incident.start_ns)
                    if incident.kind == "latency step":
                        latency *= 3
                    elif incident.kind == "error burst":
                        error = rng.random() < 0.25
                    elif incident.kind == "cost ramp":
                        cost *= 1 + 3 * progress
                    elif incident.kind == "model outage (errors)":
                        error, latency = True, rng.uniform(5, 20)
                    else:
                        skip = True
                if skip:
                    continue
                n += 1
                add_span(
                    batch,
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": "gpt-4o",
                        "gen_ai.usage.input_tokens": 500,
                        "gen_ai.usage.output_tokens": 100,
                        "llm_observer.cost.usd": cost,
                    },
                    resource={"service.name": service, "llm_observer.organization.id": "org-bench"},
                    trace_id=n.to_bytes(16, "big"),
                    span_id=n.to_bytes(8, "big"),
                    start=start,
                    end=start + int(latency * 1e6),
                    status_code=STATUS_ERROR if error else STATUS_OK,
                )
    return batch


async def write(data_dir: Path, batch: SpanBatch) -> Any:
    ctx = CreateContext("clickhouse", data_dir, Telemetry(), logging.getLogger("bench.detection"))
    exporter = create_exporter(ctx, ClickHouseExporterConfig())
    await exporter.start()
    chunk = 100_000
    for offset in range(0, len(batch), chunk):
        part = SpanBatch(origin=f"{batch.origin}-{offset}")
        for column, cells in part.columns():
            cells.extend(getattr(batch, column)[offset : offset + chunk])
        await exporter.send(part)
    return exporter


def detection(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    rules = [TypeAdapter(Rule).validate_python(spec) for spec in RULES]
    by_name = {rule.name: rule for rule in rules}
    now = time.time_ns()
    eval_start = (now - args.days * DAY - 6 * HOUR) // HOUR * HOUR
    eval_end = eval_start + args.days * DAY
    data_start = eval_start - args.warmup_days * DAY
    planned = incidents(eval_start, args.days)
    began = time.perf_counter()
    batch = generate(data_start, eval_end, planned)
    exporter = asyncio.run(write(data_dir, batch))
    print(f"wrote {len(batch):,} spans in {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
    try:
        client = exporter.client
        evaluator = Evaluator(AlertStore(client, "otel"), evaluation_delay_s=0)
        alerts: dict[str, Alert] = {}
        firings: list[tuple[str, str, int]] = []  # (rule, service, fired at)
        step = int(args.interval * S)
        rounds, errors, eval_seconds = 0, 0, 0.0
        for moment in range(eval_start, eval_end, step):
            t0 = time.perf_counter()
            evaluation = evaluator.evaluate(rules, moment)
            eval_seconds += time.perf_counter() - t0
            rounds += 1
            errors += len(evaluation.errors)
            seen = set()
            for sample in evaluation.samples:
                fp = fingerprint(sample.labels)
                seen.add(fp)
                before = alerts.get(fp)
                after = advance(before, sample, by_name[sample.rule], moment)
                if after is None:
                    alerts.pop(fp, None)
                    continue
                if after.state == "firing" and (before is None or before.state != "firing"):
                    firings.append((after.rule, after.labels.get("service", ""), moment))
                alerts[fp] = after
            for fp in [fp for fp in alerts if fp not in seen]:
                gone = vanished(alerts[fp], by_name.get(alerts[fp].rule), moment)
                if gone is None:
                    del alerts[fp]
                else:
                    alerts[fp] = gone
    finally:
        asyncio.run(exporter.shutdown())
    grace = int(args.grace * S)
    detected: dict[Incident, int] = {}
    true_positive = 0
    for _rule, service, at in firings:
        hit = [i for i in planned if i.service == service and i.start_ns <= at <= i.end_ns + grace]
        if hit:
            true_positive += 1
            for incident in hit:
                detected.setdefault(incident, at)
    precision = true_positive / len(firings) if firings else 1.0
    recall = len(detected) / len(planned)
    ttd = [(at - incident.start_ns) / S for incident, at in detected.items()]
    print()
    print(f"{'incident':<26} {'service':<14} {'detected':>9} {'time to detect':>15}  rules")
    for incident in planned:
        at = detected.get(incident)
        rules_fired = sorted(
            {
                r
                for r, s, t in firings
                if s == incident.service and incident.start_ns <= t <= incident.end_ns + grace
            }
        )
        ttd_text = f"{(at - incident.start_ns) / S:,.0f} s" if at is not None else "-"
        print(
            f"{incident.kind:<26} {incident.service:<14} {'yes' if at is not None else 'NO':>9} {ttd_text:>15}  "
            f"{', '.join(rules_fired)}"
        )
    false = [
        (r, s, t)
        for r, s, t in firings
        if not any(i.service == s and i.start_ns <= t <= i.end_ns + grace for i in planned)
    ]
    seasonal_pages = [f for f in firings if f[1] in ("seasonal-svc", "steady-svc")]
    print()
    print(f"firings {len(firings)}, true {true_positive}, false {len(false)}: {false[:5]}")
    print(f"precision {precision:.3f}   recall {recall:.3f}   (goal >= 0.9 both)")
    print(
        f"mean time to detect {statistics.fmean(ttd) if ttd else float('nan'):,.0f} s, "
        f"median {statistics.median(ttd) if ttd else float('nan'):,.0f} s"
    )
    print(f"firings on the seasonal-only / steady streams: {len(seasonal_pages)} (goal 0)")
    print(
        f"{rounds} evaluations of {len(rules)} rules every {args.interval:g} s, "
        f"{eval_seconds / rounds * 1000:.1f} ms each on average, {errors} rule errors"
    )
    return {
        "spans": len(batch),
        "incidents": len(planned),
        "firings": len(firings),
        "precision": precision,
        "recall": recall,
        "mean_time_to_detect_s": statistics.fmean(ttd) if ttd else None,
        "seasonal_firings": len(seasonal_pages),
        "rounds": rounds,
        "mean_eval_ms": eval_seconds / rounds * 1000,
    }


def forecast_error(months: int, seed: int = 17) -> dict[str, Any]:
    """MAPE of the period-end forecast at mid-month (15 complete days) on synthetic months."""
    rng = random.Random(seed)
    weekly = (1.0, 1.05, 1.1, 1.05, 1.0, 0.55, 0.45)
    errors, covered = [], 0
    for _ in range(months):
        days, first = rng.choice((28, 30, 31)), rng.randrange(7)
        base, trend = rng.uniform(20, 500), rng.uniform(-0.01, 0.04)
        month = [
            base * (1 + trend * t) * weekly[(first + t) % 7] * (1 + rng.gauss(0, 0.05)) for t in range(days)
        ]
        forecast = forecast_period_end(month[:15], days, first_weekday=first)
        truth = math.fsum(month)
        errors.append(abs(forecast.total - truth) / truth)
        covered += forecast.low <= truth <= forecast.high
    mape = statistics.fmean(errors)
    print()
    print(
        f"budget forecast at mid-month over {months} synthetic months: MAPE {mape * 100:.2f}% (goal <= 10%), "
        f"p95 error {sorted(errors)[int(0.95 * (len(errors) - 1))] * 100:.2f}%, "
        f"90% interval covers the truth in {covered / months * 100:.0f}%"
    )
    return {"months": months, "mape": mape, "interval_coverage": covered / months}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2, help="evaluated days (after the warm-up)")
    parser.add_argument("--warmup-days", type=int, default=2, help="days of history before the evaluation")
    parser.add_argument("--interval", type=float, default=30.0, help="evaluation interval, seconds")
    parser.add_argument(
        "--grace", type=float, default=600.0, help="seconds after an incident a detection counts"
    )
    parser.add_argument("--months", type=int, default=1000, help="synthetic months for the forecast error")
    parser.add_argument("--quick", action="store_true", help="one evaluated day, every 60 s, 200 months")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    if args.quick:
        args.days, args.interval, args.months = 1, 60.0, 200
    logging.basicConfig(level=logging.ERROR)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-alert-detection-"))
    try:
        results = {"detection": detection(args, data_dir), "forecast": forecast_error(args.months)}
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
