"""Odd and broken Telegram updates, failed downloads and hostile text, through the real PTB stack."""

from __future__ import annotations

import asyncio
import copy
import logging

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bot import outbox
from bot.models import Learner, OutboxMessage, ProcessedUpdate, ReviewDecision
from tests.adapters.telegram_emulator import SentMessage, User
from tests.adapters.telegram_harness import (  # noqa: F401 (fixtures)
    LEARNER,
    REVIEWER,
    REVIEWER_GROUP,
    SECOND_REVIEWER,
    Harness,
    telegram,
    telegram_engine,
    telegram_settings,
    webhook,
)
from tests.adapters.telegram_steps import PDF, button_data, submitted_card, write_plan


def adapter_errors(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.levelno >= logging.ERROR and record.name.startswith(("adapters", "telegram", "bot"))]


def count(engine, model) -> int:
    with engine.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


async def replies_to(harness: Harness, update: dict) -> list[SentMessage]:
    """Deliver ``update`` and return the messages the bot sent for it."""
    before = len(harness.telegram.sent)
    await harness.send(update)
    return harness.telegram.sent[before:]


async def at_file_step(harness: Harness) -> None:
    """Write the plan, then choose the first item and the file kind."""
    await harness.say(LEARNER, "/start")
    await write_plan(harness)
    await harness.say(LEARNER, "/submit")
    await harness.press(LEARNER, harness.last_to(LEARNER), button_data(harness.last_to(LEARNER), "submit_item:")[0])
    await harness.press(LEARNER, harness.last_to(LEARNER), "submit_kind:file")


@pytest.mark.parametrize("status, description", [
    (400, "Bad Request: wrong file_id or the file is temporarily unavailable"),
    (500, "Internal Server Error"),
])
async def test_failed_download_tells_learner(webhook: Harness, telegram_engine, status, description):
    telegram = webhook.telegram
    await at_file_step(webhook)
    prompt = webhook.last_to(LEARNER).text
    telegram.fail("getFile", status, description)

    replies = await replies_to(webhook, telegram.document_update(LEARNER, "evidence.pdf", PDF))

    assert [reply.text for reply in replies] == [telegram_engine.flows.texts("file_download_failed"), prompt]
    await webhook.send(telegram.document_update(LEARNER, "evidence.pdf", PDF))
    assert button_data(webhook.last_to(LEARNER), "submit_confirm:")


def private_update(telegram, **message_fields) -> dict:
    """A private message from the learner with ``message_fields`` replaced; a None value removes the field."""
    update = telegram.text_update(LEARNER, "hello")
    update["message"].update(message_fields)
    update["message"] = {key: value for key, value in update["message"].items() if value is not None}
    return update


ODD_PRIVATE = {
    "empty text": {"text": ""},
    "only spaces": {"text": "   "},
    "control characters": {"text": "\x00\x07\x1b[2J"},
    "longest text": {"text": "x" * 4096},
    "html and mentions": {"text": "<b>@channel</b> &amp; <a href='tg://user?id=1'>x</a>"},
    "unknown command": {"text": "/definitely_not_a_command", "entities": [
        {"offset": 0, "length": 25, "type": "bot_command"}]},
    "command for another bot": {"text": "/help@SomeOtherBot", "entities": [
        {"offset": 0, "length": 18, "type": "bot_command"}]},
    "huge user id": {"from": {"id": 2**52, "is_bot": False, "first_name": "Big"},
                     "chat": {"id": 2**52, "type": "private", "first_name": "Big"}},
    "no first name": {"from": {"id": 100000009, "is_bot": False, "first_name": ""},
                      "chat": {"id": 100000009, "type": "private", "first_name": ""}},
    "markup in the name": {"from": {"id": 100000010, "is_bot": False, "first_name": "<b>Eve</b> & <i>co",
                                    "last_name": "</a>"},
                           "chat": {"id": 100000010, "type": "private", "first_name": "<b>Eve</b>"}},
    "dice": {"text": None, "dice": {"emoji": "🎲", "value": 3}},
    "contact": {"text": None, "contact": {"phone_number": "+100", "first_name": "X"}},
    "document without name": {"text": None, "document": {"file_id": "missing", "file_unique_id": "m"}},
}


@pytest.mark.parametrize("name", list(ODD_PRIVATE))
async def test_odd_private_message_answered(webhook: Harness, telegram_engine, caplog, name):
    telegram = webhook.telegram
    update = private_update(telegram, **ODD_PRIVATE[name])
    telegram.add_chat(update["message"]["chat"])

    replies = await replies_to(webhook, update)

    chat_id = update["message"]["chat"]["id"]
    assert replies, name
    assert all(reply.chat_id == chat_id for reply in replies)
    assert replies[-1].text.strip()
    assert adapter_errors(caplog) == []


