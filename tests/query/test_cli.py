"""``llm-observer traces list`` / ``traces show`` against a running query service."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from llm_observer.query.cli_commands import add_traces_commands, format_table, format_tree, format_usd


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="llm-observer")
    add_traces_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def run(argv: list[str]) -> str:
    args = parse(argv)
    out = io.StringIO()
    # The command is synchronous (httpx); the server runs in this loop, so call it from a thread.
    code = await asyncio.to_thread(args.func, args, out)
    assert code == 0
    return out.getvalue()


async def test_cli_traces_list_prints_a_table(running: Any) -> None:
    url = f"http://127.0.0.1:{running.service.http_port}"
    text = await run(["traces", "list", "--url", url, "--api-key", "key-for-org-b", "--limit", "5"])
    lines = text.splitlines()
    assert lines[0].split() == [
        "TIME",
        "ROOT",
        "MODELS",
        "TOKENS",
        "COST",
        "DURATION",
        "STATUS",
        "TRACE",
        "ID",
    ]
    rows = [line for line in lines[1:] if line and not line.startswith("More")]
    assert len(rows) == 5
    assert all("chatbot request" in row for row in rows)
    assert any("ERROR" in row for row in rows) or all(" ok " in row + " " for row in rows)
    assert "--cursor" in text
    errors = await run(["traces", "list", "--url", url, "--api-key", "key-for-org-b", "--status", "error"])
    assert "ERROR" in errors and " ok " not in errors
    empty = await run(["traces", "list", "--url", url, "--api-key", "key-for-org-b", "--model", "nope"])
    assert empty.strip() == "No traces found."


async def test_cli_traces_show_prints_a_tree(running: Any) -> None:
    url = f"http://127.0.0.1:{running.service.http_port}"
    b = running.planted.batch
    # An org-a trace with a failed call (t = 4 in project web).
    tid = next(
        t
        for t, rows in running.planted.traces.items()
        if b.resource[rows[0]]["llm_observer.organization.id"] == "org-a"
        and any(b.status_code[i] == 2 for i in rows)
    )
    text = await run(["traces", "show", tid, "--url", url, "--api-key", "key-for-org-a", "--content"])
    lines = text.splitlines()
    assert lines[0].startswith(f"Trace {tid}") and "3 spans" in lines[0] and "1 errors" in lines[0]
    assert lines[1].startswith("chatbot request  [")
    children = [line for line in lines if line.startswith(("├─ ", "└─ "))]
    assert len(children) == 2
    assert any("ERROR: rate limited" in line for line in children)
    assert any("tok" in line and "$" in line for line in children)
    assert any("input: user: question org-a" in line for line in lines)
    assert any("output: assistant: answer" in line for line in lines)
    plain = await run(["traces", "show", tid, "--url", url, "--api-key", "key-for-org-a"])
    assert "input:" not in plain


async def test_cli_reports_api_errors(running: Any) -> None:
    url = f"http://127.0.0.1:{running.service.http_port}"
    args = parse(["traces", "show", "ab" * 16, "--url", url, "--api-key", "key-for-org-a"])
    with pytest.raises(SystemExit, match="404"):
        await asyncio.to_thread(args.func, args, io.StringIO())
    args = parse(["traces", "list", "--url", url])
    with pytest.raises(SystemExit, match="401"):
        await asyncio.to_thread(args.func, args, io.StringIO())
    args = parse(["traces", "list", "--url", "http://127.0.0.1:9", "--api-key", "x"])
    with pytest.raises(SystemExit, match="cannot reach"):
        await asyncio.to_thread(args.func, args, io.StringIO())


def test_cli_tree_nests_children_under_parents() -> None:
    def span(sid: str, parent: str | None, name: str, start: str) -> dict[str, Any]:
        return {
            "span_id": sid,
            "parent_span_id": parent,
            "name": name,
            "start_time": start,
            "duration_ms": 1500.0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost_usd": 0.0,
            "status": "Ok",
            "status_message": "",
        }

    spans = [
        span("a", None, "root", "1"),
        span("b", "a", "child", "2"),
        span("c", "b", "grandchild", "3"),
        span("d", "a", "second", "4"),
    ]
    assert format_tree(spans, content=False).splitlines() == [
        "root  [1.50s]",
        "├─ child  [1.50s]",
        "│  └─ grandchild  [1.50s]",
        "└─ second  [1.50s]",
    ]


async def test_cli_traces_list_into_a_closed_pipe_exits_quietly(running: Any) -> None:
    # As `llm-observer traces list | head` when head has already exited: every write fails with EPIPE.
    url = f"http://127.0.0.1:{running.service.http_port}"
    script = Path(sys.executable).parent / "llm-observer"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = await asyncio.create_subprocess_exec(
            str(script),
            *("traces", "list", "--url", url, "--api-key", "key-for-org-b", "--limit", "5"),
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        os.close(write_end)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 1
    assert stderr.decode() == ""


@pytest.mark.parametrize(
    ("usd", "shown"),
    [
        (5.85e-06, "$0.00000585"),
        (0.0123, "$0.0123"),
        (0.5, "$0.50"),
        (0.99951, "$1.00"),
        (12.345, "$12.35"),
        (1234.5, "$1,234.50"),
        (0.0, "$0"),
    ],
)
def test_cli_cost_keeps_significant_digits(usd: float, shown: str) -> None:
    assert format_usd(usd) == shown


def test_cli_cheap_call_cost_is_not_zero_in_the_table() -> None:
    trace = {
        "start_time": "2026-01-02T03:04:05.000000000Z",
        "root_span_name": "chat gpt-4o-mini",
        "models": ["gpt-4o-mini"],
        "input_tokens": 13,
        "output_tokens": 6,
        "cost_usd": 5.85e-06,
        "duration_ms": 420.0,
        "error_count": 0,
        "trace_id": "0" * 32,
    }
    table = format_table([trace], 160)
    assert "$0.00000585" in table and "$0.0000 " not in table
