"""Web view benchmark: time to first render and freshness, in headless Chromium, over a store of ~1M spans.

Fills a chDB store with ``--spans`` GenAI spans (default 1 million, all in the last ``--days`` day) with the
generator of ``bench_query.py`` (rows made inside ClickHouse, real schema), then starts the whole server as
``llm-observer up`` does (OTLP receivers, WAL, processors, ClickHouse, query service with the web view) on
loopback ports with auth on, and sends a 1,000-span agent trace (agent → tools → LLM calls) through the
OTLP/HTTP ingest with the OpenTelemetry SDK. Debian's Chromium (``/usr/bin/chromium``, the browser tests'
flags) driven by Python's Playwright then measures:

* time to first render — navigation start to ``main#view[data-ready]`` (the page's own "rendered" mark,
  after its API data is drawn) — of the trace list (``#/traces``, last 24 h, newest 50) and of the
  1,000-span trace (``#/trace/{id}``): best and median of ``--loads`` loads, each in a fresh browser context
  (cold HTTP cache: a first visit) and again reloading one tab (warm: revalidated by ETag);
* freshness — from an acknowledged OTLP export (``SimpleSpanProcessor``: ``end()`` returns after the
  collector's answer) to the span showing (a) on the open Live page and (b) in the trace list, reloaded until
  its row is there: p50 / p95 over ``--fresh`` spans.

Usage: ``.venv/bin/python bench/bench_web.py [--spans 1000000] [--loads 10] [--fresh 20] [--json out.json]``
(``--spans 20000`` for a quick run).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

# The repository root, for the server and browser settings the browser tests use (tests/support).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_query import generate

from llm_observer.kernel.auth import hash_api_key
from llm_observer.storage.clickhouse.client import open_client
from llm_observer.storage.clickhouse.migrate import ensure_schema
from tests.support.threaded_service import CHROMIUM, CHROMIUM_FLAGS, ThreadedService

# bench_query's generator puts every trace of a single-organization store in org-0.
ORGANIZATION = "org-0"
KEY = "bench-web-key"
TTL_DAYS = 90  # the ClickHouse exporter's default retention: the service finds the schema as it wants it
READY = "main#view[data-ready]"
# Records when ``main`` first gets ``data-ready``, in ms since navigation start (performance.now()).
READY_PROBE = """
(() => {
  const seen = () => {
    const view = document.getElementById("view");
    if (view && view.hasAttribute("data-ready") && window.__readyAt === undefined) {
      window.__readyAt = performance.now();
    }
  };
  new MutationObserver(seen).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-ready"] });
})();
"""
# The rendered mark and the page's first API request (resource timing), in ms since navigation start.
TIMING = """
(() => {
  const api = performance.getEntriesByType("resource").filter((entry) => entry.name.includes("/api/"))
    .sort((a, b) => a.startTime - b.startTime)[0];
  return { ready: window.__readyAt, api_start: api ? api.startTime : 0, api: api ? api.responseEnd - api.startTime : 0 };
})()
"""


# --- the server ----------------------------------------------------------------------------------------


class Server(ThreadedService):
    """The whole default server with auth on and the one key of the generator's organisation."""

    def __init__(self, data_dir: Path) -> None:
        overrides: dict[str, Any] = {
            "service": {"delivery": {"linger_seconds": 0.01}},
            "auth": {
                "enabled": True,
                "jwt_secret": "bench-web-0123456789abcdef-0123456789abcdef",
                "api_keys": [
                    {"id": "bench", "key_sha256": hash_api_key(KEY), "organization_id": ORGANIZATION}
                ],
            },
        }
        super().__init__(data_dir, overrides, name="bench-web")

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.get_as(KEY, path, timeout=60, **params)