SILENT = {
    "only an update id": {},
    "unknown update kind": {"message_reaction": {"chat": {"id": 5, "type": "private"}, "message_id": 1,
                                                 "date": 0, "old_reaction": [], "new_reaction": []}},
    "business message": {"business_message": {"message_id": 1, "date": 0,
                                              "chat": {"id": 100000002, "type": "private"}, "text": "hi"}},
}


@pytest.mark.parametrize("name", list(SILENT))
async def test_odd_update_ignored(webhook: Harness, telegram_engine, caplog, name):
    telegram = webhook.telegram
    update = {"update_id": 0, **copy.deepcopy(SILENT[name])}
    telegram._stamp(update)
    before = len(telegram.sent)

    await webhook.send(update)

    assert len(telegram.sent) == before
    assert count(telegram_engine, Learner) == 0
    assert adapter_errors(caplog) == []


@pytest.mark.parametrize("data", [
    "", "rv:", "rv:a:", "rv:a:999999999999999999999", "rv:m:1:99:1", "rv:f:1:", "submit_item:abc",
    "consent:", ":", "home:", "x" * 64, "é" * 32, "consent:\x00",
])
async def test_malformed_button_data_answered(webhook: Harness, telegram_engine, caplog, data):
    telegram = webhook.telegram
    await webhook.say(LEARNER, "/start")
    question = webhook.last_to(LEARNER)

    replies = await webhook.press(LEARNER, question, data)

    assert adapter_errors(caplog) == []
    assert all(state.answered for state in telegram.callback_queries.values())
    if data.startswith("rv:"):
        # A reviewer action gets its answer as an alert on the button, and the question stays.
        alert = list(telegram.callback_queries.values())[-1].answer
        assert alert["text"]
        assert alert["show_alert"]
        assert webhook.last_to(LEARNER) is question
    elif data:
        assert replies
        assert replies[-1].text.startswith("Question 1 of 20")
    assert count(telegram_engine, ProcessedUpdate) >= 1


async def test_press_without_message_ignored(webhook: Harness, telegram_engine, caplog):
    telegram = webhook.telegram
    await webhook.say(LEARNER, "/start")
    update = telegram.press(LEARNER, webhook.last_to(LEARNER), "consent:agree")
    update["callback_query"].pop("message")
    update["callback_query"]["inline_message_id"] = "AAAAAInline"
    before = count(telegram_engine, OutboxMessage)

    await webhook.send(update)

    assert count(telegram_engine, OutboxMessage) == before
    assert adapter_errors(caplog) == []


