"""The rollup processor: subtree sums of tokens and cost for spans that lack them, whatever batches the tree
arrives in; bounded memory; never overwriting what the instrumentation set.

Expected values are computed by hand from the tree below (not by the code under test)::

    W  workflow                      -> 600 in, 60 out, 0.003 USD
    ├── A1 agent                     -> 300 in, 30 out, 0.003 USD
    │   ├── L1 chat (100, 10, 0.001)
    │   └── T1 tool                  -> 200 in, 20 out, 0.002 USD
    │       └── L2 chat (200, 20, 0.002)
    ├── A2 agent                     -> 300 in, 30 out, no cost (the call has no known price)
    │   └── L3 chat (300, 30, no cost)
    └── R retrieval                  -> nothing (no model call beneath)
        └── H http
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from llm_observer.kernel.batch import SpanBatch
from llm_observer.kernel.component import CreateContext
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.processors.cost import CostConfig
from llm_observer.processors.cost import create as create_cost
from llm_observer.processors.rollup import (
    SUBTREE_COST_USD,
    SUBTREE_INPUT_TOKENS,
    SUBTREE_OUTPUT_TOKENS,
    RollUp,
    RollUpConfig,
)
from llm_observer.processors.rollup import factory as rollup_factory
from tests.support import add_span

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
ORG = "llm_observer.organization.id"

# name -> (parent, own usage (input, output, cost or None) or None)
TREE: dict[str, tuple[str, tuple[int, int, float | None] | None]] = {
    "W": ("", None),
    "A1": ("W", None),
    "L1": ("A1", (100, 10, 0.001)),
    "T1": ("A1", None),
    "L2": ("T1", (200, 20, 0.002)),
    "A2": ("W", None),
    "L3": ("A2", (300, 30, None)),
    "R": ("W", None),
    "H": ("R", None),
}
EXPECTED: dict[str, dict[str, Any]] = {
    "W": {SUBTREE_INPUT_TOKENS: 600, SUBTREE_OUTPUT_TOKENS: 60, SUBTREE_COST_USD: 0.003},
    "A1": {SUBTREE_INPUT_TOKENS: 300, SUBTREE_OUTPUT_TOKENS: 30, SUBTREE_COST_USD: 0.003},
    "T1": {SUBTREE_INPUT_TOKENS: 200, SUBTREE_OUTPUT_TOKENS: 20, SUBTREE_COST_USD: 0.002},
    "A2": {SUBTREE_INPUT_TOKENS: 300, SUBTREE_OUTPUT_TOKENS: 30},
    "R": {},
    "H": {},
    "L1": {},
    "L2": {},
    "L3": {},
}
SUBTREE_KEYS = (SUBTREE_INPUT_TOKENS, SUBTREE_OUTPUT_TOKENS, SUBTREE_COST_USD)


def _sid(name: str, trace: bytes = TRACE) -> bytes:
    return (trace[:4] + name.encode()).ljust(8, b".")


def _attributes(name: str, tree: dict[str, Any] = TREE) -> dict[str, Any]:
    usage = tree[name][1]
    if usage is None:
        return {"gen_ai.operation.name": "invoke_agent"} if name.startswith("A") else {}
    inp, out, cost = usage
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": inp,
        "gen_ai.usage.output_tokens": out,
    }
    if cost is not None:
        attrs["llm_observer.cost.usd"] = cost
    return attrs


def _batch(
    names: list[str],
    org: str = "acme",
    trace: bytes = TRACE,
    tree: dict[str, Any] = TREE,
    attributes: dict[str, dict[str, Any]] | None = None,
) -> SpanBatch:
    batch = SpanBatch()
    resource = {"service.name": "agent-app", ORG: org}
    for name in names:
        parent = tree[name][0]
        attrs = dict((attributes or {}).get(name) or _attributes(name, tree))
        add_span(
            batch,
            attrs,
            resource=resource,
            trace_id=trace,
            span_id=_sid(name, trace),
            parent_span_id=_sid(parent, trace) if parent else b"",
            name=name,
        )
    return batch


def _subtree(batch: SpanBatch) -> dict[str, dict[str, Any]]:
    return {
        batch.name[row]: {k: v for k, v in attrs.items() if k in SUBTREE_KEYS}
        for row, attrs in enumerate(batch.attributes)
    }


def _run(rollup: RollUp, batches: list[list[str]]) -> dict[str, dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for names in batches:
        seen.update(_subtree(rollup(_batch(names))))
    return seen


def _events(telemetry: Telemetry, event: str) -> float:
    value = telemetry.registry.get_sample_value(
        "llm_observer_component_events_total", {"component": "rollup", "event": event}
    )
    return value or 0.0


def _rollup(telemetry: Telemetry | None = None, clock: Any = None, **config: Any) -> RollUp:
    ctx = CreateContext("rollup", None, telemetry or Telemetry(), None)  # type: ignore[arg-type]
    made = rollup_factory.create(ctx, RollUpConfig(**config))
    if clock is not None:
        made.clock = clock
    return made


@pytest.mark.parametrize(
    "batches",
    [
        pytest.param([["L1", "L2", "T1", "A1", "L3", "A2", "H", "R", "W"]], id="one-batch-children-first"),
        pytest.param([["W", "R", "H", "A2", "L3", "A1", "T1", "L2", "L1"]], id="one-batch-parents-first"),
        pytest.param([[n] for n in ["L2", "T1", "L1", "A1", "H", "R", "L3", "A2", "W"]], id="a-batch-a-span"),
        pytest.param([["L2", "T1", "L1"], ["A1", "L3"], ["A2", "H", "R", "W"]], id="three-batches"),
        pytest.param([["L1", "L2", "L3", "H"], ["W", "T1", "A1", "A2", "R"]], id="calls-then-steps"),
    ],
)
def test_rollup_sums_the_subtree_whatever_the_batches(batches: list[list[str]]) -> None:
    telemetry = Telemetry()
    assert _run(_rollup(telemetry), batches) == EXPECTED
    assert _events(telemetry, "rolled_up") == 4  # W, A1, T1, A2
    assert _events(telemetry, "late_child") == 0


def _children_first_orders(rng: random.Random) -> list[str]:
    """A random order in which every span comes after all of its descendants."""
    order: list[str] = []
    remaining = set(TREE)
    while remaining:
        ready = sorted(n for n in remaining if not any(TREE[c][0] == n for c in remaining))
        pick = rng.choice(ready)
        order.append(pick)
        remaining.remove(pick)
    return order


def test_rollup_sums_are_exact_for_random_splits() -> None:
    rng = random.Random(13)
    for _ in range(200):
        order = _children_first_orders(rng)
        cuts = sorted(rng.sample(range(1, len(order)), rng.randint(0, 4)))
        batches = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True)]
        for names in batches:
            rng.shuffle(names)  # within a batch, any order
        assert _run(_rollup(), batches) == EXPECTED, batches


def test_rollup_late_child_is_counted_and_reaches_ancestors_not_yet_passed() -> None:
    telemetry = Telemetry()
    rollup = _rollup(telemetry)
    tree = {**TREE, "L4": ("T1", (50, 5, 0.0005))}
    first = _subtree(rollup(_batch(["L1", "L2", "T1", "A1"], tree=tree)))
    assert first["T1"] == EXPECTED["T1"] and first["A1"] == EXPECTED["A1"]
    late = _subtree(rollup(_batch(["L4"], tree=tree)))
    assert late == {"L4": {}}
    assert _events(telemetry, "late_child") == 1
    last = _subtree(rollup(_batch(["L3", "A2", "H", "R", "W"], tree=tree)))
    # W was not passed on yet: it sums L4 too (through T1 and A1, which were).
    assert last["W"] == {SUBTREE_INPUT_TOKENS: 650, SUBTREE_OUTPUT_TOKENS: 65, SUBTREE_COST_USD: 0.0035}
    assert _events(telemetry, "late_child") == 1


def test_rollup_replayed_ranges_count_each_child_once() -> None:
    telemetry = Telemetry()
    rollup = _rollup(telemetry)
    early = _subtree(rollup(_batch(["L2", "T1"])))
    first = _subtree(rollup(_batch(["L1", "A1"])))
    # An exporter that fell behind decodes the same ranges again (T1's after A1 was passed on: not late).
    assert _subtree(rollup(_batch(["L2", "T1"]))) == early
    assert _subtree(rollup(_batch(["L1", "A1"]))) == first == {"L1": {}, "A1": EXPECTED["A1"]}
    rollup(_batch(["L3", "A2"]))
    assert _subtree(rollup(_batch(["L2", "T1"]))) == early
    rollup(_batch(["L3", "A2"]))
    assert _subtree(rollup(_batch(["H", "R", "W"])))["W"] == EXPECTED["W"]
    assert _subtree(rollup(_batch(["H", "R", "W"])))["W"] == EXPECTED["W"]
    assert _events(telemetry, "late_child") == 0


def test_rollup_never_overwrites_and_skips_model_calls() -> None:
    given: dict[str, dict[str, Any]] = {
        "A1": {"gen_ai.operation.name": "invoke_agent", SUBTREE_INPUT_TOKENS: 999, SUBTREE_OUTPUT_TOKENS: 99},
        "T1": {SUBTREE_COST_USD: 1.5},
        # An agent span that reports the totals of its run itself: a model call as far as sums go.
        "A2": {"gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 3},
    }
    names = ["L1", "L2", "T1", "A1", "L3", "A2", "H", "R", "W"]
    got = _subtree(_rollup()(_batch(names, attributes=given)))
    assert got["A1"] == {SUBTREE_INPUT_TOKENS: 999, SUBTREE_OUTPUT_TOKENS: 99, SUBTREE_COST_USD: 0.003}
    assert got["T1"] == {SUBTREE_INPUT_TOKENS: 200, SUBTREE_OUTPUT_TOKENS: 20, SUBTREE_COST_USD: 1.5}
    assert got["A2"] == {}  # it reports usage: no sums on it, its own usage goes up (not L3's)
    # W sums what lies beneath, not the attributes the instrumentation put on A1: 100 + 200 + 7.
    assert got["W"] == {SUBTREE_INPUT_TOKENS: 307, SUBTREE_OUTPUT_TOKENS: 33, SUBTREE_COST_USD: 0.003}
    assert got["L1"] == got["L2"] == got["L3"] == {}


def test_rollup_cost_sums_follow_the_cost_processor() -> None:
    """cost then rollup, as the default pipeline runs them: gpt-4o, 1000 input (200 cache read) + 500 output
    = 0.00725 USD; gpt-4o-mini 1000 input + 1000 output at 0.15 / 0.60 per million = 0.00075 USD."""
    telemetry = Telemetry()
    ctx = CreateContext("cost", None, telemetry, None)  # type: ignore[arg-type]
    cost = create_cost(ctx, CostConfig())
    calls = {
        "L1": {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.cache_read.input_tokens": 200,
            "gen_ai.usage.output_tokens": 500,
        },
        "L2": {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 1000,
        },
        "L3": {
            "gen_ai.provider.name": "acme-local",
            "gen_ai.request.model": "my-own-model",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 10,
        },
    }
    rollup = _rollup(telemetry)
    first = _subtree(rollup(cost(_batch(["L2", "T1", "L1"], attributes=calls))))
    rest = _subtree(rollup(cost(_batch(["A1", "L3", "A2", "H", "R", "W"], attributes=calls))))
    assert first["T1"] == {SUBTREE_INPUT_TOKENS: 1000, SUBTREE_OUTPUT_TOKENS: 1000, SUBTREE_COST_USD: 0.00075}
    assert rest["A1"] == {SUBTREE_INPUT_TOKENS: 2000, SUBTREE_OUTPUT_TOKENS: 1500, SUBTREE_COST_USD: 0.008}
    assert rest["A2"] == {SUBTREE_INPUT_TOKENS: 10, SUBTREE_OUTPUT_TOKENS: 10}  # no price known: no cost
    assert rest["W"] == {SUBTREE_INPUT_TOKENS: 2010, SUBTREE_OUTPUT_TOKENS: 1510, SUBTREE_COST_USD: 0.008}


def test_rollup_keeps_organizations_apart() -> None:
    rollup = _rollup()
    rollup(_batch(["L1", "L2", "T1"]))
    # Another tenant names the same trace and parent ids: its usage must not reach acme's spans.
    rollup(_batch(["L1"], org="intruder"))
    got = _subtree(rollup(_batch(["A1", "L3", "A2", "H", "R", "W"])))
    assert got["A1"] == EXPECTED["A1"] and got["W"] == EXPECTED["W"]


def test_rollup_memory_is_bounded_by_traces_and_spans() -> None:
    telemetry = Telemetry()
    rollup = _rollup(telemetry, max_traces=50, max_spans=400)
    for t in range(2000):
        trace = t.to_bytes(16, "big")
        # The calls and steps of one trace arrive; its root never does (a trace cut short).
        rollup(_batch(["L1", "L2", "T1", "A1"], trace=trace))
        assert rollup.traces <= 50 and rollup.spans <= 400
    assert _events(telemetry, "evicted_trace") >= 2000 - 50
    # The trace evicted first gets nothing when its root arrives at last; the newest still gets its sums.
    oldest = _subtree(rollup(_batch(["W"], trace=(0).to_bytes(16, "big"))))
    newest = _subtree(rollup(_batch(["W"], trace=(1999).to_bytes(16, "big"))))
    assert oldest["W"] == {}
    assert newest["W"] == {SUBTREE_INPUT_TOKENS: 300, SUBTREE_OUTPUT_TOKENS: 30, SUBTREE_COST_USD: 0.003}


def test_rollup_complete_traces_are_evicted_first() -> None:
    rollup = _rollup(max_traces=2)
    done, waiting, newer = (bytes([i]) * 16 for i in (1, 2, 3))
    rollup(_batch(["L1", "L2", "T1", "A1"], trace=waiting))  # waits for W
    rollup(_batch(["L1", "L2", "T1", "A1", "L3", "A2", "H", "R", "W"], trace=done))  # complete
    rollup(_batch(["L3"], trace=newer))  # over the bound: the complete trace goes, not the waiting one
    assert _subtree(rollup(_batch(["W"], trace=waiting)))["W"][SUBTREE_INPUT_TOKENS] == 300


def test_rollup_forgets_traces_after_max_age() -> None:
    now = [1000.0]
    telemetry = Telemetry()
    rollup = _rollup(telemetry, clock=lambda: now[0], max_age_seconds=60)
    stale, fresh = b"s" * 16, b"f" * 16
    rollup(_batch(["L1", "L2", "T1", "A1"], trace=stale))
    now[0] += 45
    rollup(_batch(["L1", "L2", "T1", "A1"], trace=fresh))
    now[0] += 30  # stale last seen 75 s ago, fresh 30 s ago
    rollup(_batch(["H"], trace=b"x" * 16))
    assert _events(telemetry, "expired_trace") == 1
    assert _subtree(rollup(_batch(["W"], trace=stale)))["W"] == {}
    assert _subtree(rollup(_batch(["W"], trace=fresh)))["W"][SUBTREE_INPUT_TOKENS] == 300


def test_rollup_parent_loops_end() -> None:
    """Malformed ids: X and Y each the other's parent, Z its own, with model calls beneath and arriving
    after them. Processing ends, and the well-formed tree of the same trace keeps its exact sums."""
    tree = {
        **TREE,
        "X": ("Y", None),
        "Y": ("X", None),
        "Z": ("Z", None),
        "L7": ("X", (1, 1, None)),
        "L8": ("Z", (1, 1, None)),
    }
    rollup = _rollup()
    rollup(_batch(["X", "Y", "Z"], tree=tree))
    rollup(_batch(["L7", "L8"], tree=tree))
    got = _run(rollup, [["L1", "L2", "T1", "A1", "L3", "A2", "H", "R", "W"]])
    assert got == EXPECTED


async def test_rollup_shutdown_forgets_everything_and_is_idempotent() -> None:
    rollup = _rollup()
    await rollup.shutdown()  # safe before start
    await rollup.start()
    rollup(_batch(["L1", "L2", "T1"]))
    assert rollup.traces == 1 and rollup.spans > 0
    await rollup.shutdown()
    await rollup.shutdown()
    assert rollup.traces == 0 and rollup.spans == 0
    assert _subtree(rollup(_batch(["A1"])))["A1"] == {}
