"""Regenerate the gRPC Python modules of the query API from its proto (run after changing the proto).

    python query/scripts/generate_protos.py [--out DIR]

Writes ``llm_observer_query_v1_pb2.py``, ``_pb2.pyi`` and ``_pb2_grpc.py`` into
``query/src/llm_observer/query/v1/`` (or ``DIR``) with the grpcio-tools protoc, then makes the service module
import the message module by its package-qualified name, so that nothing has to be put on ``sys.path``, and
tells mypy to skip the generated files.
The generated files are committed; ``tests/query/test_protos.py`` checks that they match what this script
makes. grpcio-tools is a development dependency only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

QUERY = Path(__file__).resolve().parents[1] / "src" / "llm_observer" / "query"
PROTO_DIR = QUERY / "proto"
PROTO_FILE = "llm_observer_query_v1.proto"
OUT_DIR = QUERY / "v1"
PACKAGE = "llm_observer.query.v1"
MODULE = PROTO_FILE.removesuffix(".proto") + "_pb2"
GENERATED = (f"{MODULE}.py", f"{MODULE}.pyi", f"{MODULE}_grpc.py")
_MYPY_HEADER = "# mypy: ignore-errors\n"


def generate(out_dir: Path = OUT_DIR) -> list[Path]:
    """Write the generated modules into ``out_dir``; returns their paths."""
    from importlib.resources import files

    from grpc_tools import protoc

    # The well-known types (google/protobuf/struct.proto) that grpcio-tools ships.
    well_known = files("grpc_tools") / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"--proto_path={PROTO_DIR}",
            f"--proto_path={well_known}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(PROTO_DIR / PROTO_FILE),
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    paths = [out_dir / name for name in GENERATED]
    for path in paths:
        # Generated code is not held to the project's strict typing; mypy still reads it through imports.
        path.write_text(_MYPY_HEADER + path.read_text())
    # protoc writes a top-level import (the proto's directory as the import root); qualify it.
    service = out_dir / f"{MODULE}_grpc.py"
    text = service.read_text()
    plain = f"import {MODULE} as "
    if plain not in text:
        raise RuntimeError(f"{service.name} no longer contains {plain!r}: update this script")
    service.write_text(text.replace(plain, f"from {PACKAGE} import {MODULE} as ", 1))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"output folder (default {OUT_DIR})")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
