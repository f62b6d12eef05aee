"""``llm-observer traces list`` and ``llm-observer traces show ID``: a terminal viewer over the REST API."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

DEFAULT_URL = "http://127.0.0.1:8080"
_SINCE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_SINCE_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_traces_commands(subparsers: Any) -> None:
    """Register ``traces list`` and ``traces show`` on an argparse sub-parser set (each sets ``func``)."""
    traces = subparsers.add_parser("traces", help="browse stored traces in the terminal (uses the query API)")
    traces_sub = traces.add_subparsers(dest="traces_command", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        add_connection_arguments(parser)
        parser.add_argument("--project", dest="project_id", help="project id")

    listing = traces_sub.add_parser("list", help="recent traces, newest first")
    common(listing)
    listing.add_argument("--since", default="24h", help="how far back, e.g. 15m, 6h, 7d (default 24h)")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--model")
    listing.add_argument("--provider")
    listing.add_argument("--service")
    listing.add_argument("--status", choices=["ok", "error", "unset"])
    listing.add_argument("--user", dest="user_id")
    listing.add_argument("--search", dest="q", help="text in prompts, answers, span names or errors")
    listing.add_argument("--cursor", help="continue after a previous page")
    listing.set_defaults(func=run_list)

    show = traces_sub.add_parser("show", help="one trace as a tree of spans")
    common(show)
    show.add_argument("trace_id")
    show.add_argument("--content", action="store_true", help="also print prompts and answers")
    show.set_defaults(func=run_show)


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """``--url``, ``--api-key``, ``--org`` and ``--json``: what every command over the query API takes."""
    parser.add_argument(
        "--url",
        default=os.environ.get("LLM_OBSERVER_URL", DEFAULT_URL),
        help=f"query service URL (default {DEFAULT_URL}, env LLM_OBSERVER_URL)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("LLM_OBSERVER_API_KEY"),
        help="API key or token (env LLM_OBSERVER_API_KEY)",
    )
    parser.add_argument("--org", dest="organization_id", help="organization id")
    parser.add_argument("--json", action="store_true", help="print the API's JSON instead")


def _get(args: argparse.Namespace, path: str, params: dict[str, Any]) -> Any:
    return api_request(args, "GET", path, params)


def api_request(
    args: argparse.Namespace,
    method: str,
    path: str,
    params: dict[str, Any] | None = None,
    body: dict[str, Any] | None = None,
) -> Any:
    """The JSON answer of the query API at ``args.url`` (with ``args.api_key``); an error answer or an
    unreachable service exits with the API's message."""
    import httpx

    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    query = {key: value for key, value in (params or {}).items() if value is not None}
    try:
        response = httpx.request(
            method, args.url.rstrip("/") + path, params=query, json=body, headers=headers, timeout=30
        )
    except httpx.HTTPError as exc:
        raise SystemExit(f"error: cannot reach the query service at {args.url}: {exc}") from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        message = body["error"]["message"] if isinstance(body, dict) and "error" in body else response.text
        raise SystemExit(f"error: {response.status_code} {message}")
    return body


