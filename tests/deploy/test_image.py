"""The container image, checked without a Docker engine: its build context is what ``.dockerignore`` leaves,
and its own steps — the Dockerfile's ``RUN`` lines, then its ``ENTRYPOINT`` and ``CMD`` — replayed in a fresh
virtualenv install a server that starts, answers ``/health``, stores a span and finds it by meaning.

The replay maps the image's absolute paths into a scratch root and each ``VOLUME`` to a fresh folder, and
moves the ports of the ``CMD`` config (the ``EXPOSE``d ones) to free ones so that it can run beside other
tests; everything else runs as written. Installing the server takes minutes, so that part runs when
``LLM_OBSERVER_SLOW_TESTS=1``; the installed root is cached under the system temp dir, keyed by the
Dockerfile and every file of the build context, so a second run only starts it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import free_port, trace_request, wait_until
from tests.support.cache import cache_dir
from tests.support.wheels import ROOT, run

SLOW = os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
FOLDERS = ("semconv", "kernel", "instrumentation", "collector", "processors", "storage", "exporters", "query")

# --- the Dockerfile ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One instruction of a Dockerfile: ``RUN``, ``COPY``… with the rest of its (joined) lines."""

    instruction: str
    arguments: str
    line: int


def parse_dockerfile(text: str) -> list[Step]:
    """The instructions of a Dockerfile, continuation lines joined, comments and blank lines dropped."""
    steps: list[Step] = []
    pending: list[str] = []
    first = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            first = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(part for part in pending if part)
        pending = []
        instruction, _, arguments = joined.partition(" ")
        steps.append(Step(instruction.upper(), arguments.strip(), first))
    assert not pending, "the Dockerfile ends inside a continued line"
    return steps


def exec_form(step: Step) -> list[str]:
    """The JSON array of an ``ENTRYPOINT``/``CMD``: the exec form, so that signals reach the server."""
    assert step.arguments.startswith("["), f"line {step.line}: {step.instruction} must use the exec form"
    value = json.loads(step.arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), step
    return value


# --- the build context -------------------------------------------------------------------------------------


def _pattern(line: str) -> re.Pattern[str]:
    """A ``.dockerignore`` line as a regular expression over context-relative paths (``/`` separated)."""
    text = line.strip().strip("/")
    out = ""
    index = 0
    while index < len(text):
        if text.startswith("**/", index):
            out += "(?:.*/)?"
            index += 3
        elif text.startswith("**", index):
            out += ".*"
            index += 2
        elif text[index] == "*":
            out += "[^/]*"
            index += 1
        elif text[index] == "?":
            out += "[^/]"
            index += 1
        else:
            out += re.escape(text[index])
            index += 1
    return re.compile(out + "(?:/.*)?")


def dockerignore_patterns(text: str) -> list[re.Pattern[str]]:
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    exceptions = [line for line in lines if line.startswith("!")]
    assert not exceptions, f"exceptions ({exceptions}) are not understood by this check: extend it"
    return [_pattern(line) for line in lines]


def build_context(root: Path, patterns: list[re.Pattern[str]]) -> list[str]:
    """The context-relative paths of the files a ``docker build`` of ``root`` would send."""
    files: list[str] = []
    for folder, dirs, names in os.walk(root):
        base = Path(folder).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        dirs[:] = sorted(d for d in dirs if not any(p.fullmatch(prefix + d) for p in patterns))
        files.extend(
            prefix + name for name in sorted(names) if not any(p.fullmatch(prefix + name) for p in patterns)
        )
    return files


def _context() -> list[str]:
    return build_context(ROOT, dockerignore_patterns(DOCKERIGNORE.read_text()))


def test_image_context_matcher_follows_dockerignore_rules(tmp_path: Path) -> None:
    for path in (
        ".venv/lib/x.py",
        "pkg/src/a.py",
        "pkg/node_modules/m/index.js",
        "examples/java/target/app.jar",
        "pkg/__pycache__/a.cpython-311.pyc",
        "README.md",
        ".git/HEAD",
    ):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    patterns = dockerignore_patterns(".git\n**/.venv\n**/node_modules\n**/target\n**/__pycache__\n")
    assert build_context(tmp_path, patterns) == ["README.md", "pkg/src/a.py"]
    assert build_context(tmp_path, dockerignore_patterns("# nothing\n")) != ["README.md", "pkg/src/a.py"]


def test_image_context_leaves_out_local_state() -> None:
    files = _context()
    leaked = [
        f
        for f in files
        if {".venv", ".git", ".llm-observer", "node_modules", "target", "__pycache__", ".mypy_cache"}
        & set(f.split("/"))
        or f.endswith((".pyc", ".egg-info"))
        or ".egg-info/" in f
    ]
    assert leaked == [], leaked[:20]
    size = sum((ROOT / f).stat().st_size for f in files)
    # The sources, configs and the tokenizer files: a few MB (the checkout with its .venv is over 1 GB).
    assert size < 20 * 2**20, f"the build context holds {size / 2**20:.0f} MB"


