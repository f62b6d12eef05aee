"""Storing spans in chDB does not load pandas (30-50 MB the collector has no use for), and what does ask pyarrow
for pandas objects still gets them. Each case runs in a fresh interpreter: whether pandas is loaded is the
state of a whole process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

STORE_SPANS = """
import sys
import time
from pathlib import Path

from llm_observer.kernel.batch import SpanBatch
from tests.support import add_span
from tests.support.span_store import span_store

batch = SpanBatch()
now = time.time_ns()
resource = {"service.name": "shop", "llm_observer.organization.id": "acme"}
for i in range(50):
    add_span(batch, resource=resource, trace_id=bytes([i + 1]) * 16, start=now, end=now + 10**6)
with span_store(Path(sys.argv[1]), batch) as client:
    stored = client.rows("SELECT count() AS n FROM otel.otel_traces")[0]["n"]
print(stored, "pandas" in sys.modules)
"""


def _run(code: str, *args: str) -> str:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_pandas_check_storing_spans_in_chdb_leaves_pandas_unloaded(tmp_path: Path) -> None:
    assert _run(STORE_SPANS, str(tmp_path)) == "50 False"


def test_pandas_check_to_pandas_still_loads_pandas_when_asked() -> None:
    code = """
    import sys
    import pyarrow as pa
    from llm_observer.storage.clickhouse.pandas_check import settle_without_pandas

    settle_without_pandas()
    assert "pandas" not in sys.modules
    frame = pa.table({"a": [1, 2]}).to_pandas()
    print(type(frame).__name__, list(frame["a"]))
    """
    assert _run(code) == "DataFrame [1, 2]"


def test_pandas_check_leaves_pyarrow_alone_when_pandas_is_already_loaded() -> None:
    code = """
    import pandas as pd
    import pyarrow as pa
    from llm_observer.storage.clickhouse.pandas_check import settle_without_pandas

    settle_without_pandas()
    # A Series is recognised (its index is not taken as data): pyarrow's pandas check still works.
    print(pa.array(pd.Series([1, 2], index=[7, 8])).to_pylist())
    """
    assert _run(code) == "[1, 2]"
