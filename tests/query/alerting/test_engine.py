"""The alert engine over a real chDB store filled with synthetic model calls, time driven by an injected
clock: a latency step goes pending → firing → resolved, states are persisted every round, and an evaluation
that fails neither stops the loop nor loses a firing alert."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.query.alerting.db import StateDb
from llm_observer.query.alerting.state import AlertStateStore
from llm_observer.storage.clickhouse.client import open_client
from tests.query.alerting.engine_support import (
    MINUTE,
    Clock,
    Ticks,
    alerting_config,
    calls,
    make_alerting,
    minute_floor,
    open_store,
    sample_value,
    start_webhook,
    write,
)
from tests.support.waiting import wait_for

SLOW_RULE = {
    "name": "SlowProvider",
    "kind": "threshold",
    "measure": "latency_p95",
    "window": "1m",
    "group_by": ["provider"],
    "op": ">",
    "threshold": 1000,
    "labels": {"severity": "page"},
}


async def latency_step(data_dir: Path, base: int) -> None:
    """Calls every 10 s from base-10m to base+12m, 2 s long during [base, base+5m), 200 ms otherwise."""
    exporter = await open_store(data_dir)
    try:
        batch = SpanBatch()
        calls(batch, start_ns=base - 10 * MINUTE, end_ns=base, latency_ms=200)
        calls(batch, start_ns=base, end_ns=base + 5 * MINUTE, latency_ms=2000)
        calls(batch, start_ns=base + 5 * MINUTE, end_ns=base + 12 * MINUTE, latency_ms=200)
        await write(exporter, batch)
    finally:
        await exporter.shutdown()


async def test_engine_latency_step_pending_firing_resolved(tmp_path: Path) -> None:
    base = minute_floor(time.time_ns()) - 120 * MINUTE
    await latency_step(tmp_path, base)
    clock = Clock(base)
    telemetry = Telemetry()
    service = make_alerting(
        tmp_path, alerting_config(rules=[{**SLOW_RULE, "for": "2m"}]), clock, Ticks(), telemetry
    )
    await service.start()
    try:
        engine = service.engine
        assert engine is not None
        seen = []
        for minute in range(1, 8):
            clock.now_ns = base + minute * MINUTE
            await engine.run_once(clock.now_ns)
            alerts = service.alerts(None)
            seen.append(alerts[0].state if alerts else "none")
            if minute == 4:
                (firing,) = alerts
                assert firing.labels == {
                    "alertname": "SlowProvider",
                    "organization_id": "org-a",
                    "provider": "openai",
                    "severity": "page",
                }
                assert firing.active_since_ns == base + MINUTE and firing.fired_at_ns == base + 3 * MINUTE
                assert firing.value == pytest.approx(2000, rel=0.01)
                assert "provider=openai" in firing.generator_url and "start_time=" in firing.generator_url
                assert sample_value(telemetry, "llm_observer_alerts", {"state": "firing"}) == 1
                # Written to the state file before the dispatcher was told.
                db = StateDb(service.state_path)
                stored, _ = AlertStateStore(db).load()
                db.close()
                assert [(a.state, a.fired_at_ns) for a in stored.values()] == [("firing", base + 3 * MINUTE)]
        assert seen == ["pending", "pending", "firing", "firing", "firing", "resolved", "resolved"]
        (resolved,) = service.alerts(None, ["resolved"])
        assert resolved.resolved_at_ns == base + 6 * MINUTE
        assert service.alerts(None, ["firing", "pending"]) == []
        (info,) = service.rules(None)
        assert info.last_evaluated_ns == base + 7 * MINUTE and info.last_error is None
    finally:
        await service.shutdown()


async def test_engine_evaluation_error_does_not_stop_the_loop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = minute_floor(time.time_ns()) - 120 * MINUTE
    await latency_step(tmp_path, base)
    clock = Clock(base + 2 * MINUTE)
    ticks = Ticks()
    telemetry = Telemetry()
    service = make_alerting(tmp_path, alerting_config(rules=[SLOW_RULE]), clock, ticks, telemetry)
    client = open_client("chdb://clickhouse", tmp_path)

    def rounds() -> float:
        return sample_value(telemetry, "llm_observer_alert_evaluations_total")

    async def next_round(n: int) -> None:
        ticks.release()
        await wait_for(lambda: rounds() >= n and ticks.waiting == 1, what=f"evaluation round {n}")

    caplog.set_level(logging.INFO, logger="llm_observer.query.alerting.engine")
    await service.start()
    try:
        await wait_for(lambda: rounds() >= 1 and ticks.waiting == 1, what="the first round")
        assert [a.state for a in service.alerts(None)] == ["firing"]
        # The spans table is swapped for one the rules cannot read under the running loop: two rounds fail.
        client.command("RENAME TABLE otel.otel_traces TO otel.otel_traces_away")
        client.command("CREATE TABLE otel.otel_traces (unreadable UInt8) ENGINE = Memory")
        await next_round(2)
        await next_round(3)
        failures = sample_value(
            telemetry, "llm_observer_alert_evaluation_failures_total", {"rule": "SlowProvider"}
        )
        assert failures == 2
        (info,) = service.rules(None)
        assert info.last_error
        # No data because the query failed is not "clear": the alert keeps firing.
        assert [a.state for a in service.alerts(None)] == ["firing"]
        client.command("DROP TABLE otel.otel_traces")
        client.command("RENAME TABLE otel.otel_traces_away TO otel.otel_traces")
        await next_round(4)
        (info,) = service.rules(None)
        assert info.last_error is None
        clock.now_ns = base + 7 * MINUTE
        await next_round(5)
        assert [a.state for a in service.alerts(None)] == ["resolved"]
        engine_logs = [r.getMessage() for r in caplog.records if r.name.endswith("alerting.engine")]
        assert sum("failed (logged once" in m for m in engine_logs) == 1, engine_logs
        assert sum("succeeds again" in m for m in engine_logs) == 1, engine_logs
    finally:
        await service.shutdown()
        client.close()


async def test_engine_restart_keeps_firing_alert(tmp_path: Path) -> None:
    base = minute_floor(time.time_ns()) - 120 * MINUTE
    await latency_step(tmp_path, base)
    clock = Clock(base + 2 * MINUTE)
    config = alerting_config(rules=[SLOW_RULE])
    first = make_alerting(tmp_path, config, clock, Ticks())
    await first.start()
    try:
        await wait_for(lambda: [a.state for a in first.alerts(None)] == ["firing"], what="firing")
    finally:
        await first.shutdown()
    clock.now_ns = base + 3 * MINUTE
    second = make_alerting(tmp_path, config, clock, Ticks())
    await second.start()
    try:
        engine = second.engine
        assert engine is not None
        await engine.run_once(clock.now_ns)
        (alert,) = second.alerts(None)
        # The same episode: neither a new pending nor a new firing time.
        assert alert.state == "firing" and alert.fired_at_ns == base + 2 * MINUTE
    finally:
        await second.shutdown()


async def test_engine_restart_while_firing_notifies_once_and_still_resolves(tmp_path: Path) -> None:
    base = minute_floor(time.time_ns()) - 120 * MINUTE
    await latency_step(tmp_path, base)
    hook = start_webhook()
    config = alerting_config(
        rules=[SLOW_RULE],
        receivers=[{"name": "hook", "webhook_configs": [{"url": hook.url}]}],
        route={
            "receiver": "hook",
            "group_by": ["alertname"],
            "group_wait": "0s",
            "group_interval": "1m",
            "repeat_interval": "4h",
        },
    )
    clock = Clock(base + 2 * MINUTE)
    try:
        first = make_alerting(tmp_path, config, clock, Ticks())
        await first.start()
        try:
            await wait_for(lambda: hook.statuses() == [("firing", ("SlowProvider",))], what=hook.statuses)
        finally:
            await first.shutdown()

        # Started again on the same state file while the latency is still high.
        clock.now_ns = base + 4 * MINUTE
        ticks = Ticks()
        telemetry = Telemetry()
        second = make_alerting(tmp_path, config, clock, ticks, telemetry)
        await second.start()
        try:
            await wait_for(
                lambda: (
                    sample_value(telemetry, "llm_observer_alert_evaluations_total") >= 1 and ticks.waiting
                ),
                what="the first round after the restart",
            )
            dispatcher = second.dispatcher
            assert dispatcher is not None
            await dispatcher.flush(clock())  # whatever the restart owed is decided and sent now
            assert [a.state for a in second.alerts(None)] == ["firing"]
            # The latency is back to normal: the next round resolves the alert, and the resolve is sent.
            clock.now_ns = base + 7 * MINUTE
            ticks.release()
            await wait_for(lambda: len(hook.bodies) >= 2, what=hook.statuses)
            assert hook.statuses() == [("firing", ("SlowProvider",)), ("resolved", ("SlowProvider",))]
        finally:
            await second.shutdown()
    finally:
        hook.close()


async def test_engine_backtest_would_have_fired(tmp_path: Path) -> None:
    base = minute_floor(time.time_ns()) - 120 * MINUTE
    await latency_step(tmp_path, base)
    clock = Clock(base + 60 * MINUTE)
    rules = [{**SLOW_RULE, "for": "2m"}, {**SLOW_RULE, "name": "OrgB", "organization": "org-b"}]
    service = make_alerting(tmp_path, alerting_config(rules=rules), clock, Ticks())
    await service.start()
    try:
        hits = await service.backtest(None, "SlowProvider", base - 5 * MINUTE, base + 10 * MINUTE, MINUTE)
        (hit,) = hits
        # Slow from base+1m's window on, for 2 minutes: fired at base+3m; clear at base+6m's window.
        assert (hit.fired_at_ns, hit.resolved_at_ns) == (base + 3 * MINUTE, base + 6 * MINUTE)
        assert hit.labels["provider"] == "openai" and hit.peak_value == pytest.approx(2000, rel=0.01)
        # A range that ends while it fires leaves the hit open.
        (open_hit,) = await service.backtest("org-a", "SlowProvider", base, base + 4 * MINUTE, MINUTE)
        assert open_hit.resolved_at_ns is None
        assert await service.backtest("org-b", "SlowProvider", base, base + 10 * MINUTE, MINUTE) == []
        with pytest.raises(KeyError):
            await service.backtest("org-a", "OrgB", base, base + MINUTE, MINUTE)
        with pytest.raises(KeyError):
            await service.backtest(None, "NoSuchRule", base, base + MINUTE, MINUTE)
        with pytest.raises(ValueError, match="larger step"):
            await service.backtest(None, "SlowProvider", base, base + 86400 * 10**9, 1)
    finally:
        await service.shutdown()
