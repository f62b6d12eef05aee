"""The REST reads of conversations and users (``/api/v1/sessions…``, ``/api/v1/users/{id}``), which the web
view's session and user pages draw.

A session is every trace that one ``gen_ai.conversation.id`` (or ``session.id``) names, in the order its
turns happened; a user's page is their totals and their sessions. Both are confined to the caller's tenant
and to the request's time window (default: the last ``default_lookback_hours``), and cached like every read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query
from starlette.exceptions import HTTPException as StarletteHTTPException

from llm_observer.query.backend import QueryBackend
from llm_observer.query.deps import Backend, Scope
from llm_observer.query.formats import rfc3339
from llm_observer.storage.clickhouse.session_reads import (
    SessionReads,
    SessionSummary,
    SessionTurn,
    UserTotals,
)

T = TypeVar("T")


async def _read(backend: QueryBackend, key: tuple[Any, ...], fn: Callable[[SessionReads], T]) -> T:
    reads = SessionReads(backend.store)

    async def compute() -> T:
        return await asyncio.to_thread(fn, reads)

    return await backend.cache.get_or_compute(("sessions", *key), compute)


def turn_document(turn: SessionTurn) -> dict[str, Any]:
    return {
        "trace_id": turn.trace_id,
        "root_span_name": turn.root_span_name,
        "start_time": rfc3339(turn.start_ns),
        "duration_ms": turn.duration_ns / 1e6,
        "span_count": turn.span_count,
        "llm_call_count": turn.llm_call_count,
        "error_count": turn.error_count,
        "input_tokens": turn.input_tokens,
        "output_tokens": turn.output_tokens,
        "cost_usd": turn.cost_usd,
        "prompt": turn.prompt or None,
        "answer": turn.answer or None,
        "user_id": turn.user_id or None,
    }


def session_summary_document(session: SessionSummary) -> dict[str, Any]:
    return {
        "session_id": session.session_id,
        "user_id": session.user_id or None,
        "start_time": rfc3339(session.start_ns),
        "end_time": rfc3339(session.end_ns),
        "trace_count": session.trace_count,
        "llm_call_count": session.llm_call_count,
        "error_count": session.error_count,
        "input_tokens": session.input_tokens,
        "output_tokens": session.output_tokens,
        "cost_usd": session.cost_usd,
    }


def user_document(totals: UserTotals) -> dict[str, Any]:
    return {
        "user_id": totals.user_id,
        "first_seen": rfc3339(totals.first_ns),
        "last_seen": rfc3339(totals.last_ns),
        "trace_count": totals.trace_count,
        "session_count": totals.session_count,
        "llm_call_count": totals.llm_call_count,
        "error_count": totals.error_count,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "cost_usd": totals.cost_usd,
        "models": list(totals.models),
    }


def build_router() -> APIRouter:
    router = APIRouter(tags=["sessions"])

    @router.get("/api/v1/sessions")
    async def list_sessions(
        scope: Scope,
        backend: Backend,
        user_id: Annotated[str | None, Query(description="only this user's sessions")] = None,
        limit: Annotated[int | None, Query(ge=1, description="default 100")] = None,
    ) -> dict[str, Any]:
        """Sessions with spans in the window, most recently active first, with their totals."""
        size = backend.page_size(limit, 100)
        found = await _read(
            backend,
            ("list", scope.tenant, scope.start_ns, scope.end_ns, user_id, size),
            lambda reads: reads.sessions(scope.tenant, scope.start_ns, scope.end_ns, user_id or None, size),
        )
        return {
            "sessions": [session_summary_document(session) for session in found],
            "start_time": rfc3339(scope.start_ns),
            "end_time": rfc3339(scope.end_ns),
        }

    @router.get("/api/v1/sessions/{session_id}")
    async def get_session(
        session_id: str,
        scope: Scope,
        backend: Backend,
        limit: Annotated[int | None, Query(ge=1, description="most turns returned; default 500")] = None,
    ) -> dict[str, Any]:
        """One conversation as its turns (traces) in order — prompt, answer, latency, tokens, cost — and
        its totals; 404 when no span in the window names it."""
        size = backend.page_size(limit, 500)
        turns = await _read(
            backend,
            ("turns", scope.tenant, scope.start_ns, scope.end_ns, session_id, size),
            lambda reads: reads.session_turns(scope.tenant, session_id, scope.start_ns, scope.end_ns, size),
        )
        if not turns:
            raise StarletteHTTPException(404, f"session {session_id!r} not found in the window")
        users = sorted({turn.user_id for turn in turns if turn.user_id})
        return {
            "session_id": session_id,
            "user_ids": users,
            "start_time": rfc3339(min(turn.start_ns for turn in turns)),
            "end_time": rfc3339(max(turn.end_ns for turn in turns)),
            "turn_count": len(turns),
            "llm_call_count": sum(turn.llm_call_count for turn in turns),
            "error_count": sum(turn.error_count for turn in turns),
            "input_tokens": sum(turn.input_tokens for turn in turns),
            "output_tokens": sum(turn.output_tokens for turn in turns),
            "cost_usd": sum(turn.cost_usd for turn in turns),
            "duration_ms": sum(turn.duration_ns for turn in turns) / 1e6,
            "turns": [turn_document(turn) for turn in turns],
        }

    @router.get("/api/v1/users/{user_id}")
    async def get_user(
        user_id: str,
        scope: Scope,
        backend: Backend,
        limit: Annotated[int | None, Query(ge=1, description="most sessions listed; default 100")] = None,
    ) -> dict[str, Any]:
        """One user's totals in the window (traces, sessions, model calls, errors, tokens, spend) and their
        sessions, most recent first; 404 when no span in the window names them."""
        size = backend.page_size(limit, 100)
        key = (scope.tenant, scope.start_ns, scope.end_ns, user_id)
        totals = await _read(
            backend,
            ("user", *key),
            lambda reads: reads.user_totals(scope.tenant, user_id, scope.start_ns, scope.end_ns),
        )
        if totals is None:
            raise StarletteHTTPException(404, f"user {user_id!r} not found in the window")
        sessions = await _read(
            backend,
            ("list", *key, size),
            lambda reads: reads.sessions(scope.tenant, scope.start_ns, scope.end_ns, user_id, size),
        )
        return {
            **user_document(totals),
            "sessions": [session_summary_document(session) for session in sessions],
            "start_time": rfc3339(scope.start_ns),
            "end_time": rfc3339(scope.end_ns),
        }

    return router
