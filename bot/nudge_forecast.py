"""When a reminder rule may fire next, for ``/rules``: an estimate from the records.

The estimate looks at when a rule's condition next becomes true for someone
it does not apply to yet, and at when the minimum gap after its latest nudges
ends. It does not check that the condition still holds when a gap ends,
ignores the daily limit and quiet hours, and takes midnight in the program's
time zone for target dates.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.models import BadgeAward, Learner, Nudge, PathwayItem, ReviewDecision, Submission
from bot.nudge_candidates import TO_DO, Context, next_item_id
from bot.nudge_rules import NudgeRule


def earliest_due(session: Session, rule: NudgeRule, context: Context) -> datetime | None:
    """Estimate when the rule may fire next; None when nothing in the database would make it fire.

    NOTE: an estimate (see the module docstring for what it leaves out).
    """
    estimates = [_condition_starts(session, rule, context)]
    if rule.repeats:
        last = session.scalar(
            select(func.min(Nudge.available_at))
            .where(Nudge.rule_id == rule.id, Nudge.withdrawn_at.is_(None),
                   Nudge.available_at > context.now - rule.min_gap)
        )
        estimates.append(last + rule.min_gap if last is not None else None)
    known = [estimate for estimate in estimates if estimate is not None]
    return min(known) if known else None


def _condition_starts(session: Session, rule: NudgeRule, context: Context) -> datetime | None:
    """When the rule's condition next becomes true for someone it does not apply to yet."""
    now = context.now
    after = rule.threshold
    if rule.type == "no_activity":
        start = session.scalar(
            select(func.min(Learner.last_activity_at))
            .where(Learner.plan_completed_at.is_not(None), Learner.last_activity_at > now - after,
                   next_item_id().is_not(None))
        )
    elif rule.type == "changes_requested":
        start = session.scalar(
            select(func.min(ReviewDecision.decided_at))
            .join(Submission, Submission.id == ReviewDecision.submission_id)
            .join(PathwayItem, PathwayItem.id == Submission.item_id)
            .where(PathwayItem.status == "changes_requested", ReviewDecision.decision == "changes_requested",
                   ReviewDecision.decided_at > now - after)
        )
    elif rule.type == "next_level_not_started":
        level_badges = [level.badge.id for level in context.flows.catalog.levels if level.number < 3]
        start = session.scalar(
            select(func.min(BadgeAward.awarded_at))
            .where(BadgeAward.badge_key.in_(level_badges), BadgeAward.awarded_at > now - after)
        )
    elif rule.type == "review_waiting":
        start = session.scalar(
            select(func.min(Submission.submitted_at))
            .where(Submission.status == "pending", Submission.submitted_at > now - after)
        )
    else:
        return _earliest_date_due(session, rule, context)
    return start + after if start is not None else None


def _earliest_date_due(session: Session, rule: NudgeRule, context: Context) -> datetime | None:
    today = context.local_today(None)
    days = rule.threshold.days
    dated = (
        select(func.min(PathwayItem.target_date))
        .where(PathwayItem.active.is_(True), PathwayItem.status.in_(TO_DO), PathwayItem.target_date.is_not(None))
    )
    if rule.type == "target_date_soon":
        target = session.scalar(dated.where(PathwayItem.target_date > today + timedelta(days=days)))
        first_day = target - timedelta(days=days) if target is not None else None
    else:
        overdue_days = max(days, 1)
        target = session.scalar(dated.where(PathwayItem.target_date > today - timedelta(days=overdue_days)))
        first_day = target + timedelta(days=overdue_days) if target is not None else None
    if first_day is None:
        return None
    return datetime.combine(first_day, datetime.min.time(), tzinfo=context.window.default_zone)
