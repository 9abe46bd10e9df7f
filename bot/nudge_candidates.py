"""Who each rule type applies to right now: one SQL query per type.

:func:`candidates` returns a :class:`Candidate` per (recipient, subject) for
which the rule's condition is true at ``now`` and none of the rule's limits
forbids a nudge: the minimum gap since its last nudge to that person, the
once-per-occasion limit of a rule that does not repeat, and, for learners,
the daily limit of rule nudges. Learners who paused reminders or blocked the
bot are returned too, flagged, so that the scheduler can count them.

Dates: target dates are calendar dates, compared with "today" where the
learner lives; other thresholds are compared with timestamps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, Select, String, and_, cast, exists, func, literal, not_, select
from sqlalchemy.orm import Session, aliased

from bot import chats
from bot.config import Settings
from bot.flows import Flows
from bot.models import BadgeAward, Learner, Nudge, PathwayItem, ReviewDecision, Submission
from bot.nudge_rules import NudgeRule
from bot.nudges import RULE, DeliveryWindow

logger = logging.getLogger(__name__)

DAY = timedelta(days=1)
TO_DO = ("open", "changes_requested")
"""Item statuses that leave the learner something to do."""


@dataclass(frozen=True)
class Candidate:
    """A recipient the rule applies to, with the template values for them."""

    platform: str
    chat_id: str
    learner_id: int | None
    zone_name: str | None
    subject: str
    values: dict[str, object] = field(default_factory=dict)
    reminders_paused: bool = False
    unreachable: bool = False


@dataclass(frozen=True)
class Context:
    """The inputs of a candidate query besides the session: flows, settings, the time and the delivery window."""

    flows: Flows
    settings: Settings
    now: datetime
    window: DeliveryWindow

    def local_today(self, zone_name: str | None) -> date:
        return self.now.astimezone(self.window.zone(zone_name)).date()

    def format_date(self, value: date | None) -> str:
        return value.isoformat() if value is not None else self.flows.texts("nudge_no_date")

    def format_time(self, value: datetime, zone_name: str | None = None) -> str:
        return value.astimezone(self.window.zone(zone_name)).date().isoformat()


def candidates(session: Session, rule: NudgeRule, context: Context) -> list[Candidate]:
    """Return who ``rule`` would nudge now, at most one candidate per recipient."""
    finder = FINDERS[rule.type]
    found = finder(session, rule, context)
    return _first_per_recipient(found)


def _first_per_recipient(found: Iterable[Candidate]) -> list[Candidate]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for candidate in found:
        key = (candidate.platform, candidate.chat_id)
        if key not in seen:
            seen.add(key)
            unique.append(candidate)
    return unique


# --- limits shared by the learner rules ------------------------------------------


def _learner_limits(rule: NudgeRule, context: Context, subject: ColumnElement[str],
                    occasion_start: ColumnElement[datetime] | None = None) -> list[ColumnElement[bool]]:
    """Conditions that keep a learner out: a recent nudge of this rule, an occasion already nudged, the daily limit."""
    now = context.now
    mine = and_(Nudge.rule_id == rule.id, Nudge.learner_id == Learner.id, Nudge.withdrawn_at.is_(None))
    limits = [not_(exists().where(mine, Nudge.available_at > now - rule.min_gap))]
    if not rule.repeats:
        same_occasion = and_(mine, Nudge.subject == subject)
        if occasion_start is not None:
            same_occasion = and_(same_occasion, Nudge.created_at > occasion_start)
        limits.append(not_(exists().where(same_occasion)))
    today_count = (
        select(func.count())
        .where(Nudge.learner_id == Learner.id, Nudge.source == RULE, Nudge.withdrawn_at.is_(None),
               Nudge.available_at > now - DAY)
        .correlate(Learner)
        .scalar_subquery()
    )
    limits.append(today_count < context.flows.nudges.max_rule_nudges_per_day)
    return limits


def _item_subject() -> ColumnElement[str]:
    return literal("item:") + cast(PathwayItem.id, String)


def _learner_columns() -> tuple:
    return (Learner.id, Learner.platform, Learner.chat_id, Learner.name, Learner.timezone,
            Learner.reminders_paused, Learner.unreachable_since)


def _learner_candidate(row, subject: str, values: dict[str, object]) -> Candidate:
    name_suffix = f", {row.name}" if row.name else ""
    return Candidate(
        platform=row.platform,
        chat_id=row.chat_id,
        learner_id=row.id,
        zone_name=row.timezone,
        subject=subject,
        values={"name_suffix": name_suffix, **values},
        reminders_paused=bool(row.reminders_paused),
        unreachable=row.unreachable_since is not None,
    )


def next_item_id() -> ColumnElement[int]:
    """Select the learner's next item to do: the first active item, in pathway order, not approved or waiting."""
    return (
        select(PathwayItem.id)
        .where(PathwayItem.learner_id == Learner.id, PathwayItem.active.is_(True), PathwayItem.status.in_(TO_DO))
        .order_by(PathwayItem.position)
        .limit(1)
        .correlate(Learner)
        .scalar_subquery()
    )


