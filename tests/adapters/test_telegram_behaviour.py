"""What Telegram does to a bot, and how careerbot's adapter responds, through the real PTB stack."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest

from adapters.telegram_render import MAX_CAPTION, MAX_TEXT, utf16_length
from bot import chats, commands
from bot.models import ChatMigration, Learner, OutboxMessage, Submission
from tests.adapters.telegram_harness import (  # noqa: F401 (fixtures)
    either_mode,
    LEARNER,
    OUTSIDER,
    REVIEWER,
    REVIEWER_GROUP,
    SECOND_LEARNER,
    SECOND_REVIEWER,
    SUPERGROUP,
    Harness,
    polling,
    telegram,
    telegram_engine,
    telegram_settings,
    wait_until,
    webhook,
)
from tests.adapters.telegram_steps import (
    NAME,
    PDF,
    button_data,
    submit_next_item,
    submitted_card,
    write_plan,
)


def load_learner(engine, user=LEARNER) -> Learner | None:
    with engine.session_factory() as session:
        return session.scalar(select(Learner).where(Learner.platform_user_id == str(user.id)))


def outbox_rows(engine, chat_id: int) -> list[OutboxMessage]:
    with engine.session_factory() as session:
        return list(session.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == str(chat_id))
                                    .order_by(OutboxMessage.id)))


def add_outbox_row(engine, chat_id: int, payload: dict, **fields) -> int:
    with engine.session_factory() as session, session.begin():
        row = OutboxMessage(platform="telegram", chat_id=str(chat_id), payload=payload, status="pending",
                            attempts=0, kind=fields.pop("kind", "reply"), **fields)
        session.add(row)
        session.flush()
        return row.id


def adapter_errors(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.levelno >= logging.ERROR and record.name.startswith("adapters")]


# --- start, commands, deep links, keyboards -------------------------------------------------------


async def test_start_registers_command_menu(webhook: Harness, telegram_engine):
    menu = webhook.telegram.commands

    assert [entry["command"] for entry in menu] == list(commands.MENU)
    assert all(entry["description"] == telegram_engine.flows.texts(f"command_{entry['command']}") for entry in menu)


async def test_start_deep_link_stores_parameter(webhook: Harness, telegram_engine):
    await webhook.say(LEARNER, "/start campus-north_2027")

    assert load_learner(telegram_engine).start_parameter == "campus-north_2027"


async def test_press_replaces_keyboard_with_choice(webhook: Harness):
    await webhook.say(LEARNER, "/start")
    consent = webhook.last_to(LEARNER)

    await webhook.press(LEARNER, consent, "consent:agree")

    assert consent.reply_markup is None
    assert consent.text.startswith("Question 1 of 20")
    assert consent.text.endswith("Your choice: I agree")
    assert webhook.last_to(LEARNER).text.startswith("Question 2 of 20")


async def test_press_twice_has_one_effect(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    await webhook.say(LEARNER, "/start")
    consent = webhook.last_to(LEARNER)
    first = telegram.press(LEARNER, consent, "consent:agree")
    second = telegram.press(LEARNER, consent, "consent:agree")

    await webhook.send(first)
    await webhook.send(second)

    learner = load_learner(telegram_engine)
    assert learner.state == "name"
    assert learner.consented_at is not None
    assert telegram_engine.flows.texts("button_expired") in telegram.texts_to(LEARNER.id)
    assert telegram.answer_of(first) is not None
    assert telegram.answer_of(second) is not None
    assert all("not modified" in call.error["description"] for call in telegram.failed_calls())


async def test_press_with_expired_query_takes_effect(webhook: Harness, telegram_engine, caplog):
    telegram = webhook.telegram
    await webhook.say(LEARNER, "/start")
    press = telegram.press(LEARNER, webhook.last_to(LEARNER), "consent:agree")
    telegram.expire(press)

    await webhook.send(press)

    assert load_learner(telegram_engine).state == "name"
    assert telegram.answer_of(press) is None
    assert adapter_errors(caplog) == []


async def test_redelivered_update_changes_nothing(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    update = telegram.text_update(LEARNER, "/start")
    await webhook.send(update)
    sent = len(telegram.sent)

    await webhook.send(update)

    assert len(telegram.sent) == sent
    assert len(outbox_rows(telegram_engine, LEARNER.id)) == sent


async def test_user_text_arrives_intact(webhook: Harness):
    special = "*_[]()~>#+-=|{}.! <b>&amp; Ж 😂"
    await webhook.say(LEARNER, "/start")
    await webhook.press(LEARNER, webhook.last_to(LEARNER), "consent:agree")
    await webhook.say(LEARNER, NAME)
    await webhook.say(LEARNER, "/skip")
    await webhook.press(LEARNER, webhook.last_to(LEARNER), webhook.last_to(LEARNER).buttons[0][1])
    await webhook.press(LEARNER, webhook.last_to(LEARNER), "timezone:Europe/London")
    await webhook.say(LEARNER, special)

    replies = await webhook.say(LEARNER, "/plan")

    plan = replies[0].text
    assert f"Name: {NAME}" in plan
    assert f"Career interests: {special}" in plan
    assert webhook.telegram.failed_calls() == []


# --- message limits --------------------------------------------------------------------------------


async def test_long_text_split_in_order(webhook: Harness, telegram_engine):
    text = "\n".join(f"line {number}: " + "word " * 40 for number in range(120))
    row = add_outbox_row(telegram_engine, LEARNER.id, {"text": text, "buttons": [["Done", "home:pathway"]]})
    webhook.telegram.add_chat(LEARNER.private_chat())

    await webhook.bot.delivery.deliver([str(LEARNER.id)], [row])

    parts = webhook.telegram.messages_to(LEARNER.id)
    assert len(parts) == 7
    assert all(utf16_length(part.text) <= MAX_TEXT for part in parts)
    assert " ".join(part.text for part in parts).split() == text.split()
    assert all(part.text.startswith("line ") for part in parts)
    assert [bool(part.buttons) for part in parts] == [False] * 6 + [True]
    assert outbox_rows(telegram_engine, LEARNER.id)[0].platform_message_id == str(parts[-1].message_id)


async def test_long_text_of_entities_split_whole(webhook: Harness, telegram_engine):
    text = "<&>" * 3000
    row = add_outbox_row(telegram_engine, LEARNER.id, {"text": text})
    webhook.telegram.add_chat(LEARNER.private_chat())

    await webhook.bot.delivery.deliver([str(LEARNER.id)], [row])

    parts = webhook.telegram.texts_to(LEARNER.id)
    assert "".join(parts) == text
    assert [len(part) for part in parts] == [MAX_TEXT, MAX_TEXT, 9000 - 2 * MAX_TEXT]


async def test_document_caption_or_separate_text(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    telegram.add_chat(LEARNER.private_chat())
    document = {"filename": "export.json", "content_type": "application/json", "path": None,
                "content": "eyJvayI6IHRydWV9"}
    short = add_outbox_row(telegram_engine, LEARNER.id, {"text": "Your data & more", "document": document})
    long_text = "A long note. " * 100
    long = add_outbox_row(telegram_engine, LEARNER.id, {"text": long_text, "document": document})

    await webhook.bot.delivery.deliver([str(LEARNER.id)], [short, long])

    captioned, note, attached = telegram.messages_to(LEARNER.id)
    assert captioned.caption == "Your data & more"
    assert captioned.document_bytes == b'{"ok": true}'
    assert utf16_length(long_text) > MAX_CAPTION
    assert note.text == long_text
    assert attached.caption is None
    assert attached.reply_to_message_id == note.message_id


# --- flood limits, blocked users, migrations ---------------------------------------------------------


async def test_rate_limit_waits_retry_after(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    telegram.fail_with_retry_after("sendMessage", 1, chat_id=LEARNER.id)

    await webhook.say(LEARNER, "/start")
    await telegram.wait_for(lambda: len(telegram.messages_to(LEARNER.id)) == 2)

    limited, greeting, question = telegram.calls_of("sendMessage", LEARNER.id)
    assert limited.error["error_code"] == 429
    assert greeting.at - limited.at >= 1.0
    assert telegram.texts_to(LEARNER.id)[0].startswith("Hello!")
    assert telegram.texts_to(LEARNER.id)[1].startswith("Question 1 of 20")
    await wait_until(lambda: all(row.status == "sent" for row in outbox_rows(telegram_engine, LEARNER.id)))
    rows = outbox_rows(telegram_engine, LEARNER.id)
    assert len(rows) == 2
    assert rows[0].attempts == 2


async def test_blocked_learner_held_until_back(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    await webhook.say(LEARNER, "/start")
    telegram.blocked.add(LEARNER.id)

    await webhook.say(LEARNER, "maybe")

    learner = load_learner(telegram_engine)
    assert learner.unreachable_since is not None
    assert [call.error["error_code"] for call in telegram.calls_of("sendMessage", LEARNER.id)[2:]] == [403]
    assert [row.status for row in outbox_rows(telegram_engine, LEARNER.id)[2:]] == ["failed", "pending"]

    await webhook.send(telegram.membership_update(LEARNER, blocked=False))

    assert load_learner(telegram_engine).unreachable_since is None
    await wait_until(lambda: outbox_rows(telegram_engine, LEARNER.id)[-1].status == "sent")
    assert webhook.last_to(LEARNER).text.startswith("Question 1 of 20")
    assert [row.status for row in outbox_rows(telegram_engine, LEARNER.id)[2:]] == ["failed", "sent"]


async def test_kicked_update_marks_unreachable(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    await webhook.say(LEARNER, "/start")

    await webhook.send(telegram.membership_update(LEARNER, blocked=True))
    assert load_learner(telegram_engine).unreachable_since is not None

    await webhook.send(telegram.membership_update(LEARNER, blocked=False))
    await webhook.send(telegram.membership_update(LEARNER, blocked=True))
    await webhook.send(telegram.membership_update(LEARNER, blocked=False))
    await webhook.say(LEARNER, "/start")
    assert load_learner(telegram_engine).unreachable_since is None
    await webhook.send(telegram.raw("update_my_chat_member_kicked"))


async def test_migration_update_moves_reviewer_chat(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    to_update, from_update = telegram.migrate(REVIEWER_GROUP, SUPERGROUP, by=REVIEWER)

    await webhook.send(to_update)
    await webhook.send(from_update)
    card = await submitted_card(webhook)

    assert card.chat_id == SUPERGROUP
    with telegram_engine.session_factory() as session:
        assert chats.reviewer_chat(session, telegram_engine.settings, "telegram") == str(SUPERGROUP)
        assert session.scalar(select(ChatMigration.new_chat_id)) == str(SUPERGROUP)


async def test_chat_migrated_on_send_resends_there(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    await webhook.say(LEARNER, "/start")
    await write_plan(webhook)
    telegram.migrate(REVIEWER_GROUP, SUPERGROUP, by=REVIEWER)

    await submit_next_item(webhook, ["reflection"])
    card = await telegram.wait_for(lambda: next(iter(telegram.messages_to(SUPERGROUP)), None))
    await webhook.press(REVIEWER, card, button_data(card, "rv:a:")[0])

    assert telegram.calls_of("sendMessage", REVIEWER_GROUP)[0].error["parameters"] == {
        "migrate_to_chat_id": SUPERGROUP}
    assert card.edits and not card.buttons
    assert "Rita Reviewer" in card.text
    with telegram_engine.session_factory() as session:
        assert session.scalar(select(Submission.status)) == "approved"


# --- reviewers ---------------------------------------------------------------------------------------


async def test_outsider_press_gets_notice(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    card = await submitted_card(webhook)

    press = telegram.press(OUTSIDER, card, button_data(card, "rv:a:")[0])
    await webhook.send(press)

    assert telegram.answer_of(press) == {"text": telegram_engine.flows.texts("review_not_reviewer"),
                                         "show_alert": True}
    assert button_data(card, "rv:a:")
    with telegram_engine.session_factory() as session:
        assert session.scalar(select(Submission.status)) == "pending"


async def test_outsider_notice_sent_when_query_expired(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    card = await submitted_card(webhook)
    press = telegram.press(OUTSIDER, card, button_data(card, "rv:a:")[0])
    telegram.expire(press)

    await webhook.send(press)

    assert webhook.last_to(REVIEWER_GROUP).text == telegram_engine.flows.texts("review_not_reviewer")


async def test_second_decision_gets_notice(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    card = await submitted_card(webhook)
    approve = button_data(card, "rv:a:")[0]
    late = telegram.press(SECOND_REVIEWER, card, approve)

    await webhook.press(REVIEWER, card, approve)
    await webhook.send(late)

    assert "already decided" in telegram.answer_of(late)["text"]
    assert "Rita Reviewer" in card.text
    assert not card.buttons


async def test_feedback_reply_tied_to_reviewer(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    group = telegram.chats[REVIEWER_GROUP]
    card = await submitted_card(webhook)
    await webhook.press(REVIEWER, card, button_data(card, "rv:c:")[0])
    while button_data(webhook.last_to(REVIEWER_GROUP), "rv:m:"):
        prompt = webhook.last_to(REVIEWER_GROUP)
        await webhook.press(REVIEWER, prompt, button_data(prompt, "rv:m:")[0])
    feedback_prompt = webhook.last_to(REVIEWER_GROUP)

    await webhook.say(SECOND_REVIEWER, "I think it is fine", chat=group, reply_to=feedback_prompt)
    with telegram_engine.session_factory() as session:
        assert session.scalar(select(Submission.status)) == "pending"
    await webhook.say(REVIEWER, "Add the date of the appointment.", chat=group, reply_to=feedback_prompt)

    assert feedback_prompt.force_reply == {"force_reply": True, "selective": True}
    mention = feedback_prompt.entities[0]
    assert mention["type"] == "text_mention"
    assert mention["user"]["id"] == REVIEWER.id
    assert mention["offset"] == 0
    with telegram_engine.session_factory() as session:
        assert session.scalar(select(Submission.status)) == "changes_requested"
    assert any("Add the date of the appointment." in text for text in telegram.texts_to(LEARNER.id))


async def test_card_edit_not_modified_is_sent(webhook: Harness, telegram_engine):
    card = await submitted_card(webhook)
    await webhook.press(REVIEWER, card, button_data(card, "rv:a:")[0])
    update_row = next(row for row in outbox_rows(telegram_engine, REVIEWER_GROUP) if row.edit_ref)

    again = add_outbox_row(telegram_engine, REVIEWER_GROUP, update_row.payload, edit_ref=update_row.edit_ref,
                           kind="card_update")
    await webhook.bot.delivery.deliver([str(REVIEWER_GROUP)], [again])

    assert webhook.telegram.calls_of("editMessageText", REVIEWER_GROUP)[-1].error["description"].startswith(
        "Bad Request: message is not modified")
    assert outbox_rows(telegram_engine, REVIEWER_GROUP)[-1].status == "sent"


async def test_reviewer_group_commands(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    group = telegram.chats[REVIEWER_GROUP]
    await submitted_card(webhook)
    sent = len(telegram.sent)

    await webhook.say(REVIEWER, "/queue@other_bot", chat=group)
    await webhook.say(REVIEWER, "talking among ourselves", chat=group)
    assert len(telegram.sent) == sent

    replies = await webhook.say(REVIEWER, "/queue@example_bot", chat=group)
    assert replies[0].text.startswith("1 submission(s) waiting")
    replies = await webhook.say(OUTSIDER, "/queue", chat=group)
    assert replies[0].text == telegram_engine.flows.texts("review_not_reviewer")


# --- files ---------------------------------------------------------------------------------------------


async def test_file_over_download_limit_gets_limit_reply(webhook: Harness, telegram_engine):
    telegram = webhook.telegram
    await webhook.say(LEARNER, "/start")
    await write_plan(webhook)
    await webhook.say(LEARNER, "/submit")
    await webhook.press(LEARNER, webhook.last_to(LEARNER), button_data(webhook.last_to(LEARNER), "submit_item:")[0])
    await webhook.press(LEARNER, webhook.last_to(LEARNER), "submit_kind:file")

    await webhook.send(telegram.document_update(LEARNER, "recording.pdf", None, size=25 * 1024 * 1024))
    too_big_known = telegram.texts_to(LEARNER.id)[-2]
    unknown_size = telegram.document_update(LEARNER, "scan.pdf", None, size=21 * 1024 * 1024)
    del unknown_size["message"]["document"]["file_size"]
    await webhook.send(unknown_size)
    too_big_found = telegram.texts_to(LEARNER.id)[-2]
    await webhook.send(telegram.document_update(LEARNER, "evidence.pdf", PDF))

    assert too_big_known.startswith("That file is too large. The limit is 10 MB")
    assert too_big_found == too_big_known
    assert len(telegram.calls_of("getFile")) == 2
    assert telegram.calls_of("getFile")[0].error["description"] == "Bad Request: file is too big"
    assert button_data(webhook.last_to(LEARNER), "submit_confirm:")


# --- updates the bot does not act on -------------------------------------------------------------------


def private_message_with(telegram, user, **content) -> dict:
    update = telegram.text_update(user, "placeholder")
    del update["message"]["text"]
    update["message"].update(content)
    return update


async def test_other_updates_get_silence_or_reply(webhook: Harness, telegram_engine, caplog):
    telegram = webhook.telegram
    await webhook.say(LEARNER, "/start")
    group = telegram.chats[REVIEWER_GROUP]
    unsupported = telegram_engine.flows.texts("unsupported_message")
    voice = telegram.template("getupdates_response")["result"][3]["message"]["voice"]
    replies_expected = {
        "sticker": private_message_with(telegram, LEARNER, sticker={
            "file_id": "CAACAgIAAxkBAAIFake", "file_unique_id": "AgADFake", "type": "regular", "width": 512,
            "height": 512, "is_animated": False, "is_video": False}),
        "voice": private_message_with(telegram, LEARNER, voice=voice),
        "location": private_message_with(telegram, LEARNER, location={"latitude": 52.52, "longitude": 13.40}),
        "poll": private_message_with(telegram, LEARNER, poll={
            "id": "5000000000000000001", "question": "Lunch?", "options": [
                {"persistent_id": "1", "text": "Yes", "voter_count": 0},
                {"persistent_id": "2", "text": "No", "voter_count": 0}],
            "total_voter_count": 0, "is_closed": False, "is_anonymous": True, "type": "regular",
            "allows_multiple_answers": False, "allows_revoting": True, "members_only": False}),
    }
    silent = {
        "edited in a supergroup": telegram.raw("update_edited_message_supergroup"),
        "channel post": telegram.channel_post_update(-1002000000004, "news"),
        "group chatter": telegram.raw("update_supergroup_text"),
        "group sticker": telegram.text_update(REVIEWER, "x", chat=group),
        "from a bot": telegram.text_update(LEARNER, "I am a bot"),
        "service message": private_message_with(telegram, LEARNER, pinned_message={
            "message_id": 1, "date": 0, "chat": LEARNER.private_chat()}),
    }
    silent["group sticker"]["message"].pop("text")
    silent["group sticker"]["message"]["sticker"] = replies_expected["sticker"]["message"]["sticker"]
    silent["from a bot"]["message"]["from"]["is_bot"] = True

    for name, update in replies_expected.items():
        before = len(telegram.sent)
        await webhook.send(update)
        assert telegram.sent[before].text == unsupported, name
    for name, update in silent.items():
        before = len(telegram.sent)
        await webhook.send(update)
        assert len(telegram.sent) == before, name

    assert adapter_errors(caplog) == []
    assert load_learner(telegram_engine).state == "consent"


async def test_private_edit_gets_reply(webhook: Harness, telegram_engine, caplog):
    telegram = webhook.telegram
    await webhook.say(LEARNER, "/start")
    question = telegram_engine.flows.question("consent")
    before = len(telegram.sent)

    await webhook.send(telegram.edited_update(LEARNER, "an edited answer"))

    replies = [message.text for message in telegram.sent[before:]]
    assert replies[0] == telegram_engine.flows.texts("edit_ignored")
    assert question.prompt.strip().splitlines()[0] in replies[-1]
    assert load_learner(telegram_engine).state == "consent"
    assert adapter_errors(caplog) == []


async def test_captured_samples_handled_without_error(webhook: Harness, caplog):
    telegram = webhook.telegram
    for name in ("update_private_command_start", "update_private_text_emoji_cyrillic", "update_photo_with_caption",
                 "update_document_pdf", "update_edited_message", "update_supergroup_command_reply",
                 "update_group_migrate_to_chat_id", "update_supergroup_migrate_from_chat_id"):
        await webhook.send(telegram.raw(name))
    for update in telegram.template("getupdates_response")["result"]:
        await webhook.send(telegram.raw_update(update))

    assert adapter_errors(caplog) == []
    assert [record.getMessage() for record in caplog.records if record.name == "bot.engine"
            and record.levelno >= logging.ERROR] == []


async def test_both_modes_answer_start(either_mode: Harness):
    calls = either_mode.telegram.calls

    replies = await either_mode.say(LEARNER, "/start")

    polling = either_mode.client is None
    assert replies[-1].text.startswith("Question 1 of 20")
    assert ("deleteWebhook" in [call.method for call in calls]) == polling
    assert ("setWebhook" in [call.method for call in calls]) == (not polling)


async def test_updates_of_one_chat_handled_in_order(polling: Harness, telegram_engine):
    telegram = polling.telegram
    learners = (LEARNER, SECOND_LEARNER)
    batch = [telegram.text_update(user, text) for text in ("/start", "I agree", "Ana", "/skip") for user in learners]

    for update in batch:
        telegram.inject(update)
    await telegram.wait_for(lambda: all(update["update_id"] in polling.handled for update in batch))

    for user in learners:
        learner = load_learner(telegram_engine, user)
        assert learner.state == "campus"
        assert learner.name == "Ana"
        assert polling.last_to(user).text.startswith("Question 4 of 20")


async def test_emulator_rejects_what_telegram_rejects(webhook: Harness):
    bot = webhook.bot.application.bot
    webhook.telegram.add_chat(LEARNER.private_chat())

    with pytest.raises(BadRequest, match="(?i)too long"):
        await bot.send_message(LEARNER.id, "x" * (MAX_TEXT + 1))
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(LEARNER.id, "<3 Ana & Bo", parse_mode="HTML")
    with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
        await bot.send_message(LEARNER.id, "hi", reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton("x", callback_data="x" * 65)]]))
