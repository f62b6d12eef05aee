"""Prompt versions: calls written to chDB through the real exporter, read back by ``PromptStore``, grouped by
name/version attributes or template fingerprint, with figures checked against ones worked out by hand."""

from __future__ import annotations

import math
import random
import time

import pytest

from llm_observer.query.insights.fingerprint import fingerprint, mask, prompt_template
from llm_observer.query.insights.versions import (
    compare_versions,
    fisher_exact,
    mann_whitney_u,
    prompt_versions,
)
from llm_observer.storage.clickhouse.queries import SpanFilter, Tenant
from tests.query.insights.prompt_support import MINUTE, PromptCall, PromptPlant, messages, prompt_plant

__all__ = ["prompt_plant"]

# Two days ago on the hour: inside retention, and no real span lands after it.
T0 = (time.time_ns() - 2 * 86_400 * 10**9) // (3600 * 10**9) * (3600 * 10**9)
START, END = T0 - MINUTE, T0 + 60 * MINUTE
ORG_A = Tenant(organization_id="org-a", project_ids=None)

TICKETS = [
    ("alice@example.com", "ORD-1234", "My screen is broken", 2),
    ("bob@example.org", "ORD-98765", "Wrong colour delivered", 11),
    ("carol@example.net", "ORD-5555", "Never arrived", 3),
]


def ticket_prompt(email: str, order: str, complaint: str, items: int) -> str:
    return f"Classify the ticket from {email} about order {order} ({items} items): '{complaint}'"


def planted_calls() -> list[PromptCall]:
    calls = [
        # summarize@1: 4 calls, one failed.
        *(
            PromptCall(
                T0 + i * MINUTE,
                user=f"Summarize text number {i}",
                prompt_name="summarize",
                prompt_version="1",
                duration_ms=d,
                error=d == 400,
                cost_usd=0.01,
                input_tokens=100,
                output_tokens=10,
            )
            for i, d in enumerate([100.0, 200.0, 300.0, 400.0])
        ),
        # summarize@2: 5 calls, none failed, one slow.
        *(
            PromptCall(
                T0 + (10 + i) * MINUTE,
                prompt_name="summarize",
                prompt_version="2",
                duration_ms=d,
                cost_usd=0.02,
                input_tokens=120,
                output_tokens=12,
                model="gpt-4o-mini" if i == 0 else "gpt-4o",
            )
            for i, d in enumerate([50.0, 60.0, 70.0, 80.0, 1000.0])
        ),
        # One template rendered three times (email, order id, counts and the quoted complaint vary).
        *(
            PromptCall(
                T0 + (20 + i) * MINUTE,
                user=ticket_prompt(*ticket),
                system="You are a support triage assistant.",
                duration_ms=10.0 * (i + 1),
                error=i == 1,
                cost_usd=0.003,
                input_tokens=50,
                output_tokens=5,
            )
            for i, ticket in enumerate(TICKETS)
        ),
        # A template whose variable part is a long tail after a label line.
        *(
            PromptCall(
                T0 + (30 + i) * MINUTE,
                user="Summarize the following document:\n" + text * 6,
                duration_ms=500.0,
                cost_usd=0.05,
            )
            for i, text in enumerate(
                ["The quarterly revenue grew in every region. ", "Our new office opens soon. "]
            )
        ),
        # No prompt name and no content: no version.
        PromptCall(T0 + 40 * MINUTE),
        # Another organization's call of the same name, and a call outside the window: never counted.
        PromptCall(T0 + 5 * MINUTE, org="org-b", prompt_name="summarize", prompt_version="1"),
        PromptCall(T0 - 2 * MINUTE, prompt_name="summarize", prompt_version="1"),
    ]
    return calls


