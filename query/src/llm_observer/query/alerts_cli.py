"""``llm-observer alerts list|rules|incidents|test|reload`` and ``llm-observer silences list|add|expire``:
alerting in the terminal, over the query service's REST API (``/api/v1/alerts…``).

They take the ``traces`` commands' ``--url``, ``--api-key``, ``--org`` and ``--json``; tables for people,
``--json`` (the API's answer as it is) for scripts.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from llm_observer.query.cli_commands import add_connection_arguments, api_request, cut, short_time, since_time

# Labels every alert carries; a table shows the others.
_IMPLIED_LABELS = ("alertname", "organization_id")

Runner = Callable[[argparse.Namespace, TextIO | None], int]


def add_alert_commands(subparsers: Any) -> None:
    """Register ``alerts …`` and ``silences …`` on an argparse sub-parser set (each sets ``func``)."""
    alerts = subparsers.add_parser("alerts", help="alerts, rules and incidents (uses the query API)")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True)

    listing = _command(alerts_sub, "list", "firing, pending and recently resolved alerts", run_alerts)
    listing.add_argument(
        "--state", action="append", choices=["pending", "firing", "resolved"], help="only these (repeatable)"
    )
    _command(alerts_sub, "rules", "the configured rules and their last evaluation", run_rules)
    incidents = _command(alerts_sub, "incidents", "alerts grouped into incidents, with a hint", run_incidents)
    incidents.add_argument("--all", action="store_true", help="include resolved incidents")
    test = _command(alerts_sub, "test", "when a rule would have fired over past data", run_test)
    test.add_argument("rule", help="the rule's name")
    test.add_argument("--since", default="24h", help="how far back, e.g. 6h, 7d (default 24h)")
    test.add_argument("--step", help="evaluate every STEP, e.g. 1m, 5m or seconds (default about 120 steps)")
    _command(alerts_sub, "reload", "re-read the alerting config (as SIGHUP does)", run_reload)

    silences = subparsers.add_parser("silences", help="mute alerts for a while (uses the query API)")
    silences_sub = silences.add_subparsers(dest="silences_command", required=True)
    _command(silences_sub, "list", "pending, active and expired silences", run_silences)
    add = _command(silences_sub, "add", "mute the alerts matching every MATCHER", run_silence_add)
    add.add_argument(
        "matchers", nargs="+", metavar="MATCHER", help="name=value, name!=value, name=~regex or name!~regex"
    )
    add.add_argument("--duration", default="2h", help="how long, e.g. 30m, 2h, 1d (default 2h)")
    add.add_argument("--comment", required=True, help="why (shown with the silence)")
    add.add_argument("--created-by", help="who (default: the key or user of --api-key)")
    expire = _command(silences_sub, "expire", "end a silence now", run_silence_expire)
    expire.add_argument("silence_id", metavar="ID")


def _command(sub: Any, name: str, help_text: str, func: Runner) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    add_connection_arguments(parser)
    parser.set_defaults(func=func)
    return parser


# --- tables ---------------------------------------------------------------------------------------------


def format_rows(header: Sequence[str], rows: Sequence[Sequence[str]], width: int, flexible: int) -> str:
    """An aligned table fitting ``width`` columns: column ``flexible`` is cut to what the others leave."""
    widths = [max([len(header[i]), *(len(row[i]) for row in rows)]) for i in range(len(header))]
    fixed = sum(widths) - widths[flexible] + 2 * (len(header) - 1)
    widths[flexible] = min(widths[flexible], max(12, width - fixed))
    lines = ["  ".join(title.ljust(widths[i]) for i, title in enumerate(header)).rstrip()]
    for row in rows:
        lines.append("  ".join(cut(cell, widths[i]).ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines)


def _time(value: str | None) -> str:
    return short_time(value) if value else "-"


def _value(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.4g}"


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in _IMPLIED_LABELS) or "-"


def format_alerts(alerts: Sequence[dict[str, Any]], width: int) -> str:
    header = ("STATE", "RULE", "VALUE", "SINCE", "FIRED", "INCIDENT", "LABELS")
    order = {"firing": 0, "pending": 1, "resolved": 2}
    rows = [
        (
            a["state"].upper(),
            a["rule"],
            _value(a["value"]),
            _time(a["active_since"]),
            _time(a["fired_at"]),
            a["incident_id"] or "-",
            _labels(a["labels"]),
        )
        for a in sorted(alerts, key=lambda a: (order.get(a["state"], 3), a["active_since"] or ""))
    ]
    return format_rows(header, rows, width, flexible=6)


def format_rules(rules: Sequence[dict[str, Any]], width: int) -> str:
    header = ("NAME", "KIND", "ORGANIZATION", "LAST EVALUATED", "LAST ERROR")
    rows = [
        (
            r["name"],
            r["kind"],
            r["organization_id"] or "(each)",
            _time(r["last_evaluated"]),
            r["last_error"] or "-",
        )
        for r in rules
    ]
    return format_rows(header, rows, width, flexible=4)


def format_incidents(incidents: Sequence[dict[str, Any]], width: int) -> str:
    header = ("ID", "STARTED", "RESOLVED", "SHARED", "ALERTS", "HINT")
    rows = [
        (
            i["id"],
            _time(i["started_at"]),
            _time(i["resolved_at"]),
            f"{i['dimension']}={i['value']}",
            str(len(i["alert_fingerprints"])),
            i["summary"],
        )
        for i in incidents
    ]
    return format_rows(header, rows, width, flexible=5)


def format_silences(silences: Sequence[dict[str, Any]], width: int) -> str:
    header = ("ID", "STATE", "STARTS", "ENDS", "CREATED BY", "MATCHERS", "COMMENT")
    rows = [
        (
            s["id"],
            s["state"],
            _time(s["starts_at"]),
            _time(s["ends_at"]),
            s["created_by"],
            " ".join(s["matchers"]),
            s["comment"],
        )
        for s in silences
    ]
    return format_rows(header, rows, width, flexible=6)


def format_hits(body: dict[str, Any]) -> str:
    """ "Would have fired at …" lines of a rule's test."""
    hits = body["hits"]
    window = (
        f"between {_time(body['start_time'])} and {_time(body['end_time'])}, every {body['step_seconds']:g}s"
    )
    if not hits:
        return f"{body['rule']} would not have fired {window}."
    lines = [f"{body['rule']} would have fired {len(hits)} time{'s' if len(hits) != 1 else ''} {window}:"]
    for hit in sorted(hits, key=lambda h: h["fired_at"]):
        until = (
            f"resolved at {_time(hit['resolved_at'])}" if hit["resolved_at"] else "still firing at the end"
        )
        labels = ",".join(f"{k}={v}" for k, v in sorted(hit["labels"].items())) or "(no labels)"
        lines.append(
            f"  fired at {_time(hit['fired_at'])}, {until}, peak {_value(hit['peak_value'])}  {labels}"
        )
    return "\n".join(lines)


