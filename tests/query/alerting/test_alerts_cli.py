"""``llm-observer alerts …`` and ``llm-observer silences …`` against a running query service (REST), over
the in-memory ``AlertingApi``: tables, ``--json``, silences added and expired, errors as messages."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from llm_observer.query.alerts_cli import add_alert_commands, format_rows
from tests.query.alerting.api_support import MemoryAlerting, Served, seed, serving
from tests.query.conftest import KEY_A, KEY_B, auth_config

MINUTE = 60 * 10**9
HOUR = 60 * MINUTE

Cli = Callable[..., Awaitable[str]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-observer")
    add_alert_commands(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    api = MemoryAlerting()
    now = time.time_ns()
    seed(api, now)
    api.rules_[0].series[(("provider", "openai"),)] = [(now - 90 * MINUTE, 0.5), (now - 30 * MINUTE, 0.0)]
    async with serving(tmp_path, api, auth_config()) as running:
        yield running


@pytest.fixture
def cli(served: Served) -> Cli:
    """``await cli("alerts", "list", key=KEY_A)``: the command's output (it runs in a thread: the server
    answers on this event loop)."""

    async def run(*argv: str, key: str | None = KEY_A, url: str | None = None) -> str:
        extra = ["--url", url or served.base_url] + (["--api-key", key] if key else [])
        args = _parser().parse_args([*argv, *extra])
        out = io.StringIO()
        code = await asyncio.to_thread(args.func, args, out)
        assert code == 0
        return out.getvalue()

    return run


async def test_alerts_cli_lists_alerts_as_a_table(cli: Cli) -> None:
    lines = (await cli("alerts", "list")).splitlines()
    assert lines[0].split() == ["STATE", "RULE", "VALUE", "SINCE", "FIRED", "INCIDENT", "LABELS"]
    # Firing first, then pending, then resolved; labels every alert has are left out.
    assert lines[1].split()[:3] == ["FIRING", "HighErrorRate", "0.12"]
    assert lines[1].split()[-2:] == ["inc-1", "provider=openai,severity=page"]
    assert lines[2].split()[:3] == ["PENDING", "SlowP95", "-"]
    assert lines[3].split()[:3] == ["RESOLVED", "Budget", "80"]
    assert len(lines) == 4  # org-b's alert is not org-a's to see
    pending = json.loads(await cli("alerts", "list", "--state", "pending", "--json"))
    assert [a["rule"] for a in pending["alerts"]] == ["SlowP95"]
    assert [
        a["rule"] for a in json.loads(await cli("alerts", "list", "--state", "resolved", "--json"))["alerts"]
    ] == ["Budget"]
    with pytest.raises(SystemExit, match=r"403 .*may not access organization 'org-a'"):
        await cli("alerts", "list", "--org", "org-a", key=KEY_B)


async def test_alerts_cli_rules_and_incidents(cli: Cli) -> None:
    rules = (await cli("alerts", "rules")).splitlines()
    assert rules[0].split() == ["NAME", "KIND", "ORGANIZATION", "LAST", "EVALUATED", "LAST", "ERROR"]
    assert [line.split()[:3] for line in rules[1:]] == [["HighErrorRate", "threshold", "(each)"]]
    assert [line.split()[:3] for line in (await cli("alerts", "rules", key=KEY_B)).splitlines()[1:]] == [
        ["HighErrorRate", "threshold", "(each)"],
        ["OrgBOnly", "threshold", "org-b"],
    ]
    incidents = await cli("alerts", "incidents")
    assert "provider=openai" in incidents and "error rate together since 14:02 UTC" in incidents
    assert "inc-0" not in incidents
    assert "inc-0" in await cli("alerts", "incidents", "--all")


async def test_alerts_cli_rule_test_says_when_it_would_have_fired(served: Served, cli: Cli) -> None:
    text = await cli("alerts", "test", "HighErrorRate", "--since", "2h", "--step", "5m")
    assert text.startswith("HighErrorRate would have fired 1 time between ")
    assert "every 300s" in text
    assert "resolved at" in text and "peak 0.5" in text and "provider=openai" in text
    _, org, rule, start, end, step = served.api.calls[-1]
    assert (org, rule, step) == ("org-a", "HighErrorRate", 5 * MINUTE)
    assert abs((end - start) - 2 * HOUR) < MINUTE  # --since 2h, measured from two clocks a moment apart
    with pytest.raises(SystemExit, match="404 no alert rule named 'Nope'"):
        await cli("alerts", "test", "Nope")


async def test_alerts_cli_silences_add_list_expire(served: Served, cli: Cli) -> None:
    added = await cli(
        "silences", "add", 'provider="openai"', "severity!=ticket", "--duration", "3h", "--comment", "outage"
    )
    (silence,) = served.api.silences_
    assert added.startswith(f"Silence {silence.id} active until ")
    assert silence.matchers == ('provider="openai"', "severity!=ticket")
    assert silence.ends_at_ns - silence.starts_at_ns == 3 * HOUR
    assert (silence.organization_id, silence.created_by, silence.comment) == ("org-a", "api_key:a", "outage")
    listed = (await cli("silences", "list")).splitlines()
    assert listed[1].split()[:2] == [silence.id, "active"]
    assert "outage" in listed[1]
    assert await cli("silences", "list", key=KEY_B) == "No silences.\n"
    with pytest.raises(SystemExit, match=f"404 silence {silence.id} not found"):
        await cli("silences", "expire", silence.id, key=KEY_B)
    assert await cli("silences", "expire", silence.id) == f"Silence {silence.id} expired.\n"
    assert json.loads(await cli("silences", "list", "--json"))["silences"][0]["state"] == "expired"
    with pytest.raises(SystemExit, match=r"400 .*not a matcher"):
        await cli("silences", "add", "oops", "--comment", "x")


async def test_alerts_cli_reload_and_errors(served: Served, cli: Cli) -> None:
    assert await cli("alerts", "reload") == "Alerting config reloaded.\n"
    assert served.api.reloads == 1
    with pytest.raises(SystemExit, match="401"):
        await cli("alerts", "list", key=None)
    with pytest.raises(SystemExit, match="cannot reach the query service"):
        await cli("alerts", "list", url="http://127.0.0.1:9")


async def test_alerts_cli_says_when_alerting_is_off(tmp_path: Path) -> None:
    async with serving(tmp_path, None) as off:
        args = _parser().parse_args(["silences", "list", "--url", off.base_url])
        with pytest.raises(
            SystemExit, match=r"404 alerting is not enabled: list alerting in service\.extensions"
        ):
            await asyncio.to_thread(args.func, args, io.StringIO())


def test_alerts_cli_table_fits_the_width() -> None:
    rows = [("FIRING", "Rule", "x" * 200)]
    text = format_rows(("STATE", "RULE", "LABELS"), rows, 60, flexible=2)
    assert max(len(line) for line in text.splitlines()) == 60
    assert text.splitlines()[1].endswith("…")
