"""A network error on a Telegram send keeps the message queued and waits longer after each failure.

The Bot API emulator is stopped after the bot starts, so every call meets a
closed loopback port: a real connection error through PTB's HTTP client.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import insert, select

from adapters.telegram import TelegramBot
from adapters.telegram_pacing import Pacer
from adapters.telegram_send import NETWORK_RETRY_MAX_SECONDS, NETWORK_RETRY_SECONDS
from bot.events import OutboundMessage
from bot.models import OutboxMessage
from tests.adapters.telegram_emulator import User
from tests.adapters.telegram_harness import telegram, telegram_engine, telegram_settings  # noqa: F401 (fixtures)

LEARNER = User(5001, "Ana", "Silva")


def add_row(engine) -> tuple[int, OutboundMessage]:
    message = OutboundMessage(platform="telegram", chat_id=str(LEARNER.id), text="Your pathway is ready.")
    now = datetime.now(timezone.utc)
    with engine.session_factory() as session, session.begin():
        outbox_id = session.scalar(insert(OutboxMessage).returning(OutboxMessage.id), {
            "platform": "telegram", "chat_id": message.chat_id, "kind": "reply", "payload": message.to_payload(),
            "status": "pending", "attempts": 0, "created_at": now, "available_at": now})
    return outbox_id, message


def load_row(engine, outbox_id: int) -> OutboxMessage:
    with engine.session_factory() as session:
        return session.scalar(select(OutboxMessage).where(OutboxMessage.id == outbox_id))


async def test_network_error_backs_off(telegram, telegram_engine):
    bot = TelegramBot(telegram_engine, pacer=Pacer.unlimited(), polling=False)
    await bot.application.initialize()
    outbox_id, message = add_row(telegram_engine)
    await telegram.stop()

    holds = []
    for _ in range(8):
        result = await bot.sender.send(outbox_id, message)
        assert result.status == "deferred"
        holds.append(result.hold_seconds)
    await bot.application.shutdown()

    assert holds == [min(NETWORK_RETRY_SECONDS * 2 ** attempt, NETWORK_RETRY_MAX_SECONDS) for attempt in range(8)]
    row = load_row(telegram_engine, outbox_id)
    assert row.status == "pending"
    assert row.attempts == 8
    assert row.last_error.startswith("network: ")