# --- commands -------------------------------------------------------------------------------------------


def _width() -> int:
    return shutil.get_terminal_size((140, 24)).columns


def _print(args: argparse.Namespace, out: TextIO | None, body: Any, text: Callable[[], str]) -> int:
    print(json.dumps(body, indent=2) if args.json else text(), file=out or sys.stdout)
    return 0


def _org(args: argparse.Namespace) -> dict[str, Any]:
    return {"organization_id": args.organization_id}


def run_alerts(args: argparse.Namespace, out: TextIO | None = None) -> int:
    body = api_request(args, "GET", "/api/v1/alerts", {**_org(args), "state": args.state})
    alerts = body["alerts"]
    return _print(args, out, body, lambda: format_alerts(alerts, _width()) if alerts else "No alerts.")


def run_rules(args: argparse.Namespace, out: TextIO | None = None) -> int:
    body = api_request(args, "GET", "/api/v1/alerts/rules", _org(args))
    rules = body["rules"]
    return _print(args, out, body, lambda: format_rules(rules, _width()) if rules else "No alert rules.")


def run_incidents(args: argparse.Namespace, out: TextIO | None = None) -> int:
    params = {**_org(args), "include_resolved": "true" if args.all else None}
    body = api_request(args, "GET", "/api/v1/alerts/incidents", params)
    incidents = body["incidents"]
    return _print(
        args, out, body, lambda: format_incidents(incidents, _width()) if incidents else "No incidents."
    )


def run_test(args: argparse.Namespace, out: TextIO | None = None) -> int:
    request = {"start_time": since_time(args.since), "step": args.step}
    path = f"/api/v1/alerts/rules/{_segment(args.rule)}/test"
    body = api_request(args, "POST", path, _org(args), {k: v for k, v in request.items() if v is not None})
    return _print(args, out, body, lambda: format_hits(body))


def run_reload(args: argparse.Namespace, out: TextIO | None = None) -> int:
    body = api_request(args, "POST", "/api/v1/alerts/reload", _org(args))
    return _print(args, out, body, lambda: "Alerting config reloaded.")


def run_silences(args: argparse.Namespace, out: TextIO | None = None) -> int:
    body = api_request(args, "GET", "/api/v1/alerts/silences", _org(args))
    silences = body["silences"]
    return _print(
        args, out, body, lambda: format_silences(silences, _width()) if silences else "No silences."
    )


def run_silence_add(args: argparse.Namespace, out: TextIO | None = None) -> int:
    request = {
        "matchers": args.matchers,
        "duration": args.duration,
        "comment": args.comment,
        "created_by": args.created_by,
        "organization_id": args.organization_id,
    }
    body = api_request(
        args, "POST", "/api/v1/alerts/silences", None, {k: v for k, v in request.items() if v is not None}
    )
    return _print(
        args, out, body, lambda: f"Silence {body['id']} {body['state']} until {_time(body['ends_at'])}."
    )


def run_silence_expire(args: argparse.Namespace, out: TextIO | None = None) -> int:
    body = api_request(args, "DELETE", f"/api/v1/alerts/silences/{_segment(args.silence_id)}", _org(args))
    return _print(args, out, body, lambda: f"Silence {body['id']} expired.")


def _segment(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
