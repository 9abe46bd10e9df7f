"""Checking that an HTTP request comes from Slack: its ``X-Slack-Signature`` and timestamp.

Slack signs each request with the app's signing secret: ``v0=`` followed by
the hex HMAC-SHA256 of ``v0:<X-Slack-Request-Timestamp>:<body>``. A request
older than five minutes is rejected even when signed, so a captured request
can't be replayed later (https://api.slack.com/authentication/verifying-requests-from-slack).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

MAX_REQUEST_AGE_SECONDS = 300


def signature_problem(signing_secret: str, headers: Mapping[str, str], body: bytes,
                      now: float | None = None) -> str | None:
    """Return why a request is not from Slack, or None when its signature is valid and recent."""
    signature = headers.get("x-slack-signature")
    timestamp = headers.get("x-slack-request-timestamp")
    if not signature or not timestamp:
        return "missing X-Slack-Signature or X-Slack-Request-Timestamp"
    if not signing_secret:
        return "no slack_signing_secret is configured"
    try:
        sent_at = int(timestamp)
    except ValueError:
        return f"invalid timestamp {timestamp[:20]!r}"
    age = (time.time() if now is None else now) - sent_at
    if age > MAX_REQUEST_AGE_SECONDS:
        return f"timestamp is {age:.0f} s old (at most {MAX_REQUEST_AGE_SECONDS} s allowed)"
    if -age > MAX_REQUEST_AGE_SECONDS:
        return f"timestamp is {-age:.0f} s in the future (at most {MAX_REQUEST_AGE_SECONDS} s allowed)"
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "signature mismatch"
    return None
