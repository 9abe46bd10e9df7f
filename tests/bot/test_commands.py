"""Slash commands: parsing, /edit, /help, /pathway, /cancel and the command menu."""

from __future__ import annotations

import pytest

from bot import commands
from bot.texts import MESSAGE_FIELDS
from tests.bot.scripted import Chat


@pytest.fixture
def ana(engine) -> Chat:
    chat = Chat(engine)
    chat.finish_plan()
    return chat


@pytest.mark.parametrize("text, parsed", [
    ("/help", ("help", "")),
    ("/HELP", ("help", "")),
    ("/submit 3", ("submit", "3")),
    ("/edit  target_role ", ("edit", "target_role")),
    ("/start@careerbot campus-fair", ("start", "campus-fair")),
    ("/", None),
    ("hello", None),
    ("/usr/bin", None),
    ("/" + "x" * 33, None),
])
def test_parse_command(text, parsed):
    assert commands.parse_command(text) == parsed


def test_menu_commands_described():
    for name in commands.MENU:
        assert name in commands.LEARNER_COMMANDS
        assert f"command_{name}" in MESSAGE_FIELDS


def test_help_lists_commands(engine):
    chat = Chat(engine)
    chat.answer_until("name")

    chat.send("/help")

    assert "/forget - delete everything stored about you" in chat.texts()[0]
    assert "Reviewer commands" not in chat.texts()[0]


def test_help_for_reviewer_learner(engine):
    reviewer = Chat(engine, "reviewer")
    reviewer.send("/start")

    reviewer.send("/help")

    assert "Reviewer commands: /queue" in reviewer.texts()[0]


def test_pathway_before_plan(engine):
    chat = Chat(engine)
    chat.answer_until("values")

    chat.send("/pathway")

    assert chat.texts()[0] == "Your pathway is built when your plan is complete. You have answered 7 of 20 questions."


def test_pathway_command_at_home(ana):
    ana.send("/pathway")

    assert ana.texts()[0].startswith("Your Career Prepared pathway")
    assert "Level 1: Introduction and Foundation (0 of 3 done)" in ana.texts()[0]
    assert ana.texts()[-1].startswith("Next step")


def test_home_pathway_button(ana):
    ana.press("home:pathway")

    assert ana.texts()[0].startswith("Your Career Prepared pathway")


def test_edit_before_plan_refused(engine):
    chat = Chat(engine)
    chat.answer_until("values")

    chat.send("/edit")

    assert "finish your career action plan first" in chat.texts()[0]
    assert chat.state() == "values"


def test_edit_lists_answers(ana):
    ana.send("/edit")

    listing = ana.texts()[0]
    assert ana.state() == "edit_choose"
    assert "1. Name" in listing
    assert "Consent" not in listing
    assert len(ana.last.messages[0].buttons) == 19


def test_edit_by_number(ana):
    ana.send("/edit")
    ana.send("1")

    assert ana.state() == "name"
    assert "Your current answer: Ana" in ana.texts()[0]
    assert "/cancel to keep the current one" in ana.texts()[0]
    ana.send("Ana María")
    assert ana.learner().name == "Ana María"
    assert ana.texts()[0] == "Saved."
    assert ana.state() == "home"


def test_edit_by_button(ana):
    ana.send("/edit")

    ana.press("edit_choose:campus")
    ana.press("campus:south-campus")

    assert ana.learner().campus == "south-campus"
    assert ana.state() == "home"


def test_edit_plan_answer_rebuilds(ana):
    ana.send("/edit Target role or field")
    ana.send("registered nurse")

    assert "rebuilt your pathway" in ana.texts()[0]
    assert ana.learner().answers["target_role"] == "registered nurse"
    reasons = [item.reason for item in ana.learner().items if item.active and item.item_key.startswith("skill:")]
    assert "Health care" in reasons[0]


def test_edit_unknown_answer(ana):
    ana.send("/edit")
    ana.send("my shoe size")

    assert ana.texts()[0] == "I couldn't find that answer. Please pick a number from the list."
    assert ana.state() == "edit_choose"


def test_edit_invalid_answer_reasks(ana):
    ana.send("/edit email")
    ana.send("not-an-email")

    assert "doesn't look like an email" in ana.texts()[0]
    assert ana.state() == "email"
    assert ana.learner().email == "ana@example.edu"


def test_edit_skip_optional_clears(ana):
    ana.send("/edit email")
    ana.send("/skip")

    assert ana.learner().email is None
    assert ana.state() == "home"


@pytest.mark.parametrize("command", ["/cancel", "/back"])
def test_edit_cancel_keeps_answer(ana, command):
    ana.send("/edit values")

    ana.send(command)

    assert ana.state() == "home"
    assert ana.learner().answers["values"].startswith("Honesty")
    assert ana.texts()[0] == "Cancelled. Anything you drafted is kept."


def test_edit_rating_by_button(ana):
    ana.send("/edit ratings.empathy")
    ana.press("ratings.empathy:1")

    assert ana.learner().answers["ratings.empathy"] == 1
    assert ana.state() == "home"


def test_cancel_with_nothing_to_cancel(ana):
    ana.send("/cancel")

    assert ana.texts()[0] == "There is nothing to cancel right now."
    assert ana.texts()[-1].startswith("Next step")


def test_skip_at_home(ana):
    ana.send("/skip")

    assert ana.texts()[0] == "There is no question to skip right now."


def test_back_at_home(ana):
    ana.send("/back")

    assert ana.texts()[0] == "There is no earlier question to go back to."
    assert ana.state() == "home"


def test_submit_during_edit_leaves_edit(ana):
    ana.send("/edit values")

    ana.send("/submit")

    assert ana.state() == "submit_item"
    assert not ana.learner().context.get("editing")


@pytest.mark.parametrize("text", ["/edit ²", "/edit " + "9" * 5000, "/submit " + "9" * 30, "/submit ²",
                                  "/review 1", "/queue", "²", "edit_choose:x"])
def test_odd_commands_at_home_answered(ana, text):
    messages = ana.send(text)

    assert messages
    assert ana.state() in ("home", "edit_choose", "submit_item")
