"""Our alerts handed to a real Alertmanager (built from the Go module proxy): it lists them with our labels
while they fire, keeps them alive through our re-posts, and treats them as resolved when we say so — which its
own webhook notification to a recording server on loopback confirms. Slow: ``LLM_OBSERVER_SLOW_TESTS=1``."""

from __future__ import annotations

import time
from pathlib import Path

from tests.query.alerting.notify_support import (
    Clock,
    RecordingServer,
    alert,
    alerting_config,
    recorder,
    resolved,
    wired,
)
from tests.support.alertmanager import SKIP_SLOW, Alertmanager
from tests.support.waiting import wait_for

__all__ = ["recorder"]  # the fixture

pytestmark = SKIP_SLOW


async def test_alertmanager_receives_our_alerts_then_their_resolve(
    tmp_path: Path, recorder: RecordingServer
) -> None:
    folder = tmp_path / "alertmanager"
    folder.mkdir()
    # Alertmanager's own route sends what it holds to our recording server, so its view is observable.
    am = Alertmanager(
        folder,
        config=f"""\
route:
  receiver: recorder
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: recorder
    webhook_configs:
      - url: {recorder.url}/from-alertmanager
        send_resolved: true
""",
    )
    am.start()
    try:
        # Alertmanager judges endsAt against its wall clock: start the injected clock at the real time.
        clock = Clock(time.time_ns())
        cfg = alerting_config(
            external_url="https://observer.example.com",
            route={"receiver": "am", "group_by": ["alertname"], "group_wait": "0s", "group_interval": "1m"},
            receivers=[{"name": "am", "alertmanager_configs": [{"url": am.url}]}],
        )
        firing = alert("ProviderErrorBurst", fired_at=clock.now, provider="openai", severity="page")
        async with wired(tmp_path / "state.sqlite", cfg, clock) as w:
            w.dispatcher.update([firing], [], clock.now)
            await w.dispatcher.flush(clock.now)
            (held,) = am.alerts(active=True)
            assert held["labels"] == firing.labels
            assert held["annotations"] == {"summary": "ProviderErrorBurst is 0.2"}
            assert held["generatorURL"] == "https://observer.example.com/traces?alertname=ProviderErrorBurst"
            assert held["status"]["state"] == "active"
            assert held["fingerprint"]  # Alertmanager's own, over the same labels

            # While it fires, each group interval re-posts it (Alertmanager would otherwise time it out).
            w.dispatcher.update([firing], [], clock.now)
            await w.dispatcher.flush(clock.advance(60))
            sent = {"receiver": "am", "integration": "alertmanager", "outcome": "sent"}
            assert w.counter("llm_observer_alert_notifications_total", **sent) == 2

            notified = await wait_for(
                lambda: [b for b in recorder.bodies() if b["status"] == "firing"],
                timeout=30,
                what="Alertmanager's firing notification",
            )
            assert notified[0]["alerts"][0]["labels"] == firing.labels

            # It resolved a moment ago by the wall clock (the injected one ran ahead by two intervals).
            w.dispatcher.update([resolved(firing, time.time_ns() - 10**9)], [], clock.now)
            await w.dispatcher.flush(clock.advance(60))
            assert w.counter("llm_observer_alert_notifications_total", **sent) == 3
        assert am.alerts(active=True) == []
        done = await wait_for(
            lambda: [b for b in recorder.bodies() if b["status"] == "resolved"],
            timeout=30,
            what="Alertmanager's resolve",
        )
        assert done[0]["alerts"][0]["labels"] == firing.labels
    finally:
        am.stop()
