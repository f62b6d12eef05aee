"""The repository root is the ``llm_observer`` package: its top-level folders are its subpackages."""

from typing import Any

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

_TOP = ["collector", "semconv", "processors", "exporters", "query", "instrumentation"]
_found = find_packages(".", include=[f"{top}*" for top in _TOP])


class _BuildPy(build_py):
    """Leaves this build script out of the package that the repository root becomes."""

    def find_package_modules(self, package: str, package_dir: str) -> list[Any]:
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if not (package == "llm_observer" and m[1] == "setup")]


setup(
    packages=["llm_observer", *(f"llm_observer.{name}" for name in _found)],
    package_data={"llm_observer": ["py.typed"], "llm_observer.query": ["proto/*.proto"]},
    cmdclass={"build_py": _BuildPy},
)
