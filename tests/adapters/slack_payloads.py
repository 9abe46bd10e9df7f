"""Slack request bodies as Slack sends them, and their signatures.

The shapes follow payloads captured from Slack (Events API ``event_callback``
bodies, ``block_actions`` and ``view_submission`` interactions, slash command
forms, Socket Mode envelopes); the ids are invented. Signatures are computed
the way Slack documents it: ``v0=`` + HMAC-SHA256 of ``v0:<timestamp>:<body>``
with the signing secret.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from tests.adapters.slack_emulator import APP_ID, BOT_USER_ID, TEAM_ID

_counter = itertools.count(1)


def next_ts() -> str:
    return f"{int(time.time())}.{next(_counter):06d}"


def event_id() -> str:
    return f"Ev{uuid.uuid4().hex[:10].upper()}"


def sign(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with a request: timestamp and signature."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    base = b"v0:" + str(timestamp).encode() + b":" + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": signature}


# --- Events API -------------------------------------------------------------------------


def event_callback(event: dict[str, Any], *, event_id_: str | None = None) -> dict[str, Any]:
    """Wrap an event in the ``event_callback`` body the Events API posts."""
    return {
        "token": "fakeVerificationToken000",
        "team_id": TEAM_ID,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id_ or event_id(),
        "event_time": int(time.time()),
        "authorizations": [{"enterprise_id": None, "team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True,
                            "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
        "event_context": "4-eyJldCI6Im1lc3NhZ2UifQ==",
    }


def _rich_text(text: str) -> list[dict[str, Any]]:
    return [{"type": "rich_text", "block_id": "LSo", "elements": [
        {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}]}]


def slack_escape(text: str) -> str:
    """Escape text as Slack does in message events: ``&``, ``<`` and ``>`` become entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def direct_message(user: str, channel: str, text: str, *, markup: bool = False) -> dict[str, Any]:
    """A user's message in their DM with the bot (``channel_type: im``).

    ``text`` is what the user typed, escaped here as Slack escapes it; with
    ``markup`` it is sent as given, for text with Slack's ``<...>`` links.
    """
    text = text if markup else slack_escape(text)
    ts = next_ts()
    return {"client_msg_id": str(uuid.uuid4()), "type": "message", "text": text, "user": user, "ts": ts,
            "team": TEAM_ID, "blocks": _rich_text(text), "channel": channel, "event_ts": ts, "channel_type": "im"}


def channel_message(user: str, channel: str, text: str) -> dict[str, Any]:
    event = direct_message(user, channel, text)
    event["channel_type"] = "channel"
    return event


def file_share(user: str, channel: str, file: dict[str, Any], text: str = "") -> dict[str, Any]:
    """A file shared in the DM: subtype ``file_share`` with the file object in ``files``."""
    event = direct_message(user, channel, text)
    event.update({"files": [file], "upload": True, "display_as_bot": False, "subtype": "file_share"})
    return event


def bot_message(channel: str, text: str, *, channel_type: str = "im") -> dict[str, Any]:
    """Another app's message (subtype ``bot_message``)."""
    ts = next_ts()
    return {"subtype": "bot_message", "text": text, "username": "Reacji Channeler", "icons": {"emoji": "bulb"},
            "type": "message", "ts": ts, "bot_id": "B0000000009", "app_id": "A0000000009",
            "channel": channel, "event_ts": ts, "channel_type": channel_type}


def own_message(channel: str, text: str) -> dict[str, Any]:
    """The bot's own message echoed back: ``bot_id`` and the bot user, no subtype."""
    ts = next_ts()
    return {"bot_id": "B0000000002", "type": "message", "text": text, "user": BOT_USER_ID, "ts": ts,
            "app_id": APP_ID, "team": TEAM_ID, "channel": channel, "event_ts": ts, "channel_type": "im"}


def message_changed(user: str, channel: str, text: str) -> dict[str, Any]:
    ts = next_ts()
    return {"type": "message", "subtype": "message_changed", "hidden": True, "channel": channel, "ts": ts,
            "event_ts": ts, "channel_type": "im",
            "message": {"type": "message", "text": text, "user": user, "team": TEAM_ID, "ts": "1665102338.901939",
                        "edited": {"user": user, "ts": ts}, "blocks": _rich_text(text)},
            "previous_message": {"type": "message", "text": "before", "user": user, "ts": "1665102338.901939"}}


