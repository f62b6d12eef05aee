"""How the Kafka receiver cuts a partition's messages into WAL records so that every record is stored once,
whoever reads it, whenever it is read again.

A *chunk* is the messages of one partition with offsets in ``[first, end)``; it becomes one WAL record whose
``IngestMeta.source`` is ``kafka:TOPIC/PARTITION/FIRST-END``, from which storage derives its insert
deduplication token. Chunks of a partition follow each other without gaps: a chunk starts where the one
before it ended (or at the committed offset), whatever offsets its messages have.

The group's committed offset of a partition only moves past a chunk once every pipeline has *delivered* it
(not merely written it to the WAL): a storage collector that dies for good leaves nothing behind in its WAL
that the group has given up on. The chunks in between — written to the WAL, maybe stored, not yet known to
be — are named in the commit's metadata, as the ends of the chunks after the committed offset
(``llm-observer:ends=+D1,+D2,...``, each the distance from the previous end). Before a chunk is appended,
the receiver commits again with that chunk's end added; whoever is assigned the partition next (this
process after a restart, another member after a rebalance) re-forms exactly those chunks first, so a replay
carries the same sources and storage drops what the first attempt stored.

The metadata has a size limit (Kafka's ``offset.metadata.max.bytes``, 4096 by default): a partition with
``max_chunks_in_flight`` chunks undelivered takes no more until delivery catches up.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

ENDS_MARK = "llm-observer:ends="
MAX_CHUNKS_IN_FLIGHT = 400  # at most ~10 bytes each: well inside Kafka's default 4096-byte metadata limit


class KafkaMessage(Protocol):
    """What the chunking needs of a consumed message (confluent-kafka's ``Message`` has it)."""

    def offset(self) -> int | None: ...

    def value(self) -> bytes | None: ...


def ends_metadata(committed: int, ends: list[int]) -> str:
    """The commit metadata naming the chunks after ``committed`` by their ends ("" when there are none)."""
    if not ends:
        return ""
    parts, previous = [], committed
    for end in ends:
        parts.append(f"+{end - previous}")
        previous = end
    return ENDS_MARK + ",".join(parts)


def parse_ends(committed: int, metadata: str | None) -> list[int]:
    """The chunk ends a commit's metadata names ([] for no metadata, or someone else's, or a broken one)."""
    if not metadata or not metadata.startswith(ENDS_MARK) or committed < 0:
        return []
    ends, previous = [], committed
    for part in metadata[len(ENDS_MARK) :].split(","):
        if not part.startswith("+") or not part[1:].isdigit() or int(part[1:]) <= 0:
            return []
        previous += int(part[1:])
        ends.append(previous)
    return ends


def source_of(topic: str, partition: int, first: int, end: int) -> str:
    return f"kafka:{topic}/{partition}/{first}-{end}"


@dataclass(slots=True)
class Chunk:
    topic: str
    partition: int
    first: int
    end: int
    values: list[bytes]

    @property
    def source(self) -> str:
        return source_of(self.topic, self.partition, self.first, self.end)


@dataclass(slots=True)
class InFlight:
    """A chunk written to the WAL: delivered by every pipeline once the WAL's delivered position reaches
    ``mark`` (the WAL head just after its append)."""

    first: int
    end: int
    mark: int


@dataclass(slots=True)
class PartitionState:
    """What the receiver knows of one assigned partition."""

    topic: str
    partition: int
    signal: int
    # The group's committed offset: everything before it is delivered. None: nothing committed yet.
    committed: int | None = None
    # Where the next chunk starts (the end of the last one formed). None: at its first message.
    next_first: int | None = None
    # Chunk ends a previous owner named in the commit: re-formed exactly, before anything else.
    planned: deque[int] = field(default_factory=deque)
    held: list[bytes] = field(default_factory=list)
    # Chunks in the WAL, not yet delivered, in order.
    in_flight: deque[InFlight] = field(default_factory=deque)
    # Chunks formed but not yet in the WAL (it pushed back, or too many are in flight): the partition is
    # paused meanwhile.
    waiting: list[Chunk] = field(default_factory=list)
    retry_at: float = 0.0
    # The metadata last committed, to skip commits that would change nothing.
    last_commit: tuple[int, str] | None = None

    @classmethod
    def assigned(
        cls, topic: str, partition: int, signal: int, committed: int, metadata: str | None
    ) -> PartitionState:
        state = cls(topic, partition, signal)
        if committed >= 0:
            state.committed = state.next_first = committed
            state.planned.extend(parse_ends(committed, metadata))
        return state

    @property
    def replaying(self) -> bool:
        return bool(self.planned)

    def ends(self) -> list[int]:
        """The chunk ends the commit must name: those in flight, then those waiting, then those planned."""
        return [c.end for c in self.in_flight] + [c.end for c in self.waiting] + list(self.planned)

    def commit_point(self) -> tuple[int, str] | None:
        """The offset and metadata to commit now, or None (nothing to say, or nothing new)."""
        if self.committed is None:
            return None
        point = (self.committed, ends_metadata(self.committed, self.ends()))
        return None if point == self.last_commit else point

    def delivered(self, position: int) -> bool:
        """Drop the in-flight chunks the WAL has delivered up to ``position``; True if any was."""
        moved = False
        while self.in_flight and self.in_flight[0].mark <= position:
            self.committed = self.in_flight.popleft().end
            moved = True
        return moved

    def full(self) -> bool:
        return len(self.in_flight) + len(self.waiting) >= MAX_CHUNKS_IN_FLIGHT

    def form(self, messages: list[KafkaMessage], max_bytes: int, position: int | None = None) -> list[Chunk]:
        """The chunks these messages (consecutive, in offset order) complete.

        While chunks are planned, messages before the first planned end are held until that chunk is whole:
        its last offset arrived, a later one did, or the consumer's ``position`` passed its end (the last
        offsets were no messages, e.g. transaction markers or expired by retention)."""
        chunks: list[Chunk] = []
        rest = messages
        while self.planned:
            end = self.planned[0]
            self.held.extend(m.value() or b"" for m in rest if _offset(m) < end)
            later = [m for m in rest if _offset(m) >= end]
            last_here = bool(rest) and _offset(rest[-1]) == end - 1
            if not (later or last_here or (position is not None and position >= end)):
                return chunks
            chunks.append(self._chunk(end, self.held, end))
            self.planned.popleft()
            self.held = []
            rest = later
        current: list[KafkaMessage] = []
        size = 0
        for message in rest:
            value = message.value() or b""
            if current and size + len(value) > max_bytes:
                chunks.append(self._messages_chunk(current))
                current, size = [], 0
            current.append(message)
            size += len(value)
        if current:
            chunks.append(self._messages_chunk(current))
        return chunks

    def _messages_chunk(self, messages: list[KafkaMessage]) -> Chunk:
        return self._chunk(
            _offset(messages[-1]) + 1, [m.value() or b"" for m in messages], _offset(messages[0])
        )

    def _chunk(self, end: int, values: list[bytes], first_offset: int) -> Chunk:
        first = self.next_first if self.next_first is not None else first_offset
        if self.committed is None:
            # The group has no offset for this partition yet: the first chunk's start is the first commit.
            self.committed = first
        self.next_first = end
        return Chunk(self.topic, self.partition, first, end, values)


def _offset(message: KafkaMessage) -> int:
    offset = message.offset()
    assert offset is not None  # consumed messages always have one
    return offset
