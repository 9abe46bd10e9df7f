"""The learner's questions, one at a time, and what happens on bad input."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from bot.events import Attachment
from bot.models import Learner, OutboxMessage
from tests.bot.scripted import Chat, plan_answers


@pytest.fixture
def chat(engine) -> Chat:
    return Chat(engine)


def asked(chat: Chat, state: str) -> bool:
    """True when the last reply asks the question of ``state`` (its prompt and buttons)."""
    question = chat.engine.flows.question(state)
    last = chat.last.messages[-1]
    return question.prompt.strip() in last.text and chat.state() == state


def outbox_count(engine) -> int:
    with engine.session_factory() as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage))


def test_first_message_greets_and_asks_consent(chat):
    messages = chat.send("hi")

    assert "I'm careerbot" in messages[0].text
    assert asked(chat, "consent")
    assert [button.action for button in messages[-1].buttons] == ["consent:agree", "consent:decline"]


def test_decline_keeps_consent(chat):
    chat.send("hi")

    chat.press("consent:decline")

    learner = chat.learner()
    assert learner.state == "consent"
    assert learner.consented_at is None
    assert learner.answers == {}
    assert "No problem" in chat.texts()[0]
    assert asked(chat, "consent")


def test_commands_needing_consent_refused(chat):
    chat.send("hi")

    for command in ("/submit", "/edit", "/export"):
        chat.send(command)
        assert "consent question first" in chat.texts()[0]
        assert asked(chat, "consent")


def test_agree_then_name(chat):
    chat.send("hi")

    chat.press("consent:agree")

    assert chat.learner().consented_at is not None
    assert asked(chat, "name")


def test_name_keeps_emoji_rtl_cjk(chat):
    chat.answer_until("name")
    name = "👩🏽‍💻 سارة 王小明"

    chat.send(name)

    assert chat.learner().name == name
    assert asked(chat, "email")


def test_name_strips_control_characters(chat):
    chat.answer_until("name")

    chat.send("\x00A\x07na\u200b\x1b")

    assert chat.learner().name == "Ana"


def test_email_validated_and_optional(chat):
    chat.answer_until("email")

    chat.send("not an email")
    assert "doesn't look like an email" in chat.texts()[0]
    assert asked(chat, "email")

    chat.send("/skip")
    learner = chat.learner()
    assert learner.email is None
    assert "email" not in learner.answers
    assert asked(chat, "campus")


def test_email_stored(chat):
    chat.answer_until("email")

    chat.send("Ana@Example.EDU")

    assert chat.learner().email == "Ana@example.edu"


def test_skip_required_question_refused(chat):
    chat.answer_until("name")

    chat.send("/skip")

    assert "can't be skipped" in chat.texts()[0]
    assert asked(chat, "name")


def test_campus_from_catalog(chat):
    chat.answer_until("campus")

    chat.send("Moon Campus")
    assert "North Campus" in chat.texts()[0]
    assert asked(chat, "campus")

    chat.send("3")
    assert chat.learner().campus == "city-center-campus"


def test_campus_buttons_list_catalog(chat, engine):
    chat.answer_until("campus")

    buttons = chat.last.messages[-1].buttons

    assert [button.label for button in buttons] == [campus.name for campus in engine.flows.catalog.campuses]


@pytest.mark.parametrize("typed, stored", [
    ("europe/berlin", "Europe/Berlin"),
    ("ASIA/TOKYO", "Asia/Tokyo"),
    ("new york", "America/New_York"),
    ("1", "America/New_York"),
])
def test_timezone_typed_or_button(chat, typed, stored):
    chat.answer_until("timezone")

    chat.send(typed)

    assert chat.learner().timezone == stored


def test_timezone_button_press(chat):
    chat.answer_until("timezone")

    chat.press("timezone:Asia/Kolkata")

    assert chat.learner().timezone == "Asia/Kolkata"
    assert asked(chat, "interests")


def test_timezone_unknown_rejected(chat):
    chat.answer_until("timezone")

    chat.send("Atlantis/Central")

    assert "don't know that time zone" in chat.texts()[0]
    assert asked(chat, "timezone")


def test_ratings_one_per_skill(chat, engine):
    chat.answer_until("ratings.collaboration")
    skills = [skill.id for skill in engine.flows.catalog.skills]

    for number, skill in enumerate(skills, start=1):
        assert asked(chat, f"ratings.{skill}")
        chat.press(f"ratings.{skill}:{number % 5 + 1}")

    ratings = {key: value for key, value in chat.learner().answers.items() if key.startswith("ratings.")}
    assert len(ratings) == 8
    assert ratings["ratings.collaboration"] == 2
    assert asked(chat, "skills_to_develop")


@pytest.mark.parametrize("typed", ["0", "6", "3.5", "three"])
def test_rating_out_of_range_rejected(chat, typed):
    chat.answer_until("ratings.collaboration")

    chat.send(typed)

    assert "whole number from 1 to 5" in chat.texts()[0]
    assert asked(chat, "ratings.collaboration")


@pytest.mark.parametrize("typed, reason", [
    ((date.today() - timedelta(days=1)).isoformat(), "not in the future"),
    ("someday", "couldn't read that date"),
    ((date.today() + timedelta(days=365 * 12)).isoformat(), "more than 10 years away"),
])
def test_target_date_rejected(chat, typed, reason):
    chat.answer_until("target_date")

    chat.send(typed)

    assert reason in chat.texts()[0]
    assert asked(chat, "target_date")


def test_target_date_month_accepted(chat):
    chat.answer_until("target_date")
    year = date.today().year + 2

    chat.send(f"May {year}")

    assert chat.learner().answers["target_date"] == f"{year}-05-31"
    assert asked(chat, "experience")


def test_experience_choice_completes_plan(chat):
    chat.answer_until("experience")

    chat.press("experience:volunteering")

    learner = chat.learner()
    assert learner.state == "home"
    assert learner.plan_completed_at is not None
    assert learner.answers["experience"] == "volunteering"
    assert "Next step: Use career services" in chat.texts()[-1]


def test_back_goes_back_one_question(chat):
    chat.answer_until("campus")

    chat.send("/back")
    assert asked(chat, "email")

    chat.send("/back")
    assert asked(chat, "name")
    assert chat.learner().answers["name"] == "Ana"
    assert "Your current answer: Ana" in chat.texts()[-1]


def test_back_on_first_question(chat):
    chat.send("hi")

    chat.send("/back")

    assert "no earlier question" in chat.texts()[0]
    assert asked(chat, "consent")


def test_command_mid_question_reasks(chat):
    chat.answer_until("values")

    for command in ("/help", "/plan", "/pathway", "/badges", "/cancel"):
        chat.send(command)
        assert asked(chat, "values"), command
        assert len(chat.texts()) == 2


def test_plan_command_shows_answers(chat):
    chat.answer_until("values")

    chat.send("/plan")

    plan = chat.texts()[0]
    assert "Target role or field: software developer" in plan
    assert "Values: (not answered yet)" in plan
    assert "Campus or program: North Campus" in plan


def test_unknown_command_reasks(chat):
    chat.answer_until("values")

    chat.send("/frobnicate now")

    assert "don't know the command /frobnicate" in chat.texts()[0]
    assert asked(chat, "values")


def test_text_starting_with_slash_is_answer(chat):
    chat.answer_until("values")

    chat.send("/usr/bin and open source")

    assert chat.learner().answers["values"] == "/usr/bin and open source"


def test_empty_message_reasks(chat):
    chat.answer_until("values")

    for text in ("", "   ", "\x00\u200b"):
        chat.send(text)
        assert "didn't get any text" in chat.texts()[0]
        assert asked(chat, "values")
    assert "values" not in chat.learner().answers


def test_huge_message_rejected_state_unchanged(chat):
    chat.answer_until("values")
    before = chat.learner()

    chat.send("x" * 100_000)

    after = chat.learner()
    assert "too long" in chat.texts()[0]
    assert asked(chat, "values")
    assert after.answers == before.answers
    assert after.state == before.state


def test_answer_over_question_limit_rejected(chat):
    chat.answer_until("target_role")

    chat.send("y" * 201)

    assert "keep it to 200 at most" in chat.texts()[0]
    assert asked(chat, "target_role")


def test_stale_button_reasks(chat):
    chat.answer_until("email")

    chat.press("consent:agree")

    assert "already answered" in chat.texts()[0]
    assert asked(chat, "email")
    assert chat.last.action_expired


def test_current_button_not_expired(chat):
    chat.answer_until("campus")

    chat.press("campus:north-campus")

    assert not chat.last.action_expired


def test_stale_rating_button_ignored(chat):
    chat.answer_until("ratings.empathy")

    chat.press("ratings.collaboration:1")

    assert chat.learner().answers["ratings.collaboration"] == 3
    assert asked(chat, "ratings.empathy")


def test_button_without_value_is_stale(chat):
    chat.answer_until("campus")

    chat.press("campus:")

    assert "already answered" in chat.texts()[0]
    assert asked(chat, "campus")


def test_file_not_expected(chat):
    chat.answer_until("values")
    attachment = Attachment(filename="cv.pdf", content_type="application/pdf", size=3, data=b"%PD")

    chat.send(attachment=attachment)

    assert "wasn't expecting a file" in chat.texts()[0]
    assert asked(chat, "values")


def test_unsupported_message(chat):
    chat.answer_until("values")

    chat.send(None)

    assert "only read text, buttons and files" in chat.texts()[0]
    assert asked(chat, "values")


def test_opened_chat_welcomes_back(chat):
    chat.answer_until("values")

    chat.send(None, opened=True)

    assert chat.texts()[0] == "Welcome back, Ana! Here is where we left off."
    assert asked(chat, "values")


def test_bad_inputs_never_raise(chat, engine):
    chat.answer_until("campus")
    odd_inputs = ["²", "9" * 5000, "/", "/ ", "/" + "x" * 40, "/edit ²", "/submit 99999999999999999999",
                  "\ud800", "campus:", "\u202e", "/back@otherbot", "/BACK"]

    for text in odd_inputs:
        messages = chat.send(text)
        assert messages, text
        assert chat.last.messages[-1].text


def test_every_reply_ends_with_prompt_during_plan(chat, engine):
    answers = plan_answers()
    chat.send("hi")
    for question in engine.flows.questions:
        assert question.prompt.strip() in chat.texts()[-1]
        chat.send(answers[question.state])
    assert outbox_count(engine) > 20


def test_many_learners_independent(engine):
    ana, bo = Chat(engine, "ana"), Chat(engine, "bo")

    ana.answer_until("email")
    bo.answer_until("name")

    assert ana.state() == "email"
    assert bo.state() == "name"
    with engine.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Learner)) == 2


def test_unknown_stored_zone_uses_utc(engine, chat):
    from sqlalchemy import update

    chat.finish_plan()
    with engine.session_factory() as session, session.begin():
        session.execute(update(Learner).values(timezone="America"))

    chat.send("/edit")
    chat.send("18")
    chat.send("2031-05-31")

    assert chat.learner().answers["target_date"] == "2031-05-31"