def test_fingerprint_masks_variable_parts() -> None:
    templates = {
        prompt_template(messages(ticket_prompt(*t), "You are a support triage assistant.")) for t in TICKETS
    }
    assert templates == {
        "You are a support triage assistant.\n"
        "Classify the ticket from <EMAIL> about order <ID> (<NUM> items): <STR>"
    }
    assert mask(
        "Visit https://example.com/a?b=1 on 2026-01-02 at 10:30, id 3f2a9c1e-1111-2222-3333-444455556666"
    ) == ("Visit <URL> on <NUM>-<NUM>-<NUM> at <NUM>:<NUM>, id <ID>")
    # Apostrophes are not quotes; short text after a label is kept, a long one is a tail.
    assert mask("It's Bob's turn") == "It's Bob's turn"
    assert mask("Translate this:\nhello") == "Translate this: hello"
    assert mask("Translate this:\n" + "word " * 40) == "Translate this: <TAIL>"
    # Only the system part and the first user message make the template.
    conversation = (
        '[{"role":"user","content":"Order 7 is late"},{"role":"assistant","content":"Sorry"},'
        '{"role":"user","content":"Any news?"}]'
    )
    assert prompt_template(conversation) == "Order <NUM> is late"
    assert fingerprint("a") != fingerprint("b") and len(fingerprint("a")) == 16


async def test_prompt_versions_figures_match_hand_computed(prompt_plant: PromptPlant) -> None:
    ids = await prompt_plant.write(planted_calls())
    calls = prompt_plant.store.calls(ORG_A, START, END, with_text=True)
    # 4 + 5 + 3 + 2 named or templated calls, and the one without a prompt.
    assert len(calls) == 15 and not calls.truncated
    report = prompt_versions(calls, START, END)
    assert report.total_calls == 15
    assert report.unidentified_calls == 1
    assert report.identified_calls == 14
    by_id = {v.id: v for v in report.versions}
    ticket_print = fingerprint(
        "You are a support triage assistant.\nClassify the ticket from <EMAIL> about order <ID> (<NUM> items): <STR>"
    )
    tail_print = fingerprint("Summarize the following document: <TAIL>")
    assert set(by_id) == {"summarize@1", "summarize@2", f"fp:{ticket_print}", f"fp:{tail_print}"}
    # Most calls first.
    assert [v.id for v in report.versions] == [
        "summarize@2",
        "summarize@1",
        f"fp:{ticket_print}",
        f"fp:{tail_print}",
    ]

    v1 = by_id["summarize@1"]
    assert (v1.source, v1.name, v1.version) == ("attribute", "summarize", "1")
    assert v1.calls == 4 and v1.errors == 1 and v1.error_rate == 0.25
    assert v1.first_seen_ns == T0 and v1.last_seen_ns == T0 + 3 * MINUTE
    assert (v1.input_tokens, v1.output_tokens) == (400, 40)
    assert v1.cost_usd == pytest.approx(0.04)
    # Durations 100, 200, 300, 400 ms: p50 between 200 and 300; p95 at rank 2.85 -> 300 + 0.85 * 100.
    assert v1.latency_p50_ms == pytest.approx(250.0)
    assert v1.latency_p95_ms == pytest.approx(385.0)
    assert (v1.example_trace_id, v1.example_span_id) == ids[3]

    v2 = by_id["summarize@2"]
    assert v2.calls == 5 and v2.errors == 0
    # Durations 50, 60, 70, 80, 1000 ms: p95 at rank 3.8 -> 80 + 0.8 * 920.
    assert v2.latency_p50_ms == pytest.approx(70.0)
    assert v2.latency_p95_ms == pytest.approx(816.0)
    assert v2.cost_usd == pytest.approx(0.10)
    assert v2.models == ("gpt-4o", "gpt-4o-mini")

    tickets = by_id[f"fp:{ticket_print}"]
    assert tickets.source == "fingerprint" and tickets.name == "" and tickets.fingerprint == ticket_print
    assert tickets.template.endswith("(<NUM> items): <STR>")
    assert tickets.calls == 3 and tickets.errors == 1
    assert tickets.latency_p50_ms == pytest.approx(20.0)
    assert tickets.latency_p95_ms == pytest.approx(29.0)
    assert tickets.cost_usd == pytest.approx(0.009)
    assert tickets.first_seen_ns == T0 + 20 * MINUTE and tickets.last_seen_ns == T0 + 22 * MINUTE

    assert by_id[f"fp:{tail_print}"].calls == 2

    # min_calls and limit; a span filter narrows the calls read.
    assert [v.id for v in prompt_versions(calls, START, END, min_calls=4).versions] == [
        "summarize@2",
        "summarize@1",
    ]
    assert len(prompt_versions(calls, START, END, limit=1).versions) == 1
    mini = prompt_plant.store.calls(ORG_A, START, END, SpanFilter(model="gpt-4o-mini"), with_text=True)
    assert [v.id for v in prompt_versions(mini, START, END).versions] == ["summarize@2"]
    # The read stops at ``limit`` calls, oldest first, and says so.
    cut = prompt_plant.store.calls(ORG_A, START, END, with_text=True, limit=4)
    assert len(cut) == 4 and cut.truncated and cut.start_ns[-1] == T0 + 3 * MINUTE


