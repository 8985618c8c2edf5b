"""Delivery through SMTP, configured by ``RELUTH_SMTP_URL``: ``smtp://[user:password@]host[:port]``
(STARTTLS when the server offers it and credentials are given) or ``smtps://`` (implicit TLS,
port 465 by default). No other network access."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from reluth.errors import ValidationError
from reluth.i18n import N_


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None
    sender: str
    timeout_s: float = 20.0


def parse_url(url: str, sender: str) -> SmtpConfig:
    """The SMTP server of a ``smtp://`` or ``smtps://`` URL (ValidationError naming it)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValidationError(
            "RELUTH_SMTP_URL",
            f"{parts.scheme or url!r}",
            "smtp://user:password@host:587 or smtps://…",
            code="not_an_smtp_url",
            params={"value": parts.scheme or url},
        )
    tls = parts.scheme == "smtps"
    try:
        port = parts.port or (465 if tls else 25)
    except ValueError:
        raise ValidationError("RELUTH_SMTP_URL", N_("bad port"), "1-65535") from None
    return SmtpConfig(
        host=parts.hostname,
        port=port,
        implicit_tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        sender=sender,
    )


def send(config: SmtpConfig, to: str, subject: str, body: str) -> None:
    """Send one plain-text message (raises OSError / smtplib.SMTPException on failure)."""
    msg = EmailMessage()
    msg["From"] = config.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    context = ssl.create_default_context()
    if config.implicit_tls:
        with smtplib.SMTP_SSL(
            config.host, config.port, timeout=config.timeout_s, context=context
        ) as smtp:
            if config.username:
                smtp.login(config.username, config.password or "")
            smtp.send_message(msg)
        return
    with smtplib.SMTP(config.host, config.port, timeout=config.timeout_s) as smtp:
        smtp.ehlo()
        if smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
        if config.username:
            smtp.login(config.username, config.password or "")
        smtp.send_message(msg)
