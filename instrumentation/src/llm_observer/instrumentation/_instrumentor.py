"""The base of every provider instrumentor: a table of SDK methods, wrapped on ``instrument()`` and restored
on ``uninstrument()``.

A provider module names the packages it instruments, lists the methods it wraps, and says, per kind of
method, how a call reads::

    _instruments = ("acme >= 1.2, < 3",)
    _TARGETS = (
        Target("acme.resources.chat", "Chat.create", "chat"),
        Target("acme.resources.chat", "AsyncChat.create", "chat"),
        Target("acme.resources.embeddings", "Embeddings.create", "embeddings"),
    )

    class AcmeInstrumentor(ProviderInstrumentor):
        instruments = _instruments
        targets = _TARGETS
        operations = {
            "chat": Operation(_chat_request, _chat_response, stream_states(_ChatStreamState)),
            "embeddings": Operation(_embed_request, _embed_response),
        }
        error_type = staticmethod(_error_type)

An :class:`Operation` holds ``request(handler) -> request function`` (made once per ``instrument()``), the
response function and, for methods that may answer with a stream, a :data:`StreamFactory`. The base wraps
every target with :func:`~llm_observer.instrumentation._wrappers.sync_wrapper` or
:func:`~llm_observer.instrumentation._wrappers.async_wrapper` around the operation of its kind; a provider
whose table depends on the ``instrument()`` arguments overrides :meth:`ProviderInstrumentor._operations`, and
one with a method that is no plain call overrides ``_wrapper_factory`` for that kind alone.

``request(instance, args, kwargs) -> LLMCall | None`` reads the SDK call's arguments (None leaves the call
alone; set only the attributes the caller gave, and content only when ``handler.capture_content``);
``response(call, result)`` copies what the answer says into the call; ``stream(call, result)`` wraps a
streamed result (see :mod:`llm_observer.instrumentation._streams`) or returns None. Any of them may raise:
the wrappers log at DEBUG and carry on, and the user's own exceptions propagate unchanged after being
recorded. ``error_type(exc)`` gives a provider error code for ``error.type`` (None: the exception's class).

Entries the installed SDK lacks (an older or newer release than the table knows) are skipped, so one table
serves every supported release.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any, ClassVar

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

from llm_observer.instrumentation import __version__
from llm_observer.instrumentation._streams import (
    AsyncStreamWrapper,
    StreamState,
    SyncStreamWrapper,
    state_streamer,
)
from llm_observer.instrumentation._util import ErrorTypeFn
from llm_observer.instrumentation._wrappers import (
    RequestFn,
    ResponseFn,
    StreamFn,
    WraptWrapper,
    async_wrapper,
    sync_wrapper,
)
from llm_observer.instrumentation.handler import GenAIHandler, LLMCall

__all__ = [
    "Operation",
    "ProviderInstrumentor",
    "StreamFactory",
    "Target",
    "WrapperFactory",
    "stream_states",
    "stream_wrappers",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Target:
    """One SDK method to wrap: ``qualname`` (``Class.method``) in ``module``, or, for releases that kept the
    class elsewhere, in the first of ``older_modules`` that has it. ``kind`` tells the provider's wrapper
    factory which wrapper the method gets."""

    module: str
    qualname: str
    kind: str
    older_modules: tuple[str, ...] = ()

    @property
    def method(self) -> str:
        return self.qualname.rpartition(".")[2]

    def locate(self) -> tuple[type[Any], Any] | None:
        """``(class, the method as the class itself defines it)``, or None when the installed SDK has no
        such class or the class does not define the method itself."""
        class_name = self.qualname.rpartition(".")[0]
        for module_name in (self.module, *self.older_modules):
            try:
                owner = getattr(import_module(module_name), class_name)
            except (ImportError, AttributeError):
                continue
            method = owner.__dict__.get(self.method)
            return None if method is None else (owner, method)
        return None


#: ``(target, is_async) -> wrapt wrapper`` for one entry of the table; ``is_async`` says whether the SDK
#: method is a coroutine function (looked at through decorators that keep ``__wrapped__``).
WrapperFactory = Callable[[Target, bool], WraptWrapper]

#: ``(handler, is_async, error_type) -> stream function | None``: how an operation's streamed results are
#: wrapped, made once per target.
StreamFactory = Callable[[GenAIHandler, bool, ErrorTypeFn | None], StreamFn | None]


@dataclass(frozen=True, slots=True)
class Operation:
    """How the targets of one ``kind`` read a call: ``request(handler)`` makes the request function (once
    per ``instrument()``), ``response`` reads a plain answer, ``stream`` (None: never a stream) wraps a
    streamed one."""

    request: Callable[[GenAIHandler], RequestFn]
    response: ResponseFn
    stream: StreamFactory | None = None


def stream_states(
    make_state: Callable[[bool], StreamState], *, streaming_only: bool = False, iterables: bool = False
) -> StreamFactory:
    """A :data:`StreamFactory` that feeds each stream's chunks to a fresh ``make_state(capture_content)``
    (see :func:`~llm_observer.instrumentation._streams.state_streamer` for the options)."""

    def factory(handler: GenAIHandler, is_async: bool, error_type: ErrorTypeFn | None) -> StreamFn:
        return state_streamer(
            handler, make_state, error_type, streaming_only=streaming_only, iterables=iterables
        )

    return factory


def stream_wrappers(sync_cls: type[SyncStreamWrapper], async_cls: type[AsyncStreamWrapper]) -> StreamFactory:
    """A :data:`StreamFactory` that wraps the result of a call marked ``streaming`` in ``sync_cls`` (or
    ``async_cls`` for async methods) when it is an iterator (an async one), errors typed by ``error_type``."""

    def factory(handler: GenAIHandler, is_async: bool, error_type: ErrorTypeFn | None) -> StreamFn:
        cls: type[Any] = async_cls if is_async else sync_cls
        marker = "__anext__" if is_async else "__next__"

        def stream(call: LLMCall, result: Any) -> Any:
            if not call.streaming or not hasattr(result, marker):
                return None
            return cls(result, handler, call, error_type)

        return stream

    return factory


class ProviderInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments the methods of ``targets`` once the packages of ``instruments`` are found.

    ``instrument()`` accepts ``tracer_provider``, ``meter_provider``, ``logger_provider`` and
    ``capture_content`` (a :class:`~llm_observer.instrumentation.handler.ContentCapture` or its name),
    plus what a provider documents. ``BaseInstrumentor`` makes each subclass a singleton whose ``__init__``
    runs on every call of the class, so state a subclass keeps between ``instrument()`` and
    ``uninstrument()`` lives on the class or is set in ``_instrument``, never in ``__init__``.
    """

    #: Requirement strings of the instrumented packages, as ``instrumentation_dependencies()`` returns them.
    instruments: ClassVar[tuple[str, ...]] = ()
    targets: ClassVar[tuple[Target, ...]] = ()
    #: Each target kind's :class:`Operation`.
    operations: ClassVar[Mapping[str, Operation]] = {}

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.instruments

    @staticmethod
    def error_type(exc: BaseException) -> str | None:
        """The provider's ``error.type`` for an exception (a provider sets its own as a ``staticmethod``);
        None: the exception's class name."""
        return None

    def _operations(self, handler: GenAIHandler, kwargs: Mapping[str, Any]) -> Mapping[str, Operation]:
        """The operations for this ``instrument(**kwargs)`` call: :attr:`operations` unless overridden."""
        return self.operations

    def _wrapper_factory(self, handler: GenAIHandler, kwargs: Mapping[str, Any]) -> WrapperFactory:
        """How to wrap one target, for this ``instrument(**kwargs)`` call: the sync or async wrapper around
        the operation of its kind."""
        operations = self._operations(handler, kwargs)
        error_type = self.error_type

        def make(target: Target, is_async: bool) -> WraptWrapper:
            operation = operations[target.kind]
            factory = operation.stream
            stream = None if factory is None else factory(handler, is_async, error_type)
            wrap = async_wrapper if is_async else sync_wrapper
            return wrap(handler, operation.request(handler), operation.response, stream, error_type)

        return make

    def _instrument(self, **kwargs: Any) -> None:
        handler = GenAIHandler.from_kwargs(kwargs, type(self).__module__, __version__)
        make = self._wrapper_factory(handler, kwargs)
        for target in self.targets:
            found = target.locate()
            if found is None:
                _log.debug(
                    "%s.%s is not in this SDK release; not instrumented.", target.module, target.qualname
                )
                continue
            owner, method = found
            is_async = inspect.iscoroutinefunction(inspect.unwrap(method))
            wrapt.wrap_function_wrapper(owner, target.method, make(target, is_async))

    def _uninstrument(self, **kwargs: Any) -> None:
        for target in self.targets:
            found = target.locate()
            if found is not None:
                unwrap(found[0], target.method)
