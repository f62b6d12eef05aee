"""The redact processor: every pattern masked, nothing else changed, JSON kept valid, content dropped
per project or globally, events masked too, counts per kind."""

from __future__ import annotations

import copy
import json
import logging
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from llm_observer.kernel.batch import Event, SpanBatch
from llm_observer.kernel.component import CreateContext, Processor
from llm_observer.kernel.telemetry import Telemetry
from llm_observer.processors import redact
from llm_observer.semconv.attributes import GEN_AI_INPUT_MESSAGES, GEN_AI_OUTPUT_MESSAGES, PROJECT_ID
from tests.support import span_batch

# (kind, secret text, where it sits in a sentence)
SAMPLES: list[tuple[str, str]] = [
    ("email", "jane.doe+billing@example.co.uk"),
    ("phone", "+1 (415) 555-0100"),
    ("phone", "415-555-0100"),
    ("phone", "+442079460958"),
    ("phone", "020 7946 0958"),
    ("card", "4111 1111 1111 1111"),
    ("card", "5555-5555-5555-4444"),
    ("card", "378282246310005"),
    ("api_key", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"),
    ("api_key", "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv"),
    ("api_key", "AKIAIOSFODNN7EXAMPLE"),
    ("api_key", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("api_key", "AIzaSyD-1234567890abcdefghijklmnopqrstu"),
    ("bearer_token", "Bearer 4f9a1c2e7b.d8e3-A_b~c+d/e="),
    ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    (
        "private_key",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1b2c3d4\nAbCdEf==\n-----END RSA PRIVATE KEY-----",
    ),
]

# Text that looks a little like the patterns and must stay as it is.
LOOKALIKES = (
    "Order 4111111111111112 (not a valid card), id 1234567812345678, ts 1700000000000000000, "
    "version 10.20.300, on 2024-05-01 at 12:30:45, pi 3.14159, total 1,234.56 USD, "
    "ssn-like 123-45-6789, ISBN 978-3-16-148410-0, host 192.168.1.20, the sk-short key, user@localhost, "
    "[REDACTED:email] stays."
)


def make_processor(tmp_path: Path, **config: Any) -> tuple[Processor, Telemetry]:
    telemetry = Telemetry()
    ctx = CreateContext("redact", tmp_path, telemetry, logging.getLogger("test.redact"))
    return redact.factory.create(ctx, redact.RedactConfig.model_validate(config)), telemetry


def counted(telemetry: Telemetry, event: str) -> float:
    value = telemetry.registry.get_sample_value(
        "llm_observer_component_events_total", {"component": "redact", "event": event}
    )
    return value or 0.0


def batch_of(
    *spans: dict[str, Any], events: list[list[Event]] | None = None, resource: dict[str, Any] | None = None
) -> SpanBatch:
    return span_batch(*spans, events=events, resource=resource)


def messages(text: str) -> str:
    return json.dumps(
        [
            {"role": "system", "parts": [{"type": "text", "content": "You are helpful."}]},
            {"role": "user", "parts": [{"type": "text", "content": text}]},
        ]
    )


@pytest.mark.parametrize(("kind", "secret"), SAMPLES)
def test_redact_masks_each_pattern_in_text_and_json(tmp_path: Path, kind: str, secret: str) -> None:
    process, telemetry = make_processor(tmp_path)
    sentence = f"Please use {secret} for this."
    attrs = {
        GEN_AI_INPUT_MESSAGES: messages(sentence),
        "gen_ai.prompt.0.content": sentence,
        "input.value": sentence,
        "gen_ai.request.model": "gpt-4o",
    }
    out = process(batch_of(attrs)).attributes[0]
    expected = f"Please use [REDACTED:{kind}] for this."
    assert out["gen_ai.prompt.0.content"] == expected
    assert out["input.value"] == expected
    parsed = json.loads(out[GEN_AI_INPUT_MESSAGES])
    assert parsed == json.loads(messages(expected))
    assert out["gen_ai.request.model"] == "gpt-4o"
    assert counted(telemetry, f"redacted:{kind}") == 3


def test_redact_leaves_lookalikes_and_other_attributes_alone(tmp_path: Path) -> None:
    process, telemetry = make_processor(tmp_path)
    attrs = {
        GEN_AI_OUTPUT_MESSAGES: messages(LOOKALIKES),
        "output.value": LOOKALIKES,
        # Not content: left as they are even though they hold an email address.
        "enduser.email": "jane@example.com",
        "http.url": "https://api.example.com/v1?key=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
        "gen_ai.usage.input_tokens": 12,
    }
    before = copy.deepcopy(attrs)
    out = process(batch_of(attrs)).attributes[0]
    assert out == before
    assert out[GEN_AI_OUTPUT_MESSAGES] is before[GEN_AI_OUTPUT_MESSAGES] or out == before
    samples = telemetry.registry.get_sample_value(
        "llm_observer_component_events_total", {"component": "redact", "event": "redacted:card"}
    )
    assert samples is None


def test_redact_luhn_decides_card_numbers(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path)
    out = process(batch_of({"input.value": "valid 4111111111111111 invalid 4111111111111112"})).attributes[0]
    assert out["input.value"] == "valid [REDACTED:card] invalid 4111111111111112"
    assert redact.luhn_valid("79927398713")
    assert not redact.luhn_valid("79927398710")


def test_redact_json_stays_valid_and_only_strings_change(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path)
    tool_args = json.dumps({"to": "bob@example.com", "cc": ["amy@example.org"], "count": 3})
    output = [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Mailing bob@example.com"},
                {"type": "tool_call", "id": "call_1", "name": "send_mail", "arguments": tool_args},
            ],
            "finish_reason": "tool_call",
        }
    ]
    pretty = json.dumps(output, indent=2)
    compact = json.dumps(output, separators=(",", ":"))
    attrs = {GEN_AI_OUTPUT_MESSAGES: compact, "gen_ai.completion": pretty}
    out = process(batch_of(attrs)).attributes[0]
    for key in (GEN_AI_OUTPUT_MESSAGES, "gen_ai.completion"):
        parsed = json.loads(out[key])
        part = parsed[0]["parts"]
        assert part[0]["content"] == "Mailing [REDACTED:email]"
        assert json.loads(part[1]["arguments"]) == {
            "to": "[REDACTED:email]",
            "cc": ["[REDACTED:email]"],
            "count": 3,
        }
        assert parsed[0]["finish_reason"] == "tool_call"
    # compact input stays compact, indented input gets the default separators
    compact_out = out[GEN_AI_OUTPUT_MESSAGES]
    assert compact_out == json.dumps(json.loads(compact_out), separators=(",", ":"), ensure_ascii=False)


