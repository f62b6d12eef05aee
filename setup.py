"""The repository root is the ``llm_observer`` package: its top-level folders are its subpackages."""

from setuptools import find_packages, setup

_TOP = ["collector", "semconv", "processors", "exporters", "query", "instrumentation", "integrations"]
_found = find_packages(".", include=[f"{top}*" for top in _TOP])

setup(
    packages=["llm_observer", *(f"llm_observer.{name}" for name in _found)],
    package_data={"llm_observer": ["py.typed"], "llm_observer.query": ["proto/*.proto"]},
)
