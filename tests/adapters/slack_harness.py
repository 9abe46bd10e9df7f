"""A running Slack deployment on loopback: emulator, careerbot's ASGI app under uvicorn, and a client.

``slack`` (a fixture) starts the emulator, builds the engine and the Slack
adapter in HTTP mode, serves ``careerbot``'s Starlette app on 127.0.0.1 and
sends real signed requests to it. :meth:`SlackHarness.settle` waits until
every acknowledged event is handled and every due reply is delivered.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from adapters.slack import SlackBot
from bot.app import build_engine
from bot.config import Settings, load_settings
from bot.models import OutboxMessage
from bot.web import create_app
from tests.adapters import slack_payloads as payloads
from tests.adapters.slack_emulator import SlackEmulator

BOT_TOKEN = "xoxb-0000000000-0000000000000-fakeFAKEfakeFAKEfakeFAKE"
APP_TOKEN = "xapp-1-A0000000001-0000000000000-fakefakefake"
SIGNING_SECRET = "00000000000000000000000000000000"
REVIEWERS = "C0000000R00"
LEARNER = "U0000000L01"
REVIEWER = "U0000000R01"
REVIEWER_2 = "U0000000R02"
COORDINATOR = "U0000000C01"


def slack_settings(data_dir: Path, emulator: SlackEmulator, **overrides: Any) -> Settings:
    values = {
        "data_dir": data_dir,
        "reviewers": (f"slack:{REVIEWER}", f"slack:{REVIEWER_2}"),
        "coordinators": (f"slack:{COORDINATOR}",),
        "reviewer_chats": {"slack": REVIEWERS},
        "slack_bot_token": BOT_TOKEN,
        "slack_app_token": APP_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_base_url": emulator.api_url,
        "slack_mode": "http",
        # As the Telegram harness does, the tests run without pacing; test_nudge_delivery paces.
        "slack_rate_limits": False,
    }
    values.update(overrides)
    return load_settings(environ={}, **values)


def section_text(message: dict[str, Any]) -> str:
    """The text of a posted message's sections and context lines, unescaped, one block per line."""
    parts = []
    for block in message.get("blocks") or []:
        if block["type"] == "section":
            parts.append(block["text"]["text"])
        elif block["type"] == "context":
            parts.extend(element.get("text", "") for element in block["elements"])
    text = "\n".join(parts) if parts else message.get("text", "")
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def buttons_of(message: dict[str, Any]) -> list[str]:
    return [element["value"] for block in message.get("blocks") or [] if block["type"] == "actions"
            for element in block["elements"]]


class SlackHarness:
    """Sends signed requests as Slack would and reads what the bot did from the emulator."""

    def __init__(self, emulator: SlackEmulator, bot: SlackBot, http: httpx.AsyncClient) -> None:
        self.emulator = emulator
        self.bot = bot
        self.engine = bot.engine
        self.http = http

    # --- sending -------------------------------------------------------------------

    async def post(self, body: bytes, content_type: str, *, headers: dict[str, str] | None = None,
                   signed: bool = True, timestamp: int | None = None) -> httpx.Response:
        sent = {"Content-Type": content_type}
        if signed:
            sent.update(payloads.sign(body, SIGNING_SECRET, timestamp))
        sent.update(headers or {})
        return await self.http.post("/slack/events", content=body, headers=sent)

    async def event(self, event: dict[str, Any], *, event_id: str | None = None,
                    headers: dict[str, str] | None = None, settle: bool = True) -> httpx.Response:
        body = json.dumps(payloads.event_callback(event, event_id_=event_id)).encode()
        response = await self.post(body, "application/json", headers=headers)
        if settle:
            await self.settle()
        return response

    async def interaction(self, payload: dict[str, Any], *, settle: bool = True) -> httpx.Response:
        response = await self.post(payloads.interaction_body(payload), "application/x-www-form-urlencoded")
        if settle:
            await self.settle()
        return response

    async def say(self, user: str, text: str, *, markup: bool = False) -> httpx.Response:
        """The user writes ``text`` in their DM with the bot."""
        return await self.event(payloads.direct_message(user, self.dm(user), text, markup=markup))

    async def press(self, user: str, value: str, *, channel: str | None = None) -> httpx.Response:
        """The user presses the button with ``value`` on the latest bot message in the channel that has it."""
        channel = channel or self.dm(user)
        message = self.message_with_button(channel, value)
        return await self.interaction(payloads.block_actions(user, channel, message, value))

    async def press_label(self, user: str, label: str, *, channel: str | None = None) -> httpx.Response:
        """The user presses the latest button whose label contains ``label``."""
        channel = channel or self.dm(user)
        for message in reversed(self.posted(channel)):
            for block in message.get("blocks") or []:
                for element in block.get("elements", []) if block["type"] == "actions" else []:
                    if label in element["text"]["text"]:
                        return await self.interaction(
                            payloads.block_actions(user, channel, message, element["value"]))
        raise AssertionError(f"no button labelled {label!r} in {channel}")

    async def command(self, user: str, text: str, *, channel: str | None = None,
                      command: str = "/careerbot") -> httpx.Response:
        fields = payloads.slash_command(user, channel or self.dm(user), text, command=command)
        response = await self.post(payloads.form_body(fields), "application/x-www-form-urlencoded")
        await self.settle()
        return response

    async def submit_change_request(self, user: str, criteria_met: list[bool], feedback: str) -> httpx.Response:
        view = self.last_view()
        return await self.interaction(payloads.view_submission(
            user, view, payloads.change_request_values(criteria_met, feedback)))

    async def settle(self) -> None:
        """Wait until acknowledged work is done and no reply is due (delayed retries may still wait)."""
        while True:
            while self.bot._tasks:
                await asyncio.gather(*list(self.bot._tasks), return_exceptions=True)
            due = await asyncio.to_thread(self.due_rows)
            if due == 0 and not self.bot.delivery.busy and not self.bot._tasks:
                return
            self.bot.delivery.wake()
            await asyncio.sleep(0.005)

    def due_rows(self) -> int:
        with self.engine.session_factory() as session:
            return session.scalar(
                select(func.count()).select_from(OutboxMessage).where(
                    OutboxMessage.status == "pending", OutboxMessage.available_at <= datetime.now(timezone.utc))
            )

    # --- reading ---------------------------------------------------------------------

    def dm(self, user: str) -> str:
        return self.emulator.direct_channel_of(user)

    def posted(self, channel: str) -> list[dict[str, Any]]:
        """Messages the bot posted to ``channel`` (not thread replies), oldest first, as they are now."""
        return [message for (posted_channel, _), message in self.emulator.messages.items()
                if posted_channel == channel and "thread_ts" not in message]

    def texts(self, channel: str) -> list[str]:
        return [section_text(message) for message in self.posted(channel)]

    def last_text(self, channel: str) -> str:
        return self.texts(channel)[-1]

    def message_with_button(self, channel: str, value: str) -> dict[str, Any]:
        for message in reversed(self.posted(channel)):
            if value in buttons_of(message):
                return message
        raise AssertionError(f"no message in {channel} has a button {value!r}; "
                             f"buttons: {[buttons_of(message) for message in self.posted(channel)]}")

    def ephemerals(self, user: str) -> list[str]:
        return [section_text({"blocks": call.params.get("blocks"), "text": call.params.get("text", "")})
                for call in self.emulator.calls_to("chat.postEphemeral", user=user)]

    def last_view(self) -> dict[str, Any]:
        return list(self.emulator.views.values())[-1]


