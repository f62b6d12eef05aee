"""The committed gRPC modules are exactly what the generator script makes from the proto (they never drift)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "query" / "scripts" / "generate_protos.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_protos", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_protos_committed_modules_match_a_fresh_generation(tmp_path: Path) -> None:
    script = _script()
    generated = script.generate(tmp_path)
    assert [path.name for path in generated] == list(script.GENERATED)
    for path in generated:
        committed = script.OUT_DIR / path.name
        assert committed.read_text() == path.read_text(), (
            f"{committed} differs from what the proto generates: run python {SCRIPT.relative_to(ROOT)}"
        )


def test_protos_service_module_imports_by_package_name() -> None:
    from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
    from llm_observer.query.v1 import llm_observer_query_v1_pb2_grpc as pb_grpc

    assert pb_grpc.llm__observer__query__v1__pb2 is pb
    assert "llm_observer_query_v1_pb2" not in sys.modules  # nothing was put on sys.path
    assert pb.DESCRIPTOR.services_by_name["QueryService"].full_name == "llm_observer.query.v1.QueryService"