def _item_values(context: Context, row) -> dict[str, object]:
    return {"next_step": row.title, "level": row.level, "due_date": context.format_date(row.target_date)}


# --- the learner rule types --------------------------------------------------------


def _no_activity(session: Session, rule: NudgeRule, context: Context) -> list[Candidate]:
    subject = literal("activity")
    query = (
        select(*_learner_columns(), Learner.last_activity_at, PathwayItem.title, PathwayItem.level,
               PathwayItem.target_date)
        .join(PathwayItem, PathwayItem.id == next_item_id())
        .where(Learner.plan_completed_at.is_not(None), Learner.last_activity_at <= context.now - rule.threshold,
               *_learner_limits(rule, context, subject, occasion_start=Learner.last_activity_at))
        .order_by(Learner.id)
    )
    found = []
    for row in session.execute(query):
        days = (context.now - row.last_activity_at).days
        found.append(_learner_candidate(row, "activity", {**_item_values(context, row), "days_inactive": days}))
    return found


def _changes_requested(session: Session, rule: NudgeRule, context: Context) -> list[Candidate]:
    requested_at = (
        select(func.max(ReviewDecision.decided_at))
        .join(Submission, Submission.id == ReviewDecision.submission_id)
        .where(Submission.item_id == PathwayItem.id, ReviewDecision.decision == "changes_requested")
        .correlate(PathwayItem)
        .scalar_subquery()
    )
    query = (
        select(*_learner_columns(), PathwayItem.id.label("item_id"), PathwayItem.title, PathwayItem.level,
               PathwayItem.target_date, requested_at.label("requested_at"))
        .join(PathwayItem, PathwayItem.learner_id == Learner.id)
        .where(PathwayItem.active.is_(True), PathwayItem.status == "changes_requested",
               requested_at <= context.now - rule.threshold,
               *_learner_limits(rule, context, _item_subject(), occasion_start=requested_at))
        .order_by(Learner.id, requested_at)
    )
    found = []
    for row in session.execute(query):
        values = {**_item_values(context, row), "requested_on": context.format_time(row.requested_at, row.timezone)}
        found.append(_learner_candidate(row, f"item:{row.item_id}", values))
    return found


def _dated_items(rule: NudgeRule, context: Context, earliest: date, latest: date) -> Select:
    """Active items still to do whose target date lies in [earliest, latest], soonest first per learner."""
    return (
        select(*_learner_columns(), PathwayItem.id.label("item_id"), PathwayItem.title, PathwayItem.level,
               PathwayItem.target_date)
        .join(PathwayItem, PathwayItem.learner_id == Learner.id)
        .where(Learner.plan_completed_at.is_not(None), PathwayItem.active.is_(True),
               PathwayItem.status.in_(TO_DO), PathwayItem.target_date.between(earliest, latest),
               *_learner_limits(rule, context, _item_subject()))
        .order_by(Learner.id, PathwayItem.target_date, PathwayItem.position)
    )


def _target_date_soon(session: Session, rule: NudgeRule, context: Context) -> list[Candidate]:
    within_days = rule.threshold.days
    utc_today = context.now.date()
    # A day of slack on each side: "today" differs by up to a day between time zones.
    query = _dated_items(rule, context, utc_today - DAY, utc_today + timedelta(days=within_days + 1))
    found = []
    for row in session.execute(query):
        days_left = (row.target_date - context.local_today(row.timezone)).days
        if 0 <= days_left <= within_days:
            found.append(_learner_candidate(row, f"item:{row.item_id}",
                                            {**_item_values(context, row), "days_left": days_left}))
    return found


def _target_date_passed(session: Session, rule: NudgeRule, context: Context) -> list[Candidate]:
    overdue_days = max(rule.threshold.days, 1)
    utc_today = context.now.date()
    query = _dated_items(rule, context, date.min, utc_today - timedelta(days=overdue_days - 1))
    found = []
    for row in session.execute(query):
        days_overdue = (context.local_today(row.timezone) - row.target_date).days
        if days_overdue >= overdue_days:
            found.append(_learner_candidate(row, f"item:{row.item_id}",
                                            {**_item_values(context, row), "days_overdue": days_overdue}))
    return found


