"""Each receiver against a real server on loopback: HTTP servers standing in for Slack and PagerDuty that
check the payload's shape, a webhook consumer expecting Alertmanager's payload, and an aiosmtpd SMTP server
with STARTTLS and a login."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from llm_observer.query.alerting.model import Incident
from tests.query.alerting.notify_support import (
    T0,
    Clock,
    RecordingServer,
    alert,
    alerting_config,
    recorder,
    resolved,
    wired,
)
from tests.support.ports import free_port
from tests.support.waiting import wait_for

__all__ = ["recorder"]  # the fixture

EXTERNAL = "https://observer.example.com"


def rfc3339(ns: int) -> str:
    return (
        datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


# --- Slack ---------------------------------------------------------------------------------------------


def check_block_kit(message: dict[str, Any]) -> list[dict[str, Any]]:
    """What Slack requires of a webhook message with blocks; the blocks."""
    assert isinstance(message["text"], str) and message["text"]
    (attachment,) = message["attachments"]
    assert attachment["color"].startswith("#")
    blocks = attachment["blocks"]
    assert 0 < len(blocks) <= 50
    for block in blocks:
        assert block["type"] in {"header", "section", "context", "actions", "divider"}
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text" and len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert "text" in block or "fields" in block
            for text in [block.get("text"), *block.get("fields", [])]:
                if text is not None:
                    assert text["type"] in {"mrkdwn", "plain_text"} and len(text["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
        if block["type"] == "context":
            assert all(e["type"] in {"mrkdwn", "plain_text", "image"} for e in block["elements"])
        if block["type"] == "actions":
            for element in block["elements"]:
                assert element["type"] == "button" and element["url"].startswith("http")
    assert blocks[0]["type"] == "header"
    return blocks


async def test_receivers_slack_block_kit_firing_then_resolved(
    tmp_path: Path, recorder: RecordingServer
) -> None:
    clock = Clock()
    cfg = alerting_config(
        external_url=EXTERNAL,
        route={"receiver": "chat", "group_by": ["alertname"], "group_wait": "0s", "group_interval": "1m"},
        receivers=[
            {
                "name": "chat",
                "slack_configs": [
                    {"api_url": recorder.url + "/services/T0/B0/secret", "channel": "#llm-alerts"}
                ],
            }
        ],
    )
    firing = alert(provider="openai", model="gpt-4o")
    async with wired(tmp_path / "state.sqlite", cfg, clock) as w:
        w.dispatcher.update([firing], [], clock.now)
        await w.dispatcher.flush(clock.now)
        w.dispatcher.update([resolved(firing, clock.now)], [], clock.now)
        await w.dispatcher.flush(clock.advance(60))
    first, second = recorder.bodies()
    assert recorder.requests[0].path == "/services/T0/B0/secret"
    assert recorder.requests[0].headers["content-type"] == "application/json"
    blocks = check_block_kit(first)
    assert first["channel"] == "#llm-alerts"
    assert first["attachments"][0]["color"] == "#d63232"
    assert blocks[0]["text"]["text"].startswith("[FIRING:1] HighErrorRate")
    assert "HighErrorRate is 0.2" in first["text"]
    (button,) = next(b for b in blocks if b["type"] == "actions")["elements"]
    # The alert's own link (its rule's generator URL) made absolute against external_url.
    assert button["url"] == f"{EXTERNAL}/traces?alertname=HighErrorRate"
    check_block_kit(second)
    assert second["attachments"][0]["color"] == "#2eb67d"
    assert second["attachments"][0]["blocks"][0]["text"]["text"].startswith("[RESOLVED] HighErrorRate")


# --- PagerDuty -----------------------------------------------------------------------------------------


def check_events_v2(event: dict[str, Any]) -> None:
    """The Events API v2 schema (https://developer.pagerduty.com/api-reference/368ae3d938c9e-send-an-event)."""
    assert set(event) <= {
        "routing_key",
        "event_action",
        "dedup_key",
        "payload",
        "images",
        "links",
        "client",
        "client_url",
    }
    assert event["routing_key"] and event["event_action"] in {"trigger", "acknowledge", "resolve"}
    assert isinstance(event["dedup_key"], str) and 0 < len(event["dedup_key"]) <= 255
    if event["event_action"] == "trigger":
        payload = event["payload"]
        assert payload["summary"] and len(payload["summary"]) <= 1024
        assert payload["source"]
        assert payload["severity"] in {"critical", "error", "warning", "info"}
        assert isinstance(payload["custom_details"], dict)
        for link in event.get("links", []):
            assert link["href"].startswith("http") and link["text"]


async def test_receivers_pagerduty_trigger_then_resolve_with_one_dedup_key(
    tmp_path: Path, recorder: RecordingServer
) -> None:
    clock = Clock()
    recorder.statuses = [202, 202, 202]
    cfg = alerting_config(
        external_url=EXTERNAL,
        route={"receiver": "pager", "group_by": ["provider"], "group_wait": "0s", "group_interval": "1m"},
        receivers=[
            {
                "name": "pager",
                "pagerduty_configs": [
                    {"routing_key": "R0UTING", "url": recorder.url + "/v2/enqueue", "severity": "critical"}
                ],
            }
        ],
    )
    incident = Incident(
        "inc-3",
        "acme",
        "provider",
        "openai",
        T0,
        None,
        (),
        ("A", "B"),
        "provider openai: error rate and p95 together",
    )
    a = alert("A", provider="openai", incident="inc-3")
    b = alert("B", provider="openai", incident="inc-3")
    async with wired(tmp_path / "state.sqlite", cfg, clock) as w:
        w.dispatcher.update([a, b], [incident], clock.now)
        await w.dispatcher.flush(clock.now)
        w.dispatcher.update([a, resolved(b, clock.now)], [incident], clock.now)
        await w.dispatcher.flush(clock.advance(60))
        w.dispatcher.update([resolved(a, clock.now)], [incident], clock.now)
        await w.dispatcher.flush(clock.advance(60))
    events = recorder.bodies()
    for event in events:
        check_events_v2(event)
    assert [e["event_action"] for e in events] == ["trigger", "trigger", "resolve"]
    assert len({e["dedup_key"] for e in events}) == 1
    trigger = events[0]
    assert trigger["routing_key"] == "R0UTING"
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] == "llm-observer"
    assert (
        trigger["payload"]["custom_details"]["incident"]
        == "Incident inc-3: provider openai: error rate and p95 together"
    )
    assert trigger["payload"]["custom_details"]["num_firing"] == 2
    assert events[1]["payload"]["custom_details"]["num_resolved"] == 1
    assert trigger["links"][0]["href"].startswith(EXTERNAL + "/alerts?")


