"""Threshold rules evaluated over a real store: groups, min_requests, hysteresis, the evaluation delay,
batching, tenancy, one bad rule among good ones, and annotations."""

from __future__ import annotations

import pytest

from llm_observer.query.alerting.templates import format_value, render
from tests.query.alerting.eval_support import (
    MINUTE,
    NOW,
    Planted,
    S,
    by_labels,
    one,
    planted,
    rule_of,
    spread,
)

__all__ = ["planted"]


def error_rule(**extra: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "name": "HighErrorRate",
        "kind": "threshold",
        "measure": "error_rate",
        "window": "5m",
        "group_by": ["provider"],
        "op": ">",
        "threshold": 0.05,
        "resolve_threshold": 0.03,
    }
    spec.update(extra)
    return spec


async def plant_error_rates(planted: Planted) -> None:
    """In the last 5 minutes: openai 10% errors, anthropic 4%, mistral 2% (each 50 calls), groq 3 calls
    all failed; and an openai burst 10 minutes ago (outside the window)."""
    start = NOW - 5 * MINUTE
    calls = []
    for provider, failing in (("openai", 5), ("anthropic", 2), ("mistral", 1)):
        for i, call in enumerate(spread(50, start, NOW, provider=provider)):
            calls.append(call.__class__(**{**call.__dict__, "error": i < failing}))
    calls += spread(3, start, NOW, provider="groq", error=True)
    calls += spread(40, NOW - 10 * MINUTE, NOW - 6 * MINUTE, provider="openai", error=True)
    await planted.write(calls)


async def test_evaluate_threshold_per_group_with_hysteresis(planted: Planted) -> None:
    await plant_error_rates(planted)
    rule = rule_of(
        error_rule(
            min_requests=10,
            labels={"severity": "page"},
            annotations={"description": "{{ $labels.provider }} at {{ $value }} (limit {{ $threshold }})"},
        )
    )
    evaluation = planted.evaluator().evaluate([rule], NOW)
    assert evaluation.errors == {}
    samples = evaluation.samples
    openai = one(samples, provider="openai")
    assert list(openai.labels) == ["alertname", "organization_id", "provider", "severity"]
    assert openai.labels == {
        "alertname": "HighErrorRate",
        "organization_id": "org-a",
        "provider": "openai",
        "severity": "page",
    }
    assert openai.value == pytest.approx(0.10)
    assert (openai.active, openai.clear) == (True, False)
    assert openai.annotations["description"] == "openai at 10% (limit 5%)"
    assert openai.annotations["summary"] == "error_rate 10% > 5% for provider=openai"
    assert (openai.window_start_ns, openai.window_end_ns) == (NOW - 5 * MINUTE, NOW)
    # Inside the hysteresis band: neither firing nor clear, so a firing alert stays firing.
    anthropic = one(samples, provider="anthropic")
    assert anthropic.value == pytest.approx(0.04)
    assert (anthropic.active, anthropic.clear) == (False, False)
    mistral = one(samples, provider="mistral")
    assert (mistral.active, mistral.clear) == (False, True)
    # Under min_requests: not judged (and clear, so an alert from busier times resolves).
    groq = one(samples, provider="groq")
    assert (groq.value, groq.active, groq.clear) == (1.0, False, True)


async def test_evaluate_threshold_windows_end_before_the_evaluation_delay(planted: Planted) -> None:
    await planted.write(spread(10, NOW - 10 * S, NOW, error=True))
    await planted.write(spread(10, NOW - 5 * MINUTE, NOW - MINUTE))
    rule = rule_of(error_rule(group_by=[]))
    delayed = planted.evaluator(delay_s=15).evaluate([rule], NOW + 5 * S)
    sample = one(delayed.samples)
    assert sample.value == 0.0 and sample.window_end_ns == NOW - 10 * S
    assert one(planted.evaluator(delay_s=0).evaluate([rule], NOW).samples).value == pytest.approx(0.5)


