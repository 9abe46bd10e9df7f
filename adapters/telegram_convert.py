"""Telegram updates to core events: pure converters, plus the file download for attachments.

Only the ``Update`` parts careerbot reads are converted: private messages
(text, ``/start`` with its deep-link parameter, documents and photos, any
other content as an unsupported message), group messages addressed to the
bot, and button presses. The adapter decides which updates reach these
functions, and no rule about learners or reviews is applied here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from telegram import Bot, CallbackQuery, Chat, Message, MessageEntity, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, TelegramError

from bot.events import Attachment, InboundEvent

logger = logging.getLogger(__name__)

PLATFORM = "telegram"
DOWNLOAD_LIMIT = 20 * 1024 * 1024
"""The largest file a bot can download with getFile (Bot API reference: 20 MB)."""
MAX_START_PARAMETER = 64
"""Deep-link parameters are at most 64 characters (Bot API deep linking)."""
PHOTO_CONTENT_TYPE = "image/jpeg"
"""Telegram re-encodes every photo sent as a photo (not as a file) to JPEG."""


@dataclass(frozen=True)
class FileRef:
    """A file in a message, before it is downloaded."""

    file_id: str
    filename: str
    content_type: str | None
    size: int | None


def chat_type(chat: Chat) -> str:
    return "private" if chat.type == ChatType.PRIVATE else "group"


def file_ref(message: Message) -> FileRef | None:
    """Return the document or the largest photo size of ``message``, or None."""
    if message.document is not None:
        document = message.document
        return FileRef(document.file_id, document.file_name or f"document_{document.file_unique_id}",
                       document.mime_type, document.file_size)
    if message.photo:
        largest = max(message.photo, key=lambda size: (size.width * size.height, size.file_size or 0))
        return FileRef(largest.file_id, f"photo_{largest.file_unique_id}.jpg", PHOTO_CONTENT_TYPE,
                       largest.file_size)
    return None


async def download(bot: Bot, ref: FileRef) -> Attachment:
    """Download the file through getFile.

    A file over the limit comes back with ``data=None``. A download that
    fails for another reason (a file id Telegram no longer knows, a server
    or network error) is logged and comes back with ``download_failed``, so
    the core asks the user to send the file again.
    """
    if ref.size is not None and ref.size > DOWNLOAD_LIMIT:
        return Attachment(ref.filename, ref.content_type, ref.size, data=None)
    try:
        telegram_file = await bot.get_file(ref.file_id)
        data = bytes(await telegram_file.download_as_bytearray())
    except BadRequest as exc:
        if "file is too big" in exc.message.lower():
            return Attachment(ref.filename, ref.content_type, max(ref.size or 0, DOWNLOAD_LIMIT + 1), data=None)
        logger.warning("file %s not downloaded: %s", ref.file_id, exc.message)
        return Attachment(ref.filename, ref.content_type, ref.size or 0, data=None, download_failed=True)
    except TelegramError as exc:
        logger.warning("file %s not downloaded: %s: %s", ref.file_id, type(exc).__name__, exc)
        return Attachment(ref.filename, ref.content_type, ref.size or 0, data=None, download_failed=True)
    return Attachment(ref.filename, ref.content_type, len(data), data=data)


def has_content(message: Message) -> bool:
    """True for something a user sent (text, media, a poll...), False for a service message."""
    return message.text is not None or message.effective_attachment is not None


def start_parameter(message: Message) -> str | None:
    """Return the deep-link parameter of ``/start PARAMETER``, or None."""
    text = message.text or ""
    command, _, argument = text.partition(" ")
    if command.split("@", 1)[0] != "/start" or not argument.strip():
        return None
    return argument.strip()[:MAX_START_PARAMETER]


def delivery_id(update: Update, part: object) -> str:
    """Return the core's update id for ``update``: its update_id with the id of the message or press in it.

    A redelivery repeats both. Telegram picks the next update_id at random
    after a week without updates (Bot API reference, Update.update_id), so the
    update_id alone can come back for another update and be taken for a
    redelivery.
    """
    return f"{update.update_id}:{part}"


def message_event(update: Update, message: Message, attachment: Attachment | None = None, *,
                  edited: bool = False) -> InboundEvent:
    """Convert a message; ``edited`` marks the new version of a message the user changed."""
    user = message.from_user
    return InboundEvent(
        platform=PLATFORM,
        user_id=str(user.id),
        chat_id=str(message.chat.id),
        update_id=delivery_id(update, f"{message.chat.id}:{message.message_id}"),
        text=message.text,
        attachment=attachment,
        chat_type=chat_type(message.chat),
        display_name=user.full_name,
        start_parameter=start_parameter(message) if message.chat.type == ChatType.PRIVATE and not edited else None,
        received_at=message.date,
        edited=edited,
    )


def callback_event(update: Update, query: CallbackQuery) -> InboundEvent | None:
    """Convert a button press; None for a press without data or on an inline-mode message."""
    if not query.data or query.message is None:
        return None
    return InboundEvent(
        platform=PLATFORM,
        user_id=str(query.from_user.id),
        chat_id=str(query.message.chat.id),
        update_id=delivery_id(update, query.id),
        action=query.data,
        chat_type=chat_type(query.message.chat),
        display_name=query.from_user.full_name,
        received_at=datetime.now(timezone.utc),
    )


def addressed_to_bot(message: Message, bot_id: int, bot_username: str | None) -> bool:
    """True for a group message meant for the bot: a command for it, or a reply to one of its messages.

    These are also the messages a bot in privacy mode receives in a group.
    """
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == bot_id:
        return True
    if not message.text or not message.entities:
        return False
    first = message.entities[0]
    if first.type != MessageEntity.BOT_COMMAND or first.offset != 0:
        return False
    command = message.text[:first.length]
    _, at, target = command.partition("@")
    return not at or (bot_username is not None and target.casefold() == bot_username.casefold())


def update_kind(update: Update) -> str:
    """Name the part of ``update`` that is set, such as ``edited_message``, for logs."""
    for name in Update.ALL_TYPES:
        if getattr(update, name, None) is not None:
            return str(name)
    return "unknown"
