"""Plain-text email through the SMTP server in ``settings.smtp_url``.

careerbot sends email only when that setting is given. The URL's scheme picks
the connection: ``smtp://`` plain (for a relay on the same host or network),
``smtp+starttls://`` upgraded with STARTTLS, ``smtps://`` TLS from the start.
A user name and password in the URL log in to the server.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from bot.config import Settings

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class EmailError(Exception):
    """The message could not be handed to the mail server; the message names the server, never the password."""


def _header_text(value: str) -> str:
    """Fold line breaks and other whitespace runs into single spaces, as a header value needs."""
    return re.sub(r"\s+", " ", value).strip()


def build_message(sender: str, to_address: str, to_name: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    local, _, domain = to_address.rpartition("@")
    message["From"] = sender
    message["To"] = Address(display_name=_header_text(to_name), username=local, domain=domain)
    message["Subject"] = _header_text(subject)
    message.set_content(body)
    return message


def send_email(settings: Settings, to_address: str, to_name: str, subject: str, body: str) -> None:
    """Send one plain-text email.

    Raises:
        EmailError: no server is configured, or the server could not be reached or refused the message.
    """
    if settings.smtp_url is None:
        raise EmailError("no SMTP server is configured (smtp_url)")
    parts = urlsplit(settings.smtp_url)
    host = parts.hostname
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    sender = settings.smtp_from or settings.issuer_email

    try:
        message = build_message(sender, to_address, to_name, subject, body)
        if parts.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT_SECONDS,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, port, timeout=TIMEOUT_SECONDS)
        with client:
            if parts.scheme == "smtp+starttls":
                client.starttls(context=ssl.create_default_context())
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)
    except (OSError, smtplib.SMTPException, ValueError) as exc:  # ValueError: an address a header cannot hold
        raise EmailError(f"sending email through {host}:{port} failed: {type(exc).__name__}: {exc}") from None
    logger.info("email sent through %s:%d", host, port)
