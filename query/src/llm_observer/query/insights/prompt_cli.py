"""``llm-observer insights clusters`` and ``llm-observer insights versions [--compare A B]``: prompt
clusters and prompt versions in the terminal, over the query service's REST API
(``/api/v1/insights/prompt-…``).

They take the other query commands' ``--url``, ``--api-key``, ``--org`` and ``--json``; tables for people,
``--json`` (the API's answer as it is) for scripts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from llm_observer.query.cli_commands import (
    add_connection_arguments,
    api_request,
    cut,
    format_usd,
    short_time,
    since_time,
)

Runner = Callable[[argparse.Namespace, TextIO | None], int]


def add_prompt_commands(insights_subparsers: Any) -> None:
    """Register ``clusters`` and ``versions`` on the ``insights`` command's sub-parser set (each sets
    ``func``)."""
    clusters = _command(
        insights_subparsers, "clusters", "what users ask: prompts clustered by meaning", run_clusters
    )
    clusters.add_argument("--k", type=int, help="number of clusters (default: chosen by silhouette)")
    clusters.add_argument("--max-prompts", type=int, help="prompts clustered at most (default 5000)")
    versions = _command(
        insights_subparsers, "versions", "prompt versions and their figures, or two compared", run_versions
    )
    versions.add_argument("--model", help="only calls to this model")
    versions.add_argument("--min-calls", type=int, help="only versions with at least this many calls")
    versions.add_argument("--limit", type=int, default=30, help="versions shown at most (default 30)")
    versions.add_argument(
        "--compare", nargs=2, metavar=("A", "B"), help="compare version B with version A (ids as listed)"
    )


def _command(sub: Any, name: str, help_text: str, func: Runner) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    add_connection_arguments(parser)
    parser.add_argument("--project", dest="project_id", help="project id")
    parser.add_argument("--since", default="7d", help="how far back, e.g. 6h, 7d, 30d (default 7d)")
    parser.set_defaults(func=func)
    return parser


def _width() -> int:
    return shutil.get_terminal_size((140, 24)).columns


def _print(args: argparse.Namespace, out: TextIO | None, body: Any, text: Callable[[], str]) -> int:
    print(json.dumps(body, indent=2) if args.json else text(), file=out or sys.stdout)
    return 0


def _ms(value: float) -> str:
    return f"{value / 1000:.2f}s" if value >= 1000 else f"{value:.0f}ms"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], width: int, flexible: int) -> str:
    widths = [max([len(header[i]), *(len(row[i]) for row in rows)]) for i in range(len(header))]
    fixed = sum(widths) - widths[flexible] + 2 * (len(header) - 1)
    widths[flexible] = min(widths[flexible], max(12, width - fixed))
    lines = ["  ".join(title.ljust(widths[i]) for i, title in enumerate(header)).rstrip()]
    for row in rows:
        lines.append("  ".join(cut(cell, widths[i]).ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines)


# --- clusters -------------------------------------------------------------------------------------------


def format_clusters(body: dict[str, Any], width: int) -> str:
    """The clusters as a table, with a line on how k was chosen and on the drift of the mix."""
    clusters = body["clusters"]
    if not clusters:
        return "No prompts in this window (prompt embeddings need content capture and the vector store)."
    silhouette = body["silhouette"]
    drift = body["drift"]["js_divergence"]
    lines = [
        f"{body['prompts']} prompts of project {body['project_id']} in {body['k']} clusters "
        f"(k {'given' if body['k_chosen_by'] == 'fixed' else 'chosen by silhouette'}"
        + (f", silhouette {silhouette:.2f}" if silhouette is not None else "")
        + "); drift between the window's halves: "
        + (f"{drift:.3f} (Jensen-Shannon)" if drift is not None else "-"),
        "",
    ]
    header = ("ID", "PROMPTS", "SHARE", "CHANGE", "CALLS", "COST", "P50", "P95", "ERRORS", "LABEL")
    rows = [
        (
            str(c["id"]),
            str(c["prompts"]),
            _percent(c["share"]),
            f"{100 * c['share_change']:+.1f}pt",
            str(c["calls"]),
            format_usd(c["cost_usd"]),
            _ms(c["latency_ms"]["p50"]),
            _ms(c["latency_ms"]["p95"]),
            _percent(c["error_rate"]),
            c["label"],
        )
        for c in clusters
    ]
    lines.append(_table(header, rows, width, flexible=9))
    return "\n".join(lines)


def run_clusters(args: argparse.Namespace, out: TextIO | None = None) -> int:
    params = {
        "organization_id": args.organization_id,
        "project_id": args.project_id,
        "start_time": since_time(args.since),
        "k": args.k,
        "max_prompts": args.max_prompts,
    }
    body = api_request(args, "GET", "/api/v1/insights/prompt-clusters", params)
    return _print(args, out, body, lambda: format_clusters(body, _width()))


# --- versions -------------------------------------------------------------------------------------------


def format_versions(body: dict[str, Any], width: int) -> str:
    versions = body["versions"]
    if not versions:
        return "No prompt versions in this window (they need prompt attributes or captured content)."
    header = (
        "ID",
        "CALLS",
        "FIRST SEEN",
        "LAST SEEN",
        "ERRORS",
        "P50",
        "P95",
        "COST",
        "TOKENS IN/OUT",
        "TEMPLATE",
    )
    rows = [
        (
            v["id"],
            str(v["calls"]),
            short_time(v["first_seen"]),
            short_time(v["last_seen"]),
            _percent(v["error_rate"]),
            _ms(v["latency_ms"]["p50"]),
            _ms(v["latency_ms"]["p95"]),
            format_usd(v["cost_usd"]),
            f"{v['input_tokens']}/{v['output_tokens']}",
            v["template"] or "-",
        )
        for v in versions
    ]
    note = f"{body['identified_calls']} of {body['total_calls']} calls have a prompt version" + (
        " (the window held more calls than were read)" if body["truncated"] else ""
    )
    return _table(header, rows, width, flexible=9) + "\n\n" + note


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def format_comparison(body: dict[str, Any]) -> str:
    """Two versions side by side, with the differences and the tests' p-values."""
    a, b, delta = body["a"], body["b"], body["delta"]
    rows = [
        ("version", a["id"], b["id"], ""),
        ("calls", str(a["calls"]), str(b["calls"]), f"{delta['calls']:+d}"),
        ("first seen", short_time(a["first_seen"]), short_time(b["first_seen"]), ""),
        ("last seen", short_time(a["last_seen"]), short_time(b["last_seen"]), ""),
        (
            "error rate",
            _percent(a["error_rate"]),
            _percent(b["error_rate"]),
            f"{100 * delta['error_rate']:+.1f}pt (p={_p(body['error_rate_test']['p_value'])})",
        ),
        (
            "latency p50",
            _ms(a["latency_ms"]["p50"]),
            _ms(b["latency_ms"]["p50"]),
            f"{delta['latency_p50_ms']:+.0f}ms (p={_p(body['latency_test']['p_value'])})",
        ),
        (
            "latency p95",
            _ms(a["latency_ms"]["p95"]),
            _ms(b["latency_ms"]["p95"]),
            f"{delta['latency_p95_ms']:+.0f}ms",
        ),
        (
            "cost per call",
            format_usd(a["cost_per_call_usd"]),
            format_usd(b["cost_per_call_usd"]),
            f"{'+' if delta['cost_per_call_usd'] >= 0 else '-'}{format_usd(abs(delta['cost_per_call_usd']))}",
        ),
        (
            "input tokens/call",
            f"{a['input_tokens'] / max(1, a['calls']):.0f}",
            f"{b['input_tokens'] / max(1, b['calls']):.0f}",
            f"{delta['input_tokens_per_call']:+.0f}",
        ),
        (
            "output tokens/call",
            f"{a['output_tokens'] / max(1, a['calls']):.0f}",
            f"{b['output_tokens'] / max(1, b['calls']):.0f}",
            f"{delta['output_tokens_per_call']:+.0f}",
        ),
    ]
    return _table(("", "A", "B", "B - A"), rows, 200, flexible=1)


def run_versions(args: argparse.Namespace, out: TextIO | None = None) -> int:
    params: dict[str, Any] = {
        "organization_id": args.organization_id,
        "project_id": args.project_id,
        "start_time": since_time(args.since),
        "model": args.model,
    }
    if args.compare:
        params["a"], params["b"] = args.compare
        body = api_request(args, "GET", "/api/v1/insights/prompt-versions/compare", params)
        return _print(args, out, body, lambda: format_comparison(body))
    params["min_calls"] = args.min_calls
    params["limit"] = args.limit
    body = api_request(args, "GET", "/api/v1/insights/prompt-versions", params)
    return _print(args, out, body, lambda: format_versions(body, _width()))
