"""Input that SQLite stores and PostgreSQL rejects: NUL characters in names, parameters and button values.

PostgreSQL text fields cannot hold NUL (0x00). These tests run on both
databases; on PostgreSQL they run when CAREERBOT_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.models import Learner, ReviewDecision
from tests.bot.scripted import Chat
from tests.conftest import make_event


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request):
    return request.getfixturevalue("engine" if request.param == "sqlite" else "postgres_engine")


def test_nul_in_reviewer_name_decides(any_engine):
    ana = Chat(any_engine)
    ana.finish_plan()
    submission_id = ana.submit_reflection("use-career-services")
    reviewer = Chat(any_engine, "reviewer", display_name="Rita\x00 Reviewer\n")

    messages = reviewer.press(f"rv:a:{submission_id}")

    assert messages[0].text != any_engine.flows.texts("internal_error")
    with any_engine.session_factory() as session:
        decision = session.scalar(select(ReviewDecision))
    assert decision.reviewer_name == "Rita Reviewer"


def test_nul_in_start_parameter_stored_clean(any_engine):
    handled = any_engine.handle(make_event("zoe", "/start campus\x00-north", start_parameter="campus\x00-north"))

    assert handled.messages[0].text != any_engine.flows.texts("internal_error")
    with any_engine.session_factory() as session:
        assert session.scalar(select(Learner.start_parameter)) == "campus-north"


def test_nul_in_button_value_answered(any_engine):
    chat = Chat(any_engine)
    chat.answer_until("name")

    messages = chat.press("name:Ana\x00")

    assert messages[0].text != any_engine.flows.texts("internal_error")
    assert chat.learner().name == "Ana"