def test_redact_escaped_characters_cannot_hide_a_match(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path)
    escaped = '[{"role":"user","parts":[{"type":"text","content":"write to jane\\u0040example.com"}]}]'
    out = process(batch_of({GEN_AI_INPUT_MESSAGES: escaped})).attributes[0]
    assert json.loads(out[GEN_AI_INPUT_MESSAGES])[0]["parts"][0]["content"] == "write to [REDACTED:email]"


def test_redact_lists_and_maps_of_strings(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path)
    attrs = {
        "gen_ai.system_instructions": ["Reply to ops@example.com", "Be brief"],
        "llm.tools.0": {"d": "x@y.io"},
    }
    out = process(batch_of(attrs)).attributes[0]
    assert out["gen_ai.system_instructions"] == ["Reply to [REDACTED:email]", "Be brief"]
    assert out["llm.tools.0"] == {"d": "[REDACTED:email]"}


def test_redact_ip_addresses_only_when_enabled(tmp_path: Path) -> None:
    text = "from 10.0.0.12 and 2001:0db8:85a3:0000:0000:8a2e:0370:7334, version 1.2.3.4.5"
    off, _ = make_processor(tmp_path)
    on, _ = make_processor(tmp_path, ip_addresses=True)
    assert off(batch_of({"input.value": text})).attributes[0]["input.value"] == text
    masked = on(batch_of({"input.value": text})).attributes[0]["input.value"]
    assert masked == "from [REDACTED:ip] and [REDACTED:ip], version 1.2.3.4.5"


def test_redact_custom_patterns_and_switches(tmp_path: Path) -> None:
    process, telemetry = make_processor(
        tmp_path,
        emails=False,
        patterns=[
            {"name": "order_id", "regex": r"\bORD-\d{6}\b"},
            {"name": "codename", "regex": "(?i)bluebird"},
        ],
    )
    out = process(batch_of({"input.value": "ORD-123456 for Bluebird, mail a@b.co"})).attributes[0]
    assert out["input.value"] == "[REDACTED:order_id] for [REDACTED:codename], mail a@b.co"
    assert counted(telemetry, "redacted:order_id") == 1
    assert counted(telemetry, "redacted:codename") == 1


def test_redact_events(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path)
    user_message = Event(
        1, "gen_ai.user.message", {"content": "I am jane@example.com", "gen_ai.system": "openai"}
    )
    choice = Event(2, "gen_ai.choice", {"message": {"content": "Call 415-555-0100"}, "index": 0})
    exception = Event(3, "exception", {"exception.message": "bad input from jane@example.com"})
    other = Event(4, "custom", {"input.value": "key AKIAIOSFODNN7EXAMPLE", "note": "x@y.io"})
    batch = process(batch_of({}, events=[[user_message, choice, exception, other]]))
    got = {e.name: e.attributes for e in batch.events[0]}
    assert got["gen_ai.user.message"] == {"content": "I am [REDACTED:email]", "gen_ai.system": "openai"}
    assert got["gen_ai.choice"] == {"message": {"content": "Call [REDACTED:phone]"}, "index": 0}
    assert got["exception"] == {"exception.message": "bad input from jane@example.com"}
    assert got["custom"] == {"input.value": "key [REDACTED:api_key]", "note": "x@y.io"}


