"""Engine.handle: one event, one transaction; redeliveries and restarts."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot import dialog
from bot.app import build_engine
from bot.events import Attachment
from bot.models import Learner, OutboxMessage, ProcessedUpdate
from tests.bot.scripted import Chat
from tests.conftest import make_event


def count(engine, model) -> int:
    with engine.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_handle_writes_replies_to_outbox(engine):
    handled = engine.handle(make_event("ana", "hello"))

    assert not handled.duplicate
    assert len(handled.outbox_ids) == len(handled.messages) == 2
    with engine.session_factory() as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert [row.id for row in rows] == list(handled.outbox_ids)
    assert all(row.status == "pending" and row.chat_id == "ana" for row in rows)
    assert rows[1].payload["buttons"][0] == ["I agree", "consent:agree"]


def test_repeated_update_changes_nothing(engine):
    chat = Chat(engine)
    chat.answer_until("name")
    event = make_event("ana", "Ana", update_id="update-42")

    first = engine.handle(event)
    outbox_after_first = count(engine, OutboxMessage)
    state_after_first = chat.state()
    second = engine.handle(event)

    assert not first.duplicate
    assert second.duplicate
    assert second.outbox_ids == ()
    assert second.messages == ()
    assert count(engine, OutboxMessage) == outbox_after_first
    assert chat.state() == state_after_first == "email"


def test_same_update_id_other_platform_is_new(engine):
    engine.handle(make_event("ana", "hello", update_id="7"))

    handled = engine.handle(make_event("ana", "hello", update_id="7", platform="telegram"))

    assert not handled.duplicate
    assert count(engine, Learner) == 2


def test_restart_mid_plan_resumes(engine, settings):
    chat = Chat(engine)
    chat.answer_until("ratings.empathy")
    engine.session_factory.kw["bind"].dispose()

    restarted = build_engine(settings)
    try:
        again = Chat(restarted)
        messages = again.send(None, opened=True)

        assert again.state() == "ratings.empathy"
        assert "rate yourself today in Empathy" in messages[-1].text
        again.send("4")
        assert again.learner().answers["ratings.empathy"] == 4
        assert again.state() == "ratings.initiative"
    finally:
        restarted.session_factory.kw["bind"].dispose()


def test_failure_in_routing_writes_nothing(engine, monkeypatch):
    chat = Chat(engine)
    chat.answer_until("values")
    outbox_before = count(engine, OutboxMessage)
    updates_before = count(engine, ProcessedUpdate)
    real_handle = dialog.handle

    def handle_then_fail(turn, conversation):
        real_handle(turn, conversation)
        assert turn.messages and turn.learner.answers.get("values")
        raise RuntimeError("simulated crash after the state changed")

    monkeypatch.setattr(dialog, "handle", handle_then_fail)
    failed = engine.handle(make_event("ana", "Honesty", update_id="crash-1"))
    monkeypatch.undo()

    assert [message.text for message in failed.messages] == [engine.flows.texts("internal_error")]
    assert chat.state() == "values"
    assert "values" not in chat.learner().answers
    assert count(engine, OutboxMessage) == outbox_before + 1
    assert count(engine, ProcessedUpdate) == updates_before

    retried = engine.handle(make_event("ana", "Honesty", update_id="crash-1"))
    assert not retried.duplicate
    assert chat.learner().answers["values"] == "Honesty"


def test_group_chatter_ignored(engine):
    group = Chat(engine, "ana", chat_id="-100group", chat_type="group")

    for text in ("hello everyone", "/help", "/start", "I agree", None):
        assert group.send(text) == []

    assert count(engine, Learner) == 0
    assert count(engine, OutboxMessage) == 0


def test_group_reviewer_command_from_non_reviewer_refused(engine):
    group = Chat(engine, "ana", chat_id="-100group", chat_type="group")

    messages = group.send("/queue")

    assert [message.text for message in messages] == ["Only configured reviewers can decide on submissions."]
    assert messages[0].ephemeral_user == "ana"


def test_group_reviewer_command_answered(engine):
    group = Chat(engine, "reviewer", chat_id="-100group", chat_type="group")

    messages = group.send("/queue")

    assert messages[0].text == "No submissions are waiting for review."
    assert messages[0].chat_id == "-100group"


def test_staff_not_learner_gets_staff_welcome(engine):
    reviewer = Chat(engine, "reviewer")

    messages = reviewer.send("hello")

    assert "You are set up as a reviewer" in messages[0].text
    assert count(engine, Learner) == 0


def test_staff_start_becomes_learner(engine):
    reviewer = Chat(engine, "reviewer")

    reviewer.send("/start")

    assert reviewer.state() == "consent"


def test_coordinator_report(engine):
    Chat(engine, "ana").finish_plan()
    Chat(engine, "bo").answer_until("name")

    messages = Chat(engine, "coordinator").send("/report")

    text = messages[0].text
    assert "2 learner(s) who started their plan" in text
    assert "- Completed the plan: 1" in text
    assert "Reviews: 0 submission(s) waiting" in text


def test_learner_cannot_use_coordinator_command(engine):
    chat = Chat(engine)
    chat.answer_until("name")

    chat.send("/report")

    assert chat.texts()[0] == "Only program coordinators can use that command."
    assert chat.state() == "name"


def drive_to(chat: Chat, state: str) -> None:
    """Bring the learner to ``state`` by chatting, as a learner would."""
    if chat.engine.flows.question(state) is not None:
        chat.answer_until(state)
        return
    chat.finish_plan()
    steps = {
        "home": [],
        "submit_item": ["/submit"],
        "submit_kind": ["/submit", "1"],
        "submit_input": ["/submit", "1", "reflection"],
        "submit_confirm": ["/submit", "1", "reflection", "x" * 250],
        "edit_choose": ["/edit"],
        "forget_confirm": ["/forget"],
    }[state]
    for text in steps:
        chat.send(text)


ODD_EVENTS = [
    {"text": ""},
    {"text": "   "},
    {"text": "\x00\x07"},
    {"text": "²"},
    {"text": "9" * 5000},
    {"text": "x" * 100_000},
    {"text": "\ud800 broken surrogate"},
    {"text": None},
    {"action": "nowhere:1"},
    {"action": "submit_item:²"},
    {"action": "rv:a:²"},
    {"action": "rv:a:99999999999999999999999"},
    {"attachment": Attachment(filename="a.exe", content_type=None, size=2, data=b"MZ")},
    {"attachment": Attachment(filename="big.pdf", content_type=None, size=10**9, data=None)},
]
STATES = ["consent", "name", "email", "campus", "timezone", "ratings.empathy", "target_date", "experience", "home",
          "submit_item", "submit_kind", "submit_input", "submit_confirm", "edit_choose", "forget_confirm"]


@pytest.mark.parametrize("state", STATES)
def test_odd_input_in_every_state(engine, state):
    chat = Chat(engine)
    drive_to(chat, state)
    assert chat.state() == state

    for fields in ODD_EVENTS:
        text = fields.get("text")
        other = {key: value for key, value in fields.items() if key != "text"}
        before = chat.learner()
        messages = chat.send(text, **other)

        assert messages, fields
        assert messages[-1].text.strip(), fields
        after = chat.learner()
        assert after is not None
        assert set(before.answers) <= set(after.answers) | {"email"}
        assert len([item for item in after.items if item.active]) == len([item for item in before.items if item.active])
