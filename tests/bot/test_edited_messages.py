"""Edited messages: the core replies that an edit changes nothing and repeats the current step."""

from __future__ import annotations

from sqlalchemy import select

from bot.models import ReviewDecision
from tests.bot.scripted import Chat


def decisions(engine) -> list[ReviewDecision]:
    with engine.session_factory() as session:
        return session.scalars(select(ReviewDecision)).all()


def test_edit_during_plan_keeps_answer(engine):
    ana = Chat(engine)
    ana.answer_until("email")
    question = engine.flows.question("email")

    messages = ana.send("Anna", edited=True)

    assert messages[0].text == engine.flows.texts("edit_ignored")
    assert question.prompt.strip() in messages[-1].text
    assert ana.state() == "email"
    assert ana.learner().name == "Ana"


def test_edit_at_home_names_next_step(engine):
    ana = Chat(engine)
    ana.finish_plan()

    messages = ana.send("/forget", edited=True)

    assert messages[0].text == engine.flows.texts("edit_ignored")
    assert len(messages) >= 2
    assert ana.state() == "home"


def test_edit_never_becomes_feedback(engine):
    ana = Chat(engine)
    ana.finish_plan()
    submission_id = ana.submit_reflection("use-career-services")
    reviewer = Chat(engine, "reviewer", display_name="Rita")
    reviewer.press(f"rv:c:{submission_id}")
    for number in (1, 2, 3):
        reviewer.press(f"rv:m:{submission_id}:{number}:1")

    messages = reviewer.send("Looks fine after all", edited=True)

    assert [message.text for message in messages] == [engine.flows.texts("edit_ignored_staff")]
    assert decisions(engine) == []
    reviewer.send("Name two pieces of advice.")
    [decision] = decisions(engine)
    assert decision.feedback == "Name two pieces of advice."


def test_edit_in_group_is_silent(engine):
    reviewer = Chat(engine, "reviewer", chat_id="reviewers", chat_type="group")

    messages = reviewer.send("/pending", edited=True)

    assert messages == []


def test_edit_after_forget_stores_nothing(engine):
    ana = Chat(engine)
    ana.finish_plan()
    ana.send("/forget")
    ana.send(engine.flows.texts("forget_yes"))

    messages = ana.send("Anna", edited=True)

    assert [message.text for message in messages] == [engine.flows.texts("edit_ignored_staff")]
    assert ana.learner() is None
