"""Sending one outbox message through the Bot API, and what each Telegram error means for it.

:meth:`TelegramSender.send` makes the calls for one message (its text parts,
its keyboard, its document, an edit, or a callback answer), marks the outbox
row, and returns a :class:`Sent` that tells the delivery whether to go on with
the chat:

- 429 ``retry_after``: the row is retried after that delay and the chat waits
  as long; the message is never dropped.
- 403 (blocked, kicked, deactivated): the row fails and its learner is marked unreachable.
- ``ChatMigrated``: the new chat id is stored, the waiting rows move there,
  and they are sent again to the new chat.
- 400 "message is not modified" on an edit is success; an edit whose message
  is gone is sent as a new message; any other 400 fails the row.
- A network error or time-out retries the row after a short delay.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy.orm import Session, sessionmaker
from telegram import Bot, CallbackQuery, Message, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter
from telegram.warnings import PTBDeprecationWarning

from adapters.telegram_convert import PLATFORM
from adapters.telegram_pacing import Pacer
from adapters.telegram_render import (
    MAX_CALLBACK_ANSWER,
    MAX_CAPTION,
    escape,
    force_reply,
    inline_keyboard,
    split_text,
    truncate,
    utf16_length,
    with_mention,
)
from bot import chats, outbox
from bot.events import Document, OutboundMessage

logger = logging.getLogger(__name__)

T = TypeVar("T")

NETWORK_RETRY_SECONDS = 5.0
"""The first wait after a network error. It doubles with each failed try of the same message."""
NETWORK_RETRY_MAX_SECONDS = 300.0
EDIT_FALLBACK_REASONS = (
    "message to edit not found",
    "message can't be edited",
    "there is no text in the message to edit",
)
"""400 descriptions after which an edit is sent as a new message instead."""


@dataclass(frozen=True)
class Sent:
    """The outcome of sending one outbox row.

    ``deferred`` rows stay pending: the chat waits ``hold_seconds`` (a rate
    limit or a network error) or its rows now belong to ``moved_to``. After
    ``blocked`` the chat's other rows stay pending too, and the outbox does not
    return them while the learner is unreachable.
    """

    status: Literal["sent", "failed", "blocked", "deferred"]
    hold_seconds: float = 0.0
    moved_to: str | None = None


def retry_after_seconds(error: RetryAfter) -> float:
    """Read ``retry_after`` as seconds under either of PTB 22's int and timedelta modes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramSender:
    """Makes the Bot API calls for outbox messages and records each outcome in the outbox."""

    def __init__(self, bot: Bot, factory: sessionmaker[Session], pacer: Pacer) -> None:
        self.bot = bot
        self.factory = factory
        self.pacer = pacer
        self._callbacks: dict[tuple[str, str], list[CallbackQuery]] = {}
        """Presses not answered yet, oldest first, per (chat id, user id): a user can press two buttons at once."""

    # --- callback queries waiting for an answer --------------------------------------

    def open_callback(self, chat_id: str, user_id: str, query: CallbackQuery) -> None:
        """Keep ``query`` so that an ephemeral reply to this user in this chat answers it."""
        self._callbacks.setdefault((chat_id, user_id), []).append(query)

    def take_callback(self, chat_id: str, user_id: str, query: CallbackQuery) -> bool:
        """Forget ``query``; True when no ephemeral reply has answered it yet."""
        waiting = self._callbacks.get((chat_id, user_id), [])
        if query not in waiting:
            return False
        waiting.remove(query)
        if not waiting:
            del self._callbacks[(chat_id, user_id)]
        return True

    def _next_callback(self, chat_id: str, user_id: str) -> CallbackQuery | None:
        """Take the oldest press of this user in this chat that no reply has answered yet."""
        waiting = self._callbacks.get((chat_id, user_id))
        if not waiting:
            return None
        query = waiting.pop(0)
        if not waiting:
            del self._callbacks[(chat_id, user_id)]
        return query

    async def answer_callback(self, query: CallbackQuery, text: str | None = None) -> bool:
        """Answer a button press, with ``text`` as an alert; False when Telegram no longer accepts it."""
        try:
            await self.bot.answer_callback_query(query.id, text=truncate(text, MAX_CALLBACK_ANSWER) if text else None,
                                                 show_alert=bool(text))
        except BadRequest as exc:
            # "query is too old and response timeout expired or query id is invalid"
            logger.warning("answerCallbackQuery for query %s failed: %s", query.id, exc.message)
            return False
        return True

    # --- one outbox row -------------------------------------------------------------

    async def _db(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(function, self.factory, *args, **kwargs)

    async def send(self, outbox_id: int, message: OutboundMessage) -> Sent:
        """Deliver one outbox row and mark it sent, failed or to be retried."""
        try:
            message_id = await self._deliver(message)
        except RetryAfter as exc:
            delay = retry_after_seconds(exc)
            await self._db(outbox.mark_retry, outbox_id, delay, f"429: {exc.message}", keep_queued=True)
            return Sent("deferred", hold_seconds=delay)
        except ChatMigrated as exc:
            new_chat_id = str(exc.new_chat_id)
            await self._db(chats.record_migration, PLATFORM, message.chat_id, new_chat_id)
            return Sent("deferred", moved_to=new_chat_id)
        except Forbidden as exc:
            await self._db(outbox.mark_failed, outbox_id, f"403: {exc.message}", unreachable=True)
            return Sent("blocked")
        except BadRequest as exc:
            await self._db(outbox.mark_failed, outbox_id, f"400: {exc.message}")
            return Sent("failed")
        except NetworkError as exc:
            # Kept queued: an outage ends, and giving up would lose the message.
            delay = await self._db(outbox.mark_retry, outbox_id, NETWORK_RETRY_SECONDS, f"network: {exc.message}",
                                   keep_queued=True, backoff_max_seconds=NETWORK_RETRY_MAX_SECONDS)
            return Sent("deferred", hold_seconds=delay)

        await self._db(outbox.mark_sent, outbox_id, message_id)
        logger.info("outbox %s sent to telegram:%s as message %s (%s)", outbox_id, message.chat_id, message_id,
                    message.kind)
        return Sent("sent")

    async def _deliver(self, message: OutboundMessage) -> str | None:
        """Make the API calls for ``message``; return the id of the message that carries its buttons."""
        if message.ephemeral_user is not None:
            query = self._next_callback(message.chat_id, message.ephemeral_user)
            if query is not None and await self.answer_callback(query, message.text):
                return None
        if message.edit_ref is not None:
            return await self._edit(message)
        return await self._send_new(message)

    async def _send_new(self, message: OutboundMessage) -> str | None:
        chat_id = message.chat_id
        markup = inline_keyboard(message.buttons)
        reply_from = message.extra.get("reply_from_user_id")
        if markup is None and reply_from is not None:
            markup = force_reply()
        document = await self._document_bytes(message.document)

        if document is not None and message.ref is None and utf16_length(message.text) <= MAX_CAPTION:
            caption = self._html(message, message.text) if message.text.strip() else None
            sent = await self._send_document(chat_id, message.document, document, caption=caption, markup=markup)
            return str(sent.message_id)

        last: Message | None = None
        parts = split_text(message.text)
        for index, part in enumerate(parts):
            html = self._html(message, part) if index == 0 else escape(part)
            last = await self._send_text(chat_id, html, part, markup if index == len(parts) - 1 else None)
        if document is not None:
            await self._send_document(chat_id, message.document, document,
                                      reply_to=last.message_id if last is not None else None)
        return str(last.message_id) if last is not None else None

    @staticmethod
    def _html(message: OutboundMessage, text: str) -> str:
        reply_from = message.extra.get("reply_from_user_id")
        if reply_from is None:
            return escape(text)
        return with_mention(text, str(reply_from), str(message.extra.get("reply_from_name") or reply_from))

    async def _send_text(self, chat_id: str, html: str, plain: str, markup) -> Message:
        try:
            async with self.pacer.slot(chat_id):
                return await self.bot.send_message(chat_id, html, parse_mode=ParseMode.HTML, reply_markup=markup)
        except BadRequest as exc:
            if "can't parse entities" not in exc.message.lower():
                raise
        # Escaping makes this unreachable for text the core wrote; sending plain
        # text keeps the message readable if a future template breaks it.
        logger.error("telegram:%s rejected the HTML of a message (%s); sending it as plain text", chat_id,
                     "can't parse entities")
        async with self.pacer.slot(chat_id):
            return await self.bot.send_message(chat_id, plain, reply_markup=markup)

    async def _document_bytes(self, document: Document | None) -> bytes | None:
        """Read the file to send; a stored file that is gone is logged and left out."""
        if document is None:
            return None
        if document.content is not None:
            return document.content
        if document.path is None:
            return None
        try:
            return await asyncio.to_thread(Path(document.path).read_bytes)
        except OSError as exc:
            logger.error("file %s for %s is not readable (%s); the message goes without it", document.path,
                         document.filename, type(exc).__name__)
            return None

    async def _send_document(self, chat_id: str, document: Document, content: bytes, *, caption: str | None = None,
                             markup=None, reply_to: int | None = None) -> Message:
        reply = ReplyParameters(message_id=reply_to, allow_sending_without_reply=True) if reply_to else None
        async with self.pacer.slot(chat_id):
            return await self.bot.send_document(chat_id, document=content, filename=document.filename,
                                                caption=caption, parse_mode=ParseMode.HTML if caption else None,
                                                reply_markup=markup, reply_parameters=reply)

    async def _edit(self, message: OutboundMessage) -> str | None:
        """Replace the text and buttons of the message sent with ``edit_ref``, or send anew when it cannot be edited."""
        target = await self._db(outbox.message_id_for_ref, PLATFORM, message.edit_ref)
        if target is None or target[0] != message.chat_id:
            # Never sent, or sent to a chat that has since moved to a new id.
            return await self._send_new(message)
        chat_id, message_id = target
        parts = split_text(message.text)
        # NOTE: a text longer than one message replaces only the last message
        # of the original; the earlier parts keep their text.
        text = parts[-1] if parts else message.text
        try:
            async with self.pacer.slot(chat_id):
                await self.bot.edit_message_text(escape(text), chat_id=chat_id, message_id=int(message_id),
                                                 parse_mode=ParseMode.HTML,
                                                 reply_markup=inline_keyboard(message.buttons))
        except BadRequest as exc:
            reason = exc.message.lower()
            if "message is not modified" in reason:
                return message_id
            if not any(fallback in reason for fallback in EDIT_FALLBACK_REASONS):
                raise
            logger.warning("message %s in telegram:%s cannot be edited (%s); sending a new one", message_id,
                           chat_id, exc.message)
            return await self._send_new(message)
        return message_id
