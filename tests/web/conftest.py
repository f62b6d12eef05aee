"""Fixtures for the web view's browser tests: a real ``llm-observer up`` service fed through the OpenTelemetry
SDK, and a headless Chromium page that fails the test on any console error or failed request.

- ``web`` (session): a :class:`WebService` — the whole default server (OTLP receivers, WAL, processors,
  ClickHouse, Qdrant, query service) on loopback ports, run in its own thread and event loop, with auth on
  and two organisations: ``KEY_A`` (org ``acme``) and ``KEY_B`` (org ``globex``), and a user ``alice`` of
  ``acme`` who logs in with ``PASSWORD``. ``web.get(path, key, **params)`` reads its REST API.
- ``seeded`` (session): :class:`Seeded` — what was sent before any test ran: for ``acme``, an agent run
  (``invoke_agent planner`` → ``chat`` with a tool call, ``execute_tool get_weather`` → ``chat``), three
  plain chat traces of two users and one failed call, all made by the real openai SDK, instrumented by
  ``OpenAIInstrumentor``, against the replay server with the recorded OpenAI answers; for ``globex``, one
  chat trace whose names hold ``GLOBEX_MARK``. Everything is stored (visible through the API) on return.
- ``sender(key, **resource)``: an :class:`OtlpSender` exporting spans over OTLP/HTTP with ``key``, one span
  per export (``SimpleSpanProcessor``), so a span's ``end()`` returns once the collector acknowledged it.
- ``browser`` (session) and ``page`` (per test): a :class:`WebPage` — ``page.open("#/traces", key=KEY_A)``
  loads the view with that key in session storage. At teardown the test fails if the page logged a console
  error, threw, or saw a request fail (4xx/5xx or network) other than those ``page.allow(pattern)`` named.
  ``page.screenshot("name")`` saves ``artifacts/name.png`` next to this file.

Chromium is Debian's (``apt-get install -y chromium chromium-driver``), driven by Python's Playwright with
``executable_path``; Playwright's own browser download is never used.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_observer.kernel.auth import hash_api_key, hash_password
from tests.support.threaded_service import CHROMIUM, CHROMIUM_FLAGS, ThreadedService
from tests.support.waiting import wait_until

HERE = Path(__file__).parent
ARTIFACTS = HERE / "artifacts"
RECORDINGS = HERE.parent / "instrumentation" / "recordings" / "openai"

KEY_A = "web-test-key-acme"
KEY_B = "web-test-key-globex"
ORG_A = "acme"
ORG_B = "globex"
USERNAME = "alice"
PASSWORD = "correct horse battery staple"
JWT_SECRET = "web-view-tests-0123456789abcdef-0123456789"
GLOBEX_MARK = "globex-secret-run"


# --- the server ----------------------------------------------------------------------------------------


class WebService(ThreadedService):
    """The whole server with auth on and the two organisations (and alice) of these tests."""

    def __init__(self, data_dir: Path) -> None:
        overrides: dict[str, Any] = {
            "service": {"delivery": {"linger_seconds": 0.01}},
            "auth": {
                "enabled": True,
                "jwt_secret": JWT_SECRET,
                "api_keys": [
                    {"id": "acme", "key_sha256": hash_api_key(KEY_A), "organization_id": ORG_A},
                    {"id": "globex", "key_sha256": hash_api_key(KEY_B), "organization_id": ORG_B},
                ],
                "users": [
                    {
                        "username": USERNAME,
                        "password_hash": hash_password(PASSWORD, iterations=1000),
                        "organization_id": ORG_A,
                    }
                ],
            },
        }
        super().__init__(data_dir, overrides, name="web-service")

    def get(self, path: str, key: str | None = KEY_A, **params: Any) -> httpx.Response:
        """GET the REST API as the holder of ``key`` (no key: anonymous)."""
        return self.get_as(key, path, **params)


@pytest.fixture(scope="session")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebService]:
    server = WebService(tmp_path_factory.mktemp("web-service"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- sending through the OpenTelemetry SDK --------------------------------------------------------------


class OtlpSender:
    """A ``TracerProvider`` exporting each span over OTLP/HTTP as it ends (acknowledged on return)."""

    def __init__(self, web: WebService, key: str, resource: dict[str, Any]) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        self.provider = TracerProvider(resource=Resource.create(resource))
        exporter = OTLPSpanExporter(
            endpoint=f"{web.otlp_http}/v1/traces", headers={"authorization": f"Bearer {key}"}, timeout=10
        )
        self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("llm-observer-web-tests")

    def shutdown(self) -> None:
        self.provider.shutdown()


@pytest.fixture
def sender(web: WebService) -> Iterator[Callable[..., OtlpSender]]:
    made: list[OtlpSender] = []

    def make(key: str = KEY_A, **resource: Any) -> OtlpSender:
        resource.setdefault("service.name", "web-test")
        made.append(OtlpSender(web, key, resource))
        return made[-1]

    yield make
    for one in made:
        one.shutdown()


@dataclass
class Seeded:
    """What ``seeded`` sent: trace ids (32 hex) by what they are."""

    agent_trace: str
    chat_traces: list[str]
    error_trace: str
    globex_traces: list[str]
    users: dict[str, list[str]] = field(default_factory=dict)

    @property
    def acme_traces(self) -> list[str]:
        return [self.agent_trace, *self.chat_traces, self.error_trace]


def _trace_hex(span: Any) -> str:
    return format(span.get_span_context().trace_id, "032x")


@pytest.fixture(scope="session")
def seeded(web: WebService) -> Iterator[Seeded]:
    import openai

    from llm_observer.instrumentation.openai import OpenAIInstrumentor
    from llm_observer.instrumentation.testing import ReplayServer, load_recording

    chat = load_recording(RECORDINGS / "chat.json")
    tool_call = load_recording(RECORDINGS / "chat_tool_call.json")
    failure = load_recording(RECORDINGS / "error_500.json")
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    weather_tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    senders: list[OtlpSender] = []

    def instrumented(key: str, **resource: Any) -> tuple[OtlpSender, OpenAIInstrumentor]:
        one = OtlpSender(web, key, {"service.name": "shop-agent", **resource})
        senders.append(one)
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=one.provider)
        return one, instrumentor

    previous = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY"
    users: dict[str, list[str]] = {"u-alice": [], "u-bob": []}
    try:
        with ReplayServer() as replay:
            client = openai.OpenAI(base_url=replay.url + "/v1", api_key="sk-test", max_retries=0)

            # An agent run of u-alice in session s-1: agent → chat (tool call), agent → tool → chat.
            one, instrumentor = instrumented(KEY_A, **{"user.id": "u-alice", "session.id": "s-1"})
            try:
                with one.tracer.start_as_current_span(
                    "invoke_agent planner",
                    attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"},
                ) as agent:
                    replay.set_routes(tool_call)
                    client.chat.completions.create(model="gpt-4o", messages=messages, tools=[weather_tool])
                    with one.tracer.start_as_current_span(
                        "execute_tool get_weather",
                        attributes={
                            "gen_ai.operation.name": "execute_tool",
                            "gen_ai.tool.name": "get_weather",
                            "gen_ai.tool.call.id": "call_Qm3xT9vB2nK8sLp4",
                        },
                    ):
                        replay.set_routes(chat)
                        client.chat.completions.create(model="gpt-4o-mini", messages=messages)
                agent_trace = _trace_hex(agent)
                users["u-alice"].append(agent_trace)
            finally:
                instrumentor.uninstrument()

            chat_traces: list[str] = []
            replay.set_routes(chat)
            for user, session in (("u-alice", "s-2"), ("u-bob", "s-3"), ("u-bob", "s-3")):
                one, instrumentor = instrumented(KEY_A, **{"user.id": user, "session.id": session})
                try:
                    with one.tracer.start_as_current_span("answer question") as root:
                        client.chat.completions.create(model="gpt-4o-mini", messages=messages)
                    chat_traces.append(_trace_hex(root))
                    users[user].append(chat_traces[-1])
                finally:
                    instrumentor.uninstrument()

            one, instrumentor = instrumented(KEY_A, **{"user.id": "u-bob", "session.id": "s-4"})
            replay.set_routes(failure)
            try:
                with (
                    one.tracer.start_as_current_span("answer question") as root,
                    pytest.raises(openai.InternalServerError),
                ):
                    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
                error_trace = _trace_hex(root)
                users["u-bob"].append(error_trace)
            finally:
                instrumentor.uninstrument()

            one, instrumentor = instrumented(
                KEY_B, **{"service.name": "globex-bot", "user.id": "u-mallory", "session.id": "s-globex"}
            )
            replay.set_routes(chat)
            try:
                with one.tracer.start_as_current_span(GLOBEX_MARK) as root:
                    client.chat.completions.create(model="gpt-4o", messages=messages)
                globex_traces = [_trace_hex(root)]
            finally:
                instrumentor.uninstrument()
    finally:
        if previous is None:
            os.environ.pop("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", None)
        else:
            os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = previous
        for one in senders:
            one.shutdown()

    seeded = Seeded(agent_trace, chat_traces, error_trace, globex_traces, users)
    wait_stored(web, KEY_A, seeded.acme_traces, spans=4 + 2 * len(chat_traces) + 2)
    wait_stored(web, KEY_B, seeded.globex_traces, spans=2)
    yield seeded


def wait_stored(web: WebService, key: str, trace_ids: list[str], spans: int, timeout: float = 60.0) -> None:
    """Wait until every trace is readable through the API and they hold ``spans`` spans in all."""

    def count() -> int:
        total = 0
        for trace_id in trace_ids:
            response = web.get(f"/api/v1/traces/{trace_id}", key)
            if response.status_code != 200:
                return -1
            total += len(response.json()["spans"])
        return total

    last: list[int] = []
    wait_until(
        lambda: last.append(count()) or last[-1] >= spans,
        timeout=timeout,
        what=lambda: f"{spans} spans of {len(trace_ids)} traces stored (last count {last[-1:]})",
        interval=0.2,
    )


# --- the browser ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # launch() runs Chromium on a fresh temporary profile of its own (the --user-data-dir the plan
        # asks for), removed when the browser closes.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


class WebPage:
    """One browser tab on the web view, recording every problem the page meets."""

    def __init__(self, web: WebService, context: Any) -> None:
        self.web = web
        self.context = context
        self.page = context.new_page()
        self.problems: list[str] = []
        self.requests: list[str] = []
        self._allowed: list[re.Pattern[str]] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("requestfailed", self._request_failed)
        self.page.on("response", self._response)
        self.page.on("request", lambda request: self.requests.append(request.url))

    def allow(self, pattern: str) -> None:
        """Expect problems matching ``pattern`` (a regular expression): they do not fail the test."""
        self._allowed.append(re.compile(pattern))

    def _note(self, problem: str) -> None:
        if not any(pattern.search(problem) for pattern in self._allowed):
            self.problems.append(problem)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self._note(f"console error: {message.text} at {message.location}")

    def _request_failed(self, request: Any) -> None:
        failure = request.failure or ""
        # A stream the page closes itself (leaving the live view) is aborted on purpose.
        if "ERR_ABORTED" in failure and "/api/v1/tail" in request.url:
            return
        self._note(f"request failed: {request.method} {request.url}: {failure}")

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self._note(f"HTTP {response.status}: {response.request.method} {response.url}")

    def open(self, route: str = "", key: str | None = KEY_A, wait: str | None = "main[data-ready]") -> Any:
        """Load ``/{route}`` (``route`` like ``#/traces?model=gpt-4o``) holding ``key`` (None: no key) as the
        session's credential; waits for the page to say it rendered (``main[data-ready]``) unless ``wait`` is None."""
        # Every open is a full load: a hash-only change would keep the previous key and page state.
        if self.page.url != "about:blank":
            self.page.goto("about:blank")
        token = json.dumps(key)
        # Init scripts accumulate and run in order: the last open's key is the one in effect.
        origin = json.dumps(self.web.base_url)
        self.page.add_init_script(
            f"if (location.origin === {origin}) {{ {token} === null "
            f"? sessionStorage.removeItem('llm-observer.token') "
            f": sessionStorage.setItem('llm-observer.token', {token}); }}"
        )
        self.page.goto(self.web.base_url + "/" + route)
        if wait:
            # Attached, not visible: the sign-in form hides ``main`` when no key is held.
            self.page.wait_for_selector(wait, state="attached", timeout=15_000)
        return self.page

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def api_requests(self) -> list[str]:
        return [url for url in self.requests if "/api/" in url]


@pytest.fixture
def page(web: WebService, browser: Any) -> Iterator[WebPage]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    tab = WebPage(web, context)
    try:
        yield tab
    finally:
        context.close()
    assert not tab.problems, "the page met problems:\n" + "\n".join(tab.problems)
