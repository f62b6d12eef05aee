"""Stream wrapper bases: the span of a streamed call ends exactly once, however the stream ends.

A wrapper is a transparent ``wrapt.ObjectProxy`` over the SDK's stream object (its other attributes and
methods stay reachable). It ends the call on: exhaustion, an error while iterating, ``close()``, leaving a
``with`` block, ``break`` out of a ``for`` loop or an exception the application raises inside it (the
iteration generator is finalised at once in CPython; for ``async for`` when the event loop finalises the
async generator), garbage collection of the wrapper, and, for a stream still open when the interpreter
exits (one whose frame a traceback keeps alive, such as a script dying inside a loop over it), at exit:
the exit hook is registered when the first stream is wrapped, so it runs before the shutdown hook of a
tracer provider made earlier (exit hooks run last-registered first) and the span is still exported.

Subclasses override two hooks, both called at most as often as described and allowed to raise (errors are
logged at DEBUG and ignored):

- ``_llmo_on_chunk(chunk)`` for every chunk: keep references only (e.g. the last usage block), so the
  wrapper allocates nothing per chunk beyond the chunk itself. Accumulate text only when
  ``self._self_handler.capture_content`` is true. Returning True keeps the chunk from the caller (a chunk
  the instrumentation itself asked the server for, see ``LLMCall.private_usage_chunk``); None or False
  passes it on.
- ``_llmo_on_end()`` once, before the span ends: copy what was kept into ``self._self_call``.

Instance state of subclasses must use attribute names starting with ``_self_`` (wrapt's rule for state
kept on the proxy rather than the wrapped object); set it before users
iterate, i.e. in the ``_llmo_init()`` hook (run at the end of the base ``__init__``, the handler and call
already set) or in ``__init__`` after ``super().__init__(wrapped, handler, call)``.

A subclass that takes no arguments of its own may skip ``__init__``; the constructor is
``Wrapper(sdk_stream, handler, call, error_type=None)``, where ``error_type(exc) -> str | None`` gives the
``error.type`` of an error raised mid-stream (a provider error code; None falls back to the exception's class
name).

Where all a wrapper does is forward chunks to a per-stream state object (a :class:`StreamState`),
:func:`state_streamer` makes the ``stream`` function that wraps sync and async SDK streams around such a
state, with no wrapper subclass of its own.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import wrapt

from llm_observer.instrumentation._util import ErrorTypeFn, error_type_of
from llm_observer.instrumentation.handler import GenAIHandler, LLMCall

_log = logging.getLogger(__name__)

# Streams whose call has not ended, by id; the exit hook ends them (see module docstring).
_open_streams: weakref.WeakValueDictionary[int, _StreamBase] = weakref.WeakValueDictionary()
_exit_hook_lock = threading.Lock()
_exit_hook_registered = False


def _end_open_streams() -> None:
    """Exit hook: end the call of every stream still open, with what it gathered."""
    for stream in list(_open_streams.values()):
        try:
            stream._llmo_end(None)
        except Exception:  # never fail the interpreter's exit
            _log.debug("Could not end an open stream at exit.", exc_info=True)


def _track(stream: _StreamBase) -> None:
    global _exit_hook_registered
    if not _exit_hook_registered:
        with _exit_hook_lock:
            if not _exit_hook_registered:
                atexit.register(_end_open_streams)
                _exit_hook_registered = True
    _open_streams[id(stream)] = stream


# wrapt 2 types its proxy as a generic; wrapt 1 (still pinned by some frameworks' OpenTelemetry releases)
# cannot be subscripted at run time.
if TYPE_CHECKING:
    Proxy = wrapt.ObjectProxy[Any]
else:
    Proxy = wrapt.ObjectProxy


class _StreamBase(Proxy):
    def __init__(
        self, wrapped: Any, handler: GenAIHandler, call: LLMCall, error_type: ErrorTypeFn | None = None
    ) -> None:
        super().__init__(wrapped)
        self._self_handler = handler
        self._self_call = call
        self._self_error_type = error_type
        self._self_iterator: Any = None
        self._llmo_init()
        _track(self)

    def _llmo_init(self) -> None:
        """Set the subclass's own ``_self_`` state (override; runs at the end of ``__init__``)."""

    def _llmo_on_chunk(self, chunk: Any) -> bool | None:
        """Look at one chunk (override; keep references only); True keeps it from the caller."""
        return None

    def _llmo_on_end(self) -> None:
        """Copy the gathered response data into ``self._self_call`` (override)."""

    def _llmo_chunk(self, chunk: Any) -> bool:
        """Read one chunk; whether to keep it from the caller."""
        call = self._self_call
        if call.first_chunk_ns is None:
            self._self_handler.first_chunk(call)
        try:
            return self._llmo_on_chunk(chunk) is True
        except Exception:
            _log.debug("Could not read a stream chunk.", exc_info=True)
            return False

    def _llmo_end(self, exc: BaseException | None) -> None:
        call = self._self_call
        if call.ended:
            return
        _open_streams.pop(id(self), None)
        try:
            self._llmo_on_end()
        except Exception:
            _log.debug("Could not read the end of a stream.", exc_info=True)
        handler = self._self_handler
        if exc is None or isinstance(exc, GeneratorExit):
            handler.finish(call)
        else:
            handler.fail(call, exc, error_type_of(self._self_error_type, exc))

    def __del__(self) -> None:
        try:
            call = self._self_call
        except AttributeError:  # __init__ did not finish
            return
        if not call.ended:
            self._llmo_end(None)


