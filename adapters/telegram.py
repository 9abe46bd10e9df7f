"""careerbot on Telegram, with python-telegram-bot (v22).

:class:`TelegramBot` registers PTB handlers that convert each update into a
core event (``adapters.telegram_convert``), hand it to ``Engine.handle`` in a
worker thread, and deliver what the core wrote to the outbox
(``adapters.telegram_delivery``). ``careerbot run telegram`` calls
:func:`main`: long polling in one process, or, with ``telegram_mode:
webhook``, registering the webhook and serving it from careerbot's web app
(:func:`web_routes`).

The handlers take private messages, button presses, group-to-supergroup
migrations, and changes of the bot's own membership (a learner blocking or
unblocking it). In groups they take only what is addressed to the bot:
commands for it and replies to its messages, which is also all that a bot in
privacy mode receives. Every other update is logged and ignored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.routing import Route
from telegram import BotCommand, CallbackQuery, Message, Update
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import BadRequest, InvalidToken, TelegramError
from telegram.ext import (
    Application,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    ChatMemberHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from adapters.telegram_convert import (
    PLATFORM,
    addressed_to_bot,
    callback_event,
    download,
    file_ref,
    has_content,
    message_event,
    update_kind,
)
from adapters.telegram_delivery import OutboxDelivery
from adapters.telegram_pacing import Pacer
from adapters.telegram_render import MAX_TEXT, escape, utf16_length
from adapters.telegram_send import TelegramSender
from adapters.telegram_webhook import WEBHOOK_PATH, TelegramWebhook
from bot import chats, commands
from bot.config import ConfigError, Settings
from bot.engine import Engine, HandledEvent
from bot.events import InboundEvent

logger = logging.getLogger(__name__)

ALLOWED_UPDATES = [Update.MESSAGE, Update.EDITED_MESSAGE, Update.CALLBACK_QUERY, Update.MY_CHAT_MEMBER]
POLL_TIMEOUT = timedelta(seconds=30)
MAX_CONCURRENT_UPDATES = 32
SECRET_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
"""The characters and length that setWebhook allows in ``secret_token`` (Bot API reference)."""

PTB_TIMEDELTA = "PTB_TIMEDELTA"
DATABASE_ERRORS = (DBAPIError, SQLAlchemyTimeoutError)
"""Failures after which an update is worth handling again: the database was unreachable or busy."""

Context = ContextTypes.DEFAULT_TYPE


class ChatOrderedUpdateProcessor(BaseUpdateProcessor):
    """Handles updates of different chats concurrently, and the updates of one chat one at a time in order.

    A learner's messages must be handled in the order they were typed, but one
    learner need not wait for another's database transaction and replies.
    """

    def __init__(self, max_concurrent_updates: int = MAX_CONCURRENT_UPDATES) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int | None, asyncio.Lock] = {}
        self._users: dict[int | None, int] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        key = chat.id if chat is not None else None
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                await coroutine
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                del self._locks[key]

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


def build_application(settings: Settings, *, polling: bool = True) -> Application:
    """Build the PTB application for the configured token and Bot API URLs (no updater for webhooks)."""
    builder = (
        Application.builder()
        .token(settings.telegram_token)
        .base_url(settings.telegram_base_url)
        .base_file_url(settings.telegram_base_file_url)
        .concurrent_updates(ChatOrderedUpdateProcessor())
    )
    if not polling:
        builder = builder.updater(None)
    return builder.build()


class TelegramBot:
    """The PTB application with careerbot's handlers and the outbox delivery."""

    def __init__(self, engine: Engine, *, pacer: Pacer | None = None, polling: bool = True,
                 deliver: bool = True) -> None:
        if not engine.settings.telegram_token:
            raise ConfigError("no Telegram bot token is configured (telegram_token)")
        self.deliver = deliver
        """False when ``careerbot worker`` jobs send the outbox (``job_queue: procrastinate``)."""
        self._database_failures: set[int] = set()
        self.engine = engine
        self.application = build_application(engine.settings, polling=polling)
        self.sender = TelegramSender(self.application.bot, engine.session_factory, pacer or Pacer())
        self.delivery = OutboxDelivery(self.sender, engine.session_factory)
        self._add_handlers()

    def _add_handlers(self) -> None:
        application = self.application
        application.add_handler(CallbackQueryHandler(self.on_callback_query))
        application.add_handler(ChatMemberHandler(self.on_my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
        application.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, self.on_chat_migrated))
        application.add_handler(
            MessageHandler(filters.UpdateType.MESSAGE & filters.ChatType.PRIVATE, self.on_private_message)
        )
        application.add_handler(
            MessageHandler(filters.UpdateType.MESSAGE & filters.ChatType.GROUPS & filters.TEXT,
                           self.on_group_message)
        )
        application.add_handler(
            MessageHandler(filters.UpdateType.EDITED_MESSAGE & filters.ChatType.PRIVATE, self.on_private_edit)
        )
        application.add_handler(TypeHandler(Update, self.on_other_update))
        application.add_error_handler(self.on_error)

    # --- lifecycle ---------------------------------------------------------------------

    async def on_startup(self, application: Application | None = None, *, set_commands: bool = True) -> None:
        """Register the command menu and start delivering the outbox (PTB ``post_init``)."""
        if set_commands:
            await self.set_commands()
        if self.deliver:
            self.delivery.start()
            self.delivery.wake()

    async def on_shutdown(self, application: Application | None = None) -> None:
        await self.delivery.close()

    async def set_commands(self) -> None:
        """Send the command menu with setMyCommands; a failure is logged, and the bot runs without it."""
        menu = [BotCommand(name, self.engine.flows.texts(f"command_{name}")) for name in commands.MENU]
        try:
            await self.application.bot.set_my_commands(menu)
        except TelegramError as exc:
            logger.error("setMyCommands failed, so the command menu is not shown: %s", exc)
            return
        logger.info("command menu registered: %d commands", len(menu))

    @asynccontextmanager
    async def polling(self, *, poll_timeout: timedelta = POLL_TIMEOUT) -> AsyncIterator[TelegramBot]:
        """Run long polling inside an already running event loop until the block exits."""
        application = self.application
        async with application:
            await self.on_startup()
            await application.start()
            await application.updater.start_polling(timeout=poll_timeout, allowed_updates=ALLOWED_UPDATES)
            try:
                yield self
            finally:
                await application.updater.stop()
                await application.stop()
                await self.on_shutdown()

    # --- handlers ----------------------------------------------------------------------

    async def _handle(self, event: InboundEvent) -> HandledEvent:
        return await asyncio.to_thread(self.engine.handle, event)

    async def _deliver(self, handled: HandledEvent) -> None:
        if self.deliver:
            await self.delivery.deliver([message.chat_id for message in handled.messages], handled.outbox_ids)

    async def _deliver_chats(self, chat_ids: list[str]) -> None:
        if self.deliver:
            await self.delivery.deliver(chat_ids)

    async def on_private_message(self, update: Update, context: Context) -> None:
        """Handle a message in a private chat, from a learner or a staff member."""
        message = update.message
        if message.from_user is None or message.from_user.is_bot:
            logger.info("update %s from a bot ignored", update.update_id)
            return
        if not has_content(message):
            logger.debug("service message in update %s ignored", update.update_id)
            return
        ref = file_ref(message)
        attachment = await download(context.bot, ref) if ref is not None else None
        handled = await self._handle(message_event(update, message, attachment))
        await self._deliver(handled)

    async def on_private_edit(self, update: Update, context: Context) -> None:
        """Pass an edited private message to the core, which replies that the edit changed nothing."""
        message = update.edited_message
        if message.from_user is None or message.from_user.is_bot:
            logger.info("edit from a bot in update %s ignored", update.update_id)
            return
        handled = await self._handle(message_event(update, message, edited=True))
        await self._deliver(handled)

    async def on_group_message(self, update: Update, context: Context) -> None:
        """Handle a group text that is a command for the bot or a reply to the bot; ignore the rest."""
        message = update.message
        if message.from_user is None or message.from_user.is_bot:
            return
        if not addressed_to_bot(message, context.bot.id, context.bot.username):
            logger.debug("group message in update %s is not for the bot", update.update_id)
            return
        handled = await self._handle(message_event(update, message))
        await self._deliver(handled)

    async def on_callback_query(self, update: Update, context: Context) -> None:
        """Handle a button press; an ephemeral reply from the core becomes the answerCallbackQuery text."""
        query = update.callback_query
        event = callback_event(update, query)
        if event is None:
            logger.info("button press without data in update %s ignored", update.update_id)
            await self.sender.answer_callback(query)
            return
        self.sender.open_callback(event.chat_id, event.user_id, query)
        try:
            handled = await self._handle(event)
            if event.chat_type == "private":
                await self._show_choice(query, accepted=not handled.action_expired)
            await self._deliver(handled)
        finally:
            if self.sender.take_callback(event.chat_id, event.user_id, query):
                await self.sender.answer_callback(query)

    async def _show_choice(self, query: CallbackQuery, *, accepted: bool = True) -> None:
        """Remove the keyboard of a pressed message, so it cannot be pressed again, and add the chosen label.

        A press that chose nothing (``accepted`` false, the button was for a step
        already done) only loses the keyboard.
        """
        message = query.message
        chat_id = str(message.chat.id)
        bot = self.application.bot
        await self.sender.pacer.wait(chat_id)
        try:
            if not isinstance(message, Message) or message.reply_markup is None or not accepted:
                await bot.edit_message_reply_markup(chat_id=chat_id, message_id=message.message_id, reply_markup=None)
                return
            label = next((button.text for row in message.reply_markup.inline_keyboard for button in row
                          if button.callback_data == query.data), None)
            chosen = self.engine.flows.texts("button_chosen", choice=label) if label else ""
            if not message.text or not chosen or utf16_length(message.text) + 2 + utf16_length(chosen) > MAX_TEXT:
                await bot.edit_message_reply_markup(chat_id=chat_id, message_id=message.message_id, reply_markup=None)
                return
            await bot.edit_message_text(f"{message.text_html}\n\n{escape(chosen)}", chat_id=chat_id,
                                        message_id=message.message_id, parse_mode=ParseMode.HTML)
        except BadRequest as exc:
            if "message is not modified" not in exc.message.lower():
                logger.warning("keyboard of message %s in telegram:%s not removed: %s", message.message_id,
                               chat_id, exc.message)
        except TelegramError as exc:
            logger.warning("keyboard of message %s in telegram:%s not removed: %s", message.message_id, chat_id, exc)

    async def on_my_chat_member(self, update: Update, context: Context) -> None:
        """Mark a learner who blocked the bot unreachable (reachable after unblocking); log group changes."""
        change = update.my_chat_member
        chat = change.chat
        status = change.new_chat_member.status
        if chat.type == ChatType.PRIVATE:
            # In a private chat, the chat id is the user's id.
            user_id = str(chat.id)
            if status == ChatMemberStatus.BANNED:
                await asyncio.to_thread(chats.mark_unreachable, self.engine.session_factory, PLATFORM, user_id)
            elif status == ChatMemberStatus.MEMBER:
                await asyncio.to_thread(chats.mark_reachable, self.engine.session_factory, PLATFORM, user_id)
                await self._deliver_chats([user_id])
            return
        if status in (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED):
            logger.warning("the bot was removed from telegram:%s (%s)", chat.id, chat.title or chat.type)
        else:
            logger.info("the bot is now %s in telegram:%s (%s)", status, chat.id, chat.title or chat.type)

    async def on_chat_migrated(self, update: Update, context: Context) -> None:
        """Store the new id of a group that became a supergroup, and send what waits for it there."""
        message = update.message
        if message.migrate_to_chat_id is not None:
            old_chat_id, new_chat_id = message.chat.id, message.migrate_to_chat_id
        else:
            old_chat_id, new_chat_id = message.migrate_from_chat_id, message.chat.id
        await asyncio.to_thread(chats.record_migration, self.engine.session_factory, PLATFORM, str(old_chat_id),
                                str(new_chat_id))
        await self._deliver_chats([str(new_chat_id)])

    def take_database_failure(self, update_id: int) -> bool:
        """True (once) when handling ``update_id`` failed on the database, so Telegram should send it again."""
        if update_id in self._database_failures:
            self._database_failures.discard(update_id)
            return True
        return False

    async def on_other_update(self, update: object, context: Context) -> None:
        """Log and ignore group edits, channel posts, group messages that are not text, and the rest."""
        if isinstance(update, Update):
            level = logging.DEBUG if update.message is not None else logging.INFO
            logger.log(level, "update %s (%s) ignored", update.update_id, update_kind(update))

    async def on_error(self, update: object, context: Context) -> None:
        update_id = update.update_id if isinstance(update, Update) else "-"
        if isinstance(update, Update) and isinstance(context.error, DATABASE_ERRORS):
            self._database_failures.add(update.update_id)
        logger.error("handling telegram update %s failed", update_id, exc_info=context.error)


