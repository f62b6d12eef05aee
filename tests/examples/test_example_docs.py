"""What the READMEs tell a new user to type works as written, and the examples say what they need.

Checked statically: the shell commands in the READMEs run from the repository's `.venv` (nothing assumes an
activated one), the Python distro pointed at the OTLP/HTTP port is told to speak HTTP, each example states
the toolchain version its build files require, and the JavaScript example's locked dependencies all accept
the Node.js version it declares.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DOCS = [ROOT / "README.md", ROOT / "deploy" / "README.md", *sorted(EXAMPLES.glob("*/README.md"))]
# Commands that exist only inside the repository's virtual environment.
VENV_COMMANDS = {"llm-observer", "opentelemetry-instrument", "opentelemetry-bootstrap"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=\S*$")
_FENCE = re.compile(r"^```(\w*)\s*$")


def _shell_commands(markdown: str) -> list[str]:
    """Each command line of the fenced shell blocks, continuation lines joined."""
    commands: list[str] = []
    language: str | None = None
    pending = ""
    for line in markdown.splitlines():
        fence = _FENCE.match(line.strip())
        if fence:
            language = None if language is not None else fence.group(1)
            continue
        if language not in {"bash", "sh", "shell", "console"}:
            continue
        text = pending + line.strip()
        if text.endswith("\\"):
            pending = text[:-1].rstrip() + " "
            continue
        pending = ""
        text = text.split(" #", 1)[0].strip()
        if text and not text.startswith("#"):
            commands.append(text)
    return commands


def _programs(command: str) -> list[str]:
    """The program each simple command of a command line runs (after any `VAR=value` prefixes)."""
    programs = []
    for part in re.split(r"&&|\|\||[;|()&]", command):
        words = [w for w in part.split() if not _ASSIGNMENT.match(w)]
        if words and words[0] != "env":
            programs.append(words[0])
    return programs


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def _satisfies(version: tuple[int, int, int], comparator: str) -> bool:
    """One npm semver comparator (the forms package locks use); anything else is refused loudly."""
    match = re.fullmatch(r"(>=|<=|>|<|\^|~|=)?v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", comparator)
    if comparator in {"*", "x", ""}:
        return True
    if not match:
        raise ValueError(f"unsupported engines comparator {comparator!r}")
    op, major, minor, patch = match.groups()
    bound = (int(major), int(minor or 0), int(patch or 0))
    if op == ">=":
        return version >= bound
    if op == ">":
        return version > bound
    if op == "<":
        return version < bound
    if op == "<=":
        return version <= bound
    if op == "^" and bound[0] > 0:
        return bound <= version < (bound[0] + 1, 0, 0)
    if op == "~":
        return bound <= version < (bound[0], bound[1] + 1, 0)
    if op in {None, "="} and minor is None:
        return version[0] == bound[0]
    if op in {None, "="}:
        return version[: 3 if patch else 2] == bound[: 3 if patch else 2]
    raise ValueError(f"unsupported engines comparator {comparator!r}")


def _node_accepts(range_: str, version: tuple[int, int, int]) -> bool:
    return any(
        all(_satisfies(version, c) for c in re.sub(r"(>=|<=|>|<|=|\^|~)\s+", r"\1", alt).split())
        for alt in range_.split("||")
    )


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_commands_run_from_the_venv(doc: Path) -> None:
    bare = [
        command
        for command in _shell_commands(doc.read_text())
        if any(program in VENV_COMMANDS for program in _programs(command))
    ]
    assert not bare, f"{doc.relative_to(ROOT)}: use .venv/bin/… (no activated venv is assumed): {bare}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_python_distro_on_the_http_port_speaks_http(doc: Path) -> None:
    # opentelemetry-instrument exports OTLP/gRPC unless told otherwise; gRPC sent to 4318 is lost.
    wrong = [
        command
        for command in _shell_commands(doc.read_text())
        if "opentelemetry-instrument" in command
        and ":4318" in command
        and "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" not in command
    ]
    assert not wrong, f"{doc.relative_to(ROOT)}: set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf: {wrong}"


def test_docs_shell_command_parser_finds_bare_programs() -> None:
    text = "```bash\nOTEL_A=1 \\\nopentelemetry-instrument python app.py\n(cd x && llm-observer up &)\n```\n"
    commands = _shell_commands(text)
    assert commands == ["OTEL_A=1 opentelemetry-instrument python app.py", "(cd x && llm-observer up &)"]
    assert _programs(commands[0]) == ["opentelemetry-instrument"]
    assert _programs(commands[1]) == ["cd", "llm-observer"]
    assert _programs(".venv/bin/llm-observer traces list | head") == [".venv/bin/llm-observer", "head"]


def _needs(example: str) -> str:
    readme = (EXAMPLES / example / "README.md").read_text()
    lines = [line for line in readme.split("\n\n") if line.startswith("Needs:")]
    assert lines, f"examples/{example}/README.md does not say what it needs (a 'Needs:' paragraph)"
    return " ".join(lines[0].split())


def test_example_readmes_state_the_toolchain_versions_their_builds_require() -> None:
    python = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f"Python {python.removeprefix('>=')} or newer" in _needs("python_otel_sdk")

    engines = json.loads((EXAMPLES / "javascript_otlp" / "package.json").read_text())["engines"]["node"]
    node = re.fullmatch(r">=(\d+\.\d+)\.0", engines)
    assert node, f"package.json engines.node is {engines!r}: expected a plain minimum >=X.Y.0"
    assert f"Node.js {node.group(1)} or newer" in _needs("javascript_otlp")

    go_line = re.search(r"^go (\d+\.\d+)", (EXAMPLES / "go_otlp_grpc" / "go.mod").read_text(), re.M)
    assert go_line
    assert f"Go {go_line.group(1)} or newer" in _needs("go_otlp_grpc")

    release = re.search(r"<maven.compiler.release>(\d+)<", (EXAMPLES / "java_otlp" / "pom.xml").read_text())
    assert release
    java = _needs("java_otlp")
    assert f"JDK {release.group(1)} or newer" in java and re.search(r"Maven \d+\.\d+(\.\d+)? or newer", java)


def test_example_javascript_dependencies_accept_the_declared_node() -> None:
    folder = EXAMPLES / "javascript_otlp"
    engines = json.loads((folder / "package.json").read_text())["engines"]["node"]
    minimum = re.fullmatch(r">=(\d+)\.(\d+)\.(\d+)", engines)
    assert minimum, engines
    lowest = (int(minimum[1]), int(minimum[2]), int(minimum[3]))
    lock = json.loads((folder / "package-lock.json").read_text())
    assert lock["packages"][""]["engines"]["node"] == engines, "package-lock.json is stale: run npm install"
    refused = {
        name: info["engines"]["node"]
        for name, info in lock["packages"].items()
        if name and isinstance(info.get("engines"), dict) and "node" in info["engines"]
        if not _node_accepts(info["engines"]["node"], lowest)
    }
    assert not refused, f"these locked packages refuse Node.js {engines}: {refused}"


def test_example_node_engine_ranges_are_read_as_npm_does() -> None:
    assert _node_accepts("^18.19.0 || >=20.6.0", (20, 6, 0))
    assert _node_accepts("^18.19.0 || >=20.6.0", (18, 19, 1))
    assert not _node_accepts("^18.19.0 || >=20.6.0", (19, 0, 0))
    assert not _node_accepts(">=22.15.0", (20, 20, 2))
    assert _node_accepts(">=14", (20, 6, 0)) and _node_accepts(">= 8.0.0", (20, 6, 0))
    assert _node_accepts("14 || 16 || >=18", (20, 0, 0)) and not _node_accepts("14 || 16", (20, 0, 0))
    with pytest.raises(ValueError, match="unsupported"):
        _node_accepts("node-lts", (20, 0, 0))
