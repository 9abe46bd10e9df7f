"""The audit trail of nudges: who caused each one, when, to whom, and what became of it.

A nudge's delivery result comes from its outbox row. It is ``sent``, or
``replied`` once the learner wrote back, or ``failed`` (with the platform's
error). A ``waiting`` row is still pending, for instance until quiet hours
end or while the learner has blocked the bot. A rule nudge dropped before
delivery because the learner wrote first is ``withdrawn``, and one whose
outbox row was deleted is ``gone``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import Learner, Nudge, OutboxMessage

COLUMNS = ("nudge_id", "created_at", "source", "rule_id", "sent_by", "batch_id", "learner_id", "learner_name",
           "platform", "chat_id", "subject", "available_at", "result", "sent_at", "attempts", "last_error",
           "replied_at")


@dataclass(frozen=True)
class AuditEntry:
    nudge: Nudge
    learner_name: str | None
    status: str | None
    sent_at: datetime | None
    attempts: int | None
    last_error: str | None

    @property
    def result(self) -> str:
        nudge = self.nudge
        if nudge.withdrawn_at is not None:
            return "withdrawn"
        if self.status == "sent":
            return "replied" if nudge.replied_at is not None else "sent"
        if self.status == "failed":
            return "failed"
        if self.status == "pending":
            return "waiting"
        return "gone"


def entries(session: Session, *, since: datetime | None = None, limit: int | None = None) -> Iterator[AuditEntry]:
    """Yield nudges newest first, with their learner's name and their outbox row's state."""
    query = (
        select(Nudge, Learner.name, OutboxMessage.status, OutboxMessage.sent_at, OutboxMessage.attempts,
               OutboxMessage.last_error)
        .outerjoin(Learner, Learner.id == Nudge.learner_id)
        .outerjoin(OutboxMessage, OutboxMessage.id == Nudge.outbox_id)
        .order_by(Nudge.id.desc())
    )
    if since is not None:
        query = query.where(Nudge.created_at >= since)
    if limit is not None:
        query = query.limit(limit)
    for row in session.execute(query):
        yield AuditEntry(*row)


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def audit_csv(session: Session, *, since: datetime | None = None) -> str:
    """Return the audit trail as CSV, one row per nudge, newest first."""
    output = io.StringIO()
    writer = csv.writer(output, lineterminator="\n")
    writer.writerow(COLUMNS)
    for entry in entries(session, since=since):
        nudge = entry.nudge
        writer.writerow((
            nudge.id, _iso(nudge.created_at), nudge.source, nudge.rule_id or "", nudge.sent_by or "",
            nudge.batch_id or "", nudge.learner_id or "", entry.learner_name or "", nudge.platform, nudge.chat_id,
            nudge.subject, _iso(nudge.available_at), entry.result, _iso(entry.sent_at),
            entry.attempts if entry.attempts is not None else "", entry.last_error or "", _iso(nudge.replied_at),
        ))
    return output.getvalue()