# --- entry points ------------------------------------------------------------------------


def config_problem(settings: Settings) -> str | None:
    """Say what keeps the Telegram adapter from starting with ``settings``, or None."""
    if not settings.telegram_token:
        return ("no Telegram bot token is configured; set CAREERBOT_TELEGRAM_TOKEN (or telegram_token in the "
                "configuration file) to the token @BotFather gave you")
    if settings.telegram_mode not in ("polling", "webhook"):
        return f"telegram_mode is {settings.telegram_mode!r}; set it to 'polling' or 'webhook'"
    if settings.telegram_mode == "webhook":
        secret = settings.telegram_webhook_secret or ""
        if not SECRET_TOKEN_PATTERN.fullmatch(secret):
            return ("webhook mode needs telegram_webhook_secret (CAREERBOT_TELEGRAM_WEBHOOK_SECRET): "
                    "1 to 256 letters, digits, '_' or '-'")
    return None


def web_routes(engine: Engine) -> list[Route]:
    """Build the webhook route for ``careerbot serve`` (a ``bot.web.RouteProvider``).

    Raises:
        ConfigError: the token or the webhook secret is missing or invalid.
    """
    settings = engine.settings
    problem = config_problem(settings.model_copy(update={"telegram_mode": "webhook"}))
    if problem is not None:
        raise ConfigError(problem)
    bot = TelegramBot(engine, polling=False, deliver=settings.outbox_delivered_in_process)
    webhook = TelegramWebhook(bot, settings.telegram_webhook_secret)
    return webhook.routes()


