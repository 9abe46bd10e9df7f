"""An acknowledged Slack event whose transaction fails on the database is tried again, not lost.

The failure is a real rolled-back transaction: a ``before_commit`` listener
on the engine's sessions raises the error a failing database raises, for the
commits made while the core handles an event, a given number of times.
"""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from adapters import slack as slack_adapter
from bot.engine import MAX_ATTEMPTS
from bot.models import Learner, ProcessedUpdate
from tests.adapters.slack_harness import LEARNER, emulator, slack  # noqa: F401 (fixtures)


class FailingCommits:
    """Make the next ``failures`` commits inside ``Engine.handle`` fail, as a database that is down does."""

    def __init__(self, engine, failures: int) -> None:
        self.remaining = failures
        self.failed = 0
        self._inside = threading.local()
        self._handle = engine.handle
        engine.handle = self.handle
        sqlalchemy_event.listen(engine.session_factory, "before_commit", self.before_commit)

    def handle(self, event):
        self._inside.active = True
        try:
            return self._handle(event)
        finally:
            self._inside.active = False

    def before_commit(self, session) -> None:
        if getattr(self._inside, "active", False) and self.remaining > 0:
            self.remaining -= 1
            self.failed += 1
            raise OperationalError("COMMIT", {}, Exception("disk I/O error"))


@pytest.fixture
def short_delays(monkeypatch):
    monkeypatch.setattr(slack_adapter, "DATABASE_RETRY_DELAYS", (0.01, 0.01, 0.01))


def count(slack, model) -> int:
    with slack.engine.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


async def test_event_retried_after_database_failure(slack, short_delays, caplog):
    # Two whole engine calls fail (each tries MAX_ATTEMPTS times), the third commits.
    faults = FailingCommits(slack.engine, failures=2 * MAX_ATTEMPTS)

    await slack.say(LEARNER, "hello")
    await slack.settle()

    assert faults.failed == 2 * MAX_ATTEMPTS
    assert count(slack, Learner) == 1
    assert count(slack, ProcessedUpdate) == 1
    greetings = [text for text in slack.texts(slack.dm(LEARNER)) if "I'm careerbot" in text]
    assert len(greetings) == 1
    warnings = [record for record in caplog.records if "trying again" in record.getMessage()]
    assert len(warnings) == 2


async def test_event_lost_after_every_try(slack, short_delays, caplog):
    faults = FailingCommits(slack.engine, failures=100)

    with caplog.at_level(logging.ERROR):
        await slack.say(LEARNER, "hello")
        await slack.settle()

    assert faults.failed == 4 * MAX_ATTEMPTS
    assert count(slack, Learner) == 0
    assert count(slack, ProcessedUpdate) == 0
    lost = [record.getMessage() for record in caplog.records if "lost" in record.getMessage()]
    assert len(lost) == 1
    assert f"slack:{LEARNER}" in lost[0]