def since_time(value: str) -> str:
    """The RFC 3339 UTC time ``value`` (``15m``, ``6h``, ``7d``) before now; exits on a bad value."""
    found = _SINCE.match(value.strip())
    if not found:
        raise SystemExit(f"error: --since must look like 15m, 6h or 7d, got {value!r}")
    seconds = float(found.group(1)) * _SINCE_SECONDS[found.group(2)]
    return datetime.fromtimestamp(time.time() - seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def short_time(rfc3339: str) -> str:
    """Local ``MM-DD HH:MM:SS`` of an RFC 3339 UTC time (the fraction is dropped)."""
    whole = rfc3339.split(".")[0].rstrip("Z")
    return datetime.fromisoformat(whole + "+00:00").astimezone().strftime("%m-%d %H:%M:%S")


def _duration(ms: float) -> str:
    if ms >= 60_000:
        return f"{ms / 60_000:.1f}m"
    if ms >= 1000:
        return f"{ms / 1000:.2f}s"
    return f"{ms:.0f}ms"


def format_usd(usd: float) -> str:
    """A cost for people: cents from $1 up (``$12.35``), three significant digits below (``$0.50``,
    ``$0.0123``, ``$0.00000585``): a cheap call never shows as ``$0.0000``."""
    if not math.isfinite(usd) or usd == 0:
        return "$0" if usd == 0 else f"${usd}"
    sign = "-" if usd < 0 else ""
    amount = abs(usd)
    if amount < 1e-12:
        return f"{sign}<$0.000000000001"
    if float(f"{amount:.3g}") >= 1:
        return f"{sign}${amount:,.2f}"
    decimals = max(2, 2 - math.floor(math.log10(amount)))
    whole, _, fraction = f"{amount:.{decimals}f}".partition(".")
    fraction = fraction[:2] + fraction[2:].rstrip("0")
    return f"{sign}${whole}.{fraction}"


def _cost(usd: float) -> str:
    return format_usd(usd) if usd else "-"


def cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with an ellipsis."""
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def format_table(traces: Sequence[dict[str, Any]], width: int) -> str:
    """The trace list as an aligned table fitting ``width`` columns."""
    header = ("TIME", "ROOT", "MODELS", "TOKENS", "COST", "DURATION", "STATUS", "TRACE ID")
    rows = [
        (
            short_time(t["start_time"]),
            t["root_span_name"],
            ",".join(t["models"]) or "-",
            f"{t['input_tokens']}/{t['output_tokens']}",
            _cost(t["cost_usd"]),
            _duration(t["duration_ms"]),
            "ERROR" if t["error_count"] else "ok",
            t["trace_id"],
        )
        for t in traces
    ]
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i]) for i in range(8)]
    # Give the flexible columns (root, models) what the fixed ones leave.
    fixed = sum(widths) - widths[1] - widths[2] + 2 * 7
    spare = max(20, width - fixed)
    widths[1] = min(widths[1], max(10, spare * 3 // 5))
    widths[2] = min(widths[2], max(10, spare - widths[1]))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(header)).rstrip()]
    for row in rows:
        lines.append("  ".join(cut(cell, widths[i]).ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines)


def format_tree(spans: Sequence[dict[str, Any]], content: bool) -> str:
    """The spans as a tree (children under parents, by start time) with duration, tokens, cost, errors."""
    by_parent: dict[str | None, list[dict[str, Any]]] = {}
    ids = {span["span_id"] for span in spans}
    for span in spans:
        parent = span["parent_span_id"] if span["parent_span_id"] in ids else None
        by_parent.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: str | None, prefix: str) -> None:
        children = sorted(by_parent.get(parent, []), key=lambda s: (s["start_time"], s["span_id"]))
        for index, span in enumerate(children):
            last = index == len(children) - 1
            branch = "" if parent is None and not prefix else ("└─ " if last else "├─ ")
            details = [_duration(span["duration_ms"])]
            model = span.get("response_model") or span.get("request_model")
            if model:
                details.append(model)
            if span["input_tokens"] or span["output_tokens"]:
                details.append(f"{span['input_tokens']}→{span['output_tokens']} tok")
            if span["cost_usd"]:
                details.append(_cost(span["cost_usd"]))
            line = f"{prefix}{branch}{span['name']}  [{', '.join(details)}]"
            if span["status"] == "Error":
                line += f"  ERROR: {span['status_message'] or 'failed'}"
            lines.append(line)
            top = parent is None and not prefix
            child_prefix = "" if top else prefix + ("   " if last else "│  ")
            if content:
                # Content sits under the span's name, beside the line leading to its children.
                indent = child_prefix + ("│  " if span["span_id"] in by_parent else "   ")
                for label in ("input", "output"):
                    text = span.get(label)
                    if text:
                        for n, text_line in enumerate(str(text).splitlines() or [""]):
                            tag = f"{label}: " if n == 0 else " " * (len(label) + 2)
                            lines.append(f"{indent}{tag}{text_line}")
            walk(span["span_id"], child_prefix)

    walk(None, "")
    return "\n".join(lines)


def run_list(args: argparse.Namespace, out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    params = {
        "organization_id": args.organization_id,
        "project_id": args.project_id,
        "start_time": since_time(args.since),
        "limit": args.limit,
        "model": args.model,
        "provider": args.provider,
        "service": args.service,
        "status": args.status,
        "user_id": args.user_id,
        "q": args.q,
        "cursor": args.cursor,
    }
    body = _get(args, "/api/v1/traces", params)
    if args.json:
        print(json.dumps(body, indent=2), file=stream)
        return 0
    if not body["traces"]:
        print("No traces found.", file=stream)
        return 0
    print(format_table(body["traces"], shutil.get_terminal_size((140, 24)).columns), file=stream)
    if body.get("next_cursor"):
        print(f"\nMore: --cursor {body['next_cursor']}", file=stream)
    return 0


def run_show(args: argparse.Namespace, out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    params = {"organization_id": args.organization_id, "project_id": args.project_id}
    body = _get(args, f"/api/v1/traces/{args.trace_id}", params)
    if args.json:
        print(json.dumps(body, indent=2), file=stream)
        return 0
    spans = body["spans"]
    tokens_in = sum(span["input_tokens"] for span in spans)
    tokens_out = sum(span["output_tokens"] for span in spans)
    cost = sum(span["cost_usd"] for span in spans)
    errors = sum(1 for span in spans if span["status"] == "Error")
    print(
        f"Trace {body['trace_id']}  {len(spans)} spans, {tokens_in}→{tokens_out} tokens, {_cost(cost)}"
        + (f", {errors} errors" if errors else ""),
        file=stream,
    )
    print(format_tree(spans, args.content), file=stream)
    return 0
