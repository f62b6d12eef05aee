"""The session and user reads: a conversation as its turns in order, a user's totals and sessions, confined
to the caller's organization."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from llm_observer.kernel.batch import STATUS_ERROR, STATUS_OK, SpanBatch

from .conftest import KEY_A, KEY_B, _append

H_A = {"Authorization": f"Bearer {KEY_A}"}
H_B = {"Authorization": f"Bearer {KEY_B}"}
RESOURCE = {
    "service.name": "assistant",
    "llm_observer.organization.id": "org-a",
    "llm_observer.project.id": "web",
}


def _id(*parts: object, size: int) -> bytes:
    return hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:size]


def _messages(role: str, text: str) -> str:
    return f'[{{"role":"{role}","parts":[{{"type":"text","content":"{text}"}}]}}]'


def conversation(base_ns: int) -> SpanBatch:
    """Session ``s-1`` of user ``u-7``: three turns a minute apart, each a root span (naming the session)
    over one model call; the third call fails. Session ``s-2`` of the same user: one turn."""
    batch = SpanBatch()
    for session, turns in (("s-1", 3), ("s-2", 1)):
        for turn in range(turns):
            tid = _id(session, turn, size=16)
            root = _id(tid, "root", size=8)
            start = base_ns + turn * 60 * 10**9 + (0 if session == "s-1" else 10 * 60 * 10**9)
            ids = {"gen_ai.conversation.id": session, "user.id": "u-7"}
            _append(
                batch, tid, root, b"", "turn", 2, start, start + 900 * 10**6, STATUS_OK, "", ids, RESOURCE, []
            )
            failed = session == "s-1" and turn == 2
            attrs: dict[str, Any] = {
                **ids,
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 10 * (turn + 1),
                "gen_ai.usage.output_tokens": 5,
                "llm_observer.cost.usd": 0.01 * (turn + 1),
                "gen_ai.input.messages": "["
                + _messages("system", "be brief")[1:-1]
                + ","
                + _messages("user", f"question {session} {turn}")[1:-1]
                + "]",
                "gen_ai.output.messages": _messages("assistant", f"answer {session} {turn}"),
            }
            _append(
                batch,
                tid,
                _id(tid, "llm", size=8),
                root,
                "chat gpt-4o",
                3,
                start + 100 * 10**6,
                start + 800 * 10**6,
                STATUS_ERROR if failed else STATUS_OK,
                "boom" if failed else "",
                attrs,
                RESOURCE,
                [],
            )
    batch.origin = "test:sessions"
    return batch


@pytest.fixture
async def with_sessions(running: Any) -> Any:
    await running.exporter.send(conversation(time.time_ns() - 3600 * 10**9))
    return running


async def test_sessions_turns_in_order_with_prompt_answer_and_totals(with_sessions: Any) -> None:
    response = await with_sessions.http.get("/api/v1/sessions/s-1", headers=H_A)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["turn_count"] == 3 and body["user_ids"] == ["u-7"]
    assert [turn["prompt"] for turn in body["turns"]] == [f"question s-1 {t}" for t in range(3)]
    assert [turn["answer"] for turn in body["turns"]] == [f"answer s-1 {t}" for t in range(3)]
    assert [turn["span_count"] for turn in body["turns"]] == [2, 2, 2]
    assert [turn["error_count"] for turn in body["turns"]] == [0, 0, 1]
    assert body["turns"][0]["duration_ms"] == pytest.approx(900.0)
    assert body["input_tokens"] == 60 and body["output_tokens"] == 15 and body["llm_call_count"] == 3
    assert body["cost_usd"] == pytest.approx(0.06)


async def test_sessions_user_page_totals_and_sessions(with_sessions: Any) -> None:
    body = (await with_sessions.http.get("/api/v1/users/u-7", headers=H_A)).json()
    assert body["trace_count"] == 4 and body["session_count"] == 2
    assert body["llm_call_count"] == 4 and body["error_count"] == 1
    assert body["cost_usd"] == pytest.approx(0.07) and body["models"] == ["gpt-4o"]
    assert [s["session_id"] for s in body["sessions"]] == ["s-2", "s-1"]
    assert body["sessions"][1]["trace_count"] == 3
    listed = (await with_sessions.http.get("/api/v1/sessions", headers=H_A, params={"user_id": "u-7"})).json()
    assert [s["session_id"] for s in listed["sessions"]] == ["s-2", "s-1"]


async def test_sessions_confined_to_the_callers_organization(with_sessions: Any) -> None:
    assert (await with_sessions.http.get("/api/v1/sessions/s-1", headers=H_B)).status_code == 404
    assert (await with_sessions.http.get("/api/v1/users/u-7", headers=H_B)).status_code == 404
    listed = (await with_sessions.http.get("/api/v1/sessions", headers=H_B)).json()
    assert listed["sessions"] == []
    assert (await with_sessions.http.get("/api/v1/sessions/s-1")).status_code == 401


async def test_sessions_trace_list_counts_llm_calls(with_sessions: Any) -> None:
    body = (await with_sessions.http.get("/api/v1/traces", headers=H_A, params={"session_id": "s-1"})).json()
    assert len(body["traces"]) == 3
    assert all(trace["llm_call_count"] == 1 and trace["span_count"] == 2 for trace in body["traces"])
