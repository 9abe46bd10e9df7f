"""Review cards in the reviewer channel, the change-request modal, and who may decide."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from adapters.slack_blocks import CARD_EVIDENCE_MAX_CHARS
from bot.models import ReviewDecision, Submission
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


async def _submitted(slack, user: str = LEARNER, text: str = REFLECTION, title: str = "Use career services"):
    await complete_plan(slack, user)
    await submit_reflection(slack, user, title, text)


def _decisions(slack) -> list[ReviewDecision]:
    with slack.engine.session_factory() as session:
        return session.scalars(select(ReviewDecision)).all()


async def test_modal_asks_each_criterion_and_feedback(slack):
    await _submitted(slack)

    await slack.press(REVIEWER, "rv:c:1", channel=REVIEWERS)

    call = slack.emulator.calls_to("views.open")[0]
    assert call.params["trigger_id"]
    view = call.params["view"]
    assert view["title"]["text"] == "Request changes"
    inputs = [block for block in view["blocks"] if block["type"] == "input"]
    assert [block["block_id"] for block in inputs] == ["criterion-1", "criterion-2", "criterion-3", "feedback"]
    assert inputs[0]["label"]["text"].startswith("1. Names the career service used")
    assert [option["text"]["text"] for option in inputs[0]["element"]["options"]] == ["Met", "Not met"]
    assert all("optional" not in block for block in inputs)
    assert inputs[-1]["element"]["type"] == "plain_text_input"
    assert json.loads(view["private_metadata"]) == {"submission_id": 1, "chat_id": REVIEWERS, "criteria": 3}
    assert buttons_of(slack.posted(REVIEWERS)[0]) == ["rv:a:1", "rv:c:1"]


@pytest.mark.parametrize("blank", ["   ", "\u200b", "\u2060\n\ufeff"])
async def test_modal_blank_feedback_is_an_error(slack, blank):
    await _submitted(slack)
    await slack.press(REVIEWER, "rv:c:1", channel=REVIEWERS)

    response = await slack.submit_change_request(REVIEWER, [True, True, False], blank)

    assert response.status_code == 200
    assert response.json() == {"response_action": "errors",
                               "errors": {"feedback": "Feedback is required, 4000 characters at most. "
                                                      "Please write it in the feedback field."}}
    assert _decisions(slack) == []


async def test_modal_not_opened_for_non_reviewer(slack):
    await _submitted(slack)

    await slack.press(LEARNER, "rv:c:1", channel=REVIEWERS)

    assert slack.emulator.calls_to("views.open") == []
    assert slack.ephemerals(LEARNER) == ["Only configured reviewers can decide on submissions."]
    assert slack.emulator.calls_to("chat.postEphemeral")[0].params["channel"] == REVIEWERS


async def test_approve_refused_for_non_reviewer(slack):
    await _submitted(slack)

    await slack.press(LEARNER, "rv:a:1", channel=REVIEWERS)

    assert _decisions(slack) == []
    assert slack.ephemerals(LEARNER) == ["Only configured reviewers can decide on submissions."]
    assert buttons_of(slack.posted(REVIEWERS)[0]) == ["rv:a:1", "rv:c:1"]


async def test_reviewer_cannot_decide_own_submission(slack):
    await _submitted(slack, user=REVIEWER)

    await slack.press(REVIEWER, "rv:a:1", channel=REVIEWERS)
    await slack.press(REVIEWER, "rv:c:1", channel=REVIEWERS)

    assert _decisions(slack) == []
    assert slack.emulator.calls_to("views.open") == []
    assert slack.ephemerals(REVIEWER) == ["You can't review your own submission."] * 2


async def test_first_decision_wins(slack):
    await _submitted(slack)
    card = slack.posted(REVIEWERS)[0]

    await slack.press(REVIEWER, "rv:a:1", channel=REVIEWERS)
    await slack.interaction(payloads.block_actions(REVIEWER_2, REVIEWERS, card, "rv:a:1"))

    decisions = _decisions(slack)
    assert [(entry.reviewer_name, entry.decision) for entry in decisions] == [("Rita", "approved")]
    assert slack.ephemerals(REVIEWER_2)[0].startswith("Submission #1 was already decided: Approved by Rita at")
    assert len(slack.emulator.calls_to("chat.update", channel=REVIEWERS)) == 1


async def test_modal_submitted_after_other_decision(slack):
    await _submitted(slack)
    await slack.press(REVIEWER, "rv:c:1", channel=REVIEWERS)
    await slack.press(REVIEWER_2, "rv:a:1", channel=REVIEWERS)

    await slack.submit_change_request(REVIEWER, [False, False, False], "Too short.")

    assert [(entry.reviewer_name, entry.decision) for entry in _decisions(slack)] == [("Ravi", "approved")]
    assert slack.ephemerals(REVIEWER)[0].startswith("Submission #1 was already decided: Approved by Ravi")


async def test_modal_submitted_twice_decides_once(slack):
    await _submitted(slack)
    await slack.press(REVIEWER, "rv:c:1", channel=REVIEWERS)
    view = slack.last_view()
    payload = payloads.view_submission(REVIEWER, view, payloads.change_request_values([True, True, False], "Add a date."))

    await slack.interaction(payload)
    await slack.interaction(payload)

    assert len(_decisions(slack)) == 1
    learner_notices = [text for text in slack.texts(slack.dm(LEARNER)) if "asked for changes" in text]
    assert len(learner_notices) == 1


async def test_card_escapes_mentions(slack):
    reflection = REFLECTION + " Thanks <!channel> and <@U0000000R02> & <https://evil.example|click>."
    await _submitted(slack, text=reflection)

    card = slack.posted(REVIEWERS)[0]
    raw = "\n".join(block["text"]["text"] for block in card["blocks"] if block["type"] == "section")
    assert "&lt;!channel&gt; and &lt;@U0000000R02&gt; &amp; &lt;https://evil.example|click&gt;" in raw
    assert "<!channel>" not in raw
    assert "<@" not in raw
    assert all(block["text"]["verbatim"] for block in card["blocks"] if block["type"] == "section")
    assert "<!channel>" not in card["text"]
    with slack.engine.session_factory() as session:
        stored = session.scalar(select(Submission.text))
    assert stored.endswith("Thanks <!channel> and <@U0000000R02> & <https://evil.example|click>.")


async def test_long_reflection_split_and_truncated(slack):
    sentence = "I wrote down my goals, values, interests and the skills I want to build this year. "
    reflection = (sentence * 110).strip()
    assert CARD_EVIDENCE_MAX_CHARS < len(reflection) <= 10000
    await _submitted(slack, text=reflection, title="Send your career action plan")

    confirm = next(message for message in slack.posted(slack.dm(LEARNER))
                   if "Send it to the reviewers?" in section_text(message))
    confirm_sections = [block for block in confirm["blocks"] if block["type"] == "section"]
    assert len(confirm_sections) >= 3
    assert all(len(block["text"]["text"]) <= 3000 for block in confirm_sections)

    card = slack.posted(REVIEWERS)[0]
    card_text = section_text(card)
    assert f"(The evidence is {len(reflection)} characters long; the card shows the first" in card_text
    assert "Rubric:" in card_text
    assert all(len(block["text"]["text"]) <= 3000 for block in card["blocks"] if block["type"] == "section")
    assert len(card["blocks"]) <= 50
    thread = [message for (channel, _), message in slack.emulator.messages.items()
              if channel == REVIEWERS and message.get("thread_ts") == card["ts"]]
    assert len(thread) == 1
    thread_text = section_text(thread[0])
    assert thread_text.startswith("Full evidence of submission #1:")
    assert thread_text.replace("\n", " ").count(sentence.strip()) == 110


async def test_decided_card_keeps_evidence_short(slack):
    reflection = ("Goals and values for the coming two years, with dates and steps. " * 120).strip()
    await _submitted(slack, text=reflection, title="Send your career action plan")

    await slack.press(REVIEWER, "rv:a:1", channel=REVIEWERS)

    card = slack.posted(REVIEWERS)[0]
    assert "Approved by Rita at" in section_text(card)
    assert "the card shows the first" in section_text(card)
    assert all(len(block["text"]["text"]) <= 3000 for block in card["blocks"] if block["type"] == "section")
