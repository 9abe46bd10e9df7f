"""Helpers for the nudge and report tests: a controllable clock, one-rule flows, and reading nudges back.

Tests never sleep: they move :class:`Clock` forward and call
``nudge_scheduler.run_once``, which reads the engine's clock.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from bot import outbox
from bot.engine import Engine
from bot.models import BadgeAward, Learner, Nudge, OutboxMessage, PathwayItem
from bot.nudge_rules import NudgesSpec
from bot.nudge_scheduler import RunSummary, run_once
from tests.bot.scripted import Chat, load_learner

START = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
"""A Monday: 15:00 in London, 10:00 in New York, 00:00 (the next day) in Tokyo."""


class Clock:
    """A clock that moves only when told to, for ``Engine.clock``."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment


@pytest.fixture
def clock(engine: Engine) -> Clock:
    clock = Clock()
    engine.clock = clock
    return clock


def only_rules(engine: Engine, *rule_ids: str, **changes) -> None:
    """Keep only the shipped rules ``rule_ids`` (with field ``changes`` applied to each), in that order."""
    shipped = engine.flows.nudges
    rules = [shipped.rule(rule_id).model_copy(update=changes) for rule_id in rule_ids]
    engine.flows = replace(engine.flows, nudges=NudgesSpec(
        timezone=shipped.timezone, max_rule_nudges_per_day=shipped.max_rule_nudges_per_day,
        stalled_after=shipped.stalled_after, rules=rules,
    ))


def learner_with_plan(engine: Engine, user: str, *, name: str | None = None, zone: str = "Europe/London",
                      campus: str = "North Campus") -> Chat:
    chat = Chat(engine, user)
    chat.finish_plan(name=name or user.title(), timezone=zone, campus=campus, email=f"{user}@example.edu")
    return chat


def run(engine: Engine) -> RunSummary:
    return run_once(engine)


def rule_run(summary: RunSummary, rule_id: str):
    return next(run for run in summary.rules if run.rule_id == rule_id)


def nudges_of(engine: Engine, *, rule_id: str | None = None, learner: str | None = None) -> list[Nudge]:
    with engine.session_factory() as session:
        query = select(Nudge).order_by(Nudge.id)
        if rule_id is not None:
            query = query.where(Nudge.rule_id == rule_id)
        if learner is not None:
            query = query.join(Learner, Learner.id == Nudge.learner_id).where(Learner.platform_user_id == learner)
        return list(session.scalars(query))


def outbox_row(engine: Engine, outbox_id: int) -> OutboxMessage | None:
    with engine.session_factory() as session:
        return session.get(OutboxMessage, outbox_id)


def nudge_text(engine: Engine, nudge: Nudge) -> str:
    return outbox_row(engine, nudge.outbox_id).payload["text"]


def set_learner(engine: Engine, user: str, **values) -> None:
    with engine.session_factory() as session, session.begin():
        session.execute(update(Learner).where(Learner.platform_user_id == user).values(**values))


def next_item(engine: Engine, user: str) -> PathwayItem:
    learner = load_learner(engine, user)
    return next(item for item in learner.items if item.active and item.status in ("open", "changes_requested"))


def set_item(engine: Engine, item_id: int, **values) -> None:
    with engine.session_factory() as session, session.begin():
        session.execute(update(PathwayItem).where(PathwayItem.id == item_id).values(**values))


def set_target_dates(engine: Engine, user: str, first: date) -> PathwayItem:
    """Give the learner's next item the target date ``first`` and every later item a later one."""
    learner = load_learner(engine, user)
    item = next_item(engine, user)
    for entry in learner.items:
        later = first + timedelta(days=30 + entry.position) if entry.id != item.id else first
        set_item(engine, entry.id, target_date=later)
    return item


def award(engine: Engine, user: str, badge_key: str, kind: str, at: datetime) -> None:
    learner = load_learner(engine, user)
    with engine.session_factory() as session, session.begin():
        session.add(BadgeAward(learner_id=learner.id, badge_key=badge_key, kind=kind, name=badge_key, awarded_at=at))


def deliver_all(engine: Engine, platform: str = "console", *, at: datetime | None = None) -> list[int]:
    """Mark every due outbox row of ``platform`` sent, with ``sent_at`` from the test clock; return their ids."""
    now = at or engine.clock()
    sent = []
    for outbox_id, _ in outbox.claim_pending(engine.session_factory, platform, limit=10_000, now=now):
        outbox.mark_sent(engine.session_factory, outbox_id, str(outbox_id))
        sent.append(outbox_id)
    with engine.session_factory() as session, session.begin():
        session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(sent)).values(sent_at=now))
    return sent
