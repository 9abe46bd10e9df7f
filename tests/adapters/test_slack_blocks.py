"""Text conversion, Block Kit limits and payload conversion, without a server."""

from __future__ import annotations

import pytest

from adapters.slack_blocks import (
    CARD_EVIDENCE_MAX_CHARS,
    MESSAGE_MAX_BLOCKS,
    change_request_view,
    choice_made_blocks,
    read_change_request,
    render_message,
    shorten_card_evidence,
    slack_wording,
    thread_messages,
)
from adapters.slack_inbound import (
    command_text,
    message_ignore_reason,
    may_send_token,
    needs_file_info,
)
from adapters.slack_text import escape, escaped_length, shorten, split_sections, to_plain
from bot.events import Button
from bot.flows import load_flows
from bot.review import ChangeRequestForm
from tests.adapters import slack_payloads as payloads

TEXTS = load_flows().texts


@pytest.mark.parametrize(("slack_text", "plain"), [
    ("fish &amp; chips &lt;3 &gt;", "fish & chips <3 >"),
    ("<https://example.org/portfolio>", "https://example.org/portfolio"),
    ("see <https://example.org/a|example.org/a>", "see https://example.org/a"),
    ("<mailto:ana@example.edu|ana@example.edu>", "ana@example.edu"),
    ("thanks <@U0000000R01>", "thanks @U0000000R01"),
    ("in <#C0000000R00|reviewers>", "in #reviewers"),
    ("<!here> and <!channel>", "@here and @channel"),
    ("<!subteam^S0001|@mentors>", "@mentors"),
    ("&amp;lt;", "&lt;"),
])
def test_to_plain_cases(slack_text, plain):
    assert to_plain(slack_text) == plain


def test_escape_neutralises_markup():
    assert escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert escaped_length("<&>") == len("&lt;&amp;&gt;")


def test_split_sections_respects_escaped_limit():
    text = ("a < b & c > d " * 600).strip() + "\n" + "x" * 7000

    pieces = split_sections(text)

    assert all(escaped_length(piece) <= 3000 for piece in pieces)
    assert "".join(piece.replace("\n", " ") for piece in pieces).replace(" ", "") == text.replace("\n", " ").replace(
        " ", "")


def test_split_sections_keeps_short_text_whole():
    assert split_sections("one\n\ntwo") == ["one\n\ntwo"]
    assert split_sections("") == []


def test_shorten_cuts_at_space():
    assert shorten("word " * 10, 22) == "word word word word…"
    assert shorten("abcdefghij", 5) == "abcd…"
    assert shorten("short", 10) == "short"


def test_render_message_limits():
    buttons = tuple(Button(f"Choice {number} " + "x" * 100, f"q:{number}") for number in range(60))
    text = "word " * 40_000

    rendered = render_message(text, buttons)

    assert len(rendered.blocks) == MESSAGE_MAX_BLOCKS
    actions = [block for block in rendered.blocks if block["type"] == "actions"]
    assert [len(block["elements"]) for block in actions] == [25, 25, 10]
    assert all(len(element["text"]["text"]) <= 75 for block in actions for element in block["elements"])
    assert len({element["action_id"] for block in actions for element in block["elements"]}) == 60
    sections = [block for block in rendered.blocks if block["type"] == "section"]
    assert all(len(block["text"]["text"]) <= 3000 for block in sections)
    assert rendered.overflow is not None
    assert len(rendered.text) <= 3000
    parts = thread_messages(rendered.overflow)
    assert all(len(part.blocks) <= MESSAGE_MAX_BLOCKS for part in parts)


def test_render_message_drops_oversized_button(caplog):
    rendered = render_message("Pick one", (Button("ok", "q:1"), Button("too long", "q:" + "9" * 2000)))

    values = [element["value"] for block in rendered.blocks if block["type"] == "actions"
              for element in block["elements"]]
    assert values == ["q:1"]
    assert "its action is 2002 characters" in caplog.text


def test_card_evidence_shortened_only_when_long():
    evidence = "e" * (CARD_EVIDENCE_MAX_CHARS + 500)
    card = f"Submission #3\nEvidence:\n{evidence}\n\nRubric:\n1. x"

    shortened, truncated = shorten_card_evidence(card, evidence, TEXTS)
    unchanged, kept = shorten_card_evidence("short card", "short", TEXTS)

    assert truncated
    assert shortened.endswith("\n\nRubric:\n1. x")
    assert f"(The evidence is {len(evidence)} characters long" in shortened
    assert (unchanged, kept) == ("short card", False)


