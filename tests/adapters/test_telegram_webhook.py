"""The webhook endpoint's checks, its registration in careerbot's web app, and ``careerbot run telegram``."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from adapters import telegram as telegram_adapter
from adapters.telegram_webhook import SECRET_HEADER, WEBHOOK_PATH
from bot.cli import main as cli_main
from bot.config import ConfigError, load_settings
from bot.models import Learner
from bot.server import route_providers
from bot.web import create_app
from tests.adapters.telegram_harness import (  # noqa: F401 (fixtures)
    LEARNER,
    Harness,
    telegram,
    telegram_engine,
    telegram_settings,
    webhook,
)


def learner_count(engine) -> int:
    with engine.session_factory() as session:
        return session.scalar(select(func.count()).select_from(Learner))


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", "test-secret_0123456789x"])
async def test_webhook_rejects_wrong_secret(webhook: Harness, telegram_engine, secret):
    update = webhook.telegram.text_update(LEARNER, "/start")

    response = await webhook.telegram.post_webhook(update, webhook.client, secret=secret)

    assert response.status_code == 403
    assert webhook.telegram.sent == []
    assert learner_count(telegram_engine) == 0


async def test_webhook_accepts_right_secret(webhook: Harness, telegram_engine):
    update = webhook.telegram.text_update(LEARNER, "/start")

    response = await webhook.telegram.post_webhook(update, webhook.client)

    assert response.status_code == 200
    assert learner_count(telegram_engine) == 1
    assert webhook.telegram.webhook["url"] == "http://127.0.0.1:8080" + WEBHOOK_PATH
    assert webhook.telegram.webhook["allowed_updates"] == ["message", "edited_message", "callback_query", "my_chat_member"]


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"message": {}}', b'{"update_id": "7"}'])
async def test_webhook_rejects_non_update_body(webhook: Harness, telegram_engine, body):
    headers = {SECRET_HEADER: webhook.telegram.webhook["secret_token"], "Content-Type": "application/json"}

    response = await webhook.client.post(WEBHOOK_PATH, content=body, headers=headers)

    assert response.status_code == 400
    assert learner_count(telegram_engine) == 0


async def test_webhook_acknowledges_unreadable_update(webhook: Harness):
    update = webhook.telegram.text_update(LEARNER, "/start")
    update["message"]["from"] = {"first_name": "no id"}

    response = await webhook.telegram.post_webhook(update, webhook.client)

    assert response.status_code == 200
    assert webhook.telegram.sent == []


async def test_webhook_only_post(webhook: Harness):
    response = await webhook.client.get(WEBHOOK_PATH)

    assert response.status_code == 405


def test_route_providers_add_webhook_in_webhook_mode(telegram_settings, telegram_engine):
    webhook_settings = telegram_settings.model_copy(update={"telegram_mode": "webhook"})

    assert telegram_adapter.web_routes in route_providers(webhook_settings)
    assert telegram_adapter.web_routes not in route_providers(telegram_settings)
    assert telegram_adapter.web_routes not in route_providers(
        webhook_settings.model_copy(update={"telegram_token": None}))
    paths = [route.path for route in create_app(telegram_engine, [telegram_adapter.web_routes]).routes]
    assert WEBHOOK_PATH in paths


def test_web_routes_need_secret(telegram_settings, telegram_engine):
    telegram_engine.settings = telegram_settings.model_copy(update={"telegram_webhook_secret": None})

    with pytest.raises(ConfigError, match="telegram_webhook_secret"):
        telegram_adapter.web_routes(telegram_engine)


def test_main_refuses_without_token(tmp_path, capsys):
    settings = load_settings(environ={}, data_dir=tmp_path)

    assert telegram_adapter.main(settings) == 2

    error = capsys.readouterr().err
    assert "no Telegram bot token is configured" in error
    assert "CAREERBOT_TELEGRAM_TOKEN" in error


def test_cli_run_telegram_refuses_without_token(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CAREERBOT_TELEGRAM_TOKEN", raising=False)

    assert cli_main(["run", "telegram", "--data-dir", str(tmp_path)]) == 2

    assert "no Telegram bot token is configured" in capsys.readouterr().err


@pytest.mark.parametrize(("overrides", "problem"), [
    ({"telegram_mode": "hooks"}, "set it to 'polling' or 'webhook'"),
    ({"telegram_mode": "webhook"}, "webhook mode needs telegram_webhook_secret"),
    ({"telegram_mode": "webhook", "telegram_webhook_secret": "has spaces"}, "1 to 256 letters"),
])
def test_main_refuses_bad_mode_settings(tmp_path, capsys, overrides, problem):
    settings = load_settings(environ={}, data_dir=tmp_path, telegram_token="123:abc", **overrides)

    assert telegram_adapter.main(settings) == 2

    assert problem in capsys.readouterr().err
