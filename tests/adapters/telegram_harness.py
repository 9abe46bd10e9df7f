"""Fixtures that run the real Telegram adapter against the Bot API emulator.

Test modules import the fixtures they use from here. ``Harness.send`` delivers
one update and returns once the bot has handled it and sent its replies. In
polling mode it queues the update for getUpdates and waits until a handler in
a late handler group has seen it, because PTB runs an update's handler groups
in order. In webhook mode the POST returns when the update is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from telegram import Update
from telegram.ext import ContextTypes, TypeHandler

from adapters.telegram import PTB_TIMEDELTA, TelegramBot, register_webhook
from adapters.telegram_pacing import Pacer
from adapters.telegram_webhook import TelegramWebhook
from bot.app import build_engine
from bot.config import Settings, load_settings
from bot.engine import Engine
from bot.web import create_app
from tests.adapters.telegram_emulator import TOKEN, SentMessage, TelegramEmulator, User

LEARNER = User(100000002, "Ana", "Bo", "ana_bo")
SECOND_LEARNER = User(100000003, "Alex", "Doe", "alex_doe")
REVIEWER = User(200000001, "Rita", "Reviewer", "rita_r")
SECOND_REVIEWER = User(200000002, "Rui", "Reviewer", "rui_r")
OUTSIDER = User(300000001, "Olga", "Outsider", "olga_o")
REVIEWER_GROUP = -500000001
SUPERGROUP = -1001000000001
WEBHOOK_SECRET = "test-secret_0123456789"
RECORDER_GROUP = 99


def telegram_settings_for(telegram: TelegramEmulator, data_dir: Path, **overrides) -> Settings:
    values = dict(
        environ={},
        data_dir=data_dir,
        telegram_token=TOKEN,
        telegram_base_url=telegram.base_url,
        telegram_base_file_url=telegram.base_file_url,
        telegram_webhook_secret=WEBHOOK_SECRET,
        reviewers=(f"telegram:{REVIEWER.id}", f"telegram:{SECOND_REVIEWER.id}"),
        coordinators=(f"telegram:{REVIEWER.id}",),
        reviewer_chats={"telegram": str(REVIEWER_GROUP)},
    )
    values.update(overrides)
    return load_settings(**values)


async def wait_until(predicate, timeout: float = 10.0, step: float = 0.02):
    """Poll ``predicate`` until it is true, for state the emulator does not see (such as outbox rows)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := predicate()):
        if loop.time() > deadline:
            raise TimeoutError(f"condition still false after {timeout} s")
        await asyncio.sleep(step)
    return value


class Harness:
    """Drives one running TelegramBot: send updates, then read what the emulator recorded."""

    def __init__(self, telegram: TelegramEmulator, bot: TelegramBot, *, client: httpx.AsyncClient | None = None):
        self.telegram = telegram
        self.bot = bot
        self.client = client
        self.handled: set[int] = set()
        bot.application.add_handler(TypeHandler(Update, self._record), group=RECORDER_GROUP)

    async def _record(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.handled.add(update.update_id)
        self.telegram.notify()

    async def send(self, update: dict) -> None:
        """Deliver ``update`` and wait until the bot has handled it."""
        if self.client is not None:
            response = await self.telegram.post_webhook(update, self.client)
            assert response.status_code == 200, response.text
            return
        update_id = self.telegram.inject(update)
        await self.telegram.wait_for(lambda: update_id in self.handled)

    async def say(self, user: User, text: str, **options) -> list[SentMessage]:
        """``user`` types ``text``; return the messages the bot sent in reply (to any chat)."""
        before = len(self.telegram.sent)
        await self.send(self.telegram.text_update(user, text, **options))
        return self.telegram.sent[before:]

    async def press(self, user: User, message: SentMessage, data: str | None = None, *,
                    label: str | None = None) -> list[SentMessage]:
        before = len(self.telegram.sent)
        await self.send(self.telegram.press(user, message, data, label=label))
        return self.telegram.sent[before:]

    def last_to(self, user_or_chat: User | int) -> SentMessage:
        chat_id = user_or_chat.id if isinstance(user_or_chat, User) else user_or_chat
        return self.telegram.last_message(chat_id)


@pytest.fixture
async def telegram(monkeypatch) -> AsyncIterator[TelegramEmulator]:
    # As ``careerbot run telegram`` does: PTB 22 warns on every RetryAfter otherwise.
    monkeypatch.setenv(PTB_TIMEDELTA, "true")
    async with TelegramEmulator() as emulator:
        emulator.group(REVIEWER_GROUP)
        yield emulator


@pytest.fixture
def telegram_settings(telegram: TelegramEmulator, tmp_path: Path) -> Settings:
    return telegram_settings_for(telegram, tmp_path / "data")


@pytest.fixture
def telegram_engine(telegram_settings: Settings) -> Engine:
    built = build_engine(telegram_settings)
    yield built
    built.session_factory.kw["bind"].dispose()


@asynccontextmanager
async def running_polling(telegram: TelegramEmulator, engine: Engine) -> AsyncIterator[Harness]:
    """The bot in long-polling mode, with pacing off."""
    bot = TelegramBot(engine, pacer=Pacer.unlimited())
    harness = Harness(telegram, bot)
    async with bot.polling(poll_timeout=timedelta(seconds=1)):
        yield harness


@asynccontextmanager
async def running_webhook(telegram: TelegramEmulator, engine: Engine) -> AsyncIterator[Harness]:
    """The bot behind careerbot's ASGI app in webhook mode, reached through httpx's ASGI transport."""
    bot = TelegramBot(engine, pacer=Pacer.unlimited(), polling=False)
    endpoint = TelegramWebhook(bot, WEBHOOK_SECRET)
    app = create_app(engine, [lambda _: endpoint.routes()])
    await endpoint.start()
    await register_webhook(bot)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://careerbot.test") as client:
            yield Harness(telegram, bot, client=client)
    finally:
        await endpoint.aclose()


@pytest.fixture
async def polling(telegram: TelegramEmulator, telegram_engine: Engine) -> AsyncIterator[Harness]:
    async with running_polling(telegram, telegram_engine) as harness:
        yield harness


@pytest.fixture
async def webhook(telegram: TelegramEmulator, telegram_engine: Engine) -> AsyncIterator[Harness]:
    async with running_webhook(telegram, telegram_engine) as harness:
        yield harness


@pytest.fixture(params=["polling", "webhook"])
async def either_mode(request, telegram: TelegramEmulator, telegram_engine: Engine) -> AsyncIterator[Harness]:
    """The bot in long-polling mode, then in webhook mode."""
    running = running_polling if request.param == "polling" else running_webhook
    async with running(telegram, telegram_engine) as harness:
        yield harness
