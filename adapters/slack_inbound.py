"""Slack payloads to :class:`InboundEvent`: messages, files, buttons, forms, slash commands.

Each converter is pure apart from :func:`download_file`. The ``update_id`` of
each event is what Slack repeats when it redelivers the same thing, so the
core's deduplication makes a retry change nothing. It is the ``event_id`` of
an Events API delivery, the action's ``action_ts`` with the message and user
for a button, the view id for a submitted modal, and the ``trigger_id`` for a
slash command.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from adapters.slack_blocks import SubmittedForm
from adapters.slack_text import SLASH_COMMAND, to_plain
from bot import review
from bot.events import Attachment, ChatType, InboundEvent

logger = logging.getLogger(__name__)

PLATFORM = "slack"
DOWNLOAD_LIMIT = 20 * 1024 * 1024
"""Largest evidence file downloaded, in bytes: the same limit as on Telegram, where bots can't fetch more."""


HANDLED_SUBTYPES = (None, "file_share")
"""Message subtypes that are a user writing to the bot. Others (edits, deletions,
joins and leaves, bot messages, topic changes) are ignored."""

SLACK_FILE_HOSTS = ("slack.com", "slack-gov.com")
"""Domains (and their subdomains) that receive the bot token with a file download."""


class DownloadFailed(Exception):
    """A shared file could not be downloaded; the message gives the reason, without the token."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def chat_type_of(channel_id: str) -> ChatType:
    """Direct message channel ids start with D; everything else is a channel or group."""
    return "private" if channel_id.startswith("D") else "group"


def message_ignore_reason(event: dict[str, Any], bot_user_id: str | None) -> str | None:
    """Why a ``message`` event is not for the core, or None when it is a user writing to the bot."""
    subtype = event.get("subtype")
    if event.get("bot_id") or subtype == "bot_message":
        return "a bot's message"
    if subtype not in HANDLED_SUBTYPES:
        return f"subtype {subtype}"
    if event.get("channel_type") != "im":
        return f"a {event.get('channel_type') or 'channel'} message, not a direct message"
    if not event.get("user"):
        return "no user"
    if bot_user_id is not None and event["user"] == bot_user_id:
        return "the bot's own message"
    if event.get("hidden"):
        return "a hidden message"
    return None


def message_event(body: dict[str, Any], *, display_name: str | None,
                  attachment: Attachment | None = None) -> InboundEvent:
    """Convert a direct message (with its first shared file, if any) into an event."""
    event = body["event"]
    text = to_plain(event.get("text") or "")
    return InboundEvent(
        platform=PLATFORM,
        user_id=event["user"],
        chat_id=event["channel"],
        update_id=body["event_id"],
        text=text or None,
        attachment=attachment,
        chat_type="private",
        display_name=display_name,
        received_at=_now(),
    )


def opened_event(body: dict[str, Any], *, display_name: str | None) -> InboundEvent:
    """Convert the user's opening of the app's Messages tab into an event.

    NOTE: the update id is the same for every opening by this user, so the core
    greets them on the first opening only, instead of repeating the current
    question each time the tab is opened. A user who deleted their data with
    /forget is not greeted again on opening; their next message starts over.
    """
    event = body["event"]
    return InboundEvent(
        platform=PLATFORM,
        user_id=event["user"],
        chat_id=event["channel"],
        update_id=f"opened:{event['user']}",
        opened=True,
        chat_type="private",
        display_name=display_name,
        received_at=_now(),
    )


def action_event(body: dict[str, Any], action: dict[str, Any], *, display_name: str | None) -> InboundEvent:
    """Convert a button press into an event whose ``action`` is the button's value."""
    user_id = body["user"]["id"]
    channel_id = _action_channel(body)
    message_ts = (body.get("message") or {}).get("ts") or (body.get("container") or {}).get("message_ts", "")
    return InboundEvent(
        platform=PLATFORM,
        user_id=user_id,
        chat_id=channel_id,
        update_id=f"action:{action.get('action_ts', '')}:{message_ts}:{user_id}",
        action=action.get("value") or "",
        chat_type=chat_type_of(channel_id),
        display_name=display_name,
        received_at=_now(),
    )


def _action_channel(body: dict[str, Any]) -> str:
    channel = body.get("channel") or {}
    return channel.get("id") or (body.get("container") or {}).get("channel_id", "")


