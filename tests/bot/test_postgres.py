"""The core on PostgreSQL: migrations, a learner journey with a review, dedupe and row locks.

These tests run when CAREERBOT_TEST_POSTGRES_URL is set (``.ci/run`` sets it)
and skip otherwise.
"""

from __future__ import annotations

import threading
from datetime import date, timedelta

from sqlalchemy import func, select

from bot.models import BadgeAward, Learner, OutboxMessage, ReviewDecision, Submission
from tests.conftest import make_event

PLAN = [
    "I agree", "Ana", "ana@example.org", "1", "Europe/London",
    "Helping people find data they need", "data analyst", "honesty", "spreadsheets",
    "3", "2", "4", "3", "5", "2", "3", "4",
    "public speaking", None, "internship",
]


def finish_plan(engine, user: str) -> None:
    target = (date.today() + timedelta(days=400)).isoformat()
    engine.handle(make_event(user, "hello"))
    for answer in PLAN:
        engine.handle(make_event(user, answer if answer is not None else target))


def learner_state(engine, user: str) -> str:
    with engine.session_factory() as session:
        return session.scalar(select(Learner.state).where(Learner.platform_user_id == user))


def test_postgres_plan_to_home(postgres_engine):
    finish_plan(postgres_engine, "ana")

    assert learner_state(postgres_engine, "ana") == "home"
    with postgres_engine.session_factory() as session:
        learner = session.scalar(select(Learner).where(Learner.platform_user_id == "ana"))
        assert learner.plan_completed_at is not None
        assert len([item for item in learner.items if item.active]) == 10


def test_postgres_review_awards_item_badge(postgres_engine):
    finish_plan(postgres_engine, "ana")
    reflection = "I met a career adviser on Monday. " * 10

    for text in ["/submit", "1", "1", reflection, "1"]:
        postgres_engine.handle(make_event("ana", text))
    with postgres_engine.session_factory() as session:
        submission_id = session.scalar(select(Submission.id).where(Submission.status == "pending"))
    postgres_engine.handle(make_event("reviewer", action=f"rv:a:{submission_id}", chat_id="reviewers"))

    with postgres_engine.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(ReviewDecision)) == 1
        assert session.scalar(select(func.count()).select_from(BadgeAward)) == 1


def test_postgres_redelivered_update_is_noop(postgres_engine):
    postgres_engine.handle(make_event("ana", "hello"))
    first = postgres_engine.handle(make_event("ana", "I agree", update_id="u-1"))
    second = postgres_engine.handle(make_event("ana", "I agree", update_id="u-1"))

    assert not first.duplicate
    assert second.duplicate
    assert learner_state(postgres_engine, "ana") == "name"


def test_postgres_concurrent_updates_serialised(postgres_engine):
    postgres_engine.handle(make_event("ana", "hello"))
    postgres_engine.handle(make_event("ana", "I agree"))
    errors: list[BaseException] = []

    def send(text: str, update_id: str) -> None:
        try:
            postgres_engine.handle(make_event("ana", text, update_id=update_id))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(f"Name {index}", f"c-{index}")) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    # Serialised by the row lock: the first answer is the name, the second the (invalid) email.
    assert learner_state(postgres_engine, "ana") == "email"
    with postgres_engine.session_factory() as session:
        replies = session.scalar(select(func.count()).select_from(OutboxMessage))
    assert replies > 0
