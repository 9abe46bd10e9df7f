"""The learner's side of supervisor evaluations: /supervisor, the details detour, links and revoking."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from bot import outbox
from bot.evaluation_requests import TOKEN_PATTERN, hash_token
from bot.models import EvaluationRequest, OutboxMessage, PathwayItem
from tests.bot.scripted import Chat, find_item
from tests.bot.supervisor_steps import (
    ITEM_KEY,
    SUPERVISOR,
    give_details,
    load_requests,
    request_link,
    token_in,
)


@pytest.fixture
def chat(engine) -> Chat:
    chat = Chat(engine, "ana")
    chat.finish_plan()
    return chat


def days_ago(days: int) -> str:
    return (date.today() - timedelta(days=days)).isoformat()


def test_supervisor_detour_gives_link(engine, chat):
    token = request_link(chat, plan_done=True)

    text = chat.joined()
    assert TOKEN_PATTERN.fullmatch(token)
    assert f"{engine.settings.public_base_url}/evaluate/{token}" in text
    assert "Here is the link for Maria Lopez" in text
    assert "/supervisor revoke" in text
    [request] = load_requests(engine)
    assert request.token_sha256 == hash_token(token)
    assert request.status == "pending"
    assert request.supervisor_name == SUPERVISOR["name"]
    assert request.supervisor_organization == SUPERVISOR["organization"]
    assert request.supervisor_email == SUPERVISOR["email"]
    assert request.placement_start.isoformat() == SUPERVISOR["start"]
    assert request.placement_end.isoformat() == SUPERVISOR["end"]
    assert request.item_id == find_item(engine, "ana", ITEM_KEY).id
    assert request.created_by == "console:ana"
    assert request.expires_at - request.created_at == timedelta(days=30)
    assert "supervisor" not in chat.learner().context


def test_supervisor_links_are_unique(engine):
    tokens = {request_link(Chat(engine, user)) for user in ("ana", "ben", "cleo")}

    assert len(tokens) == 3


def test_supervisor_link_days_setting(tmp_path):
    from bot.app import build_engine
    from bot.config import load_settings

    settings = load_settings(environ={}, data_dir=tmp_path / "data", evaluation_link_days=7)
    engine = build_engine(settings)
    request_link(Chat(engine, "ana"))

    [request] = load_requests(engine)
    assert request.expires_at - request.created_at == timedelta(days=7)
    engine.session_factory.kw["bind"].dispose()


def test_supervisor_confirm_shows_details(chat):
    chat.send("/supervisor")
    give_details(chat)

    text = chat.joined()
    assert "Supervisor: Maria Lopez" in text
    assert "Organization: Acme Logistics" in text
    assert "Email: maria.lopez@acme.example" in text
    assert f"Dates: {SUPERVISOR['start']} to {SUPERVISOR['end']}" in text
    assert [button.action for button in chat.last.messages[-1].buttons] == [
        "supervisor_confirm:create", "supervisor_confirm:change", "supervisor_confirm:later"]


INVALID_DETAILS = [
    ("supervisor_name", "M", "at least 2"),
    ("supervisor_name", "M" * 201, "keep it to 200"),
    ("supervisor_organization", "A", "at least 2"),
    ("supervisor_email", "maria at acme", "doesn't look like an email address"),
    ("placement_start", "next tuesday", "couldn't read that date"),
    ("placement_start", (date.today() + timedelta(days=3)).isoformat(), "can't be after today"),
    ("placement_start", "1990-01-01", "more than 10 years ago"),
    ("placement_end", days_ago(200), "on or after the start date"),
    ("placement_end", (date.today() + timedelta(days=365 * 3)).isoformat(), "more than 2 years away"),
]


@pytest.mark.parametrize(("state", "answer", "message"), INVALID_DETAILS)
def test_supervisor_rejects_invalid_detail(chat, state, answer, message):
    chat.send("/supervisor")
    answers = [SUPERVISOR["name"], SUPERVISOR["organization"], SUPERVISOR["email"], SUPERVISOR["start"]]
    while chat.state() != state:
        chat.send(answers.pop(0))

    chat.send(answer)

    assert chat.state() == state
    assert message in chat.joined()


def test_supervisor_month_dates_read_as_period(chat):
    chat.send("/supervisor")
    give_details(chat, start="June 2024", end="August 2024")

    chat.press("supervisor_confirm:create")
    [request] = load_requests(chat.engine)
    assert request.placement_start == date(2024, 6, 1)
    assert request.placement_end == date(2024, 8, 31)


def test_supervisor_back_goes_one_step(chat):
    chat.send("/supervisor")
    chat.send(SUPERVISOR["name"])
    chat.send(SUPERVISOR["organization"])

    chat.send("/back")

    assert chat.state() == "supervisor_organization"
    assert "Your current answer: Acme Logistics" in chat.joined()


def test_supervisor_cancel_keeps_details(chat):
    chat.send("/supervisor")
    give_details(chat)
    chat.send("/cancel")
    assert chat.state() == "home"

    chat.send("/supervisor")

    assert chat.state() == "supervisor_confirm"
    assert "Supervisor: Maria Lopez" in chat.joined()


def test_supervisor_change_asks_again(chat):
    chat.send("/supervisor")
    give_details(chat)

    chat.press("supervisor_confirm:change")

    assert chat.state() == "supervisor_name"
    assert "Your current answer: Maria Lopez" in chat.joined()


def test_supervisor_not_now_keeps_details(chat):
    chat.send("/supervisor")
    give_details(chat)

    chat.press("supervisor_confirm:later")

    assert chat.state() == "home"
    assert load_requests(chat.engine) == []
    assert chat.learner().context["supervisor"]["name"] == "Maria Lopez"


def test_supervisor_from_submit_evidence_kind(engine, chat):
    item = find_item(engine, "ana", ITEM_KEY)
    chat.send("/submit")
    chat.press(f"submit_item:{item.id}")
    actions = [button.action for button in chat.last.messages[-1].buttons]
    assert "submit_kind:evaluation" in actions

    chat.press("submit_kind:evaluation")

    assert chat.state() == "supervisor_name"
    assert "submit_item_id" not in chat.learner().context
    give_details(chat)
    chat.press("supervisor_confirm:create")
    assert token_in(chat.joined())


def test_other_items_offer_no_evaluation(engine, chat):
    item = find_item(engine, "ana", "final-self-reflection")
    chat.send("/submit")
    chat.press(f"submit_item:{item.id}")

    assert chat.state() == "submit_input"


def test_supervisor_shows_waiting_link(chat):
    request_link(chat, plan_done=True)

    chat.send("/supervisor")

    assert chat.state() == "home"
    assert "Your evaluation link for Maria Lopez (Acme Logistics) is still waiting" in chat.joined()


def test_supervisor_new_replaces_waiting_link(engine, chat):
    first = request_link(chat, plan_done=True)

    chat.send("/supervisor new")
    assert chat.state() == "supervisor_name"
    give_details(chat, name="Sam Okafor")
    chat.press("supervisor_confirm:create")
    second = token_in(chat.joined())

    old, new = load_requests(engine)
    assert first != second
    assert old.status == "revoked"
    assert old.revoked_reason == "replaced"
    assert new.status == "pending"
    assert new.supervisor_name == "Sam Okafor"


def test_supervisor_revoke(engine, chat):
    request_link(chat, plan_done=True)

    chat.send("/supervisor revoke")

    assert "The evaluation link for Maria Lopez is cancelled" in chat.joined()
    [request] = load_requests(engine)
    assert request.status == "revoked"
    assert request.revoked_reason == "learner"
    assert request.revoked_by == "console:ana"
    chat.send("/supervisor revoke")
    assert "You have no evaluation link that still works." in chat.joined()


def test_supervisor_unknown_argument(chat):
    chat.send("/supervisor please")

    assert "/supervisor new" in chat.joined()
    assert chat.state() == "home"


def test_supervisor_before_plan(engine):
    chat = Chat(engine, "ana")
    chat.answer_until("target_role")

    chat.send("/supervisor")

    assert "Let's finish your career action plan first" in chat.joined()
    assert chat.state() == "target_role"


def test_supervisor_without_open_item(engine, chat):
    with engine.session_factory() as session, session.begin():
        session.execute(update(PathwayItem).where(PathwayItem.item_key == ITEM_KEY).values(status="approved"))

    chat.send("/supervisor")

    assert "None of your open pathway items takes a supervisor evaluation" in chat.joined()


def test_supervisor_item_closed_before_create(engine, chat):
    chat.send("/supervisor")
    give_details(chat)
    with engine.session_factory() as session, session.begin():
        session.execute(update(PathwayItem).where(PathwayItem.item_key == ITEM_KEY).values(status="submitted"))

    chat.press("supervisor_confirm:create")

    assert chat.state() == "home"
    assert load_requests(engine) == []
    assert "None of your open pathway items" in chat.joined()


def test_link_removed_from_outbox_after_send(engine, chat):
    token = request_link(chat, plan_done=True)
    with engine.session_factory() as session:
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == "ana")).all()[-1]
    assert token in row.payload["text"]

    outbox.mark_sent(engine.session_factory, row.id, "42")

    with engine.session_factory() as session:
        stored = session.get(OutboxMessage, row.id)
    assert token not in stored.payload["text"]
    assert "[removed after delivery]" in stored.payload["text"]
    assert "extra" not in stored.payload


def test_link_removed_from_outbox_after_failure(engine, chat):
    token = request_link(chat, plan_done=True)
    with engine.session_factory() as session:
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == "ana")).all()[-1]

    outbox.mark_failed(engine.session_factory, row.id, "blocked")

    with engine.session_factory() as session:
        assert token not in session.get(OutboxMessage, row.id).payload["text"]


def test_forget_deletes_requests(engine, chat):
    request_link(chat, plan_done=True)

    chat.send("/forget")
    chat.press("forget_confirm:delete")

    with engine.session_factory() as session:
        assert session.scalars(select(EvaluationRequest)).all() == []


def test_export_lists_requests(engine, chat):
    request_link(chat, plan_done=True)

    chat.send("/export")

    [document] = [message.document for message in chat.last.messages if message.document is not None]
    [record] = json.loads(document.content)["evaluation_requests"]
    assert record["supervisor_email"] == SUPERVISOR["email"]
    assert record["status"] == "pending"
    assert record["placement_start"] == SUPERVISOR["start"]
    assert "token_sha256" not in record
