"""A learner's whole journey on Telegram, to the macro-badge, with reviewers in a group; and a restart."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from adapters.telegram import TelegramBot
from adapters.telegram_pacing import Pacer
from bot.models import BadgeAward, Learner, Submission
from tests.adapters.telegram_harness import (  # noqa: F401 (fixtures)
    LEARNER,
    REVIEWER_GROUP,
    Harness,
    polling,
    telegram,
    telegram_engine,
    telegram_settings,
)
from tests.adapters.telegram_steps import (
    GENERIC_ANSWER,
    JPEG,
    NAME,
    PDF,
    REFLECTION,
    button_data,
    review_card,
    submit_next_item,
    write_plan,
)

async def test_journey_reaches_macro_badge(polling: Harness, telegram_engine):
    telegram = polling.telegram

    await polling.say(LEARNER, "/start")
    await write_plan(polling)
    kinds_used = []
    wanted = ["reflection", "photo", "file", "link", "plan"]
    while (kind := await submit_next_item(polling, wanted)) is not None:
        kinds_used.append(kind)
        await review_card(polling, approve=len(kinds_used) > 1)
        if kind in wanted and len(kinds_used) > 1:
            wanted.remove(kind)

    macro = telegram_engine.flows.catalog.program.macro_badge.name
    learner_texts = telegram.texts_to(LEARNER.id)
    assert any(macro in text for text in learner_texts)
    assert any(f", {NAME}" in text for text in learner_texts)
    assert any("Name the adviser <and> the date & what you changed." in text for text in learner_texts)
    assert {"reflection", "photo", "file", "link", "plan"} <= set(kinds_used)
    assert len(kinds_used) >= 10
    assert telegram.failed_calls() == []
    group_texts = telegram.texts_to(REVIEWER_GROUP)
    assert any(REFLECTION in text for text in group_texts)
    assert any(NAME in text for text in group_texts)
    assert any(message.document_bytes == PDF for message in telegram.messages_to(REVIEWER_GROUP))
    assert any(message.document_bytes == JPEG for message in telegram.messages_to(REVIEWER_GROUP))
    cards = [message for message in telegram.messages_to(REVIEWER_GROUP) if message.text and message.edits]
    assert cards and all(not button_data(card, "rv:") for card in cards)
    with telegram_engine.session_factory() as session:
        learner = session.scalar(select(Learner).where(Learner.platform_user_id == str(LEARNER.id)))
        awards = session.scalars(select(BadgeAward.kind).where(BadgeAward.learner_id == learner.id)).all()
        decided = session.scalars(select(Submission.status).where(Submission.learner_id == learner.id)).all()
    assert learner.name == NAME
    assert "macro" in awards
    assert sorted(set(decided)) == ["approved", "changes_requested"]


async def test_journey_survives_restart(telegram, telegram_engine):
    first_bot = TelegramBot(telegram_engine, pacer=Pacer.unlimited())
    harness = Harness(telegram, first_bot)
    async with first_bot.polling(poll_timeout=timedelta(seconds=1)):
        await harness.say(LEARNER, "/start")
        await write_plan(harness, stop_after=6)
    asked_before_restart = harness.last_to(LEARNER).text

    waiting = telegram.text_update(LEARNER, GENERIC_ANSWER)
    telegram.inject(waiting)
    second_bot = TelegramBot(telegram_engine, pacer=Pacer.unlimited())
    harness = Harness(telegram, second_bot)
    async with second_bot.polling(poll_timeout=timedelta(seconds=1)):
        await telegram.wait_for(lambda: waiting["update_id"] in harness.handled)
        replies_before = len(telegram.messages_to(LEARNER.id))
        await harness.send(waiting)
        assert len(telegram.messages_to(LEARNER.id)) == replies_before
        await write_plan(harness)

    assert harness.last_to(LEARNER).text != asked_before_restart
    assert button_data(harness.last_to(LEARNER), "home:")
    assert telegram.failed_calls() == []
    with telegram_engine.session_factory() as session:
        learner = session.scalar(select(Learner).where(Learner.platform_user_id == str(LEARNER.id)))
    assert learner.plan_completed_at is not None
    assert learner.answers["interests"] == GENERIC_ANSWER
