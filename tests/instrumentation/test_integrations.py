"""``llm_observer.integrations``: one Integration per ``llm_observer_*`` instrumentor entry point that the
instrumentation distribution declares, and each loads that entry point's instrumentor."""

from __future__ import annotations

import tomllib
from importlib.metadata import entry_points
from pathlib import Path

from llm_observer import integrations
from llm_observer.integrations import Integration

PYPROJECT = Path(__file__).resolve().parents[2] / "instrumentation" / "pyproject.toml"


def _declared() -> dict[str, str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    declared: dict[str, str] = project["entry-points"]["opentelemetry_instrumentor"]
    return declared


def test_integrations_entry_points_declared_are_installed() -> None:
    installed = {
        entry.name: entry.value
        for entry in entry_points(group="opentelemetry_instrumentor")
        if entry.name.startswith("llm_observer_")
    }
    assert installed == _declared()


def test_integrations_one_per_entry_point_and_exported() -> None:
    subclasses = Integration.__subclasses__()
    assert sorted(cls.entry_point for cls in subclasses) == sorted(_declared())
    assert all(name.startswith("llm_observer_") for name in _declared())
    assert sorted(cls.__name__ for cls in subclasses) == sorted(
        name for name in integrations.__all__ if name != "Integration"
    )


def test_integrations_load_the_instrumentor_of_their_entry_point() -> None:
    for cls in Integration.__subclasses__():
        instrumentor = cls._instrumentor()
        module, _, name = _declared()[cls.entry_point].partition(":")
        assert (type(instrumentor).__module__, type(instrumentor).__name__) == (module, name)
        assert cls.__name__.removesuffix("Integration") == name.removesuffix("Instrumentor")