async def test_evaluate_threshold_measures(planted: Planted) -> None:
    calls = spread(60, NOW - 10 * MINUTE, NOW, cost_usd=0.02, input_tokens=300, output_tokens=100)
    calls += spread(4, NOW - 10 * MINUTE, NOW, ttft_s=0.8, model="stream")
    await planted.write(calls)

    def value(measure: str) -> float:
        spec = {"name": "M", "kind": "threshold", "measure": measure, "window": "10m", "threshold": 1e9}
        return one(planted.evaluator().evaluate([rule_of(spec)], NOW).samples).value

    assert value("request_count") == 64
    assert value("request_rate") == pytest.approx(64 / 600)
    assert value("cost_usd") == pytest.approx(60 * 0.02 + 4 * 0.001)
    assert value("cost_per_hour") == pytest.approx((60 * 0.02 + 4 * 0.001) * 6)
    assert value("tokens_per_request") == pytest.approx((60 * 400 + 4 * 120) / 64)
    assert value("ttft_p95") == pytest.approx(800.0)
    by_model = (
        planted.evaluator()
        .evaluate(
            [
                rule_of(
                    {
                        "name": "T",
                        "kind": "threshold",
                        "measure": "ttft_p95",
                        "window": "10m",
                        "group_by": ["model"],
                        "threshold": 500,
                    }
                )
            ],
            NOW,
        )
        .samples
    )
    # A group without streamed calls has no TTFT: not judged.
    assert (one(by_model, model="gpt-4o").active, one(by_model, model="gpt-4o").clear) == (False, True)
    assert one(by_model, model="stream").active


async def test_evaluate_threshold_one_bad_rule_costs_only_itself(planted: Planted) -> None:
    await plant_error_rates(planted)
    good = rule_of(error_rule())
    # A group_by the store rejects (the config forbids it; a hand-made rule can still carry it).
    bad = good.model_copy(update={"name": "Bad", "group_by": ["region"]})
    evaluation = planted.evaluator().evaluate([bad, good], NOW)
    assert list(evaluation.errors) == ["Bad"]
    assert "region" in evaluation.errors["Bad"]
    assert {s.rule for s in evaluation.samples} == {"HighErrorRate"}
    assert one(evaluation.samples, provider="openai").active


async def test_evaluate_threshold_tenancy(planted: Planted) -> None:
    await planted.write(spread(20, NOW - 4 * MINUTE, NOW, org="org-b", error=True))
    await planted.write(spread(20, NOW - 4 * MINUTE, NOW, org="org-a"))
    scoped = rule_of(error_rule(organization="org-a"))
    evaluation = planted.evaluator().evaluate([scoped, rule_of(error_rule(name="All"))], NOW)
    assert [s.labels["organization_id"] for s in evaluation.samples if s.rule == "HighErrorRate"] == ["org-a"]
    assert not any(s.active for s in evaluation.samples if s.rule == "HighErrorRate")
    # Unscoped: each organization apart.
    everyone = [s for s in evaluation.samples if s.rule == "All"]
    assert {s.labels["organization_id"]: s.active for s in everyone} == {"org-a": False, "org-b": True}
    # A backtest for org-a of the unscoped rule sees org-a's data only.
    backtest = planted.evaluator().evaluate_rule_at(rule_of(error_rule(name="All")), NOW, "org-a")
    assert [s.labels["organization_id"] for s in backtest] == ["org-a"]


async def test_evaluate_threshold_batches_rules_of_one_shape(planted: Planted) -> None:
    await plant_error_rates(planted)
    measures = ["error_rate", "latency_p95", "request_count", "cost_usd"]
    rules = [
        rule_of(
            error_rule(
                name=f"R{i}",
                measure=measures[i % 4],
                threshold=i,
                resolve_threshold=None,
                window=f"{5 + i % 3}m",
            )
        )
        for i in range(60)
    ]
    evaluation = planted.evaluator().evaluate(rules, NOW)
    assert evaluation.errors == {}
    assert evaluation.queries == 1
    assert len(by_labels(evaluation.samples, provider="openai")) == 60


def test_templates_render_and_leave_unknown_placeholders() -> None:
    labels = {"model": "gpt-4o"}
    assert (
        render("{{ $labels.model }} p95 {{ $value }}", value=1234.4, labels=labels, unit="ms")
        == "gpt-4o p95 1,234 ms"
    )
    assert (
        render("{{.Labels.model}}: {{ .Value }}", value=0.071, labels=labels, unit="ratio") == "gpt-4o: 7.1%"
    )
    text = "{{ $labels.nope }} {{ $humanize }} {{ $threshold }} {{"
    assert render(text, value=1.0, labels=labels) == text
    assert format_value(12.5, "usd") == "12.50 USD"
    assert format_value(14.4, "burn") == "14.4x"
