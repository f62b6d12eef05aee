"""The vector store: one small wrapper over qdrant-client, in local mode (a folder) or against a server.

``url`` is a path (relative paths are under the data dir; local mode, the default) or ``http(s)://HOST:PORT``.
Qdrant's local mode lets one client open a folder, and one process hold it; ``open_vector_store`` therefore
returns the same shared, reference-counted store to every caller in the process (the exporter and the query
service share it) and serialises calls on it, since local mode is not made for concurrent use.

Besides the span collection, the store keeps ``{collection}_vector_cache``: one point per embedded text, keyed
by model and content hash, so that a text embedded once (before a restart, or by another collector sharing a
server) is never embedded again.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from llm_observer.kernel.errors import ConfigError, LLMObserverError, PermanentError, RetryableError
from llm_observer.storage.vectors.embed import Vector

if TYPE_CHECKING:
    from qdrant_client import QdrantClient
    from qdrant_client import models as qm

logger = logging.getLogger(__name__)

T = TypeVar("T")

CACHE_SUFFIX = "_vector_cache"
_CACHE_NAMESPACE = uuid.UUID("6f1f5a36-94a4-4a4e-9d0b-0c7d2a8b6e51")

# Payload fields the search filters on; a server indexes them (local mode scans: indexes do nothing there).
KEYWORD_FIELDS = ("organization_id", "project_id", "model", "request_model", "kind", "content_hash")
TIME_FIELD = "time_unix"


def cache_point_id(model: str, content_hash: str) -> str:
    """The cache point of a text: the same for every process that embeds it with the same model."""
    return str(uuid.uuid5(_CACHE_NAMESPACE, f"{model}\0{content_hash}"))


def is_server_url(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def describe(exc: BaseException) -> str:
    """``exc`` for a message: with its type, and the type alone when its text is empty (as a timeout's
    often is); a wrapped cause is described too."""
    text = str(exc)
    out = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    cause = exc.__cause__ or getattr(exc, "source", None)
    if isinstance(cause, BaseException) and cause is not exc:
        out += f" ({describe(cause)})"
    return out


def _wrap(exc: Exception, what: str, timeout: float) -> Exception:
    """qdrant-client's exceptions as ours: unreachable or overloaded is retryable, refused is not."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(exc, UnexpectedResponse):
        status = exc.status_code or 0
        if status == 429 or status >= 500:
            return RetryableError(f"Qdrant {what} failed: {exc}")
        return PermanentError(f"Qdrant {what} failed: {exc}")
    if any(
        isinstance(e, TimeoutError) or "timeout" in type(e).__name__.lower()
        for e in (exc, getattr(exc, "source", None), exc.__cause__)
    ):
        return RetryableError(f"Qdrant {what} timed out (timeout_seconds {timeout:g}): {describe(exc)}")
    if isinstance(exc, ResponseHandlingException | OSError):
        return RetryableError(f"Qdrant unreachable ({what}): {describe(exc)}")
    if isinstance(exc, ValueError | TypeError | KeyError):
        return PermanentError(f"Qdrant {what} failed: {describe(exc)}")
    return RetryableError(f"Qdrant {what} failed: {describe(exc)}")


