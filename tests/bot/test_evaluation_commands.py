"""Coordinator commands for supervisor evaluation links, and who may use them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from bot.commands import COORDINATOR_COMMANDS
from bot.evaluation_requests import LinkState, find_by_token
from bot.models import EvaluationRequest
from tests.bot.scripted import Chat
from tests.bot.supervisor_steps import (
    client_for,
    csrf_of,
    load_requests,
    open_form,
    outbox_texts,
    request_link,
    send_form,
    token_in,
    valid_form,
)


@pytest.fixture
def token(engine) -> str:
    return request_link(Chat(engine, "ana"))


@pytest.fixture
def coordinator(engine) -> Chat:
    return Chat(engine, "coordinator", display_name="Cora")


def link_state(engine, token: str) -> LinkState:
    with engine.session_factory() as session:
        state, _ = find_by_token(session, token, datetime.now(timezone.utc))
        return state


def test_commands_registered_for_coordinators():
    assert {"evaluations", "resend_evaluation", "revoke_evaluation"} <= set(COORDINATOR_COMMANDS)


def test_evaluations_lists_waiting_links(engine, token, coordinator):
    request_link(Chat(engine, "ben"), name="Sam Okafor", organization="City Library",
                 email="sam@library.example")

    coordinator.send("/evaluations")

    text = coordinator.joined()
    assert "2 supervisor evaluation link(s) waiting" in text
    first, second = load_requests(engine)
    assert f"#{first.id} Ana: Maria Lopez, Acme Logistics <maria.lopez@acme.example>" in text
    assert f"#{second.id} Ana: Sam Okafor, City Library <sam@library.example>" in text
    assert "expires " in text
    assert token not in text


def test_evaluations_marks_expired(engine, token, coordinator):
    with engine.session_factory() as session, session.begin():
        session.execute(update(EvaluationRequest).values(expires_at=datetime.now(timezone.utc) - timedelta(days=1)))

    coordinator.send("/evaluations")

    assert "expired " in coordinator.joined()


def test_evaluations_leave_out_used_and_revoked(engine, coordinator):
    chat = Chat(engine, "ana")
    request_link(chat)
    chat.send("/supervisor revoke")

    coordinator.send("/evaluations")

    assert "No supervisor evaluation links are waiting." in coordinator.joined()


def test_resend_replaces_link(engine, token, coordinator):
    [old] = load_requests(engine)

    coordinator.send(f"/resend_evaluation {old.id}")

    old, new = load_requests(engine)
    assert old.status == "revoked"
    assert old.revoked_reason == "resent"
    assert old.revoked_by == "console:coordinator"
    assert new.status == "pending"
    assert new.supervisor_email == old.supervisor_email
    assert new.created_by == "console:coordinator"
    assert f"Link #{old.id} is replaced by link #{new.id}" in coordinator.joined()
    assert link_state(engine, token) is LinkState.REVOKED
    learner_message = [text for text in outbox_texts(engine, "ana") if "made a new evaluation link" in text][-1]
    new_token = token_in(learner_message)
    coordinator_replies = [message.text for message in coordinator.last.messages if message.chat_id == "coordinator"]
    assert all(new_token not in text for text in coordinator_replies)
    assert link_state(engine, new_token) is LinkState.VALID


async def test_resent_link_opens_form(engine, token, coordinator):
    [old] = load_requests(engine)
    coordinator.send(f"/resend_evaluation {old.id}")
    new_token = token_in([text for text in outbox_texts(engine, "ana") if "made a new" in text][-1])

    async with client_for(engine) as client:
        old_page = await open_form(client, token)
        page = await open_form(client, new_token)
        sent = await send_form(client, new_token, valid_form(engine, csrf_of(page.text)))

    assert old_page.status_code == 410
    assert sent.status_code == 200


def test_resend_expired_link(engine, token, coordinator):
    with engine.session_factory() as session, session.begin():
        session.execute(update(EvaluationRequest).values(expires_at=datetime.now(timezone.utc) - timedelta(days=1)))
    [old] = load_requests(engine)

    coordinator.send(f"/resend_evaluation {old.id}")

    _, new = load_requests(engine)
    assert new.expires_at > datetime.now(timezone.utc) + timedelta(days=29)


def test_revoke_cancels_link_and_tells_learner(engine, token, coordinator):
    [request] = load_requests(engine)

    coordinator.send(f"/revoke_evaluation {request.id}")

    [request] = load_requests(engine)
    assert request.status == "revoked"
    assert request.revoked_reason == "coordinator"
    assert f"Link #{request.id} for Ana is cancelled" in coordinator.joined()
    assert any("A program coordinator cancelled the evaluation link you gave Maria Lopez" in text
               for text in outbox_texts(engine, "ana"))
    assert link_state(engine, token) is LinkState.REVOKED


@pytest.mark.parametrize("command", ["resend_evaluation", "revoke_evaluation"])
def test_command_without_number_explains(engine, token, coordinator, command):
    coordinator.send(f"/{command}")

    assert f"Type /{command} N, with N the number from /evaluations." in coordinator.joined()


@pytest.mark.parametrize("command", ["resend_evaluation", "revoke_evaluation"])
def test_command_on_unknown_link(engine, token, coordinator, command):
    coordinator.send(f"/{command} 999")

    assert "There is no waiting evaluation link #999" in coordinator.joined()
    assert [request.status for request in load_requests(engine)] == ["pending"]


async def test_command_on_used_link(engine, token, coordinator):
    async with client_for(engine) as client:
        page = await open_form(client, token)
        await send_form(client, token, valid_form(engine, csrf_of(page.text)))
    [request] = load_requests(engine)

    coordinator.send(f"/revoke_evaluation {request.id}")

    assert f"There is no waiting evaluation link #{request.id}" in coordinator.joined()
    assert load_requests(engine)[0].status == "completed"


@pytest.mark.parametrize("text", ["/evaluations", "/resend_evaluation 1", "/revoke_evaluation 1"])
def test_learner_refused(engine, token, text):
    learner = Chat(engine, "ana")

    learner.send(text)

    assert "Only program coordinators can use that command." in learner.joined()
    assert [request.status for request in load_requests(engine)] == ["pending"]
    assert len(load_requests(engine)) == 1


@pytest.mark.parametrize("text", ["/evaluations", "/resend_evaluation 1", "/revoke_evaluation 1"])
def test_reviewer_refused(engine, token, text):
    reviewer = Chat(engine, "reviewer", display_name="Rita")

    reviewer.send(text)

    assert "link(s) waiting" not in reviewer.joined()
    assert "You are set up as a reviewer or coordinator." in reviewer.joined()
    assert [request.status for request in load_requests(engine)] == ["pending"]


def test_coordinator_who_is_learner_may_use_them(engine, token):
    coordinator = Chat(engine, "coordinator")
    coordinator.send("/start")
    coordinator.finish_plan()

    coordinator.send("/evaluations")

    assert "1 supervisor evaluation link(s) waiting" in coordinator.joined()


def test_resend_for_closed_item_refused(engine, token, coordinator):
    from bot.models import PathwayItem

    [old] = load_requests(engine)
    with engine.session_factory() as session, session.begin():
        session.execute(update(PathwayItem).where(PathwayItem.id == old.item_id).values(active=False))

    coordinator.send(f"/resend_evaluation {old.id}")

    assert coordinator.texts()[0].startswith(f"Link #{old.id} is for an item of Ana that no longer takes")
    [still] = load_requests(engine)
    assert still.status == "pending"
