"""The dispatcher against a real HTTP webhook on loopback, with an injected clock: group_wait, group_interval
and repeat_interval; resolves; incidents as one message; silences and inhibition; retries; restarts."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from llm_observer.query.alerting.model import Incident
from tests.query.alerting.notify_support import (
    T0,
    Clock,
    RecordingServer,
    S,
    alert,
    alerting_config,
    recorder,
    resolved,
    second_recorder,
    webhook_receiver,
    wired,
)

__all__ = ["recorder", "second_recorder"]  # fixtures


def config(url: str, **route: Any) -> Any:
    return alerting_config(
        route={
            "receiver": "hook",
            "group_by": ["alertname"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "1h",
            **route,
        },
        receivers=[webhook_receiver("hook", url)],
        retry={"initial": "1s", "max": "8s", "max_elapsed": "60s"},
    )


def statuses(server: RecordingServer) -> list[tuple[str, list[tuple[str, str]]]]:
    """Each message as (group status, [(alert status, provider)])."""
    return [
        (body["status"], sorted((a["status"], a["labels"].get("provider", "")) for a in body["alerts"]))
        for body in server.bodies()
    ]


async def test_dispatch_group_wait_interval_repeat_and_resolve(
    tmp_path: Path, recorder: RecordingServer
) -> None:
    clock = Clock()
    async with wired(tmp_path / "state.sqlite", config(recorder.url), clock) as w:
        first = alert(provider="openai")
        w.dispatcher.update([first], [], clock.now)
        await w.dispatcher.flush(clock.advance(29))
        assert recorder.requests == []  # still in group_wait
        await w.dispatcher.flush(clock.advance(1))
        assert statuses(recorder) == [("firing", [("firing", "openai")])]

        # A second alert of the group waits for the group interval, then goes out with the first.
        second = alert(provider="anthropic", fired_at=clock.advance(30))
        w.dispatcher.update([first, second], [], clock.now)
        await w.dispatcher.flush(clock.now)
        await w.dispatcher.flush(clock.advance(269))
        assert len(recorder.requests) == 1
        await w.dispatcher.flush(clock.advance(1))
        assert statuses(recorder)[-1] == ("firing", [("firing", "anthropic"), ("firing", "openai")])

        # Unchanged: nothing until repeat_interval (1h) has passed since the last message.
        for _ in range(11):
            w.dispatcher.update([first, second], [], clock.now)
            await w.dispatcher.flush(clock.advance(300))
        assert len(recorder.requests) == 2
        w.dispatcher.update([first, second], [], clock.now)
        await w.dispatcher.flush(clock.advance(300))
        assert len(recorder.requests) == 3

        # One resolves: sent once, at the next interval; then both resolved: the group's last message.
        w.dispatcher.update([second, resolved(first, clock.now)], [], clock.now)
        await w.dispatcher.flush(clock.advance(300))
        assert statuses(recorder)[-1] == ("firing", [("firing", "anthropic"), ("resolved", "openai")])
        w.dispatcher.update([resolved(second, clock.now)], [], clock.now)
        await w.dispatcher.flush(clock.advance(300))
        assert statuses(recorder)[-1] == ("resolved", [("resolved", "anthropic")])
        for _ in range(3):
            await w.dispatcher.flush(clock.advance(300))
        assert len(recorder.requests) == 5
        assert w.dispatcher.groups() == {}
        assert (
            w.counter(
                "llm_observer_alert_notifications_total",
                receiver="hook",
                integration="webhook",
                outcome="sent",
            )
            == 5
        )


async def test_dispatch_incident_alerts_go_out_as_one_message(
    tmp_path: Path, recorder: RecordingServer
) -> None:
    clock = Clock()
    incident = Incident(
        id="inc-7",
        organization_id="acme",
        dimension="provider",
        value="openai",
        started_at_ns=T0,
        resolved_at_ns=None,
        alert_fingerprints=(),
        rules=("HighErrorRate", "HighLatency", "CostAnomaly"),
        summary="provider openai: error rate, p95 latency and cost anomalies together since 14:02 UTC",
    )
    alerts = [
        alert(name, incident="inc-7", provider="openai")
        for name in ("HighErrorRate", "HighLatency", "CostAnomaly")
    ]
    async with wired(tmp_path / "state.sqlite", config(recorder.url), clock) as w:
        w.dispatcher.update(alerts, [incident], clock.now)
        await w.dispatcher.flush(clock.advance(30))
        (body,) = recorder.bodies()
        assert sorted(a["labels"]["alertname"] for a in body["alerts"]) == [
            "CostAnomaly",
            "HighErrorRate",
            "HighLatency",
        ]
        # A fourth alert of the incident joins the same group: one update, not a new page.
        late = alert("TokenSpike", incident="inc-7", provider="openai", fired_at=clock.now)
        w.dispatcher.update([*alerts, late], [incident], clock.now)
        await w.dispatcher.flush(clock.advance(300))
        assert len(recorder.requests) == 2
        assert recorder.bodies()[1]["groupKey"] == body["groupKey"]
        assert len(recorder.bodies()[1]["alerts"]) == 4
        assert len(w.dispatcher.groups()) == 1


async def test_dispatch_incident_summary_reaches_slack_text(
    tmp_path: Path, recorder: RecordingServer
) -> None:
    clock = Clock()
    incident = Incident(
        "inc-1", "acme", "provider", "openai", T0, None, (), ("A", "B"), "provider openai: A and B together"
    )
    cfg = alerting_config(
        route={"receiver": "chat", "group_wait": "0s"},
        receivers=[{"name": "chat", "slack_configs": [{"api_url": recorder.url + "/services/T/B/X"}]}],
    )
    async with wired(tmp_path / "state.sqlite", cfg, clock) as w:
        w.dispatcher.update(
            [alert("A", incident="inc-1"), alert("B", incident="inc-1")], [incident], clock.now
        )
        await w.dispatcher.flush(clock.now)
        (body,) = recorder.bodies()
        assert "provider openai: A and B together" in body["text"]


async def test_dispatch_silenced_and_inhibited_alerts_are_not_sent(
    tmp_path: Path, recorder: RecordingServer
) -> None:
    clock = Clock()
    cfg = alerting_config(
        route={"receiver": "hook", "group_by": ["..."], "group_wait": "0s", "group_interval": "1m"},
        receivers=[webhook_receiver("hook", recorder.url)],
        inhibit_rules=[
            {
                "source_matchers": ['alertname="ProviderOutage"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["provider"],
            }
        ],
    )
    async with wired(tmp_path / "state.sqlite", cfg, clock) as w:
        silence = w.silences.add("acme", ['alertname="Noisy"'], T0, T0 + 600 * S, "ana", "known issue")
        outage = alert("ProviderOutage", provider="openai")
        inhibited = alert("HighLatency", provider="openai", severity="warning")
        silenced = alert("Noisy")
        w.dispatcher.update([outage, inhibited, silenced], [], clock.now)
        await w.dispatcher.flush(clock.now)
        assert [b["alerts"][0]["labels"]["alertname"] for b in recorder.bodies()] == ["ProviderOutage"]
        assert w.counter("llm_observer_alerts_suppressed_total", reason="silenced") == 1
        assert w.counter("llm_observer_alerts_suppressed_total", reason="inhibited") == 1
        # Still muted a minute later: counted once, not once per look.
        w.dispatcher.update([outage, inhibited, silenced], [], clock.now)
        await w.dispatcher.flush(clock.advance(60))
        assert len(recorder.requests) == 1
        assert w.counter("llm_observer_alerts_suppressed_total", reason="silenced") == 1

        # Expire the silence and end the outage: both muted alerts speak up at their next interval.
        w.silences.expire("acme", silence.id, clock.now)
        w.dispatcher.update([resolved(outage, clock.now), inhibited, silenced], [], clock.now)
        await w.dispatcher.flush(clock.advance(60))
        names = sorted(
            b["alerts"][0]["labels"]["alertname"] + ":" + b["status"] for b in recorder.bodies()[1:]
        )
        assert names == ["HighLatency:firing", "Noisy:firing", "ProviderOutage:resolved"]


async def test_dispatch_silence_of_one_organization_never_mutes_another(
    tmp_path: Path, recorder: RecordingServer
) -> None:
    clock = Clock()
    cfg = alerting_config(
        route={"receiver": "hook", "group_by": ["alertname", "organization_id"], "group_wait": "0s"},
        receivers=[webhook_receiver("hook", recorder.url)],
    )
    async with wired(tmp_path / "state.sqlite", cfg, clock) as w:
        w.silences.add("org-a", ['alertname="HighErrorRate"'], T0, T0 + 600 * S, "ana", "")
        w.dispatcher.update([alert(org="org-a"), alert(org="org-b")], [], clock.now)
        await w.dispatcher.flush(clock.now)
        assert [b["alerts"][0]["labels"]["organization_id"] for b in recorder.bodies()] == ["org-b"]


async def test_dispatch_continue_sends_to_every_matching_receiver(
    tmp_path: Path, recorder: RecordingServer, second_recorder: RecordingServer
) -> None:
    clock = Clock()
    cfg = alerting_config(
        route={
            "receiver": "hook",
            "group_wait": "0s",
            "routes": [
                {"matchers": ['severity="page"'], "receiver": "audit", "continue": True},
                {"matchers": ['severity="page"'], "receiver": "hook"},
            ],
        },
        receivers=[webhook_receiver("hook", recorder.url), webhook_receiver("audit", second_recorder.url)],
    )
    async with wired(tmp_path / "state.sqlite", cfg, clock) as w:
        w.dispatcher.update([alert(severity="page")], [], clock.now)
        await w.dispatcher.flush(clock.now)
        assert [b["receiver"] for b in recorder.bodies()] == ["hook"]
        assert [b["receiver"] for b in second_recorder.bodies()] == ["audit"]


async def test_dispatch_failing_receiver_gets_the_notification_once_when_it_recovers(
    tmp_path: Path, recorder: RecordingServer
) -> None:
    clock = Clock()
    recorder.statuses = [503, 429]
    async with wired(tmp_path / "state.sqlite", config(recorder.url), clock) as w:
        firing = alert(provider="openai")
        w.dispatcher.update([firing], [], clock.now)
        await w.dispatcher.flush(clock.advance(30))
        assert len(recorder.requests) == 1 and w.dispatcher.outbox_depth() == 1
        # Not due again until the backoff (1 s, then 2 s) has passed.
        await w.dispatcher.flush(clock.now)
        assert len(recorder.requests) == 1
        await w.dispatcher.flush(clock.advance(1))
        assert len(recorder.requests) == 2
        await w.dispatcher.flush(clock.advance(1))
        assert len(recorder.requests) == 2
        # A resolve decided meanwhile waits behind the trigger, so it never overtakes it.
        w.dispatcher.update([resolved(firing, clock.now)], [], clock.now)
        await w.dispatcher.flush(clock.advance(300))
        bodies = recorder.bodies()
        assert [b["status"] for b in bodies] == ["firing", "firing", "firing", "resolved"]
        assert w.dispatcher.outbox_depth() == 0
        await w.dispatcher.flush(clock.advance(300))
        assert len(recorder.requests) == 4
        labels = {"receiver": "hook", "integration": "webhook"}
        assert w.counter("llm_observer_alert_notifications_total", **labels, outcome="sent") == 2
        assert w.counter("llm_observer_alert_notifications_total", **labels, outcome="failed") == 2
        assert w.counter("llm_observer_alert_notifications_total", **labels, outcome="retried") == 2
        assert w.counter("llm_observer_alert_outbox_depth") == 0


async def test_dispatch_refused_or_exhausted_notification_is_dropped_with_one_error(
    tmp_path: Path, recorder: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    recorder.statuses = [400] + [500] * 100
    caplog.set_level(logging.ERROR, logger="llm_observer.query.alerting.dispatch")
    async with wired(tmp_path / "state.sqlite", config(recorder.url, group_by=["provider"]), clock) as w:
        w.dispatcher.update([alert(provider="openai")], [], clock.now)
        await w.dispatcher.flush(clock.advance(30))
        assert w.dispatcher.outbox_depth() == 0  # a 400 is not retried
        assert len(caplog.records) == 1 and "refused" in caplog.records[0].getMessage()

        w.dispatcher.update([alert(provider="openai"), alert(provider="anthropic")], [], clock.now)
        for _ in range(80):
            await w.dispatcher.flush(clock.advance(1))
        # Retried with backoff 1, 2, 4, 8, 8… for 60 s, then dropped with one more error line.
        assert w.dispatcher.outbox_depth() == 0
        assert len(caplog.records) == 2 and "attempts over 60s failed" in caplog.records[1].getMessage()
        attempts = len(recorder.requests) - 1
        assert 8 <= attempts <= 12
        assert (
            w.counter(
                "llm_observer_alert_notifications_total",
                receiver="hook",
                integration="webhook",
                outcome="dropped",
            )
            == 2
        )
        assert "/services" not in caplog.text


async def test_dispatch_restart_neither_resends_nor_loses(tmp_path: Path, recorder: RecordingServer) -> None:
    clock = Clock()
    path = tmp_path / "state.sqlite"
    cfg = alerting_config(
        route={
            "receiver": "hook",
            "group_by": ["provider"],
            "group_wait": "30s",
            "group_interval": "5m",
            "routes": [{"matchers": ['provider="anthropic"'], "receiver": "flaky"}],
        },
        receivers=[
            webhook_receiver("hook", recorder.url + "/ok"),
            webhook_receiver("flaky", recorder.url + "/flaky"),
        ],
    )
    openai, anthropic = alert(provider="openai"), alert(provider="anthropic")
    # openai's page goes out; anthropic's fails once, then the process stops.
    recorder.path_statuses = {"/flaky": [503]}
    async with wired(path, cfg, clock) as w:
        w.dispatcher.update([openai, anthropic], [], clock.now)
        await w.dispatcher.flush(clock.advance(30))
        assert len(recorder.requests) == 2 and w.dispatcher.outbox_depth() == 1

    async with wired(path, cfg, clock) as w:
        # The engine hands over the same firing alerts: openai is not paged again, anthropic's page is
        # delivered from the outbox, once.
        w.dispatcher.update([openai, anthropic], [], clock.now)
        await w.dispatcher.flush(clock.advance(5))
        for _ in range(3):
            await w.dispatcher.flush(clock.advance(60))
        providers = [b["alerts"][0]["labels"]["provider"] for b in recorder.bodies()]
        assert sorted(providers) == ["anthropic", "anthropic", "openai"]
        # The resolve handed over just before a stop is still sent after it.
        w.dispatcher.update([anthropic, resolved(openai, clock.now)], [], clock.now)

    async with wired(path, cfg, clock) as w:
        w.dispatcher.update([anthropic], [], clock.now)
        await w.dispatcher.flush(clock.advance(1))
        assert [b["status"] for b in recorder.bodies()[3:]] == ["resolved"]
        assert recorder.bodies()[3]["alerts"][0]["labels"]["provider"] == "openai"
        await w.dispatcher.flush(clock.advance(300))
        assert len(recorder.requests) == 4


async def test_dispatch_alert_missing_from_update_is_resolved(
    tmp_path: Path, recorder: RecordingServer
) -> None:
    clock = Clock()
    async with wired(tmp_path / "state.sqlite", config(recorder.url, group_wait="0s"), clock) as w:
        w.dispatcher.update([alert(provider="openai")], [], clock.now)
        await w.dispatcher.flush(clock.now)
        w.dispatcher.update([], [], clock.advance(10))
        await w.dispatcher.flush(clock.advance(300))
        assert [b["status"] for b in recorder.bodies()] == ["firing", "resolved"]


async def test_dispatch_without_send_resolved_sends_no_resolve(
    tmp_path: Path, recorder: RecordingServer
) -> None:
    clock = Clock()
    cfg = alerting_config(
        route={"receiver": "hook", "group_wait": "0s", "group_interval": "1m"},
        receivers=[webhook_receiver("hook", recorder.url, send_resolved=False)],
    )
    async with wired(tmp_path / "state.sqlite", cfg, clock) as w:
        firing = alert()
        w.dispatcher.update([firing], [], clock.now)
        await w.dispatcher.flush(clock.now)
        w.dispatcher.update([resolved(firing, clock.now)], [], clock.now)
        await w.dispatcher.flush(clock.advance(60))
        # It fires again later: a new page (the log was cleared when it resolved).
        w.dispatcher.update([alert(fired_at=clock.now)], [], clock.now)
        await w.dispatcher.flush(clock.advance(60))
        assert [b["status"] for b in recorder.bodies()] == ["firing", "firing"]


async def test_dispatch_reconfigure_routes_to_the_new_receiver(
    tmp_path: Path, recorder: RecordingServer, second_recorder: RecordingServer
) -> None:
    clock = Clock()
    async with wired(tmp_path / "state.sqlite", config(recorder.url, group_wait="0s"), clock) as w:
        w.dispatcher.update([alert(team="ml")], [], clock.now)
        await w.dispatcher.flush(clock.now)
        w.dispatcher.reconfigure(
            alerting_config(
                route={
                    "receiver": "hook",
                    "group_wait": "0s",
                    "routes": [{"matchers": ['team="ml"'], "receiver": "ml"}],
                },
                receivers=[
                    webhook_receiver("hook", recorder.url),
                    webhook_receiver("ml", second_recorder.url),
                ],
            )
        )
        w.dispatcher.update([alert(team="ml")], [], clock.now)
        await w.dispatcher.flush(clock.advance(1))
        assert len(recorder.requests) == 1 and len(second_recorder.requests) == 1


async def test_dispatch_restart_rebuilds_the_same_groups(tmp_path: Path, recorder: RecordingServer) -> None:
    clock = Clock()
    path = tmp_path / "state.sqlite"
    cfg = config(recorder.url, group_by=["provider"])
    incident = Incident("inc-9", "acme", "provider", "openai", T0, None, (), ("A", "B"), "A and B")
    async with wired(path, cfg, clock) as w:
        w.dispatcher.update(
            [alert("A", provider="openai"), alert("B", provider="azure", incident="inc-9")],
            [incident],
            clock.now,
        )
        before = w.dispatcher.groups()
        assert len(before) == 2
    async with wired(path, cfg, clock) as w:
        assert w.dispatcher.groups() == before
        # C shares B's incident: it joins B's group, whatever its own labels would say.
        w.dispatcher.update(
            [
                alert("A", provider="openai"),
                alert("B", provider="azure", incident="inc-9"),
                alert("C", provider="openai", incident="inc-9"),
            ],
            [incident],
            clock.now,
        )
        assert sorted(len(fps) for fps in w.dispatcher.groups().values()) == [1, 2]
        await w.dispatcher.flush(clock.advance(30))
        bodies = sorted(recorder.bodies(), key=lambda b: len(b["alerts"]))
        assert [sorted(a["labels"]["alertname"] for a in b["alerts"]) for b in bodies] == [["A"], ["B", "C"]]
