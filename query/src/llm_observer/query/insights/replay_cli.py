"""``llm-observer replay TRACE_ID [--span ID] [--model M] [--base-url URL]``: re-run a recorded trace here.

The trace is read over the query API (``--url``, ``--api-key``, as every query command); its LLM calls are
re-issued from this machine through the provider SDKs with this machine's keys (``OPENAI_API_KEY``,
``ANTHROPIC_API_KEY``); the new trace, linked to the original, goes over OTLP/HTTP to ``--otlp-endpoint``
(default ``http://127.0.0.1:4318``, the collector of ``llm-observer up``); the diff per call (output,
tokens, cost, latency) is printed, or its JSON with ``--json``. Exit status: 0 when every call was
replayed, 1 when one failed, 2 for a replay that could not start (the message says why).

``--base-url`` accepts ``PROVIDER=URL`` too (repeatable) for traces that mix providers:
``--base-url openai=http://localhost:8000/v1 --base-url anthropic=http://localhost:8001``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from llm_observer.query.cli_commands import add_connection_arguments, api_request

__all__ = ["add_replay_commands", "main", "run_replay"]

_OTLP_ENV = "LLM_OBSERVER_OTLP_ENDPOINT"
_DEFAULT_OTLP = "http://127.0.0.1:4318"


def add_replay_commands(subparsers: Any) -> None:
    """Register the top-level ``replay`` command on an argparse sub-parser set (it sets ``func``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="re-issue a trace's recorded LLM calls and show what changed (uses the query API)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    _arguments(parser)


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_arguments(parser)
    parser.add_argument("trace_id", help="the trace to replay")
    parser.add_argument("--project", dest="project_id", help="project id")
    parser.add_argument("--span", dest="span_id", help="replay only this LLM span")
    parser.add_argument("--model", help="the model every replayed call asks for instead of its own")
    parser.add_argument(
        "--base-url",
        action="append",
        default=[],
        help="provider SDK base URL (or PROVIDER=URL, repeatable); default the SDK's own",
    )
    parser.add_argument(
        "--otlp-endpoint",
        default=os.environ.get(_OTLP_ENV, _DEFAULT_OTLP),
        help=f"OTLP/HTTP endpoint for the new trace (default {_DEFAULT_OTLP}, env {_OTLP_ENV})",
    )
    parser.add_argument(
        "--otlp-header",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="header for the OTLP export, e.g. 'Authorization=Bearer <ingest key>' (repeatable)",
    )
    parser.set_defaults(func=run_replay)


def _pairs(values: Sequence[str]) -> dict[str, str]:
    """``PROVIDER=VALUE`` items by provider; a plain value is ``"*"`` (every provider)."""
    out: dict[str, str] = {}
    for value in values:
        provider, sep, rest = value.partition("=")
        # A URL holds no "=" before its scheme; a model name holds none at all.
        if sep and "://" not in provider and "/" not in provider:
            out[provider.strip()] = rest.strip()
        else:
            out["*"] = value.strip()
    return out


def run_replay(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run ``llm-observer replay`` (see the module docstring); the exit status."""
    from llm_observer.query.insights import replay as replay_module
    from llm_observer.query.insights.replay_diff import format_result

    stream = out if out is not None else sys.stdout
    params = {"organization_id": args.organization_id, "project_id": args.project_id}
    document = api_request(args, "GET", f"/api/v1/traces/{args.trace_id}", params)
    headers: dict[str, str] = {}
    for item in args.otlp_header:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"error: --otlp-header must be KEY=VALUE, got {item!r}")
        headers[key.strip()] = value.strip()
    try:
        trace = replay_module.recorded_trace_from_document(document)
        options = replay_module.ReplayOptions(
            span_id=args.span_id,
            model=args.model,
            base_urls=_pairs(args.base_url),
            otlp_endpoint=args.otlp_endpoint,
            otlp_headers=headers,
        )
        result = replay_module.replay_trace(trace, options)
    except replay_module.ReplayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        stream.write(json.dumps(result.model_dump(mode="json"), indent=2) + "\n")
    else:
        stream.write(format_result(result) + "\n")
    return 1 if any(call.replay is None for call in result.calls) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m llm_observer.query.insights.replay_cli TRACE_ID …``: the command on its own."""
    parser = argparse.ArgumentParser(prog="llm-observer replay", description=__doc__)
    _arguments(parser)
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
