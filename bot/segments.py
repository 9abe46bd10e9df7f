"""Segments of learners for a coordinator's message: parse the filters, preview, queue.

A segment is written as filters before the message, all of which a learner
must match::

    /nudge_segment level=2 stalled=14 campus=north-campus Your Level 2 plan is due on 12 May.

``level=N`` (1-3) is the level a learner works on, ``state=S`` their
progress state (see ``bot.progress``), ``stalled=N`` no message for N days
or more (learners who earned the macro-badge are never stalled), and
``campus=ID`` the campus or program they chose. ``all`` selects every
learner. Only learners who consented are in a segment; of those, learners
who paused reminders (/stop) or blocked the bot are counted and skipped.

Queuing is set-based, so that a message to 100,000 learners takes one
INSERT ... SELECT for the outbox rows and one for the audit rows, not one ORM
object per learner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import JSON, ColumnElement, case, func, insert, literal, select
from sqlalchemy.orm import Session

from bot import nudges
from bot.catalog import Catalog
from bot.events import OutboundMessage
from bot.models import Learner, Nudge, OutboxMessage, UTCDateTime
from bot.progress import PROGRESS_STATES, completed, current_level, state_is
from bot.validate import parse_number

FILTER_PATTERN = re.compile(r"^([a-z_]+)=(\S+)$")
FILTERS = ("level", "state", "stalled", "campus")
MAX_STALLED_DAYS = 3650
PREVIEW_NAMES = 10


class SegmentError(ValueError):
    """The filters are invalid. ``key`` and ``values`` form the message that tells the coordinator what to type."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


@dataclass(frozen=True)
class Segment:
    everyone: bool = False
    level: int | None = None
    state: str | None = None
    stalled_days: int | None = None
    campus: str | None = None

    def describe(self) -> str:
        """Write the filters in their normal form, such as ``level=2 stalled=14``."""
        parts = ["all"] if self.everyone else []
        for name, value in (("level", self.level), ("state", self.state), ("stalled", self.stalled_days),
                            ("campus", self.campus)):
            if value is not None:
                parts.append(f"{name}={value}")
        return " ".join(parts)


def parse(text: str, catalog: Catalog) -> tuple[Segment, str]:
    """Split ``filters message`` into a segment and the message.

    Raises:
        SegmentError: a filter is unknown or has an invalid value, or there is no filter.
    """
    segment = Segment()
    has_filter = False
    rest = text.strip()
    while rest:
        word = rest.split(maxsplit=1)[0]
        match = FILTER_PATTERN.match(word)
        # Only a first "all" is the filter, so a message may start with the word "All".
        if word.casefold() == "all" and not has_filter:
            segment = replace(segment, everyone=True)
        elif match is not None:
            segment = _with_filter(segment, match.group(1), match.group(2), catalog)
        else:
            break
        has_filter = True
        rest = rest[len(word):].strip()
    if not has_filter:
        raise SegmentError("segment_usage")
    if segment.everyone and segment.describe() != "all":
        raise SegmentError("segment_all_alone")
    return segment, rest


def _with_filter(segment: Segment, name: str, value: str, catalog: Catalog) -> Segment:
    if name == "level":
        numbers = sorted(level.number for level in catalog.levels)
        level = parse_number(value)
        if level not in numbers:
            raise SegmentError("segment_invalid_value", filter=name, value=value,
                               allowed=", ".join(str(number) for number in numbers))
        return replace(segment, level=level)
    if name == "state":
        if value not in PROGRESS_STATES:
            raise SegmentError("segment_invalid_value", filter=name, value=value, allowed=", ".join(PROGRESS_STATES))
        return replace(segment, state=value)
    if name == "stalled":
        days = parse_number(value)
        if days is None or not 1 <= days <= MAX_STALLED_DAYS:
            raise SegmentError("segment_invalid_value", filter=name, value=value,
                               allowed=f"a number of days from 1 to {MAX_STALLED_DAYS}")
        return replace(segment, stalled_days=days)
    if name == "campus":
        ids = [option.id for option in catalog.campuses]
        if value not in ids:
            raise SegmentError("segment_invalid_value", filter=name, value=value, allowed=", ".join(ids))
        return replace(segment, campus=value)
    raise SegmentError("segment_unknown_filter", filter=name, filters=", ".join(FILTERS))


