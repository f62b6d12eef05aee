"""The instrumentations against the OLDEST supported SDK releases (the rest of the suite runs the newest).

Installing old releases takes a while, so these run only when ``LLM_OBSERVER_SLOW_TESTS=1``; installs are
cached under the system temp dir between runs.

- Most providers: the provider's whole test module runs again with the oldest release first on the path
  (installed without dependencies over the venv's newer ones, plus the pins that release needs).
- openai and anthropic: a separate virtualenv with both oldest SDKs runs a small app against recordings.
"""

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
SLOW = os.environ.get("LLM_OBSERVER_SLOW_TESTS") != "1"


@dataclasses.dataclass(frozen=True)
class OldestSdk:
    """One provider's oldest supported release: the distribution whose version is checked, the pins
    installed (that release first, then what it needs), and the test modules to rerun with them."""

    distribution: str
    version: str
    pins: tuple[str, ...]
    tests: tuple[str, ...]


OLDEST_SDKS = {
    # boto3 and s3transfer must match that botocore.
    "bedrock": OldestSdk(
        "botocore",
        "1.34.116",
        ("botocore==1.34.116", "boto3==1.34.116", "s3transfer==0.10.1"),
        ("tests/instrumentation/test_bedrock.py",),
    ),
    # httpx-sse is a dependency the newest release dropped.
    "cohere": OldestSdk(
        "cohere",
        "5.13.0",
        ("cohere==5.13.0", "httpx-sse==0.4.0"),
        ("tests/instrumentation/test_cohere.py",),
    ),
    # Its other dependencies are shared with the newest.
    "google_genai": OldestSdk(
        "google-genai",
        "1.0.0",
        ("google-genai==1.0.0",),
        ("tests/instrumentation/test_google_genai.py",),
    ),
    "huggingface": OldestSdk(
        "huggingface_hub",
        "1.0.0",
        ("huggingface_hub==1.0.0",),
        ("tests/instrumentation/test_huggingface.py",),
    ),
    # typing-inspect is a dependency the newest release dropped.
    "mistral": OldestSdk(
        "mistralai",
        "1.2.0",
        ("mistralai==1.2.0", "typing-inspect==0.9.0", "mypy-extensions==1.0.0"),
        ("tests/instrumentation/test_mistral.py",),
    ),
    # 1.23 is the oldest that imports with today's pydantic (FastMCP used a private name pydantic dropped).
    "mcp": OldestSdk(
        "mcp",
        "1.23.0",
        ("mcp==1.23.0",),
        ("tests/instrumentation/test_mcp.py",),
    ),
    # 3.0 is the first release with per-tool spans (haystack.agent.step.tool); 2.x is not supported.
    "haystack": OldestSdk(
        "haystack-ai",
        "3.0.0",
        ("haystack-ai==3.0.0",),
        ("tests/instrumentation/test_haystack.py",),
    ),
    # Older releases build openai's InputTokensDetails without cache_write_tokens, which openai 3.x requires.
    # 0.12.42 and older wrap an agent in an extra workflow: another tree.
    "llama_index": OldestSdk(
        "llama-index-core",
        "0.12.43",
        ("llama-index-core==0.12.43", "llama-index-workflows==0.2.1"),
        ("tests/instrumentation/test_llama_index.py",),
    ),
    "openai_agents": OldestSdk(
        "openai-agents",
        "0.18.1",
        ("openai-agents==0.18.1",),
        ("tests/instrumentation/test_openai_agents.py",),
    ),
    # Not a provider: the oldest wrapt the instrumentation declares (some frameworks' OpenTelemetry releases
    # still pin wrapt 1), under the provider modules that proxy SDK objects.
    "wrapt": OldestSdk(
        "wrapt",
        "1.14.1",
        ("wrapt==1.14.1",),
        ("tests/instrumentation/test_openai.py", "tests/instrumentation/test_anthropic.py"),
    ),
    "ollama": OldestSdk(
        "ollama",
        "0.4.0",
        ("ollama==0.4.0",),
        ("tests/instrumentation/test_ollama.py",),
    ),
}


def _oldest_site(pins: tuple[str, ...]) -> Path:
    target = Path(tempfile.gettempdir()) / ("llmo-oldest-" + "-".join(pins).replace("=", ""))
    if not (target / ".complete").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), *pins],
            check=True,
            timeout=600,
        )
        (target / ".complete").touch()
    return target


@pytest.mark.skipif(SLOW, reason="slow (installs an old SDK): set LLM_OBSERVER_SLOW_TESTS=1")
@pytest.mark.parametrize("provider", sorted(OLDEST_SDKS))
def test_oldest_sdks_provider_suite_passes_on_oldest_supported_sdk(provider: str) -> None:
    sdk = OLDEST_SDKS[provider]
    site = _oldest_site(sdk.pins)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "PYTEST_"))}
    env["PYTHONPATH"] = str(site)
    version = subprocess.run(
        [sys.executable, "-c", f"import importlib.metadata as m; print(m.version({sdk.distribution!r}))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == sdk.version
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *sdk.tests],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


# --- openai and anthropic: a separate virtualenv ------------------------------------------------------

OPENAI_OLDEST = ["openai==1.40.0", "anthropic==0.30.0", "httpx<0.28"]  # httpx 0.28 dropped what these use

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
# The replay server's host named as a server that accepts stream_options: the instrumentation asks for usage.
OpenAIInstrumentor().instrument(tracer_provider=provider, providers={"127.0.0.1": "openai"})
AnthropicInstrumentor().instrument(tracer_provider=provider)
url = os.environ["PROVIDER_URL"]
oai = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
stream = oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
                                     stream_options={"include_usage": True})
