"""wrapt wrappers that run an SDK call through the shared handler, sync and async (the contract of the
functions they take is in :mod:`llm_observer.instrumentation._instrumentor`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from llm_observer.instrumentation._util import ErrorTypeFn, error_type_of
from llm_observer.instrumentation.handler import GenAIHandler, LLMCall, llm_spans_suppressed

_log = logging.getLogger(__name__)

#: ``(instance, args, kwargs) -> LLMCall | None``; None leaves the call uninstrumented.
RequestFn = Callable[[Any, tuple[Any, ...], dict[str, Any]], LLMCall | None]
#: ``(call, result) -> None``: copy the response's model, id, finish reasons, usage, content into ``call``.
ResponseFn = Callable[[LLMCall, Any], None]
#: ``(call, result) -> wrapped stream | None``: None when ``result`` is not a stream.
StreamFn = Callable[[LLMCall, Any], Any]

WraptWrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


def read_request(request: RequestFn, instance: Any, args: Any, kwargs: Any) -> LLMCall | None:
    """The call ``request`` reads from an SDK call's arguments; None when LLM spans are suppressed here,
    when it leaves the call alone, or when it fails (logged at DEBUG)."""
    if llm_spans_suppressed():
        return None
    try:
        return request(instance, args, kwargs)
    except Exception:
        _log.debug("Could not read a GenAI request.", exc_info=True)
        return None


def _complete(
    handler: GenAIHandler, call: LLMCall, result: Any, response: ResponseFn, stream: StreamFn | None
) -> Any:
    try:
        if stream is not None:
            wrapped_stream = stream(call, result)
            if wrapped_stream is not None:
                return wrapped_stream
        response(call, result)
    except Exception:
        _log.debug("Could not read a GenAI response.", exc_info=True)
    handler.finish(call)
    return result


def sync_wrapper(
    handler: GenAIHandler,
    request: RequestFn,
    response: ResponseFn,
    stream: StreamFn | None = None,
    error_type: ErrorTypeFn | None = None,
) -> WraptWrapper:
    """A ``wrapt`` wrapper for a synchronous SDK method."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = read_request(request, instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        try:  # inline, not a helper: one Python frame less on every call
            handler.start(call)
        except Exception:
            _log.debug("Could not start a GenAI span.", exc_info=True)
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            handler.detach(call)
            handler.fail(call, exc, error_type_of(error_type, exc))
            raise
        handler.detach(call)
        return _complete(handler, call, result, response, stream)

    return wrapper


def async_wrapper(
    handler: GenAIHandler,
    request: RequestFn,
    response: ResponseFn,
    stream: StreamFn | None = None,
    error_type: ErrorTypeFn | None = None,
) -> Callable[[Callable[..., Awaitable[Any]], Any, tuple[Any, ...], dict[str, Any]], Awaitable[Any]]:
    """A ``wrapt`` wrapper for an ``async def`` SDK method."""

    async def wrapper(
        wrapped: Callable[..., Awaitable[Any]], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = read_request(request, instance, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            handler.start(call)
        except Exception:
            _log.debug("Could not start a GenAI span.", exc_info=True)
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            handler.detach(call)
            handler.fail(call, exc, error_type_of(error_type, exc))
            raise
        handler.detach(call)
        return _complete(handler, call, result, response, stream)

    return wrapper