def tracer_provider(server: Server, service_name: str, batch: bool) -> Any:
    """A provider exporting over OTLP/HTTP with the bench's key: batched, or one span per acknowledged export."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name, "user.id": "u-bench"}))
    exporter = OTLPSpanExporter(
        endpoint=f"{server.otlp_http}/v1/traces", headers={"authorization": f"Bearer {KEY}"}, timeout=30
    )
    processor: Any = (
        BatchSpanProcessor(exporter, max_export_batch_size=512) if batch else SimpleSpanProcessor(exporter)
    )
    provider.add_span_processor(processor)
    return provider


def send_agent_trace(server: Server, spans: int) -> str:
    """Send one agent run of ``spans`` spans: the agent, then steps of tool → LLM call and an LLM call."""
    from opentelemetry import trace

    provider = tracer_provider(server, "bench-agent", batch=True)
    tracer = provider.get_tracer("bench-web")
    steps = (spans - 1) // 3
    began = time.time_ns() - (steps * 3 + 10) * 10_000_000
    clock = began

    def tick(ms: int) -> int:
        nonlocal clock
        clock += ms * 1_000_000
        return clock

    agent = tracer.start_span(
        "invoke_agent researcher",
        start_time=began,
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher"},
    )
    context = trace.set_span_in_context(agent)
    for step in range(steps):
        messages = json.dumps(
            [
                {"role": "system", "parts": [{"type": "text", "content": "You are a careful researcher."}]},
                {
                    "role": "user",
                    "parts": [{"type": "text", "content": f"Step {step}: look up source {step}."}],
                },
            ]
        )
        for kind in ("tool", "chat"):
            if kind == "tool":
                tool = tracer.start_span(
                    "execute_tool fetch_page",
                    context=context,
                    start_time=tick(1),
                    attributes={
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": "fetch_page",
                        "gen_ai.tool.call.id": f"call_{step}",
                    },
                )
                parent = trace.set_span_in_context(tool)
            else:
                parent = context
            llm = tracer.start_span(
                "chat gpt-4o-mini",
                context=parent,
                start_time=tick(1),
                kind=trace.SpanKind.CLIENT,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.response.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 200 + step % 50,
                    "gen_ai.usage.output_tokens": 40 + step % 30,
                    "gen_ai.response.finish_reasons": ["stop"],
                    "gen_ai.input.messages": messages,
                    "gen_ai.output.messages": json.dumps(
                        [{"role": "assistant", "parts": [{"type": "text", "content": f"Summary of {step}."}]}]
                    ),
                },
            )
            llm.end(end_time=tick(7))
            if kind == "tool":
                tool.end(end_time=tick(1))
    agent.end(end_time=tick(1))
    provider.force_flush(60_000)
    provider.shutdown()
    return format(agent.get_span_context().trace_id, "032x")


def wait_for(what: str, check: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.2)


def wait_idle(limit: float = 0.2, timeout: float = 600.0) -> float:
    """Wait until this process (the server: storage, embedding of the prompts just sent) uses less than
    ``limit`` of a CPU over a second, so the loads measure the view, not a busy machine; seconds waited."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        before = time.process_time()
        time.sleep(1.0)
        if time.process_time() - before < limit:
            break
    return round(time.monotonic() - began, 1)


# --- the browser ---------------------------------------------------------------------------------------


def summary(loads: list[dict[str, float]]) -> dict[str, float]:
    """Best / median / worst time to first render, and the median split of it: before the first API
    request (HTML, modules, styles), the request itself, and drawing after it."""
    ordered = sorted(load["ready"] for load in loads)

    def median(name: str) -> float:
        return round(statistics.median(load[name] for load in loads), 1)

    return {
        "best_ms": round(ordered[0], 1),
        "median_ms": round(statistics.median(ordered), 1),
        "worst_ms": round(ordered[-1], 1),
        "median_before_api_ms": median("api_start"),
        "median_api_ms": median("api"),
        "median_after_api_ms": round(
            statistics.median(load["ready"] - load["api_start"] - load["api"] for load in loads), 1
        ),
    }