for _ in stream:
    break
asked = oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True)
text = "".join(chunk.choices[0].delta.content or "" for chunk in asked)  # the usage chunk is kept from the app
helper = getattr(oai.chat.completions, "stream", None) or oai.beta.chat.completions.stream
with helper(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]) as s:
    final = s.get_final_completion()
ant = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
ant.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
for _ in ant.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "hi"}],
                             stream=True):
    pass
with ant.messages.stream(model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as s:
    s.get_final_message()
print(json.dumps({"versions": [openai.__version__, anthropic.__version__], "text": text,
                  "final": final.choices[0].message.content,
                  "spans": [{"name": s.name, "attributes": dict(s.attributes)} for s in exporter.get_finished_spans()]}))
"""


def _oldest_venv() -> Path:
    venv = Path(tempfile.gettempdir()) / (
        "llmo-oldest-" + "-".join(OPENAI_OLDEST).replace("=", "").replace("<", "lt")
    )
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        deps = ["opentelemetry-sdk", "opentelemetry-instrumentation", "wrapt", "pydantic"]
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *OPENAI_OLDEST, *deps], check=True, timeout=600
        )
    return python


@pytest.mark.skipif(SLOW, reason="slow (builds a venv): set LLM_OBSERVER_SLOW_TESTS=1")
def test_oldest_sdks_openai_and_anthropic_pass_on_oldest_supported_versions(tmp_path: Path) -> None:
    python = _oldest_venv()
    # The instrumentation and what it builds on, straight from this checkout's source folders.
    path = os.pathsep.join([str(tmp_path), str(ROOT / "instrumentation/src"), str(ROOT / "semconv/src")])
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
            env={"PATH": os.environ["PATH"], "PROVIDER_URL": server.url, "PYTHONPATH": path},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["versions"] == ["1.40.0", "0.30.0"]
    assert report["text"] == report["final"] == "Paris is the capital of France."
    spans = report["spans"]
    assert [span["name"] for span in spans] == ["chat gpt-4o-mini"] * 4 + ["chat claude-sonnet-4-6"] * 3
    assert spans[0]["attributes"]["gen_ai.usage.input_tokens"] == 24
    assert spans[0]["attributes"]["openai.api.type"] == "chat_completions"
    assert spans[1]["attributes"]["gen_ai.response.id"] == "chatcmpl-CXq9z8y7x6w5v4u3t2s1r0q9"
    assert spans[2]["attributes"]["gen_ai.usage.output_tokens"] == 7
    assert spans[3]["attributes"]["gen_ai.usage.output_tokens"] == 7
    assert spans[4]["attributes"]["gen_ai.usage.input_tokens"] == 3560
    assert spans[5]["attributes"]["gen_ai.usage.output_tokens"] == 9
    assert spans[6]["attributes"]["gen_ai.usage.output_tokens"] == 9


# --- agent frameworks: their oldest releases in a virtualenv of their own ------------------------------
# Their oldest releases pin older provider SDKs (and httpx) than the venv's, so they cannot be laid over it:
# each gets a virtualenv (cached under the system temp dir) with those pins, the OpenTelemetry SDK and the
# test runner, and the framework's own test modules run there with this checkout's source folders on the path.

_RUNNER = (
    "opentelemetry-sdk",
    "opentelemetry-instrumentation",
    "wrapt",
    "pytest",
    "pytest-asyncio",
    "pytest-timeout",
)


@dataclasses.dataclass(frozen=True)
class OldestFramework:
    """A framework's oldest supported release: its pins (with the provider SDK versions of its day), the
    distribution whose version is checked, and the test modules run against it."""

    distribution: str
    version: str
    pins: tuple[str, ...]
    tests: tuple[str, ...]


OLDEST_FRAMEWORKS = {
    # langchain-openai 0.2.0 needs openai 1.x; openai 1.40 needs httpx before 0.28.
    "langchain": OldestFramework(
        "langchain-core",
        "0.3.0",
        (
            "langchain-core==0.3.0",
            "langchain-openai==0.2.0",
            "langgraph==0.2.20",
            "openai==1.40.0",
            "httpx<0.28",
        ),
        ("tests/instrumentation/test_langchain.py", "tests/instrumentation/test_langgraph.py"),
    ),
}


def _framework_venv(pins: tuple[str, ...]) -> Path:
    name = "-".join(pins).replace("=", "").replace("<", "lt").replace(">", "gt")
    venv = Path(tempfile.gettempdir()) / f"llmo-oldest-venv-{name}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *pins, *_RUNNER], check=True, timeout=900)
        (venv / ".complete").touch()
    return python


@pytest.mark.skipif(SLOW, reason="slow (builds a venv): set LLM_OBSERVER_SLOW_TESTS=1")
@pytest.mark.parametrize("framework", sorted(OLDEST_FRAMEWORKS))
def test_oldest_sdks_framework_suite_passes_on_oldest_supported_release(framework: str) -> None:
    oldest = OLDEST_FRAMEWORKS[framework]
    python = _framework_venv(oldest.pins)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "instrumentation/src"), str(ROOT / "semconv/src")])
    env.pop("VIRTUAL_ENV", None)
    version = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({oldest.distribution!r}))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == oldest.version
    done = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *oldest.tests],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
