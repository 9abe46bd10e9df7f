"""Writing nudges: each one is an outbox row plus an audit row, in the caller's transaction.

Rules (``bot.nudge_scheduler``) and coordinators (``bot.nudge_commands``)
both queue nudges through :func:`queue`. What is due is written durably before
anything is sent: the outbox row and the :class:`~bot.models.Nudge` row are
written in the same transaction. The adapters' delivery loops then send the
outbox row at the platform's pace once ``available_at`` has come (the end of
quiet hours for a nudge due at night).

:func:`record_reply` runs for every learner message. It notes the reply to
the nudges that reached the learner, for the "opened by reply" figure, and
ends the learner's quiet hours: waiting rule nudges are withdrawn and
waiting coordinator messages go out at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from bot.events import OutboundMessage
from bot.models import Nudge, OutboxMessage
from bot.quiet_hours import QuietHours, zone_or_default

logger = logging.getLogger(__name__)

RULE = "rule"
COORDINATOR = "coordinator"

KIND_REMINDER = "nudge"
KIND_COORDINATOR = "coordinator"
KIND_REVIEWER_REMINDER = "reviewer_nudge"
"""Outbox ``kind`` of rule reminders to learners, coordinator messages and reminders to reviewer chats."""


@dataclass(frozen=True)
class Draft:
    """One nudge about to be queued: to whom, what, about what, and from when it may be delivered."""

    platform: str
    chat_id: str
    learner_id: int | None
    text: str
    available_at: datetime
    subject: str = ""


class DeliveryWindow:
    """When a message due now may be delivered in each time zone, honouring quiet hours.

    ``default_zone`` applies to recipients without a time zone (or with one
    the system does not know). Results are cached per zone name, because a
    run computes the same answer for every learner in the same zone.
    """

    def __init__(self, quiet_hours: QuietHours, default_zone: ZoneInfo, now: datetime) -> None:
        self.quiet_hours = quiet_hours
        self.default_zone = default_zone
        self.now = now
        self._cache: dict[str | None, datetime] = {}

    def zone(self, name: str | None) -> ZoneInfo:
        return zone_or_default(name, self.default_zone)

    def available_at(self, zone_name: str | None) -> datetime:
        cached = self._cache.get(zone_name)
        if cached is None:
            cached = self.quiet_hours.deliver_at(self.now, self.zone(zone_name))
            self._cache[zone_name] = cached
        return cached


def queue(session: Session, drafts: Sequence[Draft], *, kind: str, source: str, now: datetime,
          rule_id: str | None = None, sent_by: str | None = None, batch_id: int | None = None) -> list[int]:
    """Write an outbox row and a nudge row for each draft; return the nudge ids in draft order."""
    if not drafts:
        return []
    outbox_rows = [
        {
            "platform": draft.platform,
            "chat_id": draft.chat_id,
            "learner_id": draft.learner_id,
            "kind": kind,
            "payload": OutboundMessage(platform=draft.platform, chat_id=draft.chat_id, text=draft.text).to_payload(),
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "available_at": draft.available_at,
        }
        for draft in drafts
    ]
    outbox_ids = session.scalars(
        insert(OutboxMessage).returning(OutboxMessage.id, sort_by_parameter_order=True), outbox_rows
    ).all()
    nudge_rows = [
        {
            "source": source,
            "rule_id": rule_id,
            "sent_by": sent_by,
            "batch_id": batch_id,
            "learner_id": draft.learner_id,
            "platform": draft.platform,
            "chat_id": draft.chat_id,
            "subject": draft.subject[:64],
            "outbox_id": outbox_id,
            "created_at": now,
            "available_at": draft.available_at,
        }
        for draft, outbox_id in zip(drafts, outbox_ids, strict=True)
    ]
    return list(session.scalars(insert(Nudge).returning(Nudge.id, sort_by_parameter_order=True), nudge_rows).all())


# Built once on the table, not the mapped class, because every learner message runs it and
# the ORM's handling of a column query costs about 55 Python calls more per message.
_NUDGES = Nudge.__table__.c
_OPEN_NUDGES = select(_NUDGES.id, _NUDGES.source, _NUDGES.outbox_id, _NUDGES.available_at).where(
    _NUDGES.learner_id == bindparam("learner_id"), _NUDGES.replied_at.is_(None), _NUDGES.withdrawn_at.is_(None)
)


def record_reply(session: Session, learner_id: int, now: datetime) -> None:
    """Note a learner's message: a reply to their delivered nudges, and the end of their quiet hours.

    A learner who writes is awake and active, so the rule nudges still waiting
    for the end of quiet hours are withdrawn, and the coordinators' messages
    waiting for it go out now.
    """
    # Most messages come from learners with no open nudge. One indexed read
    # finds those, and the updates below run only when there is something to change.
    # The read needs no pending change flushed, and skipping the autoflush lets the
    # learner row's changes of this turn go out as one UPDATE at commit.
    with session.no_autoflush:
        open_nudges = session.execute(_OPEN_NUDGES, {"learner_id": learner_id}).all()
    if not open_nudges:
        return
    answered = [nudge_id for nudge_id, _, _, available_at in open_nudges if available_at <= now]
    if answered:
        session.execute(
            update(Nudge).where(Nudge.id.in_(answered)).values(replied_at=now),
            execution_options={"synchronize_session": False},
        )

    waiting = [(nudge_id, source, outbox_id) for nudge_id, source, outbox_id, available_at in open_nudges
               if available_at > now]
    if not waiting:
        return
    withdrawn = [(nudge_id, outbox_id) for nudge_id, source, outbox_id in waiting if source == RULE]
    released = [(nudge_id, outbox_id) for nudge_id, source, outbox_id in waiting if source != RULE]

    # Only rows that wait for a later available_at change: no delivery loop
    # has claimed them, so none of them can be on its way already.
    if withdrawn:
        session.execute(
            delete(OutboxMessage).where(OutboxMessage.id.in_([outbox_id for _, outbox_id in withdrawn]),
                                        OutboxMessage.status == "pending", OutboxMessage.available_at > now)
        )
        session.execute(
            update(Nudge).where(Nudge.id.in_([nudge_id for nudge_id, _ in withdrawn]))
            .values(withdrawn_at=now, outbox_id=None)
        )
    if released:
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id.in_([outbox_id for _, outbox_id in released]),
                                        OutboxMessage.status == "pending", OutboxMessage.available_at > now)
            .values(available_at=now)
        )
        session.execute(update(Nudge).where(Nudge.id.in_([nudge_id for nudge_id, _ in released]))
                        .values(available_at=now))
    logger.info("learner %s wrote: %d waiting reminder(s) withdrawn, %d coordinator message(s) released",
                learner_id, len(withdrawn), len(released))