def test_image_context_holds_what_the_dockerfile_installs_and_runs() -> None:
    files = set(_context())
    steps = parse_dockerfile(DOCKERFILE.read_text())
    runs = [word for s in steps if s.instruction == "RUN" for word in shlex.split(s.arguments)]
    assert "pyproject.toml" in files
    assert "." in runs, "the image does not install the llm-observer distribution (.)"
    for folder in FOLDERS:
        assert f"{folder}/pyproject.toml" in files
        assert f"./{folder}" in runs, f"the image does not install ./{folder}"
    assert "--no-deps" not in runs
    for step in steps:
        if step.instruction in ("ENTRYPOINT", "CMD"):
            for argument in exec_form(step):
                if argument.startswith("/app/"):
                    assert argument.removeprefix("/app/") in files, argument


# --- replaying the image -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Image:
    """The image's steps replayed under ``rootfs`` with a virtualenv standing in for the system Python."""

    rootfs: Path
    venv: Path
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    exposed: list[int] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    def path(self, image_path: str) -> Path:
        """Where an image path (absolute, or relative to the current ``WORKDIR``) lives in the replay."""
        absolute = image_path if image_path.startswith("/") else f"{self.workdir.rstrip('/')}/{image_path}"
        return self.rootfs / absolute.lstrip("/")

    def environment(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
        base["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{base.get('PATH', '')}"
        base["VIRTUAL_ENV"] = str(self.venv)
        return {**base, **self.env}


def _image_key(files: list[str]) -> str:
    digest = hashlib.sha256(DOCKERFILE.read_bytes())
    digest.update(sys.version.encode())
    for name in files:
        digest.update(name.encode())
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()[:16]


def replay(steps: list[Step], files: list[str], image: Image, *, install: bool) -> Image:
    """Apply ``steps`` to ``image``; ``COPY`` and ``RUN`` only when ``install`` (not yet cached)."""
    for step in steps:
        kind, arguments = step.instruction, step.arguments
        if kind == "FROM":
            match = re.fullmatch(r"python:(\d+)\.(\d+)(?:[.-]\S*)?(?:\s+AS\s+\S+)?", arguments, re.IGNORECASE)
            assert match, f"line {step.line}: the replay knows python:X.Y images only ({arguments})"
            if (int(match[1]), int(match[2])) != sys.version_info[:2]:
                pytest.skip(f"the image runs Python {match[1]}.{match[2]}; this is {sys.version.split()[0]}")
        elif kind == "WORKDIR":
            image.workdir = arguments if arguments.startswith("/") else f"{image.workdir}/{arguments}"
            image.path(image.workdir).mkdir(parents=True, exist_ok=True)
        elif kind == "ENV":
            parts = shlex.split(arguments)
            if parts and "=" not in parts[0]:
                image.env[parts[0]] = " ".join(parts[1:])
            else:
                for part in parts:
                    key, _, value = part.partition("=")
                    image.env[key] = value
        elif kind == "COPY":
            *sources, target = shlex.split(arguments)
            assert not any(s.startswith("--") for s in sources), (
                f"line {step.line}: COPY flags are not replayed"
            )
            if install:
                for source in sources:
                    prefix = "" if source in (".", "./") else source.rstrip("/") + "/"
                    chosen = [f for f in files if f.startswith(prefix) or f == source]
                    assert chosen, f"line {step.line}: {source} is not in the build context"
                    for name in chosen:
                        into = image.path(target) / name.removeprefix(prefix)
                        into.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(ROOT / name, into)
        elif kind == "RUN":
            if install:
                command = exec_form(step) if arguments.startswith("[") else ["/bin/sh", "-c", arguments]
                done = subprocess.run(
                    command,
                    cwd=image.path(image.workdir),
                    env=image.environment(),
                    capture_output=True,
                    text=True,
                    timeout=1800,
                    check=False,
                )
                assert done.returncode == 0, (
                    f"line {step.line}: {arguments}\n{done.stdout[-3000:]}{done.stderr[-5000:]}"
                )
        elif kind == "EXPOSE":
            image.exposed.extend(int(port.split("/")[0]) for port in arguments.split())
        elif kind == "VOLUME":
            image.volumes.extend(json.loads(arguments) if arguments.startswith("[") else arguments.split())
        elif kind == "ENTRYPOINT":
            image.entrypoint = exec_form(step)
        elif kind == "CMD":
            image.cmd = exec_form(step)
        elif kind != "LABEL":
            pytest.fail(f"line {step.line}: the replay does not know {kind}; teach it before using it")
    return image


def cached_image() -> Image:
    """The image's root and virtualenv, installed once per state of the Dockerfile and its context."""
    files = _context()
    steps = parse_dockerfile(DOCKERFILE.read_text())
    base = cache_dir("llmo-image", _image_key(files))
    image = Image(rootfs=base / "rootfs", venv=base / "venv")
    complete = (base / ".complete").exists()
    if not complete:
        shutil.rmtree(base, ignore_errors=True)
        image.rootfs.mkdir(parents=True)
        run([sys.executable, "-m", "venv", str(image.venv)], timeout=300)
    replay(steps, files, image, install=not complete)
    (base / ".complete").touch()
    os.utime(base)
    return image


@dataclass(slots=True)
class Container:
    process: subprocess.Popen[bytes]
    log: Path
    ports: dict[int, int]  # exposed port -> the free port it was moved to

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def url(self, exposed: int, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[exposed]}{path}"


def _moved_config(image: Image, argv: list[str], tmp_path: Path) -> tuple[list[str], dict[int, int]]:
    """``argv`` with its ``--config`` file replaced by a copy whose exposed ports are moved to free ones."""
    index = argv.index("--config") + 1
    text = Path(argv[index]).read_text()
    ports = {port: free_port() for port in image.exposed}
    for exposed, free in ports.items():
        assert re.search(rf":{exposed}\b", text), f"the CMD config does not listen on exposed port {exposed}"
        text = re.sub(rf":{exposed}\b", f":{free}", text)
    moved = tmp_path / Path(argv[index]).name
    moved.write_text(text)
    return [*argv[:index], str(moved), *argv[index + 1 :]], ports


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    image = cached_image()
    assert image.entrypoint and image.cmd and image.exposed
    volumes = {volume: tmp_path / "volumes" / volume.strip("/").replace("/", "_") for volume in image.volumes}
    for folder in volumes.values():
        folder.mkdir(parents=True)
    argv = []
    for argument in [*image.entrypoint, *image.cmd]:
        if argument in volumes:
            argv.append(str(volumes[argument]))
        elif argument.startswith("/"):
            argv.append(str(image.path(argument)))
        else:
            argv.append(argument)
    argv, ports = _moved_config(image, argv, tmp_path)
    program = shutil.which(argv[0], path=image.environment()["PATH"])
    assert program is not None and Path(program).parent == image.venv / "bin", f"{argv[0]} is not installed"
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [program, *argv[1:]],
            cwd=image.path(image.workdir),
            env=image.environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Container(process, log, ports)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=120)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()


def _status(container: Container, exposed: int, path: str) -> int:
    assert container.process.poll() is None, (
        f"the server exited ({container.process.returncode}):\n{container.tail()}"
    )
    try:
        return httpx.get(container.url(exposed, path), timeout=5).status_code
    except httpx.HTTPError:
        return 0


def _get(container: Container, path: str) -> dict[str, Any] | None:
    assert container.process.poll() is None, (
        f"the server exited ({container.process.returncode}):\n{container.tail()}"
    )
    response = httpx.get(container.url(8080, path), timeout=10)
    if response.status_code != 200:
        return None
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.slow
@pytest.mark.skipif(
    SLOW, reason="slow (installs the image's server in a venv): set LLM_OBSERVER_SLOW_TESTS=1"
)
def test_image_installs_and_starts_with_its_own_commands(container: Container) -> None:
    wait_until(lambda: _status(container, 8080, "/health") == 200, 300, what=container.tail, interval=0.5)
    prompt = "How do I reset the admin password of my home router?"
    request = trace_request(
        count=1,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 12,
            "gen_ai.usage.output_tokens": 30,
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]
            ),
        },
        resource={"service.name": "image-test"},
    )
    trace_id = request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
    response = httpx.post(
        container.url(4318, "/v1/traces"),
        content=request.SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
        timeout=30,
    )
    assert response.status_code == 200, response.text

    trace = wait_until(
        lambda: _get(container, f"/api/v1/traces/{trace_id}"), 120, what=container.tail, interval=0.5
    )
    assert trace is not None
    spans = trace["spans"]
    assert isinstance(spans, list) and len(spans) == 1

    def nearest() -> object:
        found = _get(container, "/api/v1/search/semantic?q=forgot+my+router+admin+password&k=1")
        results = found and found["results"]
        return isinstance(results, list) and results and results[0]["trace_id"] == trace_id

    # The prompt is found by meaning: the bundled embedding model works in the image's own install.
    wait_until(nearest, 180, what=container.tail, interval=0.5)