async def serve_app(app, host: str = "127.0.0.1") -> tuple[uvicorn.Server, asyncio.Task, int]:
    """Serve an ASGI app with uvicorn on a free loopback port in this event loop."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((host, 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return server, task, port


REFLECTION = (
    "I met a career adviser on 3 March at the North Campus career centre. She showed me how to tailor "
    "my resume to each posting and how to answer interview questions with the STAR method. Next week I "
    "will rewrite my resume for two internship postings and book a mock interview."
)


def plan_answers() -> list[tuple[str, bool]]:
    """Typed answers to the 20 questions of the shipped plan, in order, as (text, sent with Slack markup)."""
    target = (date.today() + timedelta(days=730)).isoformat()
    ratings = ["3", "4", "2", "5", "3", "4", "2", "3"]
    return [
        ("I agree", False), ("Ana", False), ("<mailto:ana@example.edu|ana@example.edu>", True),
        ("North Campus", False), ("America/New_York", False),
        ("I enjoy building software that helps people learn & grow.", False), ("software developer", False),
        ("Honesty, growth and a team that shares what it knows.", False),
        ("Teamwork from group projects, time management from a part-time job.", False),
        *[(rating, False) for rating in ratings],
        ("Resilience and public speaking", False), (target, False), ("Project", False),
    ]


async def complete_plan(slack: SlackHarness, user: str) -> None:
    """Greet the bot and answer every question of the plan by typing.

    Reviewers and coordinators start with ``/careerbot start``, as the bot tells them to.
    """
    staff = f"slack:{user}" in slack.engine.settings.reviewers + slack.engine.settings.coordinators
    if staff:
        await slack.command(user, "start")
    else:
        await slack.say(user, "hello")
    for text, markup in plan_answers():
        await slack.say(user, text, markup=markup)


async def submit_reflection(slack: SlackHarness, user: str, item_title: str, text: str) -> None:
    """Submit a reflection for the item with ``item_title`` and send it to the reviewers."""
    await slack.command(user, "submit")
    await slack.press_label(user, item_title)
    await slack.press(user, "submit_kind:reflection")
    await slack.say(user, text)
    await slack.press(user, "submit_confirm:send")


@pytest.fixture
async def emulator() -> AsyncIterator[SlackEmulator]:
    running = SlackEmulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    await running.start()
    for user, name in ((LEARNER, "ana"), (REVIEWER, "rita"), (REVIEWER_2, "ravi"), (COORDINATOR, "cora")):
        running.add_user(user, name)
    yield running
    await running.stop()


@pytest.fixture
async def slack(tmp_path: Path, emulator: SlackEmulator) -> AsyncIterator[SlackHarness]:
    async with running_slack(tmp_path / "data", emulator) as harness:
        yield harness


@asynccontextmanager
async def running_slack(data_dir: Path, emulator: SlackEmulator, **overrides: Any) -> AsyncIterator[SlackHarness]:
    """Serve the Slack adapter in HTTP mode, with ``overrides`` applied to the harness's settings."""
    engine = build_engine(slack_settings(data_dir, emulator, **overrides))
    bot = SlackBot(engine)
    await bot.start()
    app = create_app(engine, [lambda _engine: bot.routes()])
    server, task, port = await serve_app(app)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        yield SlackHarness(emulator, bot, http)
    server.should_exit = True
    await task
    await bot.aclose()
    engine.session_factory.kw["bind"].dispose()