def _next_level_not_started(session: Session, rule: NudgeRule, context: Context) -> list[Candidate]:
    found = []
    levels = sorted(context.flows.catalog.levels, key=lambda level: level.number)
    for level, next_level in zip(levels, levels[1:]):
        next_level_item = aliased(PathwayItem)
        started = exists().where(Submission.item_id == next_level_item.id, next_level_item.learner_id == Learner.id,
                                 next_level_item.level == next_level.number)
        first_item_id = (
            select(PathwayItem.id)
            .where(PathwayItem.learner_id == Learner.id, PathwayItem.active.is_(True),
                   PathwayItem.level == next_level.number, PathwayItem.status.in_(TO_DO))
            .order_by(PathwayItem.position)
            .limit(1)
            .correlate(Learner)
            .scalar_subquery()
        )
        subject = f"level:{next_level.number}"
        query = (
            select(*_learner_columns(), PathwayItem.title, PathwayItem.level, PathwayItem.target_date)
            .join(BadgeAward, and_(BadgeAward.learner_id == Learner.id, BadgeAward.badge_key == level.badge.id))
            .join(PathwayItem, PathwayItem.id == first_item_id)
            .where(BadgeAward.awarded_at <= context.now - rule.threshold, not_(started),
                   *_learner_limits(rule, context, literal(subject)))
            .order_by(Learner.id)
        )
        for row in session.execute(query):
            found.append(_learner_candidate(row, subject, {**_item_values(context, row),
                                                           "approved_level": level.number}))
    found.sort(key=lambda candidate: candidate.learner_id)
    return found


# --- reviewers -------------------------------------------------------------------------


def _review_waiting(session: Session, rule: NudgeRule, context: Context) -> list[Candidate]:
    """Return one candidate per reviewer chat, with the count of submissions waiting too long and the oldest."""
    query = (
        select(Submission.id, Submission.submitted_at, PathwayItem.title, Learner.platform, Learner.name,
               Learner.platform_user_id)
        .join(PathwayItem, PathwayItem.id == Submission.item_id)
        .join(Learner, Learner.id == Submission.learner_id)
        .where(Submission.status == "pending", Submission.submitted_at <= context.now - rule.threshold)
        .order_by(Submission.submitted_at, Submission.id)
    )
    by_platform: dict[str, list] = {}
    for row in session.execute(query):
        by_platform.setdefault(row.platform, []).append(row)

    found = []
    zone_name = context.flows.nudges.timezone
    for platform, rows in by_platform.items():
        chat_id = chats.reviewer_chat(session, context.settings, platform)
        if chat_id is None:
            logger.warning("rule %s: %d submission(s) wait on %s, which has no reviewer chat; see /queue",
                           rule.id, len(rows), platform)
            continue
        oldest = rows[0]
        subject = f"submission:{oldest.id}"
        if not _reviewer_chat_may_be_nudged(session, rule, context, platform, chat_id, subject):
            continue
        step = context.flows.texts("nudge_review_step", submission_id=oldest.id, title=oldest.title,
                                   learner=oldest.name or oldest.platform_user_id)
        values = {
            "next_step": step,
            "count": len(rows),
            "waiting_since": context.format_time(oldest.submitted_at, zone_name),
            "due_date": context.format_time(oldest.submitted_at + rule.threshold, zone_name),
        }
        found.append(Candidate(platform=platform, chat_id=chat_id, learner_id=None, zone_name=zone_name,
                               subject=subject, values=values))
    return found


def _reviewer_chat_may_be_nudged(session: Session, rule: NudgeRule, context: Context, platform: str, chat_id: str,
                                 subject: str) -> bool:
    mine = and_(Nudge.rule_id == rule.id, Nudge.platform == platform, Nudge.chat_id == chat_id,
                Nudge.withdrawn_at.is_(None))
    if session.scalar(select(exists().where(mine, Nudge.available_at > context.now - rule.min_gap))):
        return False
    if not rule.repeats and session.scalar(select(exists().where(mine, Nudge.subject == subject))):
        return False
    return True


Finder = Callable[[Session, NudgeRule, Context], list[Candidate]]

FINDERS: dict[str, Finder] = {
    "no_activity": _no_activity,
    "changes_requested": _changes_requested,
    "target_date_soon": _target_date_soon,
    "target_date_passed": _target_date_passed,
    "next_level_not_started": _next_level_not_started,
    "review_waiting": _review_waiting,
}
