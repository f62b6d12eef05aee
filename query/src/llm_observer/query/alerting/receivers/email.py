"""E-mail over SMTP: STARTTLS when ``require_tls`` (a server that does not offer it is refused), a login when
``auth_username`` is set, and a multipart/alternative message with a plain-text and an HTML part. The
blocking ``smtplib`` session runs in a thread."""

from __future__ import annotations

import asyncio
import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from llm_observer.kernel.errors import PermanentError, RetryableError
from llm_observer.query.alerting.config import EmailConfig
from llm_observer.query.alerting.payloads import (
    Notification,
    alert_link,
    group_link,
    incident_line,
    rfc3339,
    summary,
    title,
)


class EmailIntegration:
    kind = "email"

    def __init__(self, config: EmailConfig) -> None:
        self.config = config
        self.send_resolved = config.send_resolved
        host, _, port = config.smarthost.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"email smarthost {config.smarthost!r} is not host:port")
        self._host, self._port = host.strip("[]"), int(port)

    async def send(self, notification: Notification, now_ns: int) -> None:
        message = email_message(notification, self.config, now_ns)
        await asyncio.to_thread(self._deliver, message)

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.config.ca_file)
        if self.config.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _deliver(self, message: EmailMessage) -> None:
        where = f"email via {self._host}:{self._port}"
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self.config.timeout) as smtp:
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=self._tls_context())
                    smtp.ehlo()
                elif self.config.require_tls:
                    raise PermanentError(
                        f"{where}: the server does not offer STARTTLS and require_tls is set"
                    )
                if self.config.auth_username:
                    smtp.login(self.config.auth_username, self.config.auth_password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentError(f"{where}: every recipient was refused: {exc.recipients}") from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentError(f"{where}: login refused ({exc.smtp_code})") from exc
        except smtplib.SMTPResponseException as exc:
            text = f"{where}: {exc.smtp_code} {exc.smtp_error!r}"
            if 400 <= exc.smtp_code < 500:
                raise RetryableError(text) from exc
            raise PermanentError(text, reason=f"smtp_{exc.smtp_code}") from exc
        except ssl.SSLCertVerificationError as exc:
            raise PermanentError(f"{where}: the server's certificate is not trusted: {exc}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise RetryableError(f"{where}: {type(exc).__name__}: {exc}") from exc


def email_message(notification: Notification, config: EmailConfig, now_ns: int) -> EmailMessage:
    """The message: plain text first, HTML as the alternative a mail client prefers."""
    subject = title(notification)
    hint = incident_line(notification)
    link = group_link(notification)
    plain = [subject, ""]
    if hint:
        plain += [hint, ""]
    for alert in notification.alerts:
        plain.append(f"[{alert.status.upper()}] {summary(alert)}")
        plain.append("  labels: " + ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())))
        plain.append(f"  since: {rfc3339(alert.starts_at_ns)}")
        if alert.ends_at_ns:
            plain.append(f"  resolved: {rfc3339(alert.ends_at_ns)}")
        plain.append(f"  {alert_link(alert, notification.external_url)}")
        plain.append("")
    plain.append(f"View in llm-observer: {link}")

    colour = "#d63232" if notification.status == "firing" else "#2eb67d"
    rows = "".join(
        "<tr>"
        f'<td style="color:{"#d63232" if a.status == "firing" else "#2eb67d"}">{a.status}</td>'
        f'<td><a href="{html.escape(alert_link(a, notification.external_url))}">{html.escape(summary(a))}</a></td>'
        f"<td>{html.escape(', '.join(f'{k}={v}' for k, v in sorted(a.labels.items())))}</td>"
        f"<td>{rfc3339(a.starts_at_ns)}</td>"
        "</tr>"
        for a in notification.alerts
    )
    rich = (
        '<!doctype html><html><body style="font-family:sans-serif">'
        f'<h2 style="color:{colour}">{html.escape(subject)}</h2>'
        + (f"<p><strong>{html.escape(hint)}</strong></p>" if hint else "")
        + '<table cellpadding="4"><tr><th>Status</th><th>Alert</th><th>Labels</th><th>Since</th></tr>'
        + rows
        + f'</table><p><a href="{html.escape(link)}">View in llm-observer</a></p></body></html>'
    )
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = config.from_
    message["To"] = ", ".join(config.to)
    message["Date"] = formatdate(now_ns / 1e9, usegmt=True)
    message["Message-ID"] = make_msgid(domain="llm-observer")
    message["X-LLM-Observer-Group-Key"] = notification.group_key
    message.set_content("\n".join(plain))
    message.add_alternative(rich, subtype="html")
    return message
