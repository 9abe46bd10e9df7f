"""Telegram formatting: plain core text to escaped HTML parts, buttons to inline keyboards.

The core's text is plain. Each part sent to the Bot API is escaped with
``html.escape`` and sent with ``parse_mode=HTML``, so user text such as
``<3 Ana & Bo`` arrives as typed. Long texts are split before escaping, so a
split never falls inside an entity such as ``&amp;``.

Limits from the Bot API reference (sendMessage, sendDocument,
InlineKeyboardButton, answerCallbackQuery): a message text is at most 4096
characters after entity parsing, a caption 1024, callback data 64 bytes and a
callback answer 200 characters. Lengths are counted in UTF-16 code units,
the unit Telegram uses for entity offsets, which is never less than the
number of characters.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence

from telegram import ForceReply, InlineKeyboardButton, InlineKeyboardMarkup

from bot.events import Button

logger = logging.getLogger(__name__)

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER = 200
ROW_MAX_BUTTONS = 5
ROW_MAX_LABEL_CHARS = 30
"""A keyboard row takes buttons while their labels fit in about one phone-screen width."""


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _prefix_within(text: str, limit: int) -> int:
    """Return how many characters of ``text`` fit in ``limit`` UTF-16 code units."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return index
    return len(text)


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split plain ``text`` into parts of at most ``limit`` UTF-16 code units, in order.

    A part ends at the last line break of its window when that break is in the
    window's second half, and otherwise at the last line break or space. A
    window with neither is cut at the limit. The break character and the line breaks
    around it are dropped. Parts that are only whitespace are left out, because
    Telegram rejects empty messages.
    """
    parts: list[str] = []
    rest = text
    while utf16_length(rest) > limit:
        window = rest[:_prefix_within(rest, limit)]
        newline = window.rfind("\n")
        space = window.rfind(" ")
        cut = newline if newline >= len(window) // 2 else max(newline, space)
        if cut <= 0:
            parts.append(window)
            rest = rest[len(window):]
        else:
            parts.append(window[:cut].rstrip("\n"))
            rest = rest[cut + 1:].lstrip("\n")
    parts.append(rest)
    return [part for part in parts if part.strip()]


def escape(text: str) -> str:
    return html.escape(text, quote=False)


def mention(user_id: str, name: str) -> str:
    """Return an HTML text mention of a user, which Telegram turns into a ``text_mention`` entity."""
    return f'<a href="tg://user?id={html.escape(user_id)}">{escape(name)}</a>'


def with_mention(text: str, user_id: str, name: str) -> str:
    """Escape ``text`` and mention the user: their name at the start becomes the mention, else it is prefixed."""
    if name and text.startswith(name):
        return mention(user_id, name) + escape(text[len(name):])
    return f"{mention(user_id, name)}: {escape(text)}"


def truncate(text: str, limit: int) -> str:
    """Shorten ``text`` to ``limit`` UTF-16 code units, ending with an ellipsis when cut."""
    if utf16_length(text) <= limit:
        return text
    return text[:_prefix_within(text, limit - 1)].rstrip() + "…"


def inline_keyboard(buttons: Sequence[Button]) -> InlineKeyboardMarkup | None:
    """Lay the buttons out in rows; a button whose action is over 64 bytes is left out and logged."""
    rows: list[list[InlineKeyboardButton]] = []
    row: list[InlineKeyboardButton] = []
    row_chars = 0
    for button in buttons:
        if len(button.action.encode("utf-8")) > MAX_CALLBACK_DATA_BYTES:
            logger.error("button %r left out: its action %r is over %d bytes", button.label, button.action,
                         MAX_CALLBACK_DATA_BYTES)
            continue
        label_chars = len(button.label)
        if row and (len(row) == ROW_MAX_BUTTONS or row_chars + label_chars > ROW_MAX_LABEL_CHARS):
            rows.append(row)
            row, row_chars = [], 0
        row.append(InlineKeyboardButton(button.label, callback_data=button.action))
        row_chars += label_chars
    if row:
        rows.append(row)
    return InlineKeyboardMarkup(rows) if rows else None


def force_reply(placeholder: str | None = None) -> ForceReply:
    """Build a ForceReply that opens the reply field only for the users mentioned in the message."""
    return ForceReply(selective=True, input_field_placeholder=truncate(placeholder, 64) if placeholder else None)