def message_deleted(channel: str) -> dict[str, Any]:
    ts = next_ts()
    return {"type": "message", "subtype": "message_deleted", "hidden": True, "deleted_ts": "1665102338.901939",
            "channel": channel, "ts": ts, "event_ts": ts, "channel_type": "im",
            "previous_message": {"type": "message", "text": "gone", "user": "U0000000001",
                                 "ts": "1665102338.901939"}}


def channel_join(user: str, channel: str) -> dict[str, Any]:
    ts = next_ts()
    return {"type": "message", "subtype": "channel_join", "user": user, "text": f"<@{user}> has joined the channel",
            "channel": channel, "ts": ts, "event_ts": ts, "channel_type": "channel"}


def member_left(user: str, channel: str) -> dict[str, Any]:
    return {"type": "member_left_channel", "user": user, "channel": channel, "channel_type": "C", "team": TEAM_ID,
            "event_ts": next_ts()}


def app_home_opened(user: str, channel: str, tab: str) -> dict[str, Any]:
    return {"type": "app_home_opened", "user": user, "channel": channel, "tab": tab, "event_ts": next_ts()}


# --- interactions --------------------------------------------------------------------------


def block_actions(user: str, channel: str, message: dict[str, Any], value: str) -> dict[str, Any]:
    """A press of the button whose value is ``value`` on a message the bot posted."""
    button = next(element for block in message.get("blocks", []) if block["type"] == "actions"
                  for element in block["elements"] if element["value"] == value)
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": "fakeVerificationToken000",
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel, "is_ephemeral": False},
        "trigger_id": f"{next(_counter)}.{int(time.time())}.{uuid.uuid4().hex}",
        "team": {"id": TEAM_ID, "domain": "example-workspace"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "directmessage" if channel.startswith("D") else "reviewers"},
        "message": message,
        "state": {"values": {}},
        "response_url": "https://hooks.slack.com/actions/T0000000001/0000000000000/FAKEfakeFAKEfakeFAKEfake",
        "actions": [{"action_id": button["action_id"], "block_id": "8KR", "text": button["text"],
                     "value": button["value"], "type": "button", "action_ts": next_ts()}],
    }


def view_submission(user: str, view: dict[str, Any], values: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The submission of an opened modal with ``values`` as its ``state.values``."""
    submitted = {**view, "state": {"values": values}}
    return {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "example-workspace"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": "fakeVerificationToken000",
        "trigger_id": f"{next(_counter)}.{int(time.time())}.{uuid.uuid4().hex}",
        "view": submitted,
        "response_urls": [],
    }


def change_request_values(criteria_met: list[bool], feedback: str) -> dict[str, dict[str, Any]]:
    """``state.values`` of careerbot's change-request modal with these answers."""
    values: dict[str, dict[str, Any]] = {}
    for number, met in enumerate(criteria_met, start=1):
        label = "Met" if met else "Not met"
        values[f"criterion-{number}"] = {"met": {"type": "radio_buttons", "selected_option": {
            "text": {"type": "plain_text", "text": label, "emoji": True}, "value": "1" if met else "0"}}}
    values["feedback"] = {"text": {"type": "plain_text_input", "value": feedback}}
    return values


def slash_command(user: str, channel: str, text: str, *, command: str = "/careerbot") -> dict[str, str]:
    """The form fields of a slash command."""
    return {
        "token": "fakeVerificationToken000",
        "team_id": TEAM_ID,
        "team_domain": "example-workspace",
        "channel_id": channel,
        "channel_name": "directmessage" if channel.startswith("D") else "reviewers",
        "user_id": user,
        "user_name": user.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": "https://hooks.slack.com/commands/T0000000001/1111111111111/FAKEfakeFAKEfake",
        "trigger_id": f"{next(_counter)}.{int(time.time())}.{uuid.uuid4().hex}",
    }


def form_body(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()


def interaction_body(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def envelope(payload: dict[str, Any], kind: str, *, retry_attempt: int = 0,
             retry_reason: str = "") -> dict[str, Any]:
    """A Socket Mode envelope around an Events API body, interaction or slash command."""
    wrapped = {"envelope_id": str(uuid.uuid4()), "payload": payload, "type": kind,
               "accepts_response_payload": kind != "events_api"}
    if kind == "events_api":
        wrapped.update({"retry_attempt": retry_attempt, "retry_reason": retry_reason})
    return wrapped
