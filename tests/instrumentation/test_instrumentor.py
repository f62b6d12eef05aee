"""Every provider instrumentor registered as an ``llm_observer_*`` entry point: its targets table against the
installed (newest) SDKs, and instrument → uninstrument, twice, leaving the SDK as it was."""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, entry_points, version
from typing import Any

import pytest

from llm_observer.instrumentation._instrumentor import ProviderInstrumentor, Target

INSTRUMENTORS = {
    entry.name: entry
    for entry in entry_points(group="opentelemetry_instrumentor")
    if entry.name.startswith("llm_observer_")
}


def _instrumentor(name: str) -> type[ProviderInstrumentor]:
    cls = INSTRUMENTORS[name].load()
    assert issubclass(cls, ProviderInstrumentor)
    return cls


def _skip_unless_installed(cls: type[ProviderInstrumentor]) -> None:
    """Frameworks whose releases pin older SDKs than the suite's (CrewAI) are tested in venvs of their own."""
    for requirement in cls().instrumentation_dependencies():
        name = requirement.split(">", 1)[0].split("=", 1)[0].split("<", 1)[0].strip()
        try:
            version(name)
        except PackageNotFoundError:
            pytest.skip(f"{name} is not installed here (its tests build their own environment)")


def _current(target: Target) -> Any:
    found = target.locate()
    assert found is not None, f"{target.module}.{target.qualname} is not in the installed SDK"
    return found[1]


@pytest.mark.parametrize("name", sorted(INSTRUMENTORS))
def test_instrumentor_declares_the_packages_of_its_module(name: str) -> None:
    cls = _instrumentor(name)
    module = importlib.import_module(cls.__module__)
    assert cls().instrumentation_dependencies() == module._instruments
    assert cls.targets == module._TARGETS


@pytest.mark.parametrize("name", sorted(INSTRUMENTORS))
def test_instrumentor_targets_all_exist_in_newest_sdk(name: str) -> None:
    _skip_unless_installed(_instrumentor(name))
    missing = [target.qualname for target in _instrumentor(name).targets if target.locate() is None]
    assert missing == []


@pytest.mark.parametrize("name", sorted(INSTRUMENTORS))
def test_instrumentor_uninstrument_restores_every_target_twice(name: str) -> None:
    cls = _instrumentor(name)
    _skip_unless_installed(cls)
    originals = [_current(target) for target in cls.targets]
    for _ in range(2):
        cls().instrument()
        try:
            assert all(hasattr(_current(target), "__wrapped__") for target in cls.targets)
        finally:
            cls().uninstrument()
        assert [_current(target) for target in cls.targets] == originals
