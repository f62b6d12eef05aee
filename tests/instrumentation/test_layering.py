"""The modules of the instrumentation distribution import each other one way: no cycle, counting imports made
inside functions and under ``TYPE_CHECKING`` as well as module-level ones."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "instrumentation" / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of this distribution it imports anywhere in its source."""
    files = {_module_name(path): path for path in SOURCE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                # ``from package import module`` imports that module; ``from module import name`` the module.
                submodules = (f"{node.module}.{alias.name}" for alias in node.names)
                targets = [name if name in files else node.module for name in submodules]
            else:
                continue
            graph[name].update(target for target in targets if target in files and target != name)
    return graph


def test_layering_no_import_cycle_between_instrumentation_modules() -> None:
    graph = import_graph()
    assert "llm_observer.instrumentation.handler" in graph
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle


def test_layering_handler_imports_no_wrapper_stream_or_instrumentor() -> None:
    imported = import_graph()["llm_observer.instrumentation.handler"]
    assert imported <= {"llm_observer.instrumentation._content", "llm_observer.instrumentation._util"}
