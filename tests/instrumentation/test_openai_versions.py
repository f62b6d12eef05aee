"""The instrumentations against the OLDEST supported openai and anthropic SDKs (the newest are what the
rest of the suite runs). Builds a separate virtualenv with those versions, so it is slow and runs
only when ``LLM_OBSERVER_SLOW_TESTS=1`` (the venv is cached under the system temp dir between runs)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from llm_observer.instrumentation.testing import ReplayServer, load_recording

ROOT = Path(__file__).resolve().parents[2]
RECORDINGS = Path(__file__).parent / "recordings"
OLDEST = ["openai==1.40.0", "anthropic==0.30.0", "httpx<0.28"]  # httpx 0.28 dropped what these releases use

pytestmark = pytest.mark.skipif(
    os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1",
    reason="slow (builds a venv): set LLM_OBSERVER_SLOW_TESTS=1",
)

APP = r"""
import json, os, sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import openai, anthropic
from llm_observer.instrumentation.openai import OpenAIInstrumentor
from llm_observer.instrumentation.anthropic import AnthropicInstrumentor

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
OpenAIInstrumentor().instrument(tracer_provider=provider)
AnthropicInstrumentor().instrument(tracer_provider=provider)
url = os.environ["PROVIDER_URL"]
oai = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
stream = oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
                                     stream_options={"include_usage": True})
for _ in stream:
    break
ant = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
ant.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
for _ in ant.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "hi"}],
                             stream=True):
    pass
with ant.messages.stream(model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as s:
    s.get_final_message()
print(json.dumps({"versions": [openai.__version__, anthropic.__version__],
                  "spans": [{"name": s.name, "attributes": dict(s.attributes)} for s in exporter.get_finished_spans()]}))
"""


def _oldest_venv() -> Path:
    venv = Path(tempfile.gettempdir()) / (
        "llmo-oldest-" + "-".join(OLDEST).replace("=", "").replace("<", "lt")
    )
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        deps = ["opentelemetry-sdk", "opentelemetry-instrumentation", "wrapt", "pydantic"]
        subprocess.run([str(python), "-m", "pip", "install", "-q", *OLDEST, *deps], check=True, timeout=600)
    return python


def test_openai_and_anthropic_oldest_supported_versions(tmp_path: Path) -> None:
    python = _oldest_venv()
    # The package imports from this checkout: a link named llm_observer on the path.
    (tmp_path / "llm_observer").symlink_to(ROOT)
    (tmp_path / "app.py").write_text(APP)
    routes = [
        *load_recording(RECORDINGS / "openai/chat.json"),
        *load_recording(RECORDINGS / "anthropic/messages.json"),
    ]
    with ReplayServer(routes) as server:
        # The streamed answers come after the plain ones: one-shot routes queue them in order.
        server.set_routes(
            [
                *[dataclasses.replace(route, repeat=False) for route in routes],
                *load_recording(RECORDINGS / "openai/chat_stream.json"),
                *load_recording(RECORDINGS / "anthropic/messages_stream.json"),
            ]
        )
        done = subprocess.run(
            [str(python), "app.py"],
            cwd=tmp_path,
            env={"PATH": os.environ["PATH"], "PROVIDER_URL": server.url, "PYTHONPATH": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["versions"] == ["1.40.0", "0.30.0"]
    spans = report["spans"]
    assert [span["name"] for span in spans] == ["chat gpt-4o-mini"] * 2 + ["chat claude-sonnet-4-6"] * 3
    assert spans[0]["attributes"]["gen_ai.usage.input_tokens"] == 24
    assert spans[1]["attributes"]["gen_ai.response.id"] == "chatcmpl-CXq9z8y7x6w5v4u3t2s1r0q9"
    assert spans[2]["attributes"]["gen_ai.usage.input_tokens"] == 3560
    assert spans[3]["attributes"]["gen_ai.usage.output_tokens"] == 9
    assert spans[4]["attributes"]["gen_ai.usage.output_tokens"] == 9
