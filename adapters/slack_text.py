"""Text between careerbot's plain text and Slack's mrkdwn, in both directions.

Slack escapes ``&``, ``<`` and ``>`` in message text and writes links,
mentions and special commands as ``<...>`` sequences; see
https://docs.slack.dev/messaging/formatting-message-text. Outbound text is
escaped so that a learner's ``<!channel>`` stays text, and inbound text is
turned back into what the user typed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

SLASH_COMMAND = "/careerbot"
"""The app's slash command; its first word names a core command (``/careerbot submit``)."""

SECTION_MAX_CHARS = 3000
"""Slack's limit for a section block's text, counted on the escaped text."""

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_SEQUENCE = re.compile(r"<([^<>]*)>")


_COMMAND_MENTION = re.compile(r"(?<![\w/:.])/([a-z][a-z_]{1,31})\b")


def slash_commands(text: str, command: str, names: frozenset[str], verbatim: Sequence[str] = ()) -> str:
    """Rewrite the core's command mentions (``/submit``) as Slack's ``/careerbot submit``.

    Slack's client runs a line that starts with ``/`` as a slash command, so a
    learner cannot type ``/submit`` in a DM; the app's one slash command takes
    the core command as its first word instead. Only names in ``names`` are
    rewritten, so paths and links stay as they are, and so is every part of
    ``text`` listed in ``verbatim`` (what a user wrote, such as evidence).
    """
    def rewrite(part: str) -> str:
        return _COMMAND_MENTION.sub(
            lambda match: f"{command} {match.group(1)}" if match.group(1) in names else match.group(0), part
        )

    spans = sorted({span for span in verbatim if span}, key=len, reverse=True)
    if not spans:
        return rewrite(text)
    # The capturing group keeps each verbatim part in the split, at the odd indexes.
    parts = re.split("(" + "|".join(re.escape(span) for span in spans) + ")", text)
    return "".join(part if index % 2 else rewrite(part) for index, part in enumerate(parts))


def escape(text: str) -> str:
    """Escape plain text for mrkdwn, so that no character in it is markup."""
    return "".join(_ESCAPES.get(char, char) for char in text)


def escaped_length(text: str) -> int:
    return sum(len(_ESCAPES.get(char, char)) for char in text)


def _plain_sequence(match: re.Match[str]) -> str:
    body = match.group(1)
    target, _, label = body.partition("|")
    if target.startswith("mailto:"):
        return target[len("mailto:"):]
    if target.startswith("@"):
        return "@" + (label or target[1:])
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!"):
        if label:
            return label
        return "@" + target[1:].split("^", 1)[0]
    # A link: keep the address, because evidence links are checked and opened as typed.
    return target


def to_plain(text: str) -> str:
    """Turn Slack's message text into the plain text the user typed.

    Links become their address (``<https://a.example|a.example>`` is
    ``https://a.example``), mailto links their address, mentions ``@name`` or
    ``@U123``, and the entities ``&amp;``, ``&lt;``, ``&gt;`` their characters.
    """
    converted = _SEQUENCE.sub(_plain_sequence, text)
    return converted.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def split_sections(text: str, limit: int = SECTION_MAX_CHARS) -> list[str]:
    """Split plain text into pieces whose escaped text fits a section.

    Pieces break at line ends where possible, then at spaces, and only a word
    longer than the limit is cut inside. The pieces are returned unescaped;
    each one's escaped length is at most ``limit``.
    """
    pieces: list[str] = []
    current = ""
    current_length = 0
    for line in text.split("\n"):
        for part in _split_long(line, limit):
            joiner = "\n" if current else ""
            added = escaped_length(joiner + part)
            if current and current_length + added > limit:
                pieces.append(current)
                current, current_length = part, escaped_length(part)
            else:
                current += joiner + part
                current_length += added
    if current.strip():
        pieces.append(current)
    return [piece for piece in pieces if piece.strip()]


def _split_long(line: str, limit: int) -> list[str]:
    """Split one line whose escaped text is longer than ``limit`` at spaces, or inside a word if needed."""
    if escaped_length(line) <= limit:
        return [line]
    parts: list[str] = []
    current, current_length = "", 0
    for word in line.split(" "):
        word_length = escaped_length(word)
        added = word_length + 1 if current else word_length
        if current_length + added <= limit:
            current = f"{current} {word}" if current else word
            current_length += added
            continue
        if current:
            parts.append(current)
        while word_length > limit:
            cut = _cut_index(word, limit)
            parts.append(word[:cut])
            word = word[cut:]
            word_length = escaped_length(word)
        current, current_length = word, word_length
    if current:
        parts.append(current)
    return parts


def _cut_index(word: str, limit: int) -> int:
    length = 0
    for index, char in enumerate(word):
        length += len(_ESCAPES.get(char, char))
        if length > limit:
            return index
    return len(word)


def shorten(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, at a space where one is near, ending with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.8:
        cut = cut[:space]
    return cut.rstrip() + "…"