def content_span() -> dict[str, Any]:
    return {
        GEN_AI_INPUT_MESSAGES: messages("hello"),
        GEN_AI_OUTPUT_MESSAGES: messages("hi"),
        "gen_ai.prompt.0.content": "hello",
        "llm.output_messages.0.message.content": "hi",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 3,
    }


def test_redact_drops_content_globally(tmp_path: Path) -> None:
    process, telemetry = make_processor(tmp_path, drop_content=True)
    events = [[Event(1, "gen_ai.choice", {"message": "hi"}), Event(2, "exception", {"exception.type": "X"})]]
    batch = process(batch_of(content_span(), events=events))
    assert batch.attributes[0] == {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 3}
    assert [e.name for e in batch.events[0]] == ["exception"]
    assert counted(telemetry, "dropped_content") == 1


def test_redact_drops_content_per_project(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path, drop_content_projects=["secret-project"])
    dropped = {**content_span(), PROJECT_ID: "secret-project"}
    kept = {**content_span(), PROJECT_ID: "open-project"}
    batch = process(batch_of(dropped, kept))
    assert GEN_AI_INPUT_MESSAGES not in batch.attributes[0]
    assert batch.attributes[1] == {**content_span(), PROJECT_ID: "open-project"}
    from_resource = process(batch_of(content_span(), resource={PROJECT_ID: "secret-project"}))
    assert GEN_AI_OUTPUT_MESSAGES not in from_resource.attributes[0]


def test_redact_is_idempotent(tmp_path: Path) -> None:
    process, telemetry = make_processor(tmp_path, ip_addresses=True)
    text = " ".join(secret for _, secret in SAMPLES) + " " + LOOKALIKES
    once = process(batch_of({"input.value": text, GEN_AI_INPUT_MESSAGES: messages(text)}))
    first = copy.deepcopy(once.attributes)
    emails = counted(telemetry, "redacted:email")
    assert process(once).attributes == first
    assert counted(telemetry, "redacted:email") == emails


def test_redact_config_validation() -> None:
    with pytest.raises(ValidationError):
        redact.RedactConfig.model_validate({"patterns": [{"name": "x", "regex": "("}]})
    with pytest.raises(ValidationError):
        redact.RedactConfig.model_validate({"patterns": [{"name": "x", "regex": "a*"}]})
    with pytest.raises(ValidationError):
        redact.RedactConfig.model_validate({"patterns": [{"name": "bad name", "regex": "a"}]})
    with pytest.raises(ValidationError):
        redact.RedactConfig.model_validate({"mask_emails": True})


def test_redact_factory_is_registered() -> None:
    (entry,) = entry_points(group="llm_observer.processors", name="redact")
    assert entry.load() is redact.factory


def test_redact_10k_span_batch(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path)
    clean = messages("Summarise the quarterly report in three bullet points, please.")
    dirty = messages("My card is 4111 1111 1111 1111 and my email is jane@example.com")
    spans = [
        {GEN_AI_INPUT_MESSAGES: dirty if i % 10 == 0 else clean, "gen_ai.request.model": "m"}
        for i in range(10_000)
    ]
    batch = batch_of(*spans)
    started = time.perf_counter()
    process(batch)
    elapsed = time.perf_counter() - started
    print(f"redact: 10,000 spans (10% with PII) in {elapsed * 1000:.1f} ms ({10_000 / elapsed:,.0f} spans/s)")
    assert "[REDACTED:card]" in batch.attributes[0][GEN_AI_INPUT_MESSAGES]
    assert batch.attributes[1][GEN_AI_INPUT_MESSAGES] is clean


def test_redact_odd_attribute_types_never_raise(tmp_path: Path) -> None:
    process, _ = make_processor(tmp_path, drop_content_projects=["p"])
    odd_values: list[Any] = [
        ["a@b.co", 3, None],
        {"k": ["x@y.io"]},
        b"a@b.co",
        True,
        3.5,
        7,
        "",
        "{not json a@b.co",
    ]
    spans = [{"input.value": value, PROJECT_ID: value} for value in odd_values]
    batch = process(batch_of(*spans))
    got = [attrs["input.value"] for attrs in batch.attributes]
    assert got == [
        ["[REDACTED:email]", 3, None],
        {"k": ["[REDACTED:email]"]},
        b"a@b.co",
        True,
        3.5,
        7,
        "",
        "{not json [REDACTED:email]",
    ]


def test_redact_drop_content_keeps_the_prompt_version(tmp_path: Path) -> None:
    # Which prompt and version a call used is not content: prompt versions are told by it when no text is left.
    process, _ = make_processor(tmp_path, drop_content=True)
    identity = {
        "gen_ai.prompt.name": "support",
        "gen_ai.prompt.version": "3",
        "llm.prompt_template.version": "3",
    }
    batch = process(batch_of({**content_span(), **identity}))
    assert batch.attributes[0] == {
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 3,
        **identity,
    }