async def test_prompt_versions_comparison_deltas_and_tests(prompt_plant: PromptPlant) -> None:
    await prompt_plant.write(planted_calls())
    calls = prompt_plant.store.calls(ORG_A, START, END, with_text=True)
    comparison = compare_versions(calls, "summarize@1", "summarize@2")
    assert comparison.a.id == "summarize@1" and comparison.b.id == "summarize@2"
    assert comparison.error_rate_delta == pytest.approx(-0.25)
    assert comparison.latency_p50_delta_ms == pytest.approx(70.0 - 250.0)
    assert comparison.latency_p95_delta_ms == pytest.approx(816.0 - 385.0)
    assert comparison.cost_per_call_delta_usd == pytest.approx(0.01)
    assert comparison.input_tokens_per_call_delta == pytest.approx(20.0)
    assert comparison.output_tokens_per_call_delta == pytest.approx(2.0)
    # Errors 1 of 4 against 0 of 5: with one error in nine calls, the only tables are "the error in A"
    # (p = 4/9, observed) and "in B" (p = 5/9, more likely): the two-sided p-value is 4/9.
    assert comparison.error_rate_p_value == pytest.approx(4 / 9)
    # Only B's 1000 ms call is slower than A's calls: U_B = 4 of 20 pairs. Normal approximation: mean 10,
    # variance 4 * 5 / 12 * 10, continuity-corrected |4 - 10| - 0.5.
    assert comparison.latency_u == 4.0
    assert comparison.probability_b_slower == pytest.approx(0.2)
    z = 5.5 / math.sqrt(4 * 5 / 12 * 10)
    assert comparison.latency_p_value == pytest.approx(math.erfc(z / math.sqrt(2)))
    with pytest.raises(KeyError):
        compare_versions(calls, "summarize@1", "summarize@9")


def test_prompt_versions_fisher_exact_known_tables() -> None:
    # The lady tasting tea: 3 of 4 right in each row, two-sided p = 34/70.
    assert fisher_exact(3, 1, 1, 3) == pytest.approx(34 / 70)
    assert fisher_exact(0, 10, 0, 10) == pytest.approx(1.0)
    # 0/20 against 10/20: p = 2 * C(20,10) * C(20,0) / C(40,10).
    assert fisher_exact(0, 20, 10, 10) == pytest.approx(2 * math.comb(20, 10) / math.comb(40, 10))
    assert fisher_exact(0, 0, 1, 1) is None


def test_prompt_versions_mann_whitney_matches_pair_count() -> None:
    rng = random.Random(7)
    a = [float(rng.randint(1, 30)) for _ in range(40)]
    b = [float(rng.randint(5, 35)) for _ in range(55)]  # ties on purpose
    u, p, share = mann_whitney_u(a, b)
    pairs = sum(1.0 if y > x else 0.5 if y == x else 0.0 for x in a for y in b)
    assert u == pytest.approx(pairs)
    assert share == pytest.approx(pairs / (40 * 55))
    assert p is not None and 0.0 < p < 0.05  # b is shifted up by 5 on a range of 30
    assert mann_whitney_u([], [1.0]) == (None, None, None)
    same = mann_whitney_u([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same[1] == pytest.approx(1.0)
