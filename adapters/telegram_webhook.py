"""The Telegram webhook endpoint of careerbot's web app.

Telegram sends each update as a POST with the ``secret_token`` given to
setWebhook in the ``X-Telegram-Bot-Api-Secret-Token`` header. A request
without the right secret gets 403 and is not read. An update that
python-telegram-bot cannot parse is logged and acknowledged, because Telegram
would otherwise send it again and again. The update is handled and
its replies sent before the response, so a 200 means done. A request that
times out on Telegram's side is sent again, and the core's dedupe on the
update id makes the repeat change nothing. When the database failed while
the update was handled, the response is 503, so Telegram sends it again.
With ``job_queue: procrastinate`` a 200 means the update and its replies are
committed, and a ``careerbot worker`` job sends the replies.

The bot is initialised (getMe) and the outbox poller started on the first
accepted request, because route providers have no startup hook.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from telegram import Update

if TYPE_CHECKING:
    from adapters.telegram import TelegramBot

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class TelegramWebhook:
    """A webhook endpoint that feeds updates to a :class:`~adapters.telegram.TelegramBot`."""

    def __init__(self, bot: TelegramBot, secret_token: str) -> None:
        assert secret_token, "the webhook needs a secret token"
        self.bot = bot
        self._secret = secret_token.encode()
        self._started = False
        self._start_lock = asyncio.Lock()

    def routes(self) -> list[Route]:
        return [Route(WEBHOOK_PATH, self.receive, methods=["POST"])]

    async def receive(self, request: Request) -> Response:
        supplied = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(supplied, self._secret):
            client = request.client.host if request.client else "-"
            logger.warning("telegram webhook request from %s rejected: wrong or missing secret token", client)
            return PlainTextResponse("forbidden", status_code=403)
        try:
            payload = await request.json()
        except ValueError:
            logger.warning("telegram webhook request rejected: the body is not JSON")
            return PlainTextResponse("invalid JSON", status_code=400)
        if not isinstance(payload, dict) or not isinstance(payload.get("update_id"), int):
            logger.warning("telegram webhook request rejected: the body is not an update")
            return PlainTextResponse("not an update", status_code=400)

        await self.start()
        try:
            update = Update.de_json(payload, self.bot.application.bot)
        except (KeyError, TypeError, ValueError) as exc:
            # Acknowledged all the same: Telegram would send the same update again and again.
            logger.warning("telegram update %s ignored: python-telegram-bot cannot read it (%s: %s)",
                           payload["update_id"], type(exc).__name__, exc)
            return Response(status_code=200)
        await self.bot.application.process_update(update)
        if self.bot.take_database_failure(update.update_id):
            # Telegram sends the update again later; the dedupe on its id keeps a repeat harmless.
            return PlainTextResponse("database unavailable", status_code=503)
        return Response(status_code=200)

    async def start(self) -> None:
        """Initialise the bot and start the outbox poller, once."""
        async with self._start_lock:
            if self._started:
                return
            await self.bot.application.initialize()
            await self.bot.on_startup(set_commands=False)
            self._started = True

    async def aclose(self) -> None:
        """Stop the outbox poller and close the bot's HTTP connections."""
        async with self._start_lock:
            if not self._started:
                return
            await self.bot.on_shutdown()
            await self.bot.application.shutdown()
            self._started = False
