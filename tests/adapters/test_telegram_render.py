"""Telegram formatting, pacing and update conversion, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from telegram import Bot, Update

from adapters.telegram_convert import addressed_to_bot, callback_event, file_ref, message_event, start_parameter
from adapters.telegram_pacing import Pacer
from adapters.telegram_render import (
    MAX_TEXT,
    escape,
    inline_keyboard,
    split_text,
    truncate,
    utf16_length,
    with_mention,
)
from bot.events import Button
from tests.adapters.telegram_emulator import BOT_USER, TOKEN, ApiError, parse_html

PAYLOADS = Path(__file__).parent / "telegram_payloads"
BOT = Bot(TOKEN)


def sample(name: str) -> Update:
    return Update.de_json(json.loads((PAYLOADS / f"telegram_{name}.json").read_text(encoding="utf-8")), BOT)


# --- splitting and escaping -------------------------------------------------------------------------


def test_split_text_short_kept_whole():
    assert split_text("hello\nworld") == ["hello\nworld"]


def test_split_text_prefers_line_breaks():
    text = "a" * 3000 + "\n" + "b" * 3000

    assert split_text(text) == ["a" * 3000, "b" * 3000]


def test_split_text_falls_back_to_spaces():
    words = ["word"] * 2000
    text = " ".join(words)

    parts = split_text(text)

    assert all(utf16_length(part) <= MAX_TEXT for part in parts)
    assert " ".join(parts).split() == words
    assert all(not part.startswith(" ") and not part.endswith(" ") for part in parts)


def test_split_text_cuts_unbroken_runs():
    parts = split_text("x" * 9000)

    assert [len(part) for part in parts] == [4096, 4096, 808]


def test_split_text_counts_utf16_units():
    text = "😂" * 3000

    parts = split_text(text)

    assert "".join(parts) == text
    assert [utf16_length(part) for part in parts] == [4096, 1904]


def test_split_text_drops_blank_parts():
    assert split_text("a" * 10 + "\n" * 20 + "b" * 10, limit=12) == ["a" * 10, "b" * 10]


def test_split_text_never_breaks_escapes():
    text = "<&>" * 3000

    parts = split_text(text)

    assert "".join(parse_html(escape(part))[0] for part in parts) == text


@pytest.mark.parametrize("text", ["<3 Ana & Bo", "*_[]()~>#+-=|{}.!", "<b>bold?</b> &amp; &#60;", "a > b < c"])
def test_escape_round_trips_through_html_parse(text):
    plain, entities = parse_html(escape(text))

    assert plain == text
    assert entities == []


def test_emulator_rejects_unescaped_markup():
    with pytest.raises(ApiError) as error:
        parse_html("<3 Ana & Bo")

    assert error.value.description.startswith("Bad Request: can't parse entities")


def test_mention_wraps_leading_name():
    html = with_mention("Rita <R>, write your feedback", "200000001", "Rita <R>")

    plain, entities = parse_html(html)
    assert plain == "Rita <R>, write your feedback"
    assert entities == [{"offset": 0, "length": 8, "type": "text_mention",
                         "user": {"id": 200000001, "is_bot": False, "first_name": "Rita <R>"}}]


def test_mention_prefixed_when_name_absent():
    plain, entities = parse_html(with_mention("Write your feedback", "7", "Rui"))

    assert plain == "Rui: Write your feedback"
    assert entities[0]["user"]["id"] == 7


def test_truncate_adds_ellipsis():
    assert truncate("short", 200) == "short"
    assert truncate("word " * 100, 20) == "word word word word…"
    assert utf16_length(truncate("😂" * 150, 200)) <= 200


# --- keyboards ----------------------------------------------------------------------------------------


def test_keyboard_rows_fit_labels():
    ratings = inline_keyboard([Button(str(value), f"ratings.empathy:{value}") for value in range(1, 6)])
    long = inline_keyboard([Button("Level 1: Explore career options", f"submit_item:{n}") for n in range(3)])

    assert [len(row) for row in ratings.inline_keyboard] == [5]
    assert [len(row) for row in long.inline_keyboard] == [1, 1, 1]


def test_keyboard_leaves_out_long_callback_data(caplog):
    keyboard = inline_keyboard([Button("ok", "home:submit"), Button("too long", "x" * 65)])

    assert [button.callback_data for row in keyboard.inline_keyboard for button in row] == ["home:submit"]
    assert "over 64 bytes" in caplog.text


def test_keyboard_counts_callback_bytes():
    keyboard = inline_keyboard([Button("é", "é" * 33)])

    assert keyboard is None


# --- pacing -----------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pacer_private_chat_burst_then_rate():
    clock = FakeClock()
    pacer = Pacer(overall_per_second=None, private_per_second=1.0, private_burst=3, clock=clock)

    delays = [pacer.reserve("100000002") for _ in range(5)]

    assert delays == [0.0, 0.0, 0.0, 1.0, 2.0]


def test_pacer_group_spaces_sends_evenly():
    clock = FakeClock()
    pacer = Pacer(overall_per_second=None, group_per_minute=20, clock=clock)

    delays = [pacer.reserve("-500000001") for _ in range(3)]
    clock.now += 60
    later = pacer.reserve("-500000001")

    assert delays == [0.0, 3.0, 6.0]
    assert later == 0.0


def test_pacer_overall_rate_across_chats():
    clock = FakeClock()
    pacer = Pacer(overall_per_second=30, private_per_second=None, clock=clock)

    delays = [pacer.reserve(str(chat)) for chat in range(1, 4)]

    assert delays == pytest.approx([0.0, 1 / 30, 2 / 30])


def test_pacer_chats_independent():
    clock = FakeClock()
    pacer = Pacer(overall_per_second=None, private_burst=1, clock=clock)

    assert pacer.reserve("1") == 0.0
    assert pacer.reserve("2") == 0.0
    assert pacer.reserve("1") == 1.0


def test_pacer_unlimited_never_waits():
    pacer = Pacer.unlimited()

    assert {pacer.reserve("-1") for _ in range(100)} | {pacer.reserve("1") for _ in range(100)} == {0.0}


# --- conversion ---------------------------------------------------------------------------------------------


def test_convert_start_with_deep_link():
    update = sample("update_private_command_start")
    update.message._unfreeze()
    update.message.text = "/start campus-north"

    event = message_event(update, update.message)

    assert event.platform == "telegram"
    assert event.update_id == f"{update.update_id}:12345678:{update.message.message_id}"
    assert event.user_id == event.chat_id == "12345678"
    assert event.text == "/start campus-north"
    assert event.start_parameter == "campus-north"
    assert event.chat_type == "private"
    assert event.display_name == "FistName LastName"


def test_start_parameter_only_for_start():
    update = sample("update_private_command_start")

    assert start_parameter(update.message) is None


def test_file_ref_picks_largest_photo():
    update = sample("update_photo_with_caption")

    ref = file_ref(update.message)

    assert ref.file_id == update.message.photo[-1].file_id
    assert ref.filename == "photo_AQADNsWs9Bl7tTF-.jpg"
    assert ref.content_type == "image/jpeg"
    assert ref.size == 162061


def test_file_ref_of_document():
    ref = file_ref(sample("update_document_pdf").message)

    assert (ref.filename, ref.content_type, ref.size) == ("document.pdf", "application/pdf", 123456)


def test_callback_event_carries_action():
    update = sample("update_callback_query")

    event = callback_event(update, update.callback_query)

    assert event.action == "thedata"
    assert event.user_id == "222222222"
    assert event.chat_id == "222222222"
    assert event.text is None


def test_addressed_to_bot_commands_and_replies():
    group_command = sample("update_supergroup_command_reply").message
    chatter = sample("update_supergroup_text").message

    assert addressed_to_bot(group_command, BOT_USER["id"], "example_bot")
    assert not addressed_to_bot(chatter, BOT_USER["id"], "example_bot")


def test_addressed_to_bot_checks_username():
    update = sample("update_supergroup_command_reply")
    message = update.message
    message._unfreeze()
    message.text = "/report@other_bot"
    message.entities[0]._unfreeze()
    message.entities[0].length = len(message.text)

    assert not addressed_to_bot(message, BOT_USER["id"], "example_bot")
    assert addressed_to_bot(message, BOT_USER["id"], "Other_Bot")