class VectorStore:
    """A Qdrant client (local folder or server). Thread-safe; ``close`` once per ``open_vector_store``."""

    def __init__(
        self, url: str, location: str, client: QdrantClient, local: bool, timeout_seconds: float = 10.0
    ) -> None:
        self.url = url
        self.timeout_seconds = timeout_seconds
        self.location = location  # the folder (local mode) or the server URL
        self.local = local
        self._client = client
        # Local mode keeps collections in Python structures and one SQLite connection: one call at a time.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if local else contextlib.nullcontext()
        )
        self._refs = 0
        self._refs_lock = threading.Lock()
        self._dims: dict[str, int] = {}

    def _call(self, what: str, fn: Callable[[QdrantClient], T]) -> T:
        try:
            with self._lock:
                return fn(self._client)
        except LLMObserverError:
            raise
        except Exception as exc:
            raise _wrap(exc, what, self.timeout_seconds) from exc

    def scroll(
        self,
        name: str,
        query_filter: Any,
        limit: int,
        offset: Any = None,
        fields: Sequence[str] | None = None,
        with_vectors: bool = False,
    ) -> tuple[list[Any], Any]:
        """A page of the points of collection ``name`` matching ``query_filter`` (in id order) and the offset
        of the next page (None after the last); empty when the collection does not exist."""

        def scroll(client: QdrantClient) -> tuple[list[Any], Any]:
            if not client.collection_exists(name):
                return [], None
            records, following = client.scroll(
                name,
                scroll_filter=query_filter,
                limit=max(1, limit),
                offset=offset,
                with_payload=list(fields) if fields is not None else True,
                with_vectors=with_vectors,
            )
            return list(records), following

        return self._call("scroll", scroll)

    # --- collections ---------------------------------------------------------------------------------

    def ensure_collection(self, name: str, dim: int) -> None:
        """Create ``name`` and its vector cache for ``dim``-long cosine vectors, or check that they match."""
        for collection, indexed in ((name, True), (name + CACHE_SUFFIX, False)):
            if self._dims.get(collection) == dim:
                continue
            existing = self.collection_dim(collection)
            if existing is None:
                self._create(collection, dim)
            elif existing != dim:
                raise ConfigError(
                    [
                        (
                            "model",
                            f"collection {collection!r} holds {existing}-dimension vectors but the model "
                            f"makes {dim}: choose another collection for this model",
                        )
                    ]
                )
            if self.local:
                self._fast_local_commits(collection)
            elif indexed:
                self._index(collection)  # idempotent; also indexes a collection made by an older version
            self._dims[collection] = dim

    def _fast_local_commits(self, name: str) -> None:
        """Local mode commits every point in its own SQLite transaction, each an fsync (~6 ms here): switch
        the collection's database to write-ahead logging with ``synchronous=NORMAL``, so that a commit is a
        write and survives a process crash (a power cut may lose the last ones: vectors are derived data)."""

        def tune(client: QdrantClient) -> None:
            local = getattr(client, "_client", None)
            collection = getattr(local, "collections", {}).get(name)
            connection = getattr(getattr(collection, "storage", None), "storage", None)
            if isinstance(connection, sqlite3.Connection):
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
            else:  # qdrant-client moved its internals: keep its own (slower, safer) commits
                logger.info("Cannot tune the local vector store's commits; writes will be slower.")

        self._call("tune local store", tune)

    def collection_dim(self, name: str) -> int | None:
        """The vector size of collection ``name``, or None when it does not exist."""

        def get(client: QdrantClient) -> int | None:
            if not client.collection_exists(name):
                return None
            vectors = client.get_collection(name).config.params.vectors
            size = getattr(vectors, "size", None)
            return int(size) if size is not None else None

        return self._call("collection lookup", get)

    def _create(self, name: str, dim: int) -> None:
        from qdrant_client import models as qm

        def create(client: QdrantClient) -> None:
            try:
                client.create_collection(
                    name, vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.COSINE)
                )
            except Exception:
                # Another collector sharing the server may have created it first.
                if not client.collection_exists(name):
                    raise

        self._call("create collection", create)
        logger.info("Created vector collection %s (%d dimensions) in %s.", name, dim, self.location)

    def _index(self, name: str) -> None:
        from qdrant_client import models as qm

        def index(client: QdrantClient) -> None:
            for field in KEYWORD_FIELDS:
                schema: Any = qm.PayloadSchemaType.KEYWORD
                if field == "organization_id":
                    # Qdrant lays points out per tenant when told which field is the tenant.
                    schema = qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD, is_tenant=True)
                client.create_payload_index(name, field, field_schema=schema)
            client.create_payload_index(name, TIME_FIELD, field_schema=qm.PayloadSchemaType.FLOAT)

        self._call("create payload index", index)

    # --- points ------------------------------------------------------------------------------------------

    def upsert(self, name: str, points: Sequence[qm.PointStruct], chunk: int = 256) -> None:
        """Write ``points`` (replacing those with the same ids) and wait until they are stored."""
        # Chunk by chunk, so that a search waits for one chunk at most in local mode.
        for start in range(0, len(points), chunk):
            self._call(
                "upsert", functools.partial(_upsert, name=name, points=list(points[start : start + chunk]))
            )

    def delete_before(self, name: str, unix_seconds: float) -> None:
        """Delete the points of ``name`` whose span started before ``unix_seconds`` (retention)."""
        from qdrant_client import models as qm

        selector = qm.FilterSelector(
            filter=qm.Filter(must=[qm.FieldCondition(key=TIME_FIELD, range=qm.Range(lt=unix_seconds))])
        )

        def delete(client: QdrantClient) -> None:
            if client.collection_exists(name):
                client.delete(name, points_selector=selector, wait=True)

        self._call("delete", delete)

    def count(self, name: str, query_filter: qm.Filter | None = None) -> int:
        """Points in ``name`` (matching ``query_filter``); 0 when the collection does not exist."""

        def count(client: QdrantClient) -> int:
            if not client.collection_exists(name):
                return 0
            return int(client.count(name, count_filter=query_filter, exact=True).count)

        return self._call("count", count)

    def query(self, name: str, vector: Vector, query_filter: qm.Filter, limit: int) -> list[qm.ScoredPoint]:
        """The ``limit`` points nearest to ``vector`` among those matching ``query_filter``, nearest first."""

        def query(client: QdrantClient) -> list[qm.ScoredPoint]:
            if not client.collection_exists(name):
                return []
            response = client.query_points(
                name, query=vector, query_filter=query_filter, limit=limit, with_payload=True
            )
            return list(response.points)

        return self._call("search", query)

    def points(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[qm.Record]:
        """The stored points among ``ids``."""
        if not ids:
            return []
        return self._call("retrieve", lambda c: c.retrieve(name, ids=list(ids), with_vectors=with_vectors))

    def cache(self, collection: str) -> StoreVectorCache:
        """The persistent vector cache that goes with span collection ``collection``."""
        return StoreVectorCache(self, collection + CACHE_SUFFIX)

    # --- lifetime ------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release this reference; the last one closes the client."""
        with self._refs_lock:
            self._refs -= 1
            last = self._refs <= 0
        if not last:
            return
        if self.local:
            with _registry_lock:
                if _local_stores.get(self.location) is self:
                    del _local_stores[self.location]
        with self._lock:
            try:
                self._client.close()
            except Exception as exc:  # closing must not fail shutdown
                logger.warning("Closing the vector store %s failed: %s", self.location, exc)


def _upsert(client: QdrantClient, *, name: str, points: list[qm.PointStruct]) -> None:
    client.upsert(name, points=points, wait=True)


class StoreVectorCache:
    """``VectorCache`` over a cache collection: point id = uuid5(model, hash), payload = hash and model."""

    def __init__(self, store: VectorStore, collection: str) -> None:
        self.store = store
        self.collection = collection

    def get_vectors(self, model: str, hashes: Sequence[str]) -> dict[str, Vector]:
        ids = {cache_point_id(model, h): h for h in hashes}
        out: dict[str, Vector] = {}
        for record in self.store.points(self.collection, list(ids), with_vectors=True):
            vector = record.vector
            h = ids.get(str(record.id))
            if h is not None and isinstance(vector, list) and vector and isinstance(vector[0], float):
                out[h] = [float(x) for x in vector]
        return out

    def put_vectors(self, model: str, vectors: Mapping[str, Vector]) -> None:
        from qdrant_client import models as qm

        points = [
            qm.PointStruct(
                id=cache_point_id(model, h), vector=list(v), payload={"content_hash": h, "model": model}
            )
            for h, v in vectors.items()
        ]
        self.store.upsert(self.collection, points)


_registry_lock = threading.Lock()
_local_stores: dict[str, VectorStore] = {}


def resolve_location(url: str, data_dir: Path) -> str:
    """The folder (local mode) or server URL that ``url`` names."""
    if is_server_url(url):
        return url.rstrip("/")
    path = Path(url).expanduser()
    return str((path if path.is_absolute() else data_dir / path).resolve())


def open_vector_store(
    url: str, data_dir: Path, api_key: str | None = None, timeout_seconds: float = 10.0
) -> VectorStore:
    """A store for ``url``; local folders are shared per path within the process (``close`` once each).

    Raises ``ConfigError`` when the folder is held by another process.
    """
    from qdrant_client import QdrantClient

    location = resolve_location(url, data_dir)
    if is_server_url(url):
        try:
            client = QdrantClient(
                url=location, api_key=api_key, timeout=max(1, int(timeout_seconds)), check_compatibility=False
            )
        except Exception as exc:
            raise ConfigError([("url", f"bad Qdrant server URL {url!r}: {exc}")]) from exc
        store = VectorStore(url, location, client, local=False, timeout_seconds=timeout_seconds)
        store._refs = 1
        return store
    with _registry_lock:
        shared = _local_stores.get(location)
        if shared is None:
            Path(location).mkdir(parents=True, exist_ok=True)
            try:
                client = QdrantClient(path=location, force_disable_check_same_thread=True)
            except RuntimeError as exc:  # "already accessed by another instance"
                raise ConfigError([("url", f"cannot open the vector store at {location}: {exc}")]) from exc
            shared = _local_stores[location] = VectorStore(url, location, client, local=True)
        with shared._refs_lock:
            shared._refs += 1
    return shared


@contextlib.contextmanager
def vector_store(url: str, data_dir: Path, api_key: str | None = None) -> Iterator[VectorStore]:
    """``open_vector_store`` as a context manager."""
    store = open_vector_store(url, data_dir, api_key)
    try:
        yield store
    finally:
        store.close()