async def test_hostile_reviewer_name_stays_text(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    card = await submitted_card(webhook)
    submission_id = int(button_data(card, "rv:a:")[0].rsplit(":", 1)[1])
    hostile = User(REVIEWER.id, "<b>Rita</b> & <a href=\"tg://user?id=1\">x</a>", "@channel")

    await webhook.press(hostile, card, f"rv:c:{submission_id}")
    for number in range(1, 4):
        await webhook.press(hostile, webhook.last_to(REVIEWER_GROUP), f"rv:m:{submission_id}:{number}:1")
    ask = webhook.last_to(REVIEWER_GROUP)

    assert ask.text.startswith(f"{hostile.first_name} {hostile.last_name}")
    mentions = [entity for entity in ask.entities if entity["type"] == "text_mention"]
    assert [mention["user"]["id"] for mention in mentions] == [REVIEWER.id]
    assert not [entity for entity in ask.entities if entity["type"] in ("bold", "text_link", "url")]
    assert telegram.failed_calls() == []


async def test_outbox_marking_failure_does_not_block_chat(webhook: Harness, telegram_engine, monkeypatch):
    telegram = webhook.telegram
    await webhook.say(LEARNER, "/start")
    unavailable = OperationalError("UPDATE outbox", {}, Exception("database is locked"))
    failures = {"mark_sent": 1, "mark_retry": 1}

    def failing_once(name):
        real = getattr(outbox, name)

        def call(*args, **kwargs):
            if failures[name]:
                failures[name] -= 1
                raise unavailable
            return real(*args, **kwargs)
        return call

    for name in failures:
        monkeypatch.setattr(outbox, name, failing_once(name))

    # A hang here is the failure: the chat's delivery never finishes.
    await asyncio.wait_for(webhook.say(LEARNER, "I agree"), timeout=30)
    await asyncio.wait_for(webhook.say(LEARNER, "/help"), timeout=30)

    assert failures == {"mark_sent": 0, "mark_retry": 0}
    sent_questions = [text for text in telegram.texts_to(LEARNER.id) if text.startswith("Question 2 of 20")]
    assert len(sent_questions) == 1
    with telegram_engine.session_factory() as session:
        pending = session.scalars(select(OutboxMessage).where(OutboxMessage.status == "pending")
                                  .order_by(OutboxMessage.id)).all()
    # The question is sent again once the chat's hold ends: the one repeat the outbox allows.
    assert pending[0].payload["text"].startswith("Question 2 of 20")
    assert pending[1].payload["text"].startswith("Commands you can use")


async def test_stale_press_not_shown_as_choice(webhook: Harness, telegram_engine):
    await webhook.say(LEARNER, "/start")
    await webhook.say(LEARNER, "I agree")
    await webhook.say(LEARNER, "Ana")
    await webhook.say(LEARNER, "/skip")
    campus = webhook.last_to(LEARNER)
    await webhook.say(LEARNER, "North Campus")

    replies = await webhook.press(LEARNER, campus, "campus:south-campus")

    assert replies[0].text == telegram_engine.flows.texts("button_expired")
    assert campus.reply_markup is None
    assert "Your choice" not in campus.text
    with telegram_engine.session_factory() as session:
        assert session.scalar(select(Learner.campus)) == "north-campus"


async def test_concurrent_approvals_decide_once(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    card = await submitted_card(webhook)
    approve = button_data(card, "rv:a:")[0]
    change = button_data(card, "rv:c:")[0]
    presses = [telegram.press(REVIEWER, card, approve), telegram.press(SECOND_REVIEWER, card, approve),
               telegram.press(SECOND_REVIEWER, card, change)]

    await asyncio.gather(*(webhook.send(press) for press in presses))

    with telegram_engine.session_factory() as session:
        decisions = session.scalars(select(ReviewDecision)).all()
    assert [decision.decision for decision in decisions] == ["approved"]
    assert all(telegram.answer_of(press) is not None for press in presses)
    winner = decisions[0].reviewer_key.rpartition(":")[2]
    [losing_approval] = [press for press in presses[:2] if str(press["callback_query"]["from"]["id"]) != winner]
    assert "already decided" in telegram.answer_of(losing_approval)["text"]
    approvals = [text for text in telegram.texts_to(LEARNER.id) if text.startswith("Good news")]
    assert len(approvals) == 1
    assert not card.buttons


async def test_forget_while_pending_withdraws_card(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    card = await submitted_card(webhook)
    approve = button_data(card, "rv:a:")[0]
    submission_id = int(approve.rsplit(":", 1)[1])
    await webhook.press(REVIEWER, card, button_data(card, "rv:c:")[0])

    await webhook.say(LEARNER, "/forget")
    await webhook.press(LEARNER, webhook.last_to(LEARNER), "forget_confirm:delete")
    late = telegram.press(SECOND_REVIEWER, card, approve)
    await webhook.send(late)
    replies = await webhook.say(REVIEWER, "Please add dates.", chat=telegram.chats[REVIEWER_GROUP],
                                reply_to=webhook.last_to(REVIEWER_GROUP))

    assert card.text == telegram_engine.flows.texts("review_card_withdrawn", submission_id=submission_id)
    assert not card.buttons
    assert telegram.answer_of(late)["text"] == telegram_engine.flows.texts("review_not_found",
                                                                           submission_id=submission_id)
    with telegram_engine.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(ReviewDecision)) == 0
        assert session.scalar(select(func.count()).select_from(Learner)) == 0
    assert all(reply.chat_id != LEARNER.id for reply in replies)


async def test_update_id_reused_after_pause_handled(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    first = telegram.text_update(LEARNER, "/start")
    await webhook.send(first)
    # After a week without updates, Telegram picks the next update_id at random, so an id can come back.
    again = telegram.text_update(LEARNER, "I agree")
    again["update_id"] = first["update_id"]

    replies = await replies_to(webhook, again)

    assert replies
    assert replies[-1].text.startswith("Question 2 of 20")


async def test_redelivered_press_handled_once(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    await webhook.say(LEARNER, "/start")
    press = telegram.press(LEARNER, webhook.last_to(LEARNER), "consent:agree")
    await webhook.send(press)

    replies = await replies_to(webhook, copy.deepcopy(press))

    assert replies == []
    with telegram_engine.session_factory() as session:
        assert session.scalar(select(Learner.state)) == "name"
