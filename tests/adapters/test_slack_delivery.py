"""Delivering replies to Slack: rate limits, an unreachable reviewer channel, files both ways."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest
from sqlalchemy import select

from bot import outbox
from bot.models import Learner, OutboxMessage, Submission
from tests.adapters import slack_payloads as payloads
from tests.adapters.slack_harness import (  # noqa: F401 (fixtures)
    COORDINATOR,
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

PDF = b"%PDF-1.4\n" + b"evidence " * 2000 + b"\n%%EOF\n"


def _rows(slack, **where) -> list[OutboxMessage]:
    with slack.engine.session_factory() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        for name, value in where.items():
            query = query.where(getattr(OutboxMessage, name) == value)
        return session.scalars(query).all()


async def test_rate_limit_waits_then_sends_in_order(slack):
    dm = slack.dm(LEARNER)
    slack.emulator.rate_limit("chat.postMessage", retry_after=1, when=lambda params: params["channel"] == dm)

    await slack.say(LEARNER, "hello")
    await slack.emulator.wait_for(lambda: len(slack.posted(dm)) == 2)
    await slack.settle()

    texts = slack.texts(dm)
    assert texts[0].startswith("Hello! I'm careerbot.")
    assert texts[1].startswith("Question 1 of 20")
    calls = slack.emulator.calls_to("chat.postMessage", channel=dm)
    assert len(calls) == 3
    assert calls[1].at - calls[0].at >= 1.0
    rows = _rows(slack, chat_id=dm)
    assert [row.status for row in rows] == ["sent", "sent"]
    assert rows[0].attempts == 2
    assert "rate limited" in rows[0].last_error


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel"])
async def test_unreachable_reviewer_channel_keeps_card_queued(slack, caplog, error):
    slack.bot.delivery.backoff_first_seconds = 0.01
    slack.bot.delivery.backoff_max_seconds = 0.02
    failures = outbox.MAX_ATTEMPTS + 2
    slack.emulator.fail("chat.postMessage", error, times=failures,
                        when=lambda params: params["channel"] == REVIEWERS)
    await complete_plan(slack, LEARNER)

    with caplog.at_level(logging.ERROR, logger="adapters.slack_delivery"):
        await submit_reflection(slack, LEARNER, "Use career services", REFLECTION)
        await slack.emulator.wait_for(lambda: slack.posted(REVIEWERS))
        await slack.settle()

    card_row = _rows(slack, kind="review_card")[0]
    assert card_row.status == "sent"
    assert card_row.attempts == failures + 1
    assert buttons_of(slack.posted(REVIEWERS)[0]) == ["rv:a:1", "rv:c:1"]
    assert f"cannot post to the slack reviewer channel {REVIEWERS}: {error}" in caplog.text
    alerts = slack.texts(slack.dm(COORDINATOR))
    assert alerts == [f"I can't post to the reviewer channel {REVIEWERS} ({error}). Submissions wait in the queue "
                      "until I can:\ninvite me to the channel, or correct reviewer_chats in the configuration."]


async def test_cards_wait_behind_queued_card(slack):
    slack.bot.delivery.backoff_first_seconds = 0.05
    slack.emulator.fail("chat.postMessage", "not_in_channel", times=3,
                        when=lambda params: params["channel"] == REVIEWERS)
    await complete_plan(slack, LEARNER)

    await submit_reflection(slack, LEARNER, "Use career services", REFLECTION)
    await submit_reflection(slack, LEARNER, "Register on the campus job board", REFLECTION)
    await slack.emulator.wait_for(lambda: len(slack.posted(REVIEWERS)) == 2)

    assert [section_text(card).split("\n")[0] for card in slack.posted(REVIEWERS)] == [
        "Submission #1 from Ana", "Submission #2 from Ana"]


async def test_learner_channel_gone_marks_unreachable(slack):
    dm = slack.dm(LEARNER)
    slack.emulator.fail("chat.postMessage", "channel_not_found", times=5, when=lambda params: params["channel"] == dm)

    await slack.say(LEARNER, "hello")

    assert [row.status for row in _rows(slack, chat_id=dm)] == ["failed", "failed"]
    with slack.engine.session_factory() as session:
        assert session.scalar(select(Learner.unreachable_since)) is not None


async def test_export_uploaded_as_file(slack):
    await slack.say(LEARNER, "hello")
    await slack.press(LEARNER, "consent:agree")

    await slack.command(LEARNER, "export")

    upload = slack.emulator.calls_to("files.getUploadURLExternal")[0]
    assert upload.params["filename"] == "careerbot-export.json"
    completed = slack.emulator.calls_to("files.completeUploadExternal")[0]
    assert completed.params["channel_id"] == slack.dm(LEARNER)
    assert completed.params["initial_comment"] == "Here is everything careerbot stores about you."
    file_id = completed.params["files"][0]["id"] if isinstance(completed.params["files"], list) \
        else json.loads(completed.params["files"])[0]["id"]
    exported = json.loads(slack.emulator.uploads[file_id])
    assert exported["platform"] == "slack"
    assert exported["platform_user_id"] == LEARNER


async def _choose_file_evidence(slack) -> None:
    await complete_plan(slack, LEARNER)
    await slack.command(LEARNER, "submit")
    await slack.press_label(LEARNER, "Use career services")
    await slack.press(LEARNER, "submit_kind:file")


async def test_shared_file_downloaded_and_sent_to_reviewers(slack):
    await _choose_file_evidence(slack)
    shared = slack.emulator.add_file("appointment.pdf", PDF, "application/pdf", user=LEARNER)

    await slack.event(payloads.file_share(LEARNER, slack.dm(LEARNER), shared, text="my confirmation"))
    await slack.press(LEARNER, "submit_confirm:send")

    downloads = slack.emulator.calls_to("file.download")
    assert [call.params["path"] for call in downloads] == [f"/files-pri/T0000000001-{shared['id']}/download/"
                                                           "appointment.pdf"]
    with slack.engine.session_factory() as session:
        submission = session.scalar(select(Submission))
    assert submission.file_sha256 == hashlib.sha256(PDF).hexdigest()
    assert submission.file_size == len(PDF)
    card = slack.posted(REVIEWERS)[0]
    completed = slack.emulator.calls_to("files.completeUploadExternal", channel_id=REVIEWERS)[0]
    assert completed.params["thread_ts"] == card["ts"]
    file_id = completed.params["files"][0]["id"]
    assert slack.emulator.uploads[file_id] == PDF


async def test_file_info_fetched_when_event_hides_file(slack):
    await _choose_file_evidence(slack)
    shared = slack.emulator.add_file("appointment.pdf", PDF, "application/pdf", user=LEARNER)
    hidden = {"id": shared["id"], "mode": "hidden_by_limit", "file_access": "check_file_info"}

    await slack.event(payloads.file_share(LEARNER, slack.dm(LEARNER), hidden))

    assert slack.emulator.calls_to("files.info", file=shared["id"])
    assert len(slack.emulator.calls_to("file.download")) == 1
    assert "Please check your evidence for Use career services" in slack.last_text(slack.dm(LEARNER))


async def test_file_over_limit_not_downloaded(slack):
    await _choose_file_evidence(slack)
    shared = slack.emulator.add_file("video.pdf", b"%PDF-1.4 small", "application/pdf", size=25 * 1024 * 1024)

    await slack.event(payloads.file_share(LEARNER, slack.dm(LEARNER), shared))

    assert slack.emulator.calls_to("file.download") == []
    texts = slack.texts(slack.dm(LEARNER))
    assert "That file is too large. The limit is 10 MB" in texts[-2]


async def test_file_larger_than_announced_stops_at_limit(slack):
    await _choose_file_evidence(slack)
    shared = slack.emulator.add_file("big.pdf", b"%PDF" + b"0" * (20 * 1024 * 1024 + 10), "application/pdf", size=1000)

    await slack.event(payloads.file_share(LEARNER, slack.dm(LEARNER), shared))

    assert len(slack.emulator.calls_to("file.download")) == 1
    assert "That file is too large." in slack.texts(slack.dm(LEARNER))[-2]
    with slack.engine.session_factory() as session:
        assert session.scalar(select(Submission)) is None


async def test_failed_download_asks_to_resend(slack):
    await _choose_file_evidence(slack)
    shared = slack.emulator.add_file("gone.pdf", PDF, "application/pdf")
    del slack.emulator.files[shared["id"]]

    await slack.event(payloads.file_share(LEARNER, slack.dm(LEARNER), shared))

    failed, prompt = slack.texts(slack.dm(LEARNER))[-2:]
    assert failed == "I couldn't download your file. Please send it again."
    assert prompt.startswith("Send the file")


async def test_edit_of_deleted_card_posts_update(slack):
    await complete_plan(slack, LEARNER)
    await submit_reflection(slack, LEARNER, "Use career services", REFLECTION)
    card = slack.posted(REVIEWERS)[0]
    del slack.emulator.messages[(REVIEWERS, card["ts"])]

    await slack.interaction(payloads.block_actions(REVIEWER, REVIEWERS, card, "rv:a:1"))

    assert slack.emulator.calls_to("chat.update", channel=REVIEWERS)
    reposted = slack.posted(REVIEWERS)
    assert len(reposted) == 1
    assert "Approved by Rita at" in section_text(reposted[0])
    assert buttons_of(reposted[0]) == []