def main(settings: Settings) -> int:
    """``careerbot run telegram``: poll, or register the webhook and serve it; return the exit code."""
    problem = config_problem(settings)
    if problem is not None:
        print(f"careerbot: {problem}", file=sys.stderr)
        return 2
    # Opt in to the timedelta time periods that PTB 23 makes the default.
    # Without it, PTB 22 warns each time it raises RetryAfter on a 429.
    os.environ.setdefault(PTB_TIMEDELTA, "true")
    from bot.app import build_engine

    engine = build_engine(settings)
    try:
        if settings.telegram_mode == "webhook":
            return _run_webhook(engine)
        return _run_polling(engine)
    except InvalidToken:
        print("careerbot: Telegram rejected the bot token; check telegram_token", file=sys.stderr)
        return 1


def _run_polling(engine: Engine) -> int:
    bot = TelegramBot(engine)
    bot.application.post_init = bot.on_startup
    bot.application.post_shutdown = bot.on_shutdown
    logger.info("telegram: long polling %s", engine.settings.telegram_base_url.split("/bot")[0])
    bot.application.run_polling(allowed_updates=ALLOWED_UPDATES, timeout=POLL_TIMEOUT)
    return 0


def webhook_url(settings: Settings) -> str:
    return settings.public_base_url.rstrip("/") + WEBHOOK_PATH


async def register_webhook(bot: TelegramBot) -> None:
    """Send the command menu, and setWebhook with the public URL and the secret (the bot must be initialised)."""
    settings = bot.engine.settings
    await bot.set_commands()
    await bot.application.bot.set_webhook(webhook_url(settings), secret_token=settings.telegram_webhook_secret,
                                          allowed_updates=ALLOWED_UPDATES)
    logger.info("telegram: webhook registered at %s", webhook_url(settings))


def _run_webhook(engine: Engine) -> int:
    from bot.server import serve

    async def register() -> None:
        bot = TelegramBot(engine, polling=False)
        async with bot.application:
            await register_webhook(bot)

    asyncio.run(register())
    return serve(engine.settings)
