"""Where each learner stands, as SQL expressions that segments and reports share.

A learner's *level* is the lowest level that still has an active item not
approved: 0 before the plan is complete, and ``DONE_LEVEL`` once every item
is approved. A learner's *progress state* is one of ``PROGRESS_STATES``,
checked in this order: ``completed`` (macro-badge earned), ``planning`` (plan
not complete), ``changes_requested`` (a reviewer asked for changes on an
item), ``waiting_review`` (an item waits for a decision), else ``working``.

The expressions are correlated subqueries on ``learners``, so a query can
filter or group by them without loading learners into Python.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, case, exists, func, select
from sqlalchemy.orm import aliased

from bot.catalog import Catalog
from bot.models import BadgeAward, Learner, PathwayItem

PROGRESS_STATES = ("planning", "working", "changes_requested", "waiting_review", "completed")
DONE_LEVEL = 4
"""The level of a learner whose every pathway item is approved."""


def has_item_with_status(status: str) -> ColumnElement[bool]:
    item = aliased(PathwayItem)
    return exists().where(item.learner_id == Learner.id, item.active.is_(True), item.status == status)


def has_badge(badge_key: str) -> ColumnElement[bool]:
    award = aliased(BadgeAward)
    return exists().where(award.learner_id == Learner.id, award.badge_key == badge_key)


def completed(catalog: Catalog) -> ColumnElement[bool]:
    """Return the condition that the learner earned the macro-badge."""
    return has_badge(catalog.program.macro_badge.id)


def current_level() -> ColumnElement[int]:
    """0 without a complete plan, else the lowest level with an item to finish, else DONE_LEVEL."""
    lowest_open = (
        select(func.min(PathwayItem.level))
        .where(PathwayItem.learner_id == Learner.id, PathwayItem.active.is_(True), PathwayItem.status != "approved")
        .correlate(Learner)
        .scalar_subquery()
    )
    return case(
        (Learner.plan_completed_at.is_(None), 0),
        else_=func.coalesce(lowest_open, DONE_LEVEL),
    )


def progress_state(catalog: Catalog) -> ColumnElement[str]:
    return case(
        (completed(catalog), "completed"),
        (Learner.plan_completed_at.is_(None), "planning"),
        (has_item_with_status("changes_requested"), "changes_requested"),
        (has_item_with_status("submitted"), "waiting_review"),
        else_="working",
    )


def state_is(catalog: Catalog, state: str) -> ColumnElement[bool]:
    """Return a filter equal to ``progress_state(catalog) == state``, written so that an index can serve it."""
    done = completed(catalog)
    planning = Learner.plan_completed_at.is_(None)
    changes = has_item_with_status("changes_requested")
    waiting = has_item_with_status("submitted")
    if state == "completed":
        return done
    if state == "planning":
        return and_(~done, planning)
    if state == "changes_requested":
        return and_(~done, ~planning, changes)
    if state == "waiting_review":
        return and_(~done, ~planning, ~changes, waiting)
    if state == "working":
        return and_(~done, ~planning, ~changes, ~waiting)
    raise ValueError(f"unknown progress state {state!r}; use one of {', '.join(PROGRESS_STATES)}")