def matches(segment: Segment, catalog: Catalog, now: datetime) -> list[ColumnElement[bool]]:
    """Build the WHERE conditions on ``learners`` for everyone the segment selects, opted-out ones included."""
    conditions: list[ColumnElement[bool]] = [Learner.consented_at.is_not(None)]
    if segment.level is not None:
        conditions.append(current_level() == segment.level)
    if segment.state is not None:
        conditions.append(state_is(catalog, segment.state))
    if segment.stalled_days is not None:
        conditions.append(Learner.last_activity_at <= now - timedelta(days=segment.stalled_days))
        conditions.append(~completed(catalog))
    if segment.campus is not None:
        conditions.append(Learner.campus == segment.campus)
    return conditions


def reachable() -> list[ColumnElement[bool]]:
    """Learners a segment message reaches: reminders on, bot not blocked."""
    return [Learner.reminders_paused.is_(False), Learner.unreachable_since.is_(None)]


@dataclass(frozen=True)
class Preview:
    count: int
    names: tuple[str, ...]
    skipped_paused: int
    skipped_unreachable: int


def preview(session: Session, segment: Segment, catalog: Catalog, now: datetime) -> Preview:
    """Count who would receive a message to ``segment`` and who would be skipped, and name the first few."""
    conditions = matches(segment, catalog, now)
    counts = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((Learner.unreachable_since.is_not(None), 1), else_=0)), 0),
            func.coalesce(func.sum(case((Learner.unreachable_since.is_(None) & Learner.reminders_paused, 1),
                                        else_=0)), 0),
        ).where(*conditions)
    ).one()
    total, unreachable, paused = counts
    names = session.execute(
        select(Learner.id, Learner.name).where(*conditions, *reachable()).order_by(Learner.id).limit(PREVIEW_NAMES)
    ).all()
    return Preview(
        count=total - unreachable - paused,
        names=tuple(_first_name(name, learner_id) for learner_id, name in names),
        skipped_paused=paused,
        skipped_unreachable=unreachable,
    )


def _first_name(name: str | None, learner_id: int) -> str:
    first = name.split()[0] if name and name.split() else "-"
    return f"{first} (#{learner_id})"


def queue_message(session: Session, segment: Segment, catalog: Catalog, text: str, *, window: nudges.DeliveryWindow,
                  sent_by: str, batch_id: int, now: datetime) -> int:
    """Queue ``text`` to every reachable learner of ``segment``: outbox and audit rows; return how many."""
    conditions = [*matches(segment, catalog, now), *reachable()]
    zones = session.scalars(select(Learner.timezone).where(*conditions).distinct()).all()
    available_at = case(
        {zone: literal(window.available_at(zone), UTCDateTime()) for zone in zones if zone is not None},
        value=Learner.timezone,
        else_=literal(window.available_at(None), UTCDateTime()),
    ) if any(zone is not None for zone in zones) else literal(window.available_at(None), UTCDateTime())
    created_at = literal(now, UTCDateTime())
    outbox = OutboxMessage.__table__
    before = session.scalar(select(func.coalesce(func.max(outbox.c.id), 0)))

    # Every learner gets the same payload; the chat id comes from the learner row.
    payload = OutboundMessage(platform="", chat_id="", text=text).to_payload()
    learners = select(
        Learner.platform, Learner.chat_id, Learner.id, literal(nudges.KIND_COORDINATOR), literal(payload, JSON),
        literal("pending"), literal(0), created_at, available_at,
    ).where(*conditions).order_by(Learner.id)
    session.execute(
        insert(outbox).from_select(["platform", "chat_id", "learner_id", "kind", "payload", "status", "attempts",
                                    "created_at", "available_at"], learners)
    )

    # The rows just written are the coordinator messages created at ``now`` with a higher id than
    # any before; a second INSERT ... SELECT writes their audit rows without a round trip per row.
    # NOTE: on PostgreSQL, a coordinator message that another transaction writes at the same
    # microsecond would get an audit row here too.
    just_written = (outbox.c.id > before, outbox.c.kind == nudges.KIND_COORDINATOR, outbox.c.created_at == created_at)
    written = select(
        literal(nudges.COORDINATOR), literal(sent_by), literal(batch_id), outbox.c.learner_id, outbox.c.platform,
        outbox.c.chat_id, literal(f"batch:{batch_id}"), outbox.c.id, outbox.c.created_at, outbox.c.available_at,
    ).where(*just_written)
    session.execute(
        insert(Nudge.__table__).from_select(["source", "sent_by", "batch_id", "learner_id", "platform", "chat_id",
                                             "subject", "outbox_id", "created_at", "available_at"], written)
    )
    # Counted, because the row count of this INSERT ... SELECT came back as -1 on PostgreSQL
    # (psycopg 3 with SQLAlchemy 2.1).
    return session.scalar(select(func.count()).select_from(outbox).where(*just_written)) or 0
