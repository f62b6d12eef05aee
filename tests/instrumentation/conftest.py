"""Shared fixtures for instrumentation tests (provider SDKs against a local replay server).

- ``telemetry``: a :class:`TelemetryCapture` (in-memory spans, metrics, log records); pass
  ``telemetry.kwargs`` to ``Instrumentor().instrument(**telemetry.kwargs)``.
- ``replay``: a running :class:`ReplayServer` with no routes; add them with ``replay.set_routes(...)``.
- ``recording``: ``recording("openai_chat.json")`` loads ``recordings/<name>`` as routes.
- ``instrument_with``: ``instrument_with(FooInstrumentor)`` returns ``start()``, which instruments with
  ``telemetry`` and returns the instrumentor; it is uninstrumented when the test ends (started or not).
- ``capture_content``: sets ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY`` for one test
  (instrument after requesting it: the handler reads the variable when it is made).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from llm_observer.instrumentation.testing import ReplayServer, Route, TelemetryCapture, load_recording

RECORDINGS = Path(__file__).parent / "recordings"

InstrumentorT = TypeVar("InstrumentorT", bound=BaseInstrumentor)


@pytest.fixture
def telemetry() -> Iterator[TelemetryCapture]:
    capture = TelemetryCapture()
    yield capture
    capture.shutdown()


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


@pytest.fixture
def recording() -> Callable[[str], list[Route]]:
    def load(name: str) -> list[Route]:
        return load_recording(RECORDINGS / name)

    return load


@pytest.fixture
def instrument_with(
    telemetry: TelemetryCapture,
) -> Iterator[Callable[[type[InstrumentorT]], Callable[[], InstrumentorT]]]:
    made: list[BaseInstrumentor] = []

    def bind(cls: type[InstrumentorT]) -> Callable[[], InstrumentorT]:
        instrumentor = cls()
        made.append(instrumentor)

        def start() -> InstrumentorT:
            instrumentor.instrument(**telemetry.kwargs)
            return instrumentor

        return start

    yield bind
    for instrumentor in made:
        instrumentor.uninstrument()


@pytest.fixture
def capture_content(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
