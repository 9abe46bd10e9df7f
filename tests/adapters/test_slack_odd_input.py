"""Odd and hostile Slack input: message shapes, markup and mentions, slash command text, buttons, forms."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re

import pytest
from sqlalchemy import func, select

from bot.models import Learner, ReviewDecision
from tests.adapters import slack_payloads as payloads
from tests.adapters.slack_harness import (  # noqa: F401 (fixtures)
    LEARNER,
    REFLECTION,
    REVIEWER,
    REVIEWER_2,
    REVIEWERS,
    buttons_of,
    complete_plan,
    emulator,
    section_text,
    slack,
    submit_reflection,
)

MENTION = re.compile(r"<[!@#]")


def errors(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.levelno >= logging.ERROR and record.name.startswith(("adapters", "bot", "slack_bolt"))]


def raw_block_texts(message: dict) -> list[str]:
    """The mrkdwn of every section and context element of a posted message, as sent."""
    texts = []
    for block in message.get("blocks") or []:
        if block["type"] == "section":
            texts.append(block["text"]["text"])
        elif block["type"] == "context":
            texts.extend(element.get("text", "") for element in block["elements"])
    return texts


def assert_no_markup_from_users(message: dict) -> None:
    """Nothing in a posted message can ping anyone or open a link the bot did not write."""
    for text in [message.get("text", ""), *raw_block_texts(message)]:
        assert not MENTION.search(text), text
        assert "<http" not in text, text
    for block in message.get("blocks") or []:
        if block["type"] == "section":
            assert block["text"]["verbatim"] is True


ODD_TEXTS = {
    "only spaces": ("   ", False),
    "control characters": ("\x00\x07\x1b[2J", False),
    "channel mention": ("<!channel> <!here> <!everyone>", True),
    "user mention": ("<@U0000000R01> and <@U0000000R01|rita>", True),
    "subteam mention": ("<!subteam^S0000000001|@reviewers>", True),
    "link with label": ("<https://evil.example/login|https://intranet.example.edu>", True),
    "escaped entities": ("&lt;b&gt;bold&lt;/b&gt; &amp;amp;", True),
    "mrkdwn": ("*bold* _italic_ ~strike~ `code` ```block``` > quote", False),
    "huge": ("x" * 40000, False),
    "slash in text": ("/careerbot submit", False),
}


@pytest.mark.parametrize("name", list(ODD_TEXTS))
async def test_odd_direct_message_answered_as_text(slack, caplog, name):
    text, markup = ODD_TEXTS[name]
    dm = slack.dm(LEARNER)
    await slack.say(LEARNER, "hello")
    before = len(slack.posted(dm))

    await slack.say(LEARNER, text, markup=markup)

    replies = slack.posted(dm)[before:]
    assert replies, name
    assert section_text(replies[-1]).startswith("Question 1 of 20")
    for reply in replies:
        assert_no_markup_from_users(reply)
    assert errors(caplog) == []


async def test_name_with_mentions_stays_text_everywhere(slack):
    dm = slack.dm(LEARNER)
    await slack.say(LEARNER, "hello")
    await slack.say(LEARNER, "I agree")
    await slack.say(LEARNER, "<!channel> <@U0000000R01> <https://evil.example|Ana>", markup=True)

    await slack.command(LEARNER, "plan")

    plan = slack.posted(dm)[-2]
    assert "Name: @channel @U0000000R01 https://evil.example" in section_text(plan)
    for message in slack.posted(dm):
        assert_no_markup_from_users(message)


@pytest.mark.parametrize(("text", "state"), [
    ("/submit", "consent"),
    ("//help", "consent"),
    ("<!channel>", "consent"),
    ("x" * 3000, "consent"),
])
async def test_odd_slash_command_text_answered(slack, caplog, text, state):
    dm = slack.dm(LEARNER)
    await slack.say(LEARNER, "hello")
    before = len(slack.posted(dm))

    await slack.command(LEARNER, text)

    replies = slack.posted(dm)[before:]
    assert replies
    assert section_text(replies[-1]).startswith("Question 1 of 20")
    with slack.engine.session_factory() as session:
        learner = session.scalar(select(Learner))
    assert learner.state == state
    assert learner.answers == {}
    assert errors(caplog) == []


async def test_command_with_leading_slash_runs_command(slack):
    dm = slack.dm(LEARNER)
    await slack.say(LEARNER, "hello")
    await slack.say(LEARNER, "I agree")

    await slack.command(LEARNER, "/help")

    with slack.engine.session_factory() as session:
        learner = session.scalar(select(Learner))
    assert learner.name is None
    assert learner.state == "name"
    assert "Commands you can use at any point" in "\n".join(slack.texts(dm)[-2:])


@pytest.mark.parametrize("value", ["", ":", "rv:", "rv:a:", "rv:a:99999999999", "rv:f:1:", "rv:f:1:0101",
                                   "consent:", "nowhere:1", "x" * 2000])
async def test_malformed_button_value_answered(slack, caplog, value):
    dm = slack.dm(LEARNER)
    await slack.say(LEARNER, "hello")
    question = slack.posted(dm)[-1]
    forged = copy.deepcopy(question)
    forged["blocks"].append({"type": "actions", "elements": [
        {"type": "button", "action_id": "careerbot-9", "text": {"type": "plain_text", "text": "x"}, "value": value}]})
    before = len(slack.posted(dm))

    await slack.interaction(payloads.block_actions(LEARNER, dm, forged, value))

    answers = slack.posted(dm)[before:] + [{"text": text} for text in slack.ephemerals(LEARNER)]
    assert answers, value
    assert errors(caplog) == []
    with slack.engine.session_factory() as session:
        assert session.scalar(select(Learner.state)) == "consent"


async def test_form_for_unknown_submission_refused(slack, caplog):
    await complete_plan(slack, LEARNER)
    await submit_reflection(slack, LEARNER, "Use career services", REFLECTION)
    await slack.press(REVIEWER, "rv:c:1", channel=REVIEWERS)
    view = slack.last_view()
    forged = {**view, "private_metadata": json.dumps({"submission_id": 999, "chat_id": REVIEWERS, "criteria": 3})}

    await slack.interaction(payloads.view_submission(
        REVIEWER, forged, payloads.change_request_values([True, False, True], "Add dates.")))

    with slack.engine.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(ReviewDecision)) == 0
    assert slack.ephemerals(REVIEWER)
    assert errors(caplog) == []


async def test_card_with_hostile_reviewer_feedback_stays_text(slack):
    await complete_plan(slack, LEARNER)
    await submit_reflection(slack, LEARNER, "Use career services", REFLECTION)
    await slack.press(REVIEWER, "rv:c:1", channel=REVIEWERS)

    await slack.submit_change_request(REVIEWER, [True, False, True], "<!channel> see <https://evil.example|here>")

    for channel in (REVIEWERS, slack.dm(LEARNER)):
        for message in slack.posted(channel):
            assert_no_markup_from_users(message)
    notice = next(text for text in slack.texts(slack.dm(LEARNER)) if "<!channel> see" in text)
    assert "<https://evil.example|here>" in notice


async def test_stale_press_not_shown_as_choice(slack):
    dm = slack.dm(LEARNER)
    for text in ("hello", "I agree", "Ana", "ana@example.edu"):
        await slack.say(LEARNER, text)
    campus = slack.posted(dm)[-1]
    await slack.say(LEARNER, "North Campus")

    await slack.interaction(payloads.block_actions(LEARNER, dm, campus, "campus:south-campus"))

    updated = next(message for message in slack.posted(dm) if message["ts"] == campus["ts"])
    assert buttons_of(updated) == []
    assert "Your choice" not in section_text(updated)
    with slack.engine.session_factory() as session:
        assert session.scalar(select(Learner.campus)) == "north-campus"


async def test_concurrent_approvals_decide_once(slack):
    await complete_plan(slack, LEARNER)
    await submit_reflection(slack, LEARNER, "Use career services", REFLECTION)
    card = slack.posted(REVIEWERS)[0]
    presses = [payloads.block_actions(reviewer, REVIEWERS, card, "rv:a:1") for reviewer in (REVIEWER, REVIEWER_2)]

    await asyncio.gather(*(slack.interaction(press, settle=False) for press in presses))
    await slack.settle()

    with slack.engine.session_factory() as session:
        assert [decision.decision for decision in session.scalars(select(ReviewDecision))] == ["approved"]
    late = slack.ephemerals(REVIEWER) + slack.ephemerals(REVIEWER_2)
    assert len(late) == 1
    assert "already decided" in late[0]
    approvals = [text for text in slack.texts(slack.dm(LEARNER)) if text.startswith("Good news")]
    assert len(approvals) == 1
