"""Delivering outbox messages after the transaction that wrote them has committed.

Adapters call :func:`claim_pending` for their platform, send each message, and
report the result with :func:`mark_sent`, :func:`mark_retry` or
:func:`mark_failed`. A message that a crash left unmarked is sent again on the
next run: delivery is at least once, and each row is marked as soon as its
send returns, so at most one message per chat can repeat.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from bot.db import transaction
from bot.events import OutboundMessage
from bot.metrics import MESSAGE_FAILURES, MESSAGE_RETRIES, MESSAGES_SENT
from bot.models import Learner, OutboxMessage

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8


def _now() -> datetime:
    return datetime.now(timezone.utc)


def to_message(row: OutboxMessage) -> OutboundMessage:
    return OutboundMessage.from_row(row.platform, row.chat_id, row.payload, ref=row.ref, edit_ref=row.edit_ref,
                                    learner_id=row.learner_id, kind=row.kind)


def claim_pending(factory: sessionmaker[Session], platform: str, *, chat_id: str | None = None,
                  limit: int = 100, now: datetime | None = None,
                  in_order: bool = False) -> list[tuple[int, OutboundMessage]]:
    """Return pending messages for ``platform`` (and one chat, if given), oldest first.

    Messages to a learner marked unreachable (they blocked the bot) are left
    pending and not returned; they go out after the learner writes again.
    With ``in_order``, a message is not returned while an older message to the
    same chat waits for its retry, so the chat's later messages queue behind
    it instead of overtaking it. A message not tried yet that waits for a
    later ``available_at`` (a reminder held until quiet hours end) holds
    nothing back.
    """
    now = now or _now()
    with transaction(factory) as session:
        query = (
            select(OutboxMessage)
            .outerjoin(Learner, Learner.id == OutboxMessage.learner_id)
            .where(OutboxMessage.platform == platform, OutboxMessage.status == "pending",
                   OutboxMessage.available_at <= now, Learner.unreachable_since.is_(None))
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        if chat_id is not None:
            query = query.where(OutboxMessage.chat_id == chat_id)
        if in_order:
            older = aliased(OutboxMessage)
            query = query.where(~exists().where(
                older.platform == OutboxMessage.platform, older.chat_id == OutboxMessage.chat_id,
                older.status == "pending", older.id < OutboxMessage.id, older.available_at > now,
                older.attempts > 0,
            ))
        rows = session.scalars(query).all()
        return [(row.id, to_message(row)) for row in rows]


def message_id_for_ref(factory: sessionmaker[Session], platform: str, ref: str) -> tuple[str, str] | None:
    """Return (chat id, platform message id) of the last sent message carrying ``ref``."""
    with transaction(factory) as session:
        row = session.scalar(
            select(OutboxMessage)
            .where(OutboxMessage.platform == platform, OutboxMessage.ref == ref,
                   OutboxMessage.platform_message_id.is_not(None))
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        )
        return (row.chat_id, row.platform_message_id) if row is not None else None


def mark_sent(factory: sessionmaker[Session], outbox_id: int, platform_message_id: str | None = None) -> None:
    with transaction(factory) as session:
        row = session.get(OutboxMessage, outbox_id)
        if row is None:
            return
        if row.status == "sent":
            logger.warning("outbox %s to %s:%s was delivered again after it had been marked sent",
                           outbox_id, row.platform, row.chat_id)
        row.status = "sent"
        row.attempts += 1
        row.sent_at = _now()
        row.platform_message_id = platform_message_id
        _redact(row)
        platform = row.platform
    MESSAGES_SENT.labels(platform).inc()


REDACTED = "[removed after delivery]"
REDACT_KEY = "redact_after_send"
"""A message whose ``extra`` lists strings under this key (such as a one-time
link) keeps them in the outbox only until it is sent or has failed."""


def _redact(row: OutboxMessage) -> None:
    extra = row.payload.get("extra") or {}
    secrets = extra.get(REDACT_KEY)
    if not secrets:
        return
    text = row.payload.get("text", "")
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    # The verbatim parts are copies of the text's user-written parts, so they go with the text.
    kept_extra = {key: value for key, value in extra.items() if key not in (REDACT_KEY, "verbatim")}
    payload = {key: value for key, value in row.payload.items() if key != "extra"}
    row.payload = {**payload, "text": text, **({"extra": kept_extra} if kept_extra else {})}


def mark_retry(factory: sessionmaker[Session], outbox_id: int, delay_seconds: float, error: str, *,
               keep_queued: bool = False, backoff_max_seconds: float | None = None) -> float:
    """Try again after ``delay_seconds``; after MAX_ATTEMPTS tries the message is marked failed.

    With ``keep_queued`` the message waits however many times it is retried:
    for a platform rate limit or a reviewer channel that is not reachable yet,
    where waiting longer is the fix and giving up would lose the message.
    With ``backoff_max_seconds`` the delay doubles with each earlier attempt,
    up to that maximum. Returns the delay applied.
    """
    with transaction(factory) as session:
        row = session.get(OutboxMessage, outbox_id)
        if row is None:
            return delay_seconds
        row.attempts += 1
        row.last_error = error[:1000]
        platform = row.platform
        if backoff_max_seconds is not None:
            delay_seconds = min(delay_seconds * 2 ** min(row.attempts - 1, 30), backoff_max_seconds)
        given_up = row.attempts >= MAX_ATTEMPTS and not keep_queued
        if given_up:
            row.status = "failed"
            logger.error("outbox %s failed after %d attempts: %s", outbox_id, row.attempts, error)
        else:
            row.available_at = _now() + timedelta(seconds=delay_seconds)
            logger.warning("outbox %s will be retried in %.0f s: %s", outbox_id, delay_seconds, error)
    (MESSAGE_FAILURES if given_up else MESSAGE_RETRIES).labels(platform).inc()
    return delay_seconds


def mark_failed(factory: sessionmaker[Session], outbox_id: int, error: str, *, unreachable: bool = False) -> None:
    """Give up on a message; with ``unreachable`` the learner is marked as having blocked the bot."""
    with transaction(factory) as session:
        row = session.get(OutboxMessage, outbox_id)
        if row is None:
            return
        row.status = "failed"
        row.attempts += 1
        row.last_error = error[:1000]
        _redact(row)
        if unreachable and row.learner_id is not None:
            learner = session.get(Learner, row.learner_id)
            if learner is not None and learner.unreachable_since is None:
                learner.unreachable_since = _now()
        logger.error("outbox %s to %s:%s failed: %s", outbox_id, row.platform, row.chat_id, error)
        platform = row.platform
    MESSAGE_FAILURES.labels(platform).inc()