def test_choice_made_blocks_remove_buttons():
    rendered = render_message("Do you agree?", (Button("I agree", "consent:agree"),))

    blocks = choice_made_blocks(rendered.blocks, "I agree", TEXTS)

    assert [block["type"] for block in blocks] == ["section", "context"]
    assert blocks[-1]["elements"][0]["text"] == "Your choice: I agree"


def test_change_request_view_round_trip():
    form = ChangeRequestForm(7, "Use career services", ("Names the service.", "Gives <two> points."))
    view = change_request_view(form, "C0000000R00", TEXTS)
    values = payloads.change_request_values([False, True], "Add the date & the adviser.")

    submitted = read_change_request({**view, "state": {"values": values}})

    assert submitted.submission_id == 7
    assert submitted.chat_id == "C0000000R00"
    assert submitted.criteria_met == (False, True)
    assert submitted.feedback == "Add the date & the adviser."
    assert len(view["title"]["text"]) <= 24


def test_read_change_request_rejects_other_view():
    with pytest.raises(ValueError, match="not a careerbot change-request form"):
        read_change_request({"private_metadata": "This is for you!", "state": {"values": {}}})


@pytest.mark.parametrize(("event", "reason"), [
    (payloads.direct_message("U1", "D1", "hi"), None),
    (payloads.file_share("U1", "D1", {"id": "F1"}), None),
    (payloads.bot_message("D1", "hi"), "a bot's message"),
    (payloads.own_message("D1", "hi"), "a bot's message"),
    (payloads.message_changed("U1", "D1", "x"), "subtype message_changed"),
    (payloads.message_deleted("D1"), "subtype message_deleted"),
    (payloads.channel_join("U1", "C1"), "subtype channel_join"),
    (payloads.channel_message("U1", "C1", "hi"), "a channel message, not a direct message"),
    ({**payloads.direct_message("U0000000002", "D1", "hi")}, "the bot's own message"),
])
def test_message_ignore_reason_cases(event, reason):
    assert message_ignore_reason(event, "U0000000002") == reason


@pytest.mark.parametrize(("command", "text", "core"), [
    ("/careerbot", "queue", "/queue"),
    ("/careerbot", "review 12", "/review 12"),
    ("/careerbot", "", "/help"),
    ("/careerbot", "  report ", "/report"),
    ("/careerbot", "/help", "/help"),
    ("/careerbot", "//review 3", "/review 3"),
    ("/careerbot", "/", "/help"),
    ("/plan", "", "/plan"),
])
def test_command_text_cases(command, text, core):
    assert command_text(command, text) == core


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://files.slack.com/files-pri/T1-F1/report.pdf", True),
    ("https://files.slack-gov.com/files-pri/T1-F1/report.pdf", True),
    ("http://files.slack.com/files-pri/T1-F1/report.pdf", False),
    ("https://files.slack.com.evil.example/x.pdf", False),
    ("https://evil.example/files-pri/T1-F1/report.pdf", False),
    ("http://127.0.0.1:8000/files-pri/T1-F1/report.pdf", True),
    ("http://127.0.0.1:9000/files-pri/T1-F1/report.pdf", False),
])
def test_may_send_token_cases(url, allowed):
    assert may_send_token(url, "http://127.0.0.1:8000/api/") is allowed


def test_needs_file_info_cases():
    assert needs_file_info({"id": "F1", "file_access": "check_file_info"})
    assert needs_file_info({"id": "F1"})
    assert not needs_file_info({"id": "F1", "url_private": "https://files.slack.com/x", "size": 3})


def test_slack_wording_rewrites_core_commands():
    text = slack_wording("Type /submit when ready, or /help. Open https://x.example/plan or /usr/plan.")

    assert "/careerbot submit" in text
    assert "/careerbot help" in text
    assert "https://x.example/plan" in text
    assert "/usr/plan" in text


def test_slack_wording_keeps_verbatim_parts():
    evidence = "I used /submit and /help (twice)."
    text = slack_wording(f"Evidence:\n{evidence}\nType /submit to send it. {evidence}", [evidence, ""])

    assert text == f"Evidence:\n{evidence}\nType /careerbot submit to send it. {evidence}"