# --- generic webhook -----------------------------------------------------------------------------------


async def test_receivers_webhook_payload_is_alertmanager_v4(
    tmp_path: Path, recorder: RecordingServer
) -> None:
    clock = Clock()
    cfg = alerting_config(
        external_url=EXTERNAL,
        route={"receiver": "hook", "group_by": ["alertname"], "group_wait": "0s", "group_interval": "1m"},
        receivers=[
            {
                "name": "hook",
                "webhook_configs": [
                    {
                        "url": recorder.url + "/hook",
                        "headers": {"Authorization": "Bearer t0k"},
                        "max_alerts": 1,
                    }
                ],
            }
        ],
    )
    firing = alert(provider="openai")
    other = alert(provider="anthropic", fired_at=T0 + 1, value=0.3)
    async with wired(tmp_path / "state.sqlite", cfg, clock) as w:
        w.dispatcher.update([firing, other], [], clock.now)
        await w.dispatcher.flush(clock.now)
        w.dispatcher.update([resolved(firing, clock.now), resolved(other, clock.now)], [], clock.now)
        await w.dispatcher.flush(clock.advance(60))
    assert recorder.requests[0].headers["authorization"] == "Bearer t0k"
    first, last = recorder.bodies()
    group_key = first["groupKey"]
    assert group_key == '{}:{alertname="HighErrorRate"}'
    assert first == {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 1,
        "status": "firing",
        "receiver": "hook",
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate", "organization_id": "acme"},
        "commonAnnotations": {},
        "externalURL": EXTERNAL,
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "HighErrorRate", "organization_id": "acme", "provider": "openai"},
                "annotations": {"summary": "HighErrorRate is 0.2"},
                "startsAt": rfc3339(T0),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": f"{EXTERNAL}/traces?alertname=HighErrorRate",
                "fingerprint": firing.fingerprint,
            }
        ],
    }
    assert last["status"] == "resolved"
    assert last["alerts"][0]["endsAt"] == rfc3339(clock.now - 60 * 10**9)


