"""Outbox drains for the ``deliver_outbox`` job: each sends a platform's due rows with its adapter's code.

A drain is created once per ``careerbot worker`` process (``bot.jobs``) and
reuses the platform client between jobs. It sends through the same classes
as the adapter's own delivery loop of a single process: Telegram's
:class:`~adapters.telegram_delivery.OutboxDelivery` (one task per chat,
:class:`~adapters.telegram_pacing.Pacer` for Telegram's rate limits) and
Slack's :class:`~adapters.slack_delivery.Delivery`. The job holds the
platform's advisory lock while a drain runs, so one drain per platform sends
at a time across all workers.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_delivery import Delivery
from adapters.slack_directory import SlackDirectory
from adapters.telegram import build_application
from adapters.telegram_delivery import OutboxDelivery
from adapters.telegram_pacing import Pacer
from adapters.telegram_send import TelegramSender
from bot import outbox
from bot.engine import Engine

logger = logging.getLogger(__name__)

CLAIM_BATCH = 500
PASS_TIMEOUT_SECONDS = 300.0
"""Maximum seconds one pass waits for its rows, because a chat task that died on a database error never reports back."""


def _unpaced() -> Pacer:
    return Pacer(overall_per_second=None, private_per_second=None, group_per_minute=None)


class TelegramDrain:
    """Sends the due Telegram rows chat by chat, in outbox order, within Telegram's rate limits."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.factory = engine.session_factory
        self.application = build_application(engine.settings, polling=False)
        pacer = Pacer() if engine.settings.telegram_rate_limits else _unpaced()
        self.sender = TelegramSender(self.application.bot, self.factory, pacer)
        self.delivery = OutboxDelivery(self.sender, self.factory)
        self._initialized = False

    async def drain(self) -> int:
        """Send every due row and return how many were handed to the chat queues.

        A deferred row waits for its retry time, and a row that fails is marked failed.
        """
        if not self._initialized:
            await self.application.bot.initialize()
            self._initialized = True
        handed_over: set[int] = set()
        while True:
            rows = await asyncio.to_thread(outbox.claim_pending, self.factory, "telegram", limit=CLAIM_BATCH,
                                           in_order=True)
            batch = [(outbox_id, message) for outbox_id, message in rows if outbox_id not in handed_over]
            if not batch:
                return len(handed_over)
            handed_over.update(outbox_id for outbox_id, _ in batch)
            try:
                await asyncio.wait_for(self.delivery.deliver([message.chat_id for _, message in batch],
                                                             [outbox_id for outbox_id, _ in batch]),
                                       PASS_TIMEOUT_SECONDS)
            except TimeoutError:
                # The next job starts with fresh chat queues and sends the rows that were not marked.
                await self.delivery.close()
                self.delivery = OutboxDelivery(self.sender, self.factory)
                raise

    async def aclose(self) -> None:
        await self.delivery.close()
        if self._initialized:
            await self.application.bot.shutdown()
            self._initialized = False


class SlackDrain:
    """Sends the due Slack rows with the adapter's :class:`~adapters.slack_delivery.Delivery`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session: aiohttp.ClientSession | None = None
        self.delivery: Delivery | None = None

    async def drain(self) -> int:
        if self.delivery is None:
            settings = self.engine.settings
            self._session = aiohttp.ClientSession()
            client = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_base_url,
                                    session=self._session)
            self.delivery = Delivery(self.engine, client, SlackDirectory(client))
        return await self.delivery.deliver_pending()

    async def aclose(self) -> None:
        if self.delivery is not None:
            await self.delivery.aclose()
            self.delivery = None
        if self._session is not None:
            await self._session.close()
            self._session = None
