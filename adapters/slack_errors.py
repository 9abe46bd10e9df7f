"""Slack Web API errors: the error code, the Retry-After delay, and what each code means for a message.

The codes are those the methods' reference pages list under "Errors"; for
example chat.postMessage returns ``channel_not_found``, ``not_in_channel`` and
``is_archived`` for a channel the bot can't post in, and ``rate_limited`` or an
HTTP 429 with ``Retry-After`` when it posts too fast.
"""

from __future__ import annotations

from slack_sdk.errors import SlackApiError

RATE_LIMIT_DEFAULT_SECONDS = 1.0

CHANNEL_ERRORS = frozenset({"channel_not_found", "not_in_channel", "is_archived", "channel_is_archived"})
"""The bot can't post in the channel until someone invites it or fixes the channel id."""
USER_GONE_ERRORS = frozenset({"user_not_found", "account_inactive", "cannot_dm_bot", "user_disabled",
                              "messages_tab_disabled"})
"""The user can't receive messages from the bot any more."""
TRANSIENT_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout",
                              "invalid_auth", "not_authed", "token_revoked", "token_expired"})
"""Worth trying again later: Slack's own failures, and a token an admin may fix."""
EDIT_GONE_ERRORS = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
"""The message to edit is gone or can no longer be edited."""


def error_code(exc: SlackApiError) -> str:
    """Return the ``error`` field of Slack's response, or the HTTP status when the body was not JSON."""
    data = exc.response.data
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return f"HTTP {exc.response.status_code}"


def is_rate_limited(exc: SlackApiError) -> bool:
    return exc.response.status_code == 429 or error_code(exc) in ("ratelimited", "rate_limited")


def retry_after(exc: SlackApiError) -> float:
    """Return the seconds to wait from the ``Retry-After`` header; one second when it is missing or invalid."""
    raw = exc.response.headers.get("Retry-After") if exc.response.headers else None
    try:
        return max(float(raw), 0.0) if raw is not None else RATE_LIMIT_DEFAULT_SECONDS
    except ValueError:
        return RATE_LIMIT_DEFAULT_SECONDS
