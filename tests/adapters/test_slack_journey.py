"""A learner's way through the plan to a badge on Slack, with a reviewer in the reviewer channel."""

from __future__ import annotations

from sqlalchemy import select

from bot.models import BadgeAward, Learner, ReviewDecision, Submission
from tests.adapters.slack_harness import (  # noqa: F401 (fixtures)
    LEARNER,
    REFLECTION,
    REVIEWER,
    REVIEWERS,
    buttons_of,
    complete_plan,
    emulator,
    section_text,
    slack,
    submit_reflection,
)


def _learner(slack) -> Learner:
    with slack.engine.session_factory() as session:
        return session.scalar(select(Learner).where(Learner.platform_user_id == LEARNER))


def _home_text(slack, user: str) -> str:
    view = slack.emulator.homes[user]
    return "\n".join(section_text({"blocks": [block]}) for block in view["blocks"] if block["type"] != "header")


async def test_journey_plan_to_badge(slack):
    await complete_plan(slack, LEARNER)

    learner = _learner(slack)
    assert learner.plan_completed_at is not None
    assert learner.email == "ana@example.edu"
    assert learner.answers["interests"] == "I enjoy building software that helps people learn & grow."
    assert "Your Career Prepared pathway" in "\n".join(slack.texts(slack.dm(LEARNER)))
    assert "Level 1: Introduction and Foundation (0 of 3 done)" in _home_text(slack, LEARNER)

    await submit_reflection(slack, LEARNER, "Use career services", REFLECTION)

    cards = slack.posted(REVIEWERS)
    assert len(cards) == 1
    card = cards[0]
    assert "Submission #1 from Ana" in section_text(card)
    assert "STAR method" in section_text(card)
    assert buttons_of(card) == ["rv:a:1", "rv:c:1"]
    assert "waiting for review" in _home_text(slack, LEARNER)

    await slack.press(REVIEWER, "rv:a:1", channel=REVIEWERS)

    updated = slack.posted(REVIEWERS)[0]
    assert buttons_of(updated) == []
    assert "Approved by Rita at" in section_text(updated)
    assert slack.emulator.calls_to("chat.update", channel=REVIEWERS, ts=card["ts"])
    learner_texts = slack.texts(slack.dm(LEARNER))
    assert "Good news: your evidence for Use career services was approved." in learner_texts
    assert "You earned the badge: Use career services! Type /careerbot badges to see all your badges." in learner_texts
    with slack.engine.session_factory() as session:
        awards = session.scalars(select(BadgeAward.badge_key)).all()
        decision = session.scalar(select(ReviewDecision))
    assert awards == ["item:use-career-services"]
    assert decision.reviewer_key == f"slack:{REVIEWER}"
    assert decision.reviewer_name == "Rita"
    home = _home_text(slack, LEARNER)
    assert "Level 1: Introduction and Foundation (1 of 3 done)" in home
    assert "- Use career services (earned" in home


async def test_journey_choice_updates_message(slack):
    await slack.say(LEARNER, "hello")
    consent = slack.message_with_button(slack.dm(LEARNER), "consent:agree")

    await slack.press(LEARNER, "consent:agree")

    updated = slack.emulator.messages[(slack.dm(LEARNER), consent["ts"])]
    assert buttons_of(updated) == []
    assert section_text(updated).endswith("Your choice: I agree")
    assert "What should I call you?" in slack.last_text(slack.dm(LEARNER))
    assert _learner(slack).consented_at is not None


async def test_journey_typed_answer_to_choice(slack):
    await slack.say(LEARNER, "hello")

    await slack.say(LEARNER, "i agree")

    assert _learner(slack).consented_at is not None
    assert "What should I call you?" in slack.last_text(slack.dm(LEARNER))


async def test_journey_request_changes_then_resubmit(slack):
    await complete_plan(slack, LEARNER)
    await submit_reflection(slack, LEARNER, "Use career services", REFLECTION)

    await slack.press(REVIEWER, "rv:c:1", channel=REVIEWERS)
    await slack.submit_change_request(REVIEWER, [True, False, True], "Please name two points of advice.")

    with slack.engine.session_factory() as session:
        submission = session.scalar(select(Submission).where(Submission.id == 1))
        decision = submission.decision
        assert submission.status == "changes_requested"
        assert decision.feedback == "Please name two points of advice."
        assert decision.criteria == {"service-named": True, "advice-summarized": False, "next-step-stated": True}
    notice = slack.last_text(slack.dm(LEARNER))
    assert "A reviewer asked for changes to Use career services" in notice
    assert "- Summarizes at least two specific points of advice or information from the session.: Not met" in notice
    assert "Changes requested by Rita at" in section_text(slack.posted(REVIEWERS)[0])
    assert "changes requested" in _home_text(slack, LEARNER)

    await submit_reflection(slack, LEARNER, "Use career services", REFLECTION + " Second version.")

    assert len(slack.posted(REVIEWERS)) == 2
    assert "Changes requested by Rita on" in section_text(slack.posted(REVIEWERS)[1])


async def test_user_text_keeps_commands_as_typed(slack):
    reflection = REFLECTION + " Next I will /submit my CV and check /help."
    await complete_plan(slack, LEARNER)
    await slack.command(LEARNER, "submit")
    await slack.press_label(LEARNER, "Use career services")
    await slack.press(LEARNER, "submit_kind:reflection")
    await slack.say(LEARNER, reflection)
    confirm = slack.last_text(slack.dm(LEARNER))
    await slack.press(LEARNER, "submit_confirm:send")

    await slack.press(REVIEWER, "rv:c:1", channel=REVIEWERS)
    await slack.submit_change_request(REVIEWER, [True, False, True], "Say what /plan shows you.")
    notice = slack.last_text(slack.dm(LEARNER))

    await submit_reflection(slack, LEARNER, "Use career services", reflection + " Second version.")
    second_card = section_text(slack.posted(REVIEWERS)[1])

    assert reflection in confirm
    assert reflection in section_text(slack.posted(REVIEWERS)[0])
    assert "Say what /plan shows you." in notice
    assert "Type /careerbot submit to send a new version." in notice
    assert "Say what /plan shows you." in second_card


async def test_review_view_keeps_evidence_as_typed(slack):
    reflection = REFLECTION + " Next I will /submit my CV and check /help."
    await complete_plan(slack, LEARNER)
    await submit_reflection(slack, LEARNER, "Use career services", reflection)

    await slack.command(REVIEWER, "review 1")
    view = slack.last_text(slack.dm(REVIEWER))

    assert "Submission #1" in view
    assert reflection in view