def percentiles(values_s: list[float]) -> dict[str, float]:
    ordered = sorted(values_s)
    return {
        "n": len(ordered),
        "p50_s": round(statistics.median(ordered), 3),
        "p95_s": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 3),
        "max_s": round(ordered[-1], 3),
    }


class Browser:
    """Headless Chromium on the web view, signed in with the bench's key (held in session storage)."""

    def __init__(self, playwright: Any, server: Server) -> None:
        self.server = server
        self.browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
        )

    def context(self) -> Any:
        context = self.browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(60_000)
        origin = json.dumps(self.server.base_url)
        context.add_init_script(
            f"if (location.origin === {origin}) sessionStorage.setItem('llm-observer.token', {json.dumps(KEY)});"
        )
        context.add_init_script(READY_PROBE)
        return context

    def load(self, page: Any, route: str, check: str, reload: bool = False) -> dict[str, float]:
        """Load ``route`` (a full navigation) and wait for the rendered mark and ``check``: ms from navigation
        start to first render, to the start of the page's first API request, and that request's duration."""
        if reload:
            page.reload(wait_until="commit")
        else:
            page.goto(self.server.base_url + "/" + route, wait_until="commit")
        page.wait_for_selector(READY, state="attached")
        timing = page.evaluate(TIMING)
        message = page.locator("#message")
        if message.is_visible():
            raise RuntimeError(f"{route}: the page says {message.inner_text()!r}")
        if page.locator(check).count() == 0:
            raise RuntimeError(f"{route}: rendered without {check}")
        return {name: float(value) for name, value in timing.items()}

    def first_render(self, route: str, check: str, loads: int) -> dict[str, Any]:
        cold: list[dict[str, float]] = []
        for _ in range(loads + 1):  # the first load warms the server (engine caches), not the browser
            context = self.context()
            try:
                cold.append(self.load(context.new_page(), route, check))
            finally:
                context.close()
        context = self.context()
        try:
            page = context.new_page()
            warm = [self.load(page, route, check)]
            warm += [self.load(page, route, check, reload=True) for _ in range(loads)]
        finally:
            context.close()
        return {"cold": summary(cold[1:]), "warm": summary(warm[1:])}

    def close(self) -> None:
        self.browser.close()


def freshness_live(browser: Browser, spans: int) -> dict[str, float]:
    context = browser.context()
    provider = tracer_provider(browser.server, "bench-live", batch=False)
    try:
        page = context.new_page()
        page.goto(browser.server.base_url + "/#/live?service=bench-live")
        page.wait_for_selector(".live-state[data-state=live]")
        tracer = provider.get_tracer("bench-web")
        delays = []
        for n in range(spans):
            with tracer.start_as_current_span(f"live span {n}") as span:
                pass
            acknowledged = time.monotonic()
            trace_id = format(span.get_span_context().trace_id, "032x")
            page.wait_for_selector(f"#live-rows tr[data-trace-id='{trace_id}']", timeout=30_000)
            delays.append(time.monotonic() - acknowledged)
        return percentiles(delays)
    finally:
        provider.shutdown()
        context.close()


def freshness_list(browser: Browser, spans: int) -> dict[str, Any]:
    context = browser.context()
    provider = tracer_provider(browser.server, "bench-fresh", batch=False)
    try:
        page = context.new_page()
        page.goto(browser.server.base_url + "/#/traces", wait_until="commit")
        page.wait_for_selector(READY, state="attached")
        tracer = provider.get_tracer("bench-web")
        delays, reloads = [], []
        for n in range(spans):
            with tracer.start_as_current_span(f"fresh span {n}") as span:
                pass
            acknowledged = time.monotonic()
            row = f"tr[data-trace-id='{format(span.get_span_context().trace_id, '032x')}']"
            for attempt in range(1, 1000):  # noqa: B007 - counted after the loop
                page.reload(wait_until="commit")
                page.wait_for_selector(READY, state="attached")
                if page.locator(row).count():
                    break
                if time.monotonic() - acknowledged > 60:
                    raise TimeoutError(f"fresh span {n} not in the trace list after 60 s")
            delays.append(time.monotonic() - acknowledged)
            reloads.append(attempt)
        return {**percentiles(delays), "mean_reloads": round(statistics.fmean(reloads), 2)}
    finally:
        provider.shutdown()
        context.close()