# --- e-mail ----------------------------------------------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llm-observer test SMTP")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp.crt", folder / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@dataclass
class Mailbox:
    messages: list[tuple[EmailMessage, list[str], bool, bool]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(
            (parsed, list(envelope.rcpt_tos), session.ssl is not None, bool(session.authenticated))
        )
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        ok = auth_data.login == b"alerts" and auth_data.password == b"s3cret"
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[tuple[Controller, Mailbox, Path]]:
    cert_file, key_file = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    mailbox = Mailbox()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        authenticator=mailbox.authenticate,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield controller, mailbox, cert_file
    finally:
        controller.stop()


async def test_receivers_email_starttls_login_plain_and_html(
    tmp_path: Path, smtp_server: tuple[Controller, Mailbox, Path]
) -> None:
    controller, mailbox, cert_file = smtp_server
    clock = Clock()
    cfg = alerting_config(
        external_url=EXTERNAL,
        route={"receiver": "mail", "group_wait": "0s"},
        receivers=[
            {
                "name": "mail",
                "email_configs": [
                    {
                        "to": ["oncall@example.com", "ml@example.com"],
                        "from": "llm-observer@example.com",
                        "smarthost": f"127.0.0.1:{controller.port}",
                        "auth_username": "alerts",
                        "auth_password": "s3cret",
                        "require_tls": True,
                        "ca_file": str(cert_file),
                    }
                ],
            }
        ],
    )
    async with wired(tmp_path / "state.sqlite", cfg, clock) as w:
        w.dispatcher.update([alert(provider="openai", model="<gpt-4o>")], [], clock.now)
        await w.dispatcher.flush(clock.now)
        await wait_for(lambda: mailbox.messages, what="the e-mail")
        assert (
            w.counter(
                "llm_observer_alert_notifications_total", receiver="mail", integration="email", outcome="sent"
            )
            == 1
        )
    ((message, recipients, encrypted, authenticated),) = mailbox.messages
    assert encrypted and authenticated
    assert mailbox.logins == [("alerts", "s3cret")]
    assert recipients == ["oncall@example.com", "ml@example.com"]
    assert message["Subject"].startswith("[FIRING:1] HighErrorRate")
    assert message["From"] == "llm-observer@example.com"
    assert message["To"] == "oncall@example.com, ml@example.com"
    assert message["Date"] and message["Message-ID"]
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    rich = message.get_body(("html",))
    assert plain is not None and rich is not None
    text, markup = plain.get_content(), rich.get_content()
    assert "HighErrorRate is 0.2" in text and "model=<gpt-4o>" in text
    assert f"{EXTERNAL}/traces?alertname=HighErrorRate" in text
    assert "model=&lt;gpt-4o&gt;" in markup and "<table" in markup  # labels escaped in the HTML part


async def test_receivers_email_untrusted_certificate_is_dropped_not_retried(
    tmp_path: Path, smtp_server: tuple[Controller, Mailbox, Path]
) -> None:
    controller, mailbox, _ = smtp_server
    clock = Clock()
    cfg = alerting_config(
        route={"receiver": "mail", "group_wait": "0s"},
        receivers=[
            {
                "name": "mail",
                "email_configs": [
                    {
                        "to": ["oncall@example.com"],
                        "from": "a@example.com",
                        "smarthost": f"127.0.0.1:{controller.port}",
                    }
                ],
            }
        ],
    )
    async with wired(tmp_path / "state.sqlite", cfg, clock) as w:
        w.dispatcher.update([alert()], [], clock.now)
        await w.dispatcher.flush(clock.now)
        assert (
            w.counter(
                "llm_observer_alert_notifications_total",
                receiver="mail",
                integration="email",
                outcome="dropped",
            )
            == 1
        )
        assert w.dispatcher.outbox_depth() == 0
    assert mailbox.messages == []
