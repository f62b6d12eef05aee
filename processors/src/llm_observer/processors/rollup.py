"""The ``rollup`` processor: token usage and cost of a span's subtree, for spans whose instrumentation did
not compute them.

The framework instrumentors of ``llm-observer-instrumentation`` end each workflow, agent and step span with
the sums of the model calls beneath it (``llm_observer.subtree.input_tokens`` / ``.output_tokens``). Spans
from other instrumentations (OpenLLMetry, OpenInference, the OpenAI Agents SDK's own exporter, hand-made
agent spans) lack them; this processor writes them, and ``llm_observer.subtree.cost_usd`` (the sum of the
``cost`` processor's ``llm_observer.cost.usd``, so it runs after ``cost``) on every span:

* A span that reports usage itself (``gen_ai.usage.input_tokens`` or ``.output_tokens``) is a model call: it
  gets no subtree attributes, and its usage is what it adds to its ancestors. What lies beneath it is not
  added again: usage on a span already covers the calls under it (a framework's LLM span above the provider
  SDK's, an agent span that reports the totals of its run).
* Every other span whose descendants include a model call gets the sums of their usage. The cost sum is
  written only when at least one of those calls has a cost (a model without a known price adds tokens and
  no cost): it is never a guess.
* An attribute already on the span (set by the instrumentation) is never overwritten; each of the three is
  written only when missing.

Children usually end, and are exported, before their parent, often in an earlier batch. Each child adds
its usage (its own, or that of its descendants) to a pending entry of its parent, kept per trace; a span's
roll-up is its pending entry when it arrives. Spans of one batch are summed whatever their order in it.

Limits, by design:

* **Late children.** A child that reaches the collector after its parent was passed on (a child that ends
  after its parent, an exporter that sends it in a later batch than the parent's) cannot change what was
  exported. It still adds to the ancestors not yet passed on, and is counted as ``late_child``. The query
  service computes the same attributes over the whole stored trace, so trace detail is exact either way.
* **Bounded memory.** Pending entries are kept per (organization, trace) in an LRU table bounded by
  ``max_traces`` and ``max_spans``, and forgotten ``max_age_seconds`` after the trace was last seen; traces
  whose root was passed on go first. A parent that arrives after its trace was forgotten gets only what
  came after. Each span the table remembers costs about 350 bytes (``bench/bench_rollup.py``).
* **One process per trace.** Sums are complete only when every span of a trace goes through the same
  collector, and sums written are never replaced, so a collector that sees part of a trace writes part
  sums for good. Behind a load balancer that spreads one trace over several collectors (a trace that
  crosses services), run ``rollup`` not there but in the tier that receives spans by trace id: the
  storage collectors reading the Kafka topic the edge collectors write (its message key is the trace id,
  so one partition, and one member of the group, holds a whole trace; ``cost`` has run at the edge).
* **Replays.** An exporter that fell behind re-processes its WAL range: contributions are kept per child, so
  the same child read twice is counted once, and the range gets the same sums while its traces are
  remembered (larger ones if a late child came in between). After a restart the table starts empty.

Traces are kept apart per organization: ids are no secret, so another tenant's spans naming this trace's
ids never add to its sums. Counted (``llm_observer_component_events_total``): ``rolled_up`` (spans given
attributes), ``late_child``, ``evicted_trace`` (over a bound) and ``expired_trace``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pydantic import Field

from llm_observer.kernel.batch import Attributes, SpanBatch
from llm_observer.kernel.component import ComponentConfig, CreateContext, Factory
from llm_observer.kernel.telemetry import ComponentMetrics
from llm_observer.processors.logjoin import span_organizations
from llm_observer.semconv import attributes as attr
from llm_observer.semconv.attributes import COST_USD, GEN_AI_USAGE_INPUT_TOKENS, GEN_AI_USAGE_OUTPUT_TOKENS

__all__ = [
    "SUBTREE_COST_USD",
    "SUBTREE_INPUT_TOKENS",
    "SUBTREE_OUTPUT_TOKENS",
    "RollUp",
    "RollUpConfig",
    "factory",
]

SUBTREE_INPUT_TOKENS = attr.SUBTREE_INPUT_TOKENS
SUBTREE_OUTPUT_TOKENS = attr.SUBTREE_OUTPUT_TOKENS
SUBTREE_COST_USD = attr.SUBTREE_COST_USD

# Costs are summed in whole pico-dollars: integer sums do not depend on the order children arrive in, and
# replacing a child's contribution subtracts exactly what was added.
_PICO = 10**12
_MAX_USD = 1e15  # a finite bound that also refuses infinity and NaN
_MAX_DEPTH = 1000  # ancestors a change is carried up to

# What a span adds to its parent: (input tokens, output tokens, cost in pico-USD, whether any cost is known).
Usage = tuple[int, int, int, bool]


class RollUpConfig(ComponentConfig):
    """Config of the ``rollup`` processor: how much it remembers while parents are awaited."""

    max_traces: int = Field(10_000, gt=0, description="traces whose pending sums are kept")
    max_spans: int = Field(
        200_000, gt=0, description="spans remembered over every trace (about 350 bytes each)"
    )
    max_age_seconds: float = Field(
        600.0, gt=0, description="a trace is forgotten this long after its last span arrived"
    )


class _Node:
    """The sums a span has received from its children so far, and each child's part of them."""

    __slots__ = ("children", "costed", "input", "output", "pico")

    def __init__(self) -> None:
        self.children: dict[bytes, Usage] = {}
        self.input = 0
        self.output = 0
        self.pico = 0
        self.costed = 0  # how many children's parts include a cost

    def usage(self) -> Usage:
        return (self.input, self.output, self.pico, self.costed > 0)

    def put(self, child: bytes, usage: Usage) -> bool:
        """Set ``child``'s part; False when it was already exactly that (a replay)."""
        old = self.children.get(child)
        if old == usage:
            return False
        self.children[child] = usage
        if old is not None:
            self.input -= old[0]
            self.output -= old[1]
            self.pico -= old[2]
            self.costed -= old[3]
        self.input += usage[0]
        self.output += usage[1]
        self.pico += usage[2]
        self.costed += usage[3]
        return True


