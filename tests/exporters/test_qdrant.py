"""The Qdrant exporter and the similar-prompt search: the real bundled model, real Qdrant local mode in a tmp dir."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llm_observer.exporters.qdrant import (
    QdrantExporter,
    QdrantExporterConfig,
    factory,
    point_id,
)
from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.errors import ConfigError, PermanentError, RetryableError
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.storage.vectors.embed import EmbedCounts, Embedder, release_embedder, shared_embedder
from llm_observer.storage.vectors.search import VectorSearch
from llm_observer.storage.vectors.store import CACHE_SUFFIX, open_vector_store
from tests.support import add_span, free_port

COLLECTION = "llm_observer_prompts"
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)

PASSWORD = [
    "How do I reset my password?",
    "I forgot my password, how can I change it?",
    "Can't log in - need to reset the password for my account",
]
UNRELATED = [
    "What's the weather forecast for Paris tomorrow?",
    "Write a haiku about autumn leaves falling",
    "Translate 'good morning' into Japanese",
    "Summarise the quarterly earnings report in three bullet points",
    "Give me a recipe for vegan chocolate chip cookies",
    "Explain the difference between TCP and UDP",
    "Which planets in the solar system have rings?",
    "Suggest names for a golden retriever puppy",
    "How many calories are in a banana?",
    "Convert 100 degrees Fahrenheit to Celsius",
    "Write a SQL query that counts orders per customer",
    "What are the rules of chess castling?",
]


def _messages(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def make_batch(
    prompts: Sequence[str],
    *,
    org: str = "acme",
    project: str = "support",
    model: str = "gpt-4o-mini",
    start: datetime = T0,
    first_span: int = 1,
    outputs: Sequence[str] | None = None,
) -> SpanBatch:
    batch = SpanBatch()
    resource = {
        "service.name": "chatbot",
        "llm_observer.organization.id": org,
        "llm_observer.project.id": project,
    }
    for i, prompt in enumerate(prompts):
        n = first_span + i
        begin = int((start + timedelta(seconds=i)).timestamp() * 1e9)
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": model,
            "gen_ai.response.model": model + "-2024-07-18",
            "gen_ai.input.messages": json.dumps(
                [
                    {
                        "role": "system",
                        "parts": [{"type": "text", "content": "You are a helpful support agent."}],
                    },
                    {"role": "user", "parts": [{"type": "text", "content": prompt}]},
                ]
            ),
        }
        if outputs is not None:
            attrs["gen_ai.output.messages"] = _messages("assistant", outputs[i])
        add_span(
            batch,
            attrs,
            resource=resource,
            trace_id=n.to_bytes(16, "big"),
            span_id=n.to_bytes(8, "big"),
            name=f"chat {model}",
            start=begin,
            end=begin + 500_000_000,
            scope_version="1",
        )
    return batch


def make_exporter(data_dir: Path, telemetry: Telemetry | None = None, **config: object) -> QdrantExporter:
    ctx = CreateContext(
        component_id="qdrant",
        data_dir=data_dir,
        telemetry=telemetry or Telemetry(),
        logger=logging.getLogger("test.qdrant"),
    )
    return factory.create(ctx, factory.config_model.model_validate(config))


def event(telemetry: Telemetry, name: str) -> float:
    value = telemetry.registry.get_sample_value(
        "llm_observer_component_events_total", {"component": "qdrant", "event": name}
    )
    return value or 0.0


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


async def test_qdrant_similar_prompts_are_nearest_neighbours(data_dir: Path) -> None:
    exporter = make_exporter(data_dir)
    await exporter.start()
    try:
        await exporter.send(make_batch(UNRELATED[:6] + PASSWORD + UNRELATED[6:]))
        assert exporter.store is not None and exporter.embedder is not None
        search = VectorSearch(exporter.store, exporter.embedder, COLLECTION)
        hits = search.search("I need to reset my password", 5, organization_id="acme")
        assert {h["text"] for h in hits[:3]} == set(PASSWORD)
        assert hits[2]["score"] > hits[3]["score"]
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
        top = hits[0]
        row = 6 + PASSWORD.index(top["text"])
        assert top["trace_id"] == (row + 1).to_bytes(16, "big").hex()
        assert top["span_id"] == (row + 1).to_bytes(8, "big").hex()
        assert top["model"] == "gpt-4o-mini-2024-07-18" and top["provider"] == "openai"
        assert top["project_id"] == "support" and top["organization_id"] == "acme" and top["kind"] == "prompt"
        assert top["time"] == (T0 + timedelta(seconds=row)).isoformat().replace("+00:00", ".000000Z")
    finally:
        await exporter.shutdown()


async def test_qdrant_identical_prompts_are_embedded_once(data_dir: Path) -> None:
    telemetry = Telemetry()
    exporter = make_exporter(data_dir, telemetry, batch_size=8)
    await exporter.start()
    try:
        prompts = (
            ["What is your refund policy?"] * 40 + ["Do you ship to Canada?"] * 20 + ["Where is my order?"]
        )
        await exporter.send(make_batch(prompts))
        assert exporter.counts.texts == 61
        assert exporter.counts.embedded == 3  # the model saw three texts
        assert exporter.counts.model_calls == 1
        assert exporter.counts.deduplicated == 58
        # A later batch with a known prompt: answered by the cache, one new text embedded.
        await exporter.send(make_batch(["Do you ship to Canada?", "Can I pay with PayPal?"], first_span=100))
        assert exporter.counts.embedded == 4
        assert event(telemetry, "texts_embedded") == 4
        assert event(telemetry, "texts_deduplicated") == 59
        assert event(telemetry, "points_written") == 63
        assert exporter.store is not None
        assert exporter.store.count(COLLECTION) == 63  # one point per span, identical text or not
        assert exporter.store.count(COLLECTION + CACHE_SUFFIX) == 4  # one cached vector per distinct text
    finally:
        await exporter.shutdown()


async def test_qdrant_replays_are_idempotent(data_dir: Path) -> None:
    exporter = make_exporter(data_dir, embed_outputs=True)
    await exporter.start()
    try:
        batch = make_batch(
            PASSWORD, outputs=["Click 'Forgot password'.", "Use the reset link.", "Reset it here."]
        )
        batch.origin = "traces:1-1"
        await exporter.send(batch)
        await exporter.send(batch)
        await exporter.send(batch.take([2, 0]))
        assert exporter.store is not None
        assert exporter.store.count(COLLECTION) == 6  # 3 prompts + 3 outputs, however often replayed
        ids = [
            point_id(batch.trace_id[i], batch.span_id[i], kind)
            for i in range(3)
            for kind in ("prompt", "output")
        ]
        assert len(set(ids)) == 6
        assert len(exporter.store.points(COLLECTION, ids)) == 6
    finally:
        await exporter.shutdown()


async def test_qdrant_vectors_survive_restart(data_dir: Path) -> None:
    exporter = make_exporter(data_dir)
    await exporter.start()
    await exporter.send(make_batch(PASSWORD + UNRELATED))
    await exporter.shutdown()
    await exporter.shutdown()  # idempotent

    # A new process: a fresh store client and a fresh model with an empty memory cache.
    store = open_vector_store("qdrant", data_dir)
    try:
        assert store.count(COLLECTION) == len(PASSWORD) + len(UNRELATED)
        embedder = Embedder(models_dir=data_dir / "models")
        hits = VectorSearch(store, embedder, COLLECTION).search(
            "forgot my password", 3, organization_id="acme"
        )
        assert {h["text"] for h in hits} == set(PASSWORD)
        # The stored vectors count as cached: the same texts are not embedded again.
        counts = EmbedCounts()
        embedder.embed(
            [*PASSWORD, "A brand new question about invoices"], store=store.cache(COLLECTION), counts=counts
        )
        assert counts.store_hits == len(PASSWORD) and counts.embedded == 1
    finally:
        store.close()
    assert (data_dir / "qdrant").is_dir()


async def test_qdrant_tenant_filter_isolates_organizations(data_dir: Path) -> None:
    exporter = make_exporter(data_dir)
    await exporter.start()
    try:
        await exporter.send(make_batch(PASSWORD[:2] + UNRELATED[:3], org="acme", first_span=1))
        await exporter.send(
            make_batch(PASSWORD[:2] + UNRELATED[3:6], org="globex", project="web", first_span=50)
        )
        assert exporter.store is not None and exporter.embedder is not None
        search = VectorSearch(exporter.store, exporter.embedder, COLLECTION)
        for org in ("acme", "globex"):
            hits = search.search("reset password", 10, organization_id=org)
            assert len(hits) == 5
            assert {h["organization_id"] for h in hits} == {org}
        assert search.search("reset password", 10, organization_id="initech") == []
        assert search.search("reset password", 10, organization_id="acme", project_id="web") == []
        web = search.search("reset password", 10, organization_id="globex", project_id="web")
        assert {h["project_id"] for h in web} == {"web"} and len(web) == 5
        with pytest.raises(ValueError):
            search.search("reset password", 10, organization_id="")
    finally:
        await exporter.shutdown()


async def test_qdrant_search_filters_model_time_and_kind(data_dir: Path) -> None:
    exporter = make_exporter(data_dir, embed_outputs=True)
    await exporter.start()
    try:
        await exporter.send(
            make_batch(PASSWORD[:1], model="gpt-4o", start=T0, outputs=["Go to Settings, then Security."])
        )
        await exporter.send(
            make_batch(
                PASSWORD[1:2],
                model="claude-3-5-haiku",
                start=T0 + timedelta(days=1),
                first_span=10,
                outputs=["Sure."],
            )
        )
        assert exporter.store is not None and exporter.embedder is not None
        search = VectorSearch(exporter.store, exporter.embedder, COLLECTION)
        by_model = search.search("password", 10, organization_id="acme", model="gpt-4o-2024-07-18")
        assert [h["text"] for h in by_model] == [PASSWORD[0]]
        by_request_model = search.search("password", 10, organization_id="acme", model="claude-3-5-haiku")
        assert [h["text"] for h in by_request_model] == [PASSWORD[1]]
        assert search.search("password", 10, organization_id="acme", model="gpt-4") == []
        late = search.search("password", 10, organization_id="acme", start=T0 + timedelta(hours=1))
        assert [h["text"] for h in late] == [PASSWORD[1]]
        naive_end = (T0 + timedelta(hours=1)).replace(tzinfo=None)  # naive means UTC
        early = search.search("password", 10, organization_id="acme", end=naive_end)
        assert [h["text"] for h in early] == [PASSWORD[0]]
        outputs = search.search("security settings", 10, organization_id="acme", kind="output")
        assert outputs[0]["text"] == "Go to Settings, then Security." and {h["kind"] for h in outputs} == {
            "output"
        }
        assert len(search.search("password", 10, organization_id="acme", kind=None)) == 4
    finally:
        await exporter.shutdown()


async def test_qdrant_spans_without_content_are_counted_not_stored(data_dir: Path) -> None:
    telemetry = Telemetry()
    exporter = make_exporter(data_dir, telemetry)
    await exporter.start()
    try:
        batch = make_batch(["Hello there"])
        batch.extend(make_batch(["ignored"], first_span=2))
        batch.attributes[1] = {"http.route": "/health"}
        await exporter.send(batch)
        await exporter.send(SpanBatch())
        assert exporter.store is not None and exporter.store.count(COLLECTION) == 1
        assert event(telemetry, "spans_without_text") == 1
    finally:
        await exporter.shutdown()


async def test_qdrant_store_is_shared_in_process(data_dir: Path) -> None:
    exporter = make_exporter(data_dir)
    await exporter.start()
    first_embedder = exporter.embedder
    try:
        # The query service opens the same folder while the exporter holds it: one shared client.
        search = VectorSearch.open("qdrant", data_dir)
        assert exporter.store is search.store
        assert exporter.embedder is search.embedder  # one model in memory, one cache
        await exporter.send(make_batch(PASSWORD))
        assert len(search.search("password reset", 3, organization_id="acme")) == 3
        search.close()
        search.close()  # idempotent
        await exporter.send(make_batch(UNRELATED[:2], first_span=10))  # still open for the exporter
        assert exporter.store.count(COLLECTION) == 5
    finally:
        await exporter.shutdown()
    # Released by both: another open makes a new client on the same folder, and loads the model anew.
    again = open_vector_store(str(data_dir / "qdrant"), Path("/nonexistent"))
    try:
        assert again.count(COLLECTION) == 5
    finally:
        again.close()
    embedder = shared_embedder(models_dir=data_dir / "models")
    try:
        assert embedder is not first_embedder and embedder.totals.texts == 0
    finally:
        release_embedder(embedder)


async def test_qdrant_lifecycle_twice_and_send_before_start(data_dir: Path) -> None:
    exporter = make_exporter(data_dir)
    await exporter.shutdown()  # safe before start
    with pytest.raises(RetryableError):
        await exporter.send(make_batch(["x"]))
    for _ in range(2):
        await exporter.start()
        await exporter.start()
        await exporter.shutdown()
        await exporter.shutdown()


async def test_qdrant_model_dimension_mismatch_is_a_config_error(data_dir: Path) -> None:
    store = open_vector_store("qdrant", data_dir)
    try:
        store.ensure_collection("small", 8)
    finally:
        store.close()
    exporter = make_exporter(data_dir, collection="small")
    with pytest.raises(ConfigError) as info:
        await exporter.start()
    assert info.value.problems[0][0] == "model"
    await exporter.shutdown()
    # Nothing left open: the folder can be opened again.
    store = open_vector_store("qdrant", data_dir)
    store.close()


def test_qdrant_config_rejects_bad_values() -> None:
    model = factory.config_model
    assert model().url == "qdrant" and model().collection == COLLECTION
    for bad in (
        {"url": "grpc://host:6334"},
        {"url": " "},
        {"collection": "a b"},
        {"batch_size": 0},
        {"x": 1},
    ):
        with pytest.raises(ValueError):
            model.model_validate(bad)
    assert model.model_validate({"url": "https://qdrant.example.com:6333"}).url.startswith("https://")
    assert isinstance(model(), QdrantExporterConfig)


def test_qdrant_local_folder_held_by_another_process_is_a_config_error(data_dir: Path) -> None:
    import subprocess
    import sys

    folder = data_dir / "qdrant"
    folder.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from qdrant_client import QdrantClient; c = QdrantClient(path=sys.argv[1]); "
            "print('open', flush=True); sys.stdin.read()",
            str(folder),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(ConfigError) as info:
            open_vector_store("qdrant", data_dir)
        assert info.value.problems[0][0] == "url"
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


async def test_qdrant_send_timeout_keeps_the_work_for_the_retry(data_dir: Path) -> None:
    import asyncio

    exporter = make_exporter(data_dir, batch_size=8)
    await exporter.start()
    try:
        prompts = [
            f"Question {i}: how do I export report number {i * 37} to a spreadsheet?" for i in range(120)
        ]
        batch = make_batch(prompts)
        # The collector's delivery timeout gives up on a slow send and retries the same batch.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(exporter.send(batch), 0.05)
        await exporter.send(batch)
        assert exporter.store is not None and exporter.store.count(COLLECTION) == 120
        assert exporter.counts.embedded == 120  # every text embedded once across both attempts
        assert exporter.counts.deduplicated == 120  # the retry found them all
    finally:
        await exporter.shutdown()


class _StatusServer:
    """A real HTTP server on 127.0.0.1 that answers every request with one status (a sick Qdrant server)."""

    def __init__(self, status: int) -> None:
        import http.server
        import threading

        answer = status

        class Handler(http.server.BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                body = json.dumps({"status": {"error": "nope"}, "time": 0.0}).encode()
                self.send_response(answer)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = _reply

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    ("status", "error"), [(503, RetryableError), (429, RetryableError), (403, PermanentError)]
)
async def test_qdrant_server_errors_are_classified(
    data_dir: Path, status: int, error: type[Exception]
) -> None:
    server = _StatusServer(status)
    try:
        exporter = make_exporter(data_dir, url=server.url, timeout_seconds=5)
        with pytest.raises(error):
            await exporter.start()
        await exporter.shutdown()
    finally:
        server.close()


async def test_qdrant_unreachable_server_is_retryable(data_dir: Path) -> None:
    exporter = make_exporter(data_dir, url=f"http://127.0.0.1:{free_port()}", timeout_seconds=2)
    with pytest.raises(RetryableError):
        await exporter.start()
    await exporter.shutdown()


async def test_qdrant_retention_deletes_old_points_at_start(data_dir: Path) -> None:
    exporter = make_exporter(data_dir, retention_days=3)
    await exporter.start()
    now = datetime.now(UTC)
    await exporter.send(make_batch(PASSWORD[:2], start=now - timedelta(days=5)))
    await exporter.send(make_batch(PASSWORD[2:], start=now - timedelta(hours=1), first_span=10))
    assert exporter.store is not None and exporter.store.count(COLLECTION) == 3
    await exporter.shutdown()
    await exporter.start()  # expiry runs at start, then hourly
    try:
        assert exporter.store is not None and exporter.embedder is not None
        hits = VectorSearch(exporter.store, exporter.embedder).search("password", 5, organization_id="acme")
        assert [h["text"] for h in hits] == [PASSWORD[2]]
    finally:
        await exporter.shutdown()


async def test_qdrant_searches_run_while_the_exporter_writes(data_dir: Path) -> None:
    import asyncio

    exporter = make_exporter(data_dir, batch_size=16)
    await exporter.start()
    try:
        await exporter.send(make_batch(PASSWORD))
        assert exporter.store is not None and exporter.embedder is not None
        search = VectorSearch(exporter.store, exporter.embedder)
        prompts = [f"Ticket {i}: the {UNRELATED[i % len(UNRELATED)].lower()}" for i in range(300)]

        def searches() -> list[int]:
            return [len(search.search("reset my password", 3, organization_id="acme")) for _ in range(15)]

        # The query service searches (from its threads) while the exporter embeds and upserts (in another).
        found, _ = await asyncio.gather(
            asyncio.to_thread(searches), exporter.send(make_batch(prompts, first_span=10))
        )
        assert found == [3] * 15
        assert exporter.store.count(COLLECTION) == 303
    finally:
        await exporter.shutdown()


async def test_qdrant_send_over_budget_stores_part_and_its_retry_resumes(data_dir: Path) -> None:
    telemetry = Telemetry()
    # 4 texts per model run, 32 per slice; a budget that is over once the first slice is stored.
    exporter = make_exporter(data_dir, telemetry, batch_size=4, send_budget_seconds=0.001)
    await exporter.start()
    try:
        prompts = [f"Question {i}: how do I export report {i * 37} to a spreadsheet?" for i in range(80)]
        batch = make_batch(prompts)
        batch.origin = "traces:10-12"  # the WAL range the collector retries
        messages = []
        for _ in range(10):
            try:
                await exporter.send(batch)
                break
            except RetryableError as exc:
                messages.append(str(exc))
        assert len(messages) == 2  # 32, then 64 of 80 stored, then the rest
        assert messages[0].startswith("exporter qdrant: a send of 80 spans, ")
        assert "stored 32 of its 80 texts within send_budget_seconds (0.001s)" in messages[0]
        assert "stored 64 of its 80 texts" in messages[1]
        assert exporter.store is not None and exporter.store.count(COLLECTION) == 80
        # Each retry resumed where the last stopped: nothing embedded or written twice.
        assert exporter.counts.embedded == 80 and exporter.counts.texts == 80
        assert event(telemetry, "points_written") == 80
        assert event(telemetry, "sends_over_budget") == 2
    finally:
        await exporter.shutdown()


async def test_qdrant_send_within_budget_is_one_send(data_dir: Path) -> None:
    telemetry = Telemetry()
    exporter = make_exporter(data_dir, telemetry, batch_size=4)
    await exporter.start()
    try:
        await exporter.send(make_batch([f"Where is parcel {i}?" for i in range(40)]))
        assert exporter.store is not None and exporter.store.count(COLLECTION) == 40
        assert event(telemetry, "sends_over_budget") == 0
    finally:
        await exporter.shutdown()


class _SilentServer:
    """A real TCP server on 127.0.0.1 that accepts connections and never answers (a hung Qdrant server)."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        self.sock.close()


async def test_qdrant_server_timeout_says_what_timed_out(data_dir: Path) -> None:
    server = _SilentServer()
    try:
        exporter = make_exporter(data_dir, url=server.url, timeout_seconds=1)
        with pytest.raises(RetryableError) as info:
            await exporter.start()
        await exporter.shutdown()
    finally:
        server.close()
    message = str(info.value)
    assert "Qdrant collection lookup timed out (timeout_seconds 1)" in message
    assert "Timeout" in message.split("):", 1)[1]  # the underlying error's type, even when its text is empty


def test_qdrant_error_description_names_the_type_of_an_empty_error() -> None:
    from llm_observer.storage.vectors.store import describe

    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(ValueError("bad vector")) == "ValueError: bad vector"
    try:
        try:
            raise TimeoutError()
        except TimeoutError as inner:
            raise RuntimeError("upsert failed") from inner
    except RuntimeError as outer:
        assert describe(outer) == "RuntimeError: upsert failed (TimeoutError)"
