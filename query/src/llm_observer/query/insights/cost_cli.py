"""``llm-observer insights forecast`` and ``llm-observer insights advice``: cost insights in the terminal, over
the query service's REST API (``/api/v1/insights/…``).

They take the ``traces`` commands' ``--url``, ``--api-key``, ``--org`` and ``--json``: tables for people,
``--json`` (the API's answer as it is) for scripts. Other insight commands join the same ``insights``
parser through ``insights_parser``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from typing import Any, TextIO

from llm_observer.query.alerts_cli import format_rows
from llm_observer.query.cli_commands import add_connection_arguments, api_request, format_usd, since_time

__all__ = ["add_insight_commands", "format_advice", "format_forecasts", "insights_parser"]

Runner = Callable[[argparse.Namespace, TextIO | None], int]

_ADVICE_KINDS = (
    "response_cache_exact",
    "response_cache_near",
    "prompt_cache",
    "cheaper_model",
    "retry",
    "truncation",
    "unused_output",
)
_INSIGHTS = "_llm_observer_insights"  # the attribute holding the shared sub-parser set on the parser


def insights_parser(subparsers: Any) -> Any:
    """The sub-parser set of ``llm-observer insights`` on ``subparsers`` (the top-level set), made on first
    call and returned again after: each insight module adds its commands to it."""
    existing = subparsers.choices.get("insights")
    if existing is not None:
        return getattr(existing, _INSIGHTS)
    parser = subparsers.add_parser("insights", help="cost forecasts, savings advice and prompt insights")
    commands = parser.add_subparsers(dest="insights_command", required=True)
    setattr(parser, _INSIGHTS, commands)
    return commands


def add_insight_commands(subparsers: Any) -> None:
    """Register ``insights forecast``, ``insights advice``, ``insights clusters`` and ``insights versions``
    (each sets ``func``)."""
    from llm_observer.query.insights.prompt_cli import add_prompt_commands

    commands = insights_parser(subparsers)
    add_prompt_commands(commands)
    forecast = _command(
        commands, "forecast", "period-end spend with an interval and the budget's last day", run_forecast
    )
    forecast.add_argument("--period", choices=["month", "week"], default="month", help="default month")
    forecast.add_argument(
        "--by",
        action="append",
        choices=["project", "team", "model", "provider"],
        help="one forecast per project, team, model or provider (repeatable)",
    )
    forecast.add_argument("--budget", type=float, help="the budget (USD) of each group for the period")
    forecast.add_argument("--project", help="only this project")
    forecast.add_argument("--confidence", type=float, default=0.9, help="of the interval (default 0.9)")
    advice = _command(
        commands, "advice", "what could have cost less, with the spans that show it", run_advice
    )
    advice.add_argument("--since", default="7d", help="how far back, e.g. 24h, 7d (default 7d)")
    advice.add_argument("--project", help="only this project")
    advice.add_argument(
        "--kind", action="append", choices=_ADVICE_KINDS, help="only these findings (repeatable)"
    )
    advice.add_argument("--no-near", action="store_true", help="skip near-duplicate prompts (no embedding)")


def _command(sub: Any, name: str, help_text: str, func: Runner) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    add_connection_arguments(parser)
    parser.set_defaults(func=func)
    return parser


# --- tables ---------------------------------------------------------------------------------------------


def _group(group: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in group.items())


def format_forecasts(body: dict[str, Any], width: int) -> str:
    """A table of forecasts, with the period and the time they were made as of above it."""
    header = ("GROUP", "SPENT", "FORECAST", "INTERVAL", "METHOD", "BUDGET RUNS OUT")
    rows = [
        (
            _group(f["group"]),
            format_usd(f["spent_usd"]),
            format_usd(f["forecast_usd"]),
            f"{format_usd(f['low_usd'])} to {format_usd(f['high_usd'])} ({f['confidence']:.0%})",
            f["method"],
            f["budget_exhausted_on"] or ("-" if f["budget_usd"] is None else "not this period"),
        )
        for f in body["forecasts"]
    ]
    title = f"{body['period']} {body['period_start'][:10]} to {body['period_end'][:10]}, as of {body['as_of'][:16]}Z"
    return title + "\n" + format_rows(header, rows, width, flexible=0)


def format_advice(body: dict[str, Any], width: int) -> str:
    """A table of findings, largest saving first, then the total and the notes."""
    header = ("SAVING", "KIND", "PROJECT", "MODEL", "CALLS", "EXAMPLE SPAN", "FINDING")
    rows = [
        (
            format_usd(i["saving_usd"]),
            i["kind"],
            i["project_id"],
            i["model"],
            str(i["calls"]),
            i["span_ids"][0] if i["span_ids"] else "-",
            i["title"],
        )
        for i in body["items"]
    ]
    lines = [format_rows(header, rows, width, flexible=6)] if rows else ["No savings found."]
    lines.append(
        f"Total: {format_usd(body['total_saving_usd'])} between {body['start_time'][:16]}Z and "
        f"{body['end_time'][:16]}Z."
    )
    lines += [f"Note: {note}" for note in body["notes"]]
    return "\n".join(lines)


# --- commands -------------------------------------------------------------------------------------------


def _width() -> int:
    return shutil.get_terminal_size((140, 24)).columns


def _print(args: argparse.Namespace, out: TextIO | None, body: Any, text: Callable[[], str]) -> int:
    print(json.dumps(body, indent=2) if args.json else text(), file=out or sys.stdout)
    return 0


def run_forecast(args: argparse.Namespace, out: TextIO | None = None) -> int:
    params: dict[str, Any] = {
        "organization_id": args.organization_id,
        "project_id": args.project,
        "period": args.period,
        "group_by": args.by,
        "budget_usd": args.budget,
        "confidence": args.confidence,
    }
    body = api_request(args, "GET", "/api/v1/insights/forecast", params)
    return _print(args, out, body, lambda: format_forecasts(body, _width()))


def run_advice(args: argparse.Namespace, out: TextIO | None = None) -> int:
    params: dict[str, Any] = {
        "organization_id": args.organization_id,
        "project_id": args.project,
        "start_time": since_time(args.since),
        "kind": args.kind,
        "near": "false" if args.no_near else None,
    }
    body = api_request(args, "GET", "/api/v1/insights/advice", params)
    return _print(args, out, body, lambda: format_advice(body, _width()))