class _Trace:
    """What is remembered of one trace."""

    __slots__ = ("nodes", "parents", "size", "touched")

    def __init__(self, now: float) -> None:
        # Spans passed on that report no usage themselves -> their parent (b"" for a root): where a child
        # arriving after them sends its usage on.
        self.parents: dict[bytes, bytes] = {}
        self.nodes: dict[bytes, _Node] = {}
        self.size = 0
        self.touched = now


class RollUp:
    """The processor (see the module docstring). ``clock`` gives seconds, for ``max_age_seconds``."""

    def __init__(
        self,
        config: RollUpConfig,
        metrics: ComponentMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.clock = clock
        # (organization, trace id) -> trace; oldest first. ``_done`` holds traces whose root was passed on:
        # they are complete but for late children and replays, so they are the first to go.
        self._live: OrderedDict[tuple[str, bytes], _Trace] = OrderedDict()
        self._done: OrderedDict[tuple[str, bytes], _Trace] = OrderedDict()
        self._spans = 0
        # A pipeline runs its processors on one thread, but one instance may serve several pipelines.
        self._lock = threading.Lock()

    @property
    def traces(self) -> int:
        """Traces remembered."""
        return len(self._live) + len(self._done)

    @property
    def spans(self) -> int:
        """Spans remembered over every trace."""
        return self._spans

    def __call__(self, batch: SpanBatch) -> SpanBatch:
        if not len(batch):
            return batch
        with self._lock:
            counts = self._process(batch)
        if self.metrics is not None:
            for event, count in counts.items():
                if count:
                    self.metrics.event(event, count)
        return batch

    def _process(self, batch: SpanBatch) -> dict[str, int]:
        now = self.clock()
        live, done = self._live, self._done
        trace_ids, span_ids, parent_ids = batch.trace_id, batch.span_id, batch.parent_span_id
        attributes = batch.attributes
        arrived = set(span_ids)
        late = 0
        # Spans without usage of their own (row, trace), whose roll-up is written once the batch is summed.
        pending_rows: list[int] = []
        pending_traces: list[_Trace] = []
        last_org: str | None = None
        last_tid = b""
        trace = _Trace(now)
        key: tuple[str, bytes] = ("", b"")
        for row, org in enumerate(span_organizations(batch)):
            tid = trace_ids[row]
            if tid != last_tid or org != last_org:
                last_tid, last_org = tid, org
                key = (org, tid)
                found = live.get(key)
                if found is not None:
                    live.move_to_end(key)
                else:
                    found = done.get(key)
                    if found is not None:
                        done.move_to_end(key)
                    else:
                        found = live[key] = _Trace(now)
                trace = found
                trace.touched = now
            sid = span_ids[row]
            parent = parent_ids[row]
            attrs = attributes[row]
            inp = attrs.get(GEN_AI_USAGE_INPUT_TOKENS)
            out = attrs.get(GEN_AI_USAGE_OUTPUT_TOKENS)
            if inp is None and out is None:
                parents = trace.parents
                if sid not in parents:
                    trace.size += 1
                    self._spans += 1
                parents[sid] = parent
                pending_rows.append(row)
                pending_traces.append(trace)
                node = trace.nodes.get(sid)
                if node is not None and node.children:
                    late += self._give(trace, parent, sid, node.usage(), arrived)
            elif parent:
                late += self._give(trace, parent, sid, _usage(inp, out, attrs.get(COST_USD)), arrived)
            if not parent and key in live:
                done[key] = live.pop(key)
        rolled = 0
        for row, trace in zip(pending_rows, pending_traces, strict=True):
            node = trace.nodes.get(span_ids[row])
            if node is not None and node.children and _write(attributes[row], node):
                rolled += 1
        evicted, expired = self._bound(now)
        return {"rolled_up": rolled, "late_child": late, "evicted_trace": evicted, "expired_trace": expired}

    def _give(self, trace: _Trace, parent: bytes, child: bytes, usage: Usage, arrived: set[bytes]) -> int:
        """Record ``usage`` as ``child``'s part of ``parent``'s sums, and carry the change up through the
        ancestors already passed on. Returns 1 when ``parent`` was passed on in an earlier batch (``child``
        is late), else 0."""
        late = 0
        first = True
        nodes, parents = trace.nodes, trace.parents
        # Malformed data may make a span its own ancestor: a bound on the climb ends such a loop.
        for _ in range(_MAX_DEPTH):
            if not parent:
                break
            node = nodes.get(parent)
            if node is None:
                node = nodes[parent] = _Node()
                trace.size += 1
                self._spans += 1
            children = node.children
            old = children.get(child)
            if old is None:  # the usual case, inline: a child heard of for the first time
                children[child] = usage
                node.input += usage[0]
                node.output += usage[1]
                node.pico += usage[2]
                node.costed += usage[3]
            elif old == usage or not node.put(child, usage):
                break  # a replay: nothing changes above
            grand = parents.get(parent)
            if grand is None:
                break  # the parent has not arrived yet (it takes the sums then) or is a model call
            if first and parent not in arrived:
                late = 1
            first = False
            child, usage, parent = parent, node.usage(), grand
        return late

    def _bound(self, now: float) -> tuple[int, int]:
        """Forget traces over the bounds (traces already complete first) and those not seen for too long."""
        config = self.config
        evicted = expired = 0
        live, done = self._live, self._done
        while self._spans > config.max_spans or len(live) + len(done) > config.max_traces:
            _, trace = (done if done else live).popitem(last=False)
            self._spans -= trace.size
            evicted += 1
        oldest = now - config.max_age_seconds
        for table in (done, live):
            while table:
                trace = next(iter(table.values()))
                if trace.touched >= oldest:
                    break
                table.popitem(last=False)
                self._spans -= trace.size
                expired += 1
        return evicted, expired

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        with self._lock:
            self._live.clear()
            self._done.clear()
            self._spans = 0


def _usage(inp: Any, out: Any, cost: Any) -> Usage:
    """What a span that reports usage (``inp`` or ``out`` not None) adds to its ancestors."""
    # Counts are ints and costs floats after ``normalize`` and ``cost``; anything else goes the slow way.
    if type(inp) is not int or inp < 0:
        inp = _count(inp)
    if type(out) is not int or out < 0:
        out = _count(out)
    if cost is None:
        return (inp, out, 0, False)
    if type(cost) is float and 0.0 <= cost < _MAX_USD:
        return (inp, out, round(cost * _PICO), True)
    pico = _pico(cost)
    return (inp, out, pico, True) if pico is not None else (inp, out, 0, False)


def _count(value: Any) -> int:
    """A token count as a non-negative int (0 when absent or not a number)."""
    if value is None or isinstance(value, bool):
        return 0
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return int(number) if number > 0 and number != float("inf") else 0


def _pico(value: Any) -> int | None:
    """A USD amount in whole pico-dollars, or None when it is not a non-negative finite number."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if not 0.0 <= number < _MAX_USD:  # also refuses NaN
        return None
    return round(number * _PICO)


def _write(attrs: Attributes, node: _Node) -> bool:
    """Write the sums the span lacks; True when it lacked any."""
    wrote = False
    if SUBTREE_INPUT_TOKENS not in attrs:
        attrs[SUBTREE_INPUT_TOKENS] = node.input
        wrote = True
    if SUBTREE_OUTPUT_TOKENS not in attrs:
        attrs[SUBTREE_OUTPUT_TOKENS] = node.output
        wrote = True
    if node.costed and SUBTREE_COST_USD not in attrs:
        attrs[SUBTREE_COST_USD] = node.pico / _PICO
        wrote = True
    return wrote


def _create(ctx: CreateContext, config: RollUpConfig) -> RollUp:
    return RollUp(config, ctx.telemetry.component(ctx.component_id))


factory = Factory("rollup", RollUpConfig, _create)