def form_event(body: dict[str, Any], form: SubmittedForm, *, display_name: str | None) -> InboundEvent:
    """Convert a submitted change-request modal into the core's one-step change request."""
    user_id = body["user"]["id"]
    return InboundEvent(
        platform=PLATFORM,
        user_id=user_id,
        chat_id=form.chat_id,
        update_id=f"view:{body['view']['id']}",
        text=form.feedback,
        action=review.form_action(form.submission_id, form.criteria_met),
        chat_type=chat_type_of(form.chat_id),
        display_name=display_name,
        received_at=_now(),
    )


def command_text(command: str, text: str) -> str:
    """Return the core command a slash command stands for: ``/careerbot review 4`` is ``/review 4``.

    Another registered command passes through as typed (``/plan`` stays
    ``/plan``), and ``/careerbot`` alone means ``/help``. A slash before the
    core command is dropped: ``/careerbot /help`` is ``/help``.
    """
    argument = to_plain(text).strip()
    if command == SLASH_COMMAND:
        return "/" + (argument.lstrip("/").strip() or "help")
    return f"{command} {argument}".strip()


def command_event(payload: dict[str, Any], chat_id: str, *, display_name: str | None) -> InboundEvent:
    """Convert a slash command into the user typing that command in their direct message with the bot."""
    return InboundEvent(
        platform=PLATFORM,
        user_id=payload["user_id"],
        chat_id=chat_id,
        update_id=f"command:{payload['trigger_id']}",
        text=command_text(payload["command"], payload.get("text") or ""),
        chat_type="private",
        display_name=display_name,
        received_at=_now(),
    )


# --- files --------------------------------------------------------------------------


def may_send_token(url: str, api_base_url: str) -> bool:
    """True when ``url`` is on Slack's file hosts (over https) or on the configured API host.

    The bot token goes only there, whatever URL an event names.
    """
    parts = urlsplit(url)
    api = urlsplit(api_base_url)
    if parts.netloc and (parts.scheme, parts.netloc.lower()) == (api.scheme, api.netloc.lower()):
        return True
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and any(host == domain or host.endswith("." + domain) for domain in SLACK_FILE_HOSTS)


async def download_file(session: aiohttp.ClientSession, token: str, file: dict[str, Any], api_base_url: str,
                        limit: int = DOWNLOAD_LIMIT) -> Attachment:
    """Download a shared file with the bot token, reading at most ``limit`` bytes.

    A file over the limit is returned with ``data=None`` and its size, so the
    core can tell the learner the limit.

    Raises:
        DownloadFailed: the URL is not Slack's, or the download failed.
    """
    name = file.get("name") or file.get("title") or file.get("id") or "file"
    content_type = file.get("mimetype") or None
    size = int(file.get("size") or 0)
    if size > limit:
        return Attachment(filename=name, content_type=content_type, size=size, data=None)

    url = file.get("url_private_download") or file.get("url_private") or ""
    if not may_send_token(url, api_base_url):
        raise DownloadFailed(f"file {file.get('id')}: refusing to send the bot token to {urlsplit(url).hostname!r}")
    try:
        async with session.get(url, headers={"Authorization": f"Bearer {token}"}, allow_redirects=False) as response:
            if response.status != 200:
                raise DownloadFailed(f"file {file.get('id')}: HTTP {response.status}")
            if response.content_type == "text/html" and not (content_type or "").startswith("text/html"):
                # Slack returns its sign-in page to a request made without the files:read scope.
                raise DownloadFailed(f"file {file.get('id')}: got an HTML page; does the app have the files:read scope?")
            data = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                data.extend(chunk)
                if len(data) > limit:
                    return Attachment(filename=name, content_type=content_type, size=max(size, len(data)), data=None)
    except aiohttp.ClientError as exc:
        raise DownloadFailed(f"file {file.get('id')}: {type(exc).__name__}: {exc}") from None
    return Attachment(filename=name, content_type=content_type, size=len(data), data=bytes(data))


def failed_download(file: dict[str, Any]) -> Attachment:
    """Describe a shared file that could not be downloaded, so the core asks for it again."""
    name = file.get("name") or file.get("title") or file.get("id") or "file"
    return Attachment(filename=name, content_type=file.get("mimetype") or None, size=int(file.get("size") or 0),
                      data=None, download_failed=True)


def needs_file_info(file: dict[str, Any]) -> bool:
    """True when the event's file object lacks what a download needs, so ``files.info`` must fill it in."""
    return file.get("file_access") == "check_file_info" or not (file.get("url_private") and "size" in file)
