"""Chat addresses that change under the bot: migrated group chats and learners who blocked it.

A platform may move a chat to a new id (a Telegram group upgraded to a
supergroup). :func:`record_migration` stores the move, points the messages
still waiting in the outbox and the open change requests at the new id, and
:func:`reviewer_chat` returns the configured reviewer chat after every move.

A learner who blocks the bot is marked unreachable; the outbox holds no
messages for them until they write again (``dialog.handle`` clears the mark).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.db import transaction
from bot.models import ChatMigration, Learner, OutboxMessage, ReviewDraft

logger = logging.getLogger(__name__)

MAX_MIGRATION_HOPS = 8
"""Moves followed from a configured id; a chain this long means a loop in the table."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def current_chat_id(session: Session, platform: str, chat_id: str) -> str:
    """Follow the recorded migrations of ``chat_id`` to the id the chat has now."""
    for _ in range(MAX_MIGRATION_HOPS):
        moved = session.get(ChatMigration, (platform, chat_id))
        if moved is None:
            return chat_id
        chat_id = moved.new_chat_id
    logger.error("chat migrations of %s:%s form a chain of more than %d hops", platform, chat_id, MAX_MIGRATION_HOPS)
    return chat_id


def reviewer_chat(session: Session, settings: Settings, platform: str) -> str | None:
    """Return the id of the platform's reviewer chat, following any migration of the configured id."""
    configured = settings.reviewer_chat(platform)
    if configured is None:
        return None
    return current_chat_id(session, platform, configured)


def record_migration(factory: sessionmaker[Session], platform: str, old_chat_id: str, new_chat_id: str) -> int:
    """Store that ``old_chat_id`` is now ``new_chat_id`` and re-address what still waits for it.

    Returns the number of pending outbox messages moved to the new id. Calling it
    again for the same move changes nothing.
    """
    if old_chat_id == new_chat_id:
        return 0
    with transaction(factory) as session:
        existing = session.get(ChatMigration, (platform, old_chat_id))
        if existing is None:
            session.add(ChatMigration(platform=platform, old_chat_id=old_chat_id, new_chat_id=new_chat_id,
                                      migrated_at=_now()))
        elif existing.new_chat_id != new_chat_id:
            logger.warning("chat %s:%s moved again, from %s to %s", platform, old_chat_id, existing.new_chat_id,
                           new_chat_id)
            existing.new_chat_id = new_chat_id
            existing.migrated_at = _now()
        moved = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.platform == platform, OutboxMessage.chat_id == old_chat_id,
                   OutboxMessage.status == "pending")
            .values(chat_id=new_chat_id)
        ).rowcount
        session.execute(
            update(ReviewDraft).where(ReviewDraft.chat_id == old_chat_id).values(chat_id=new_chat_id)
        )
    logger.info("chat %s:%s migrated to %s; %d pending messages moved", platform, old_chat_id, new_chat_id, moved)
    return moved


def _find_learner(session: Session, platform: str, user_id: str) -> Learner | None:
    return session.scalar(
        select(Learner).where(Learner.platform == platform, Learner.platform_user_id == user_id).with_for_update()
    )


def mark_unreachable(factory: sessionmaker[Session], platform: str, user_id: str) -> bool:
    """Mark the learner as having blocked the bot; False when no such learner exists."""
    with transaction(factory) as session:
        learner = _find_learner(session, platform, user_id)
        if learner is None:
            return False
        if learner.unreachable_since is None:
            learner.unreachable_since = _now()
            logger.info("learner %s (%s:%s) is unreachable", learner.id, platform, user_id)
        return True


def mark_reachable(factory: sessionmaker[Session], platform: str, user_id: str) -> bool:
    """Clear the unreachable mark after the learner unblocked the bot; False when no such learner exists."""
    with transaction(factory) as session:
        learner = _find_learner(session, platform, user_id)
        if learner is None:
            return False
        if learner.unreachable_since is not None:
            learner.unreachable_since = None
            logger.info("learner %s (%s:%s) is reachable again", learner.id, platform, user_id)
        return True
