"""Go programs for the tests, built once from the Go module proxy into ``~/.cache/llm-observer/<name>-<version>/``.

``go install pkg@version`` refuses modules with ``replace`` directives and cannot add files a module leaves
out (generated web assets), so a tool is built the way that always works: ``go mod download`` the module,
copy it to a writable folder, let the caller ``prepare`` that copy, then ``go build`` there with the module's
own ``go.mod`` and ``go.sum``. One build at a time per tool (a file lock), so parallel test processes share
it; the binary appears only when complete.

A tool started for a test is a ``GoProcess`` (its log in its folder, ``stop`` safe to repeat); a fixture
yields one through ``started``, which stops it when the test ends.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, TypeVar

import httpx

from tests.support.waiting import wait_until


def cache_dir(name: str, version: str) -> Path:
    return Path.home() / ".cache" / "llm-observer" / f"{name}-{version}"


def go(args: list[str], cwd: Path | None = None, timeout: float = 1800) -> str:
    """Run ``go``; its stdout, or ``RuntimeError`` with the end of its stderr."""
    done = subprocess.run(
        ["go", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"go {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


def go_binary(
    name: str,
    module: str,
    version: str,
    package: str,
    prepare: Callable[[Path], None] | None = None,
) -> Path:
    """``<cache>/bin/<name>``: ``package`` (``./cmd/x``) of ``module@version``, built the first time."""
    folder = cache_dir(name, version)
    binary = folder / "bin" / name
    if binary.exists():
        return binary
    if shutil.which("go") is None:
        raise RuntimeError(f"Go is needed once, to build {name} {version} into {binary}")
    binary.parent.mkdir(parents=True, exist_ok=True)
    with open(folder / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be building it right now
        if not binary.exists():
            _build(binary, module, version, package, prepare)
    return binary


def _build(
    binary: Path, module: str, version: str, package: str, prepare: Callable[[Path], None] | None
) -> None:
    info = json.loads(go(["mod", "download", "-json", f"{module}@{version}"]))
    if info.get("Error"):
        raise RuntimeError(f"go mod download {module}@{version}: {info['Error']}")
    with tempfile.TemporaryDirectory(prefix="src-", dir=binary.parent.parent) as tmp:
        source = Path(tmp) / "src"
        # The module cache is read-only; the build writes nothing there, but Go wants to own its tree.
        shutil.copytree(info["Dir"], source)
        for path in (source, *source.rglob("*")):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        if prepare is not None:
            prepare(source)
        staged = binary.with_name(binary.name + ".tmp")
        go(["build", "-trimpath", "-o", str(staged), package], cwd=source)
        staged.replace(binary)


def log_tail(log: Path, size: int = 3000) -> str:
    """The end of a tool's log, for a failure message."""
    return log.read_text(errors="replace")[-size:] if log.exists() else "(no log)"


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate a tool started for a test, killing it if it does not stop within 15 s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@dataclass
class GoProcess:
    """A tool run for a test, its output in ``<folder>/<title lowercased>.log``; subclasses name it
    (``title``) and start it through ``_launch``."""

    title: ClassVar[str]
    folder: Path
    process: subprocess.Popen[bytes] | None = field(default=None, kw_only=True)

    @property
    def log(self) -> Path:
        return self.folder / f"{self.title.lower()}.log"

    def start(self, timeout: float = 60.0) -> None:
        """Start it and return once it answers; a subclass says how (through ``_launch``)."""
        raise NotImplementedError

    def _launch(self, args: list[str], ready_url: str, timeout: float) -> None:
        """Run ``args``; return once ``GET ready_url`` answers 200, fail at once if the process exits."""
        with open(self.log, "wb") as log:
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.process = process

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"{self.title} exited while starting:\n{log_tail(self.log)}")
            try:
                return httpx.get(ready_url, timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(
            ready, timeout, what=lambda: f"{self.title} at {ready_url}; its log ends:\n{log_tail(self.log)}"
        )

    def stop(self) -> None:
        """Stop it (see ``stop_process``); safe before ``start`` and twice."""
        process, self.process = self.process, None
        stop_process(process)


P = TypeVar("P", bound="GoProcess")


def started(tool: P) -> Iterator[P]:
    """For a fixture: ``tool`` started in its folder (made if missing), stopped when the test ends, also when
    starting failed."""
    tool.folder.mkdir(parents=True, exist_ok=True)
    try:
        tool.start()
        yield tool
    finally:
        tool.stop()
