"""Email through a loopback SMTP server, and the evaluation link sent by email."""

from __future__ import annotations

import logging

import pytest

from bot.app import build_engine
from bot.config import load_settings
from bot.mailer import EmailError, send_email
from tests.bot.scripted import Chat
from tests.bot.smtp_sink import free_port, smtp_sink  # noqa: F401 (a fixture)
from tests.bot.supervisor_steps import SUPERVISOR, load_requests, request_link


def settings_with(tmp_path, **values):
    return load_settings(environ={}, data_dir=tmp_path / "data", **values)


@pytest.fixture
def mail_engine(tmp_path, smtp_sink):
    engine = build_engine(settings_with(tmp_path, smtp_url=smtp_sink.url, smtp_from="careers@uni.example"))
    yield engine
    engine.session_factory.kw["bind"].dispose()


def test_send_email_delivers(tmp_path, smtp_sink):
    settings = settings_with(tmp_path, smtp_url=smtp_sink.url, smtp_from="careers@uni.example")

    send_email(settings, "maria@acme.example", "Maria Lopez", "Hello", "Body text\n")

    [message] = smtp_sink.messages
    assert message["To"] == "Maria Lopez <maria@acme.example>"
    assert message["From"] == "careers@uni.example"
    assert message["Subject"] == "Hello"
    assert message.get_content().strip() == "Body text"
    assert smtp_sink.recipients == [["maria@acme.example"]]


def test_send_email_logs_in(tmp_path, smtp_sink):
    send_email(settings_with(tmp_path, smtp_url=smtp_sink.url_with_login), "a@b.example", "A", "S", "B")

    assert len(smtp_sink.messages) == 1


def test_send_email_wrong_password_fails(tmp_path, smtp_sink):
    url = smtp_sink.url_with_login.replace("s3cret", "wrong")

    with pytest.raises(EmailError) as failure:
        send_email(settings_with(tmp_path, smtp_url=url), "a@b.example", "A", "S", "B")

    assert "wrong" not in str(failure.value)
    assert smtp_sink.messages == []


def test_send_email_folds_line_breaks_in_headers(tmp_path, smtp_sink):
    settings = settings_with(tmp_path, smtp_url=smtp_sink.url)

    send_email(settings, "a@b.example", "Maria\r\nBcc: x@evil.example", "Hi\nBcc: y@evil.example", "B")

    [message] = smtp_sink.messages
    assert message["Bcc"] is None
    assert message["Subject"] == "Hi Bcc: y@evil.example"
    assert smtp_sink.recipients == [["a@b.example"]]


def test_send_email_without_server_fails(tmp_path):
    with pytest.raises(EmailError, match="no SMTP server"):
        send_email(settings_with(tmp_path), "a@b.example", "A", "S", "B")


def test_send_email_unreachable_server_fails(tmp_path):
    settings = settings_with(tmp_path, smtp_url=f"smtp://user:topsecret@127.0.0.1:{free_port()}")

    with pytest.raises(EmailError) as failure:
        send_email(settings, "a@b.example", "A", "S", "B")

    assert "topsecret" not in str(failure.value)
    assert "127.0.0.1" in str(failure.value)


@pytest.mark.parametrize("url", ["http://mail.example", "smtp://", "smtp://host:notaport", "mail.example:25"])
def test_invalid_smtp_url_rejected(tmp_path, url):
    from bot.config import ConfigError

    with pytest.raises(ConfigError, match="smtp_url"):
        settings_with(tmp_path, smtp_url=url)


def test_link_emailed_to_supervisor(mail_engine, smtp_sink):
    chat = Chat(mail_engine, "ana")
    token = request_link(chat)

    assert "I'm also emailing the link to maria.lopez@acme.example." in chat.joined()
    [message] = smtp_sink.messages
    assert message["To"] == f"{SUPERVISOR['name']} <{SUPERVISOR['email']}>"
    assert message["Subject"] == "Please evaluate Ana's work at Acme Logistics"
    body = message.get_content()
    assert f"{mail_engine.settings.public_base_url}/evaluate/{token}" in body
    assert "Dear Maria Lopez," in body
    [request] = load_requests(mail_engine)
    assert request.emailed_at is not None


def test_link_email_failure_keeps_link(tmp_path, caplog):
    engine = build_engine(settings_with(tmp_path, smtp_url=f"smtp://127.0.0.1:{free_port()}"))
    chat = Chat(engine, "ana")

    with caplog.at_level(logging.ERROR, logger="bot.evaluation_requests"):
        token = request_link(chat)

    [request] = load_requests(engine)
    assert request.status == "pending"
    assert request.emailed_at is None
    assert "sending email through 127.0.0.1" in caplog.text
    assert token not in caplog.text
    engine.session_factory.kw["bind"].dispose()


def test_no_email_without_server(engine):
    chat = Chat(engine, "ana")
    request_link(chat)

    assert "emailing" not in chat.joined()
    assert load_requests(engine)[0].emailed_at is None