# --- the run -------------------------------------------------------------------------------------------


def fill(client: Any, spans: int, days: float, calls: int) -> dict[str, Any]:
    """Generate the store's spans unless it holds enough already."""
    ensure_schema(client, "otel", ttl_days=TTL_DAYS)
    figures: dict[str, Any] = {}
    existing = client.rows("SELECT count() AS n FROM otel.otel_traces")[0]["n"]
    if existing < spans:
        print(f"Generating {spans:,} spans over {days} day(s) …", file=sys.stderr, flush=True)
        figures["generate_seconds"] = round(
            generate(client, "otel", spans, days, 1, calls, time.time_ns()), 1
        )
    figures["stored_spans"] = client.rows("SELECT count() AS n FROM otel.otel_traces")[0]["n"]
    return figures


def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="bench-web-"))
    results: dict[str, Any] = {"spans": args.spans, "days": args.days, "loads": args.loads}
    server = Server(data_dir)
    # Kept open while the server runs: chDB clients are shared per path within the process.
    client = open_client("chdb://clickhouse", data_dir)
    try:
        results.update(fill(client, args.spans, args.days, args.calls))
        print(f"{results['stored_spans']:,} spans stored; starting the server …", file=sys.stderr, flush=True)
        server.start()
        began = time.perf_counter()
        trace_id = send_agent_trace(server, args.trace_spans)
        wait_for(
            f"the {args.trace_spans}-span trace stored",
            lambda: (
                (response := server.get(f"/api/v1/traces/{trace_id}")).status_code == 200
                and len(response.json()["spans"]) >= args.trace_spans
            ),
        )
        results["trace_spans"] = args.trace_spans
        results["trace_send_and_store_seconds"] = round(time.perf_counter() - began, 2)
        results["idle_wait_seconds"] = wait_idle()
        listed = server.get("/api/v1/traces", limit=50).json()
        results["list_api_rows"] = len(listed["traces"])
        with sync_playwright() as playwright:
            browser = Browser(playwright, server)
            try:
                print(
                    "Time to first render (navigation start → main[data-ready]):", file=sys.stderr, flush=True
                )
                results["first_render"] = {
                    "trace_list": browser.first_render("#/traces", "tr[data-trace-id]", args.loads),
                    "trace_1000_spans": browser.first_render(
                        f"#/trace/{trace_id}", "[data-span-id]", args.loads
                    ),
                }
                print(json.dumps(results["first_render"], indent=2), file=sys.stderr, flush=True)
                print("Freshness (acknowledged export → shown):", file=sys.stderr, flush=True)
                results["freshness"] = {
                    "live_page": freshness_live(browser, args.fresh),
                    "trace_list_reload": freshness_list(browser, args.fresh),
                }
            finally:
                browser.close()
    finally:
        server.stop()
        client.close()
        if not args.data_dir and not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--spans", type=int, default=1_000_000, help="spans in the store (20000: a quick run)"
    )
    parser.add_argument("--days", type=float, default=1.0, help="the stored spans span this many days back")
    parser.add_argument("--calls", type=int, default=3, help="model calls per generated trace (plus a root)")
    parser.add_argument(
        "--trace-spans", type=int, default=1000, help="spans of the agent trace sent over OTLP"
    )
    parser.add_argument("--loads", type=int, default=10, help="measured loads per page and cache state")
    parser.add_argument("--fresh", type=int, default=20, help="spans sent per freshness measurement")
    parser.add_argument("--data-dir", help="reuse / keep a store here instead of a temporary one")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = run(args)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