class SyncStreamWrapper(_StreamBase):
    """Base for wrappers of synchronous streams (see module docstring)."""

    def __iter__(self) -> Iterator[Any]:
        # A generator, so that `break` finalises it (and so ends the span) straight away.
        try:
            for chunk in self.__wrapped__:
                if not self._llmo_chunk(chunk):
                    yield chunk
        except BaseException as exc:
            self._llmo_end(exc)
            raise
        self._llmo_end(None)

    def __next__(self) -> Any:
        if self._self_iterator is None:
            self._self_iterator = iter(self.__wrapped__)
        while True:
            try:
                chunk = next(self._self_iterator)
            except StopIteration:
                self._llmo_end(None)
                raise
            except BaseException as exc:
                self._llmo_end(exc)
                raise
            if not self._llmo_chunk(chunk):
                return chunk

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._llmo_end(None)

    def __enter__(self) -> SyncStreamWrapper:
        self.__wrapped__.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._llmo_end(exc)


class AsyncStreamWrapper(_StreamBase):
    """Base for wrappers of asynchronous streams (see module docstring)."""

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._llmo_iterate()

    async def _llmo_iterate(self) -> AsyncIterator[Any]:
        try:
            async for chunk in self.__wrapped__:
                if not self._llmo_chunk(chunk):
                    yield chunk
        except BaseException as exc:
            self._llmo_end(exc)
            raise
        self._llmo_end(None)

    async def __anext__(self) -> Any:
        if self._self_iterator is None:
            self._self_iterator = self.__wrapped__.__aiter__()
        while True:
            try:
                chunk = await self._self_iterator.__anext__()
            except StopAsyncIteration:
                self._llmo_end(None)
                raise
            except BaseException as exc:
                self._llmo_end(exc)
                raise
            if not self._llmo_chunk(chunk):
                return chunk

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            self._llmo_end(None)

    async def aclose(self) -> Any:
        try:
            closer = getattr(self.__wrapped__, "aclose", None) or self.__wrapped__.close
            return await closer()
        finally:
            self._llmo_end(None)

    async def __aenter__(self) -> AsyncStreamWrapper:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._llmo_end(exc)


class StreamState(Protocol):
    """What one stream keeps (see module docstring for what it may hold): it sees every chunk, then fills
    the call once when the stream ends."""

    def on_chunk(self, chunk: Any) -> None:
        """Look at one chunk (keep references only)."""

    def finish(self, call: LLMCall) -> None:
        """Copy what was kept into ``call``."""


class _StateStream(_StreamBase):
    """Forwards the hooks to a :class:`StreamState` (mixed into the sync and async wrappers below)."""

    def __init__(
        self,
        wrapped: Any,
        handler: GenAIHandler,
        call: LLMCall,
        state: StreamState,
        error_type: ErrorTypeFn | None,
    ) -> None:
        super().__init__(wrapped, handler, call, error_type)
        self._self_state = state

    def _llmo_on_chunk(self, chunk: Any) -> None:
        self._self_state.on_chunk(chunk)

    def _llmo_on_end(self) -> None:
        self._self_state.finish(self._self_call)


class _SyncStateStream(_StateStream, SyncStreamWrapper):
    pass


class _AsyncStateStream(_StateStream, AsyncStreamWrapper):
    pass


def state_streamer(
    handler: GenAIHandler,
    make_state: Callable[[bool], StreamState],
    error_type: ErrorTypeFn | None = None,
    *,
    streaming_only: bool = False,
    iterables: bool = False,
) -> Callable[[LLMCall, Any], Any]:
    """A ``stream`` function for :func:`sync_wrapper`/:func:`async_wrapper`: it wraps a result that is a
    stream so that its chunks go to a fresh ``make_state(handler.capture_content)`` and the call ends with
    the stream. An async wrapper when the result has ``__aiter__``, a sync one when it has ``__next__`` (or,
    with ``iterables``, just ``__iter__``); None (not a stream) otherwise, and for every call not marked
    ``streaming`` when ``streaming_only``. ``error_type`` gives the ``error.type`` of an error raised
    mid-stream (None falls back to the exception's class name)."""

    def stream(call: LLMCall, result: Any) -> Any:
        if streaming_only and not call.streaming:
            return None
        state = make_state(handler.capture_content)
        if hasattr(result, "__aiter__"):
            return _AsyncStateStream(result, handler, call, state, error_type)
        if hasattr(result, "__next__") or (iterables and hasattr(result, "__iter__")):
            return _SyncStateStream(result, handler, call, state, error_type)
        return None

    return stream
