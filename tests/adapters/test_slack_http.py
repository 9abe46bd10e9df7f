"""Slack's HTTP requests: signatures, acknowledgements, redeliveries, ignored events, commands, App Home."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
from sqlalchemy import func, select

from adapters import slack as slack_adapter
from adapters.slack_signature import signature_problem
from bot.config import load_settings
from bot.models import Learner, ProcessedUpdate
from bot.server import route_providers
from tests.adapters import slack_payloads as payloads
from tests.adapters.slack_harness import (  # noqa: F401 (fixtures)
    COORDINATOR,
    LEARNER,
    REFLECTION,
    REVIEWER,
    REVIEWERS,
    SIGNING_SECRET,
    buttons_of,
    complete_plan,
    emulator,
    section_text,
    slack,
    submit_reflection,
)


def _learner_count(slack) -> int:
    with slack.engine.session_factory() as session:
        return session.scalar(select(func.count()).select_from(Learner))


def _body(slack) -> bytes:
    return json.dumps(payloads.event_callback(payloads.direct_message(LEARNER, slack.dm(LEARNER), "hi"))).encode()


# --- signatures ----------------------------------------------------------------------


FORGERIES = {
    "missing": (lambda body: {}, "missing X-Slack-Signature or X-Slack-Request-Timestamp"),
    "wrong": (lambda body: {**payloads.sign(body, SIGNING_SECRET), "X-Slack-Signature": "v0=" + "0" * 64},
              "signature mismatch"),
    "other secret": (lambda body: payloads.sign(body, "11111111111111111111111111111111"), "signature mismatch"),
    "old": (lambda body: payloads.sign(body, SIGNING_SECRET, timestamp=int(time.time()) - 600),
            "s old (at most 300 s allowed)"),
    "future": (lambda body: payloads.sign(body, SIGNING_SECRET, timestamp=int(time.time()) + 600),
               "s in the future (at most 300 s allowed)"),
}


@pytest.mark.parametrize("case", list(FORGERIES))
async def test_forged_request_rejected(slack, caplog, case):
    body = _body(slack)
    make_headers, reason = FORGERIES[case]

    with caplog.at_level(logging.WARNING, logger="adapters.slack"):
        response = await slack.post(body, "application/json", headers=make_headers(body), signed=False)
    await slack.settle()

    assert response.status_code == 401
    assert "slack request from 127.0.0.1 rejected with 401: " in caplog.text
    assert reason in caplog.text
    assert slack.emulator.calls_to("chat.postMessage") == []
    assert _learner_count(slack) == 0


def test_signature_problem_cases():
    body = b'{"type":"event_callback"}'
    headers = {key.lower(): value for key, value in payloads.sign(body, "s3cret", timestamp=1_700_000_000).items()}

    assert signature_problem("s3cret", headers, body, now=1_700_000_299) is None
    assert signature_problem("s3cret", headers, body + b" ", now=1_700_000_000) == "signature mismatch"
    assert signature_problem("s3cret", headers, body, now=1_700_000_301) == (
        "timestamp is 301 s old (at most 300 s allowed)")
    assert signature_problem("", headers, body) == "no slack_signing_secret is configured"


async def test_url_verification_answers_challenge(slack):
    body = json.dumps({"token": "fakeVerificationToken000", "challenge": "fakeChallenge0001",
                       "type": "url_verification"}).encode()

    response = await slack.post(body, "application/json")

    assert response.status_code == 200
    assert response.json() == {"challenge": "fakeChallenge0001"}


# --- acknowledgement and redelivery -------------------------------------------------------


async def test_event_acknowledged_before_handling(slack):
    release = threading.Event()
    handle = slack.engine.handle

    def slow_handle(event):
        release.wait(timeout=30)
        return handle(event)

    slack.engine.handle = slow_handle
    try:
        response = await slack.event(payloads.direct_message(LEARNER, slack.dm(LEARNER), "hello"), settle=False)
        assert response.status_code == 200
        assert slack.emulator.calls_to("chat.postMessage") == []
    finally:
        release.set()
    await slack.settle()

    assert slack.texts(slack.dm(LEARNER))[0].startswith("Hello! I'm careerbot.")


async def test_redelivered_event_changes_nothing(slack, caplog):
    event = payloads.direct_message(LEARNER, slack.dm(LEARNER), "hello")

    await slack.event(event, event_id="Ev0REDELIVER")
    with caplog.at_level(logging.INFO, logger="adapters.slack"):
        response = await slack.event(event, event_id="Ev0REDELIVER",
                                     headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})

    assert response.status_code == 200
    assert len(slack.posted(slack.dm(LEARNER))) == 2
    assert "slack redelivery 1 (http_timeout) of Ev0REDELIVER" in caplog.text
    with slack.engine.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(ProcessedUpdate)) == 1


async def test_redelivered_button_changes_nothing(slack):
    await slack.say(LEARNER, "hello")
    message = slack.message_with_button(slack.dm(LEARNER), "consent:agree")
    press = payloads.block_actions(LEARNER, slack.dm(LEARNER), message, "consent:agree")

    await slack.interaction(press)
    await slack.interaction(press)

    texts = slack.texts(slack.dm(LEARNER))
    assert len(texts) == 3
    assert "What should I call you?" in texts[-1]
    assert len(slack.emulator.calls_to("chat.update")) == 1


# --- events that are not for the bot ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["own", "other bot", "app bot without subtype", "changed", "deleted",
                                  "channel chatter", "join", "member left"])
async def test_ignored_event(slack, kind):
    dm = slack.dm(LEARNER)
    event = {
        "own": lambda: payloads.own_message(dm, "Question 1 of 20"),
        "other bot": lambda: payloads.bot_message(dm, "<https://example.org>"),
        "app bot without subtype": lambda: {**payloads.own_message(dm, "TEST"), "bot_id": "B0000000009",
                                            "user": "U0000000009"},
        "changed": lambda: payloads.message_changed(LEARNER, dm, "edited"),
        "deleted": lambda: payloads.message_deleted(dm),
        "channel chatter": lambda: payloads.channel_message(LEARNER, REVIEWERS, "hello all"),
        "join": lambda: payloads.channel_join(LEARNER, REVIEWERS),
        "member left": lambda: payloads.member_left(LEARNER, REVIEWERS),
    }[kind]()

    response = await slack.event(event)

    assert response.status_code == 200
    assert slack.emulator.calls_to("chat.postMessage") == []
    assert _learner_count(slack) == 0


# --- slash commands ----------------------------------------------------------------------------


async def test_command_queue_for_reviewer(slack):
    await complete_plan(slack, LEARNER)
    await submit_reflection(slack, LEARNER, "Use career services", REFLECTION)

    response = await slack.command(REVIEWER, "queue", channel=REVIEWERS)

    assert response.status_code == 200
    assert response.json()["text"] == "My answer is in our direct messages."
    listing = slack.last_text(slack.dm(REVIEWER))
    assert listing.startswith("1 submission(s) waiting for review")
    assert "#1 Ana: Use career services" in listing


async def test_command_review_and_approve_from_dm(slack):
    await complete_plan(slack, LEARNER)
    await submit_reflection(slack, LEARNER, "Use career services", REFLECTION)

    await slack.command(REVIEWER, "review 1")
    assert buttons_of(slack.posted(slack.dm(REVIEWER))[-1]) == ["rv:a:1", "rv:c:1"]
    await slack.press(REVIEWER, "rv:a:1")

    assert slack.last_text(slack.dm(REVIEWER)).startswith("Approved by Rita at")
    assert "Approved by Rita at" in section_text(slack.posted(REVIEWERS)[0])
    assert buttons_of(slack.posted(REVIEWERS)[0]) == []


async def test_command_report_for_coordinator_only(slack):
    await complete_plan(slack, LEARNER)

    await slack.command(COORDINATOR, "report")
    await slack.command(LEARNER, "report")

    report = slack.last_text(slack.dm(COORDINATOR))
    assert "1 learner" in report
    assert "Only program coordinators" not in report
    assert "Only program coordinators can use that command." in slack.texts(slack.dm(LEARNER))


async def test_command_help_and_bare_command(slack):
    await slack.command(REVIEWER, "help")
    await slack.command(REVIEWER, "")

    texts = slack.texts(slack.dm(REVIEWER))
    assert len(texts) == 2
    assert all(text.startswith("Commands you can use at any point") for text in texts)
    assert all("Reviewer commands: /careerbot queue" in text for text in texts)


async def test_command_in_dm_acknowledged_silently(slack):
    await slack.command(LEARNER, "help")

    response = await slack.command(LEARNER, "help")

    assert response.status_code == 200
    assert response.text == ""


# --- App Home and the Messages tab ----------------------------------------------------------------


async def test_home_tab_for_new_user_and_staff(slack):
    await slack.event(payloads.app_home_opened(LEARNER, slack.dm(LEARNER), "home"))
    await slack.event(payloads.app_home_opened(COORDINATOR, slack.dm(COORDINATOR), "home"))

    learner_home = section_text(slack.emulator.homes[LEARNER])
    assert learner_home.startswith("Hello! I'm careerbot.")
    assert section_text(slack.emulator.homes[COORDINATOR]).startswith("You are set up as a reviewer or coordinator.")
    assert slack.emulator.calls_to("chat.postMessage") == []


async def test_home_tab_shows_plan_progress(slack):
    await slack.say(LEARNER, "hello")
    await slack.say(LEARNER, "I agree")

    view = slack.emulator.homes[LEARNER]
    assert view["type"] == "home"
    assert view["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": "Your Career Prepared pathway"}}
    assert "You have answered 1 of 20 questions." in section_text(view)


async def test_messages_tab_greets_once(slack):
    opened = payloads.app_home_opened(LEARNER, slack.dm(LEARNER), "messages")

    await slack.event(opened)
    await slack.event(payloads.app_home_opened(LEARNER, slack.dm(LEARNER), "messages"))

    texts = slack.texts(slack.dm(LEARNER))
    assert len(texts) == 2
    assert texts[0].startswith("Hello! I'm careerbot.")


# --- configuration -------------------------------------------------------------------------------


def test_route_provider_registered_in_http_mode(tmp_path):
    http = load_settings(environ={}, data_dir=tmp_path, slack_bot_token="xoxb-1", slack_signing_secret="s",
                         slack_mode="http")
    socket_mode = load_settings(environ={}, data_dir=tmp_path, slack_bot_token="xoxb-1", slack_app_token="xapp-1")

    assert slack_adapter.web_routes in route_providers(http)
    assert slack_adapter.web_routes not in route_providers(socket_mode)


@pytest.mark.parametrize(("values", "missing"), [
    ({}, "CAREERBOT_SLACK_BOT_TOKEN, CAREERBOT_SLACK_APP_TOKEN"),
    ({"slack_bot_token": "xoxb-1", "slack_mode": "http"}, "CAREERBOT_SLACK_SIGNING_SECRET"),
])
def test_main_refuses_without_tokens(tmp_path, capsys, values, missing):
    settings = load_settings(environ={}, data_dir=tmp_path, **values)

    assert slack_adapter.main(settings) == 2

    assert f"needs {missing}; set them in the environment or the configuration file" in capsys.readouterr().err


def test_main_refuses_unknown_mode(tmp_path, capsys):
    settings = load_settings(environ={}, data_dir=tmp_path, slack_bot_token="xoxb-1", slack_mode="webhook")

    assert slack_adapter.main(settings) == 2

    assert "set CAREERBOT_SLACK_MODE to socket or http" in capsys.readouterr().err
