"""Steps shared by the supervisor evaluation tests: ask for a link in the chat, fill in the web form.

The chat steps drive the real engine as a learner; the web steps call the real
ASGI app through httpx's ASGI transport, so nothing listens on a port.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import httpx
from sqlalchemy import select

from bot.engine import Engine
from bot.evaluation_requests import LINK_PATH
from bot.models import EvaluationRequest, OutboxMessage, Submission
from bot.server import route_providers
from bot.web import create_app
from tests.bot.scripted import Chat

ITEM_KEY = "complete-work-experience"
LINK_PATTERN = re.compile(r"https?://\S+" + re.escape(LINK_PATH) + r"([A-Za-z0-9_-]+)")
CSRF_PATTERN = re.compile(r'name="csrf-token" value="([^"]+)"')

SUPERVISOR = {
    "name": "Maria Lopez",
    "organization": "Acme Logistics",
    "email": "maria.lopez@acme.example",
    "start": (date.today() - timedelta(days=120)).isoformat(),
    "end": (date.today() - timedelta(days=10)).isoformat(),
}


def give_details(chat: Chat, **overrides: str) -> None:
    """Answer the five detail questions after /supervisor (or the evaluation evidence kind)."""
    details = {**SUPERVISOR, **overrides}
    for key in ("name", "organization", "email", "start", "end"):
        chat.send(details[key])
    assert chat.state() == "supervisor_confirm", chat.joined()


def request_link(chat: Chat, *, plan_done: bool = False, **overrides: str) -> str:
    """Finish the learner's plan (unless done), ask for a supervisor link and return its token."""
    if not plan_done:
        chat.finish_plan()
    chat.send("/supervisor")
    give_details(chat, **overrides)
    chat.press("supervisor_confirm:create")
    assert chat.state() == "home", chat.joined()
    return token_in(chat.joined())


def token_in(text: str) -> str:
    match = LINK_PATTERN.search(text)
    assert match is not None, text
    return match.group(1)


def client_for(engine: Engine) -> httpx.AsyncClient:
    app = create_app(engine, route_providers(engine.settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://careerbot.test")


def csrf_of(page: str) -> str:
    match = CSRF_PATTERN.search(page)
    assert match is not None, page[:2000]
    return match.group(1)


def valid_form(engine: Engine, csrf: str, **overrides: str) -> dict[str, str]:
    """A complete, valid answer to the form: every criterion rated 4, the first recommendation."""
    rubric = engine.flows.catalog.evaluation_rubric
    fields = {f"rating-{criterion.id}": "4" for criterion in rubric.criteria}
    fields.update({
        f"comment-{rubric.criteria[0].id}": "Careful and precise with every shipment report.",
        "recommendation": rubric.recommendations[0].id,
        "overall-comment": "A pleasure to work with.",
        "evaluator-name": "Maria Lopez",
        "evaluator-title": "Operations Manager",
        "consent": "yes",
        "csrf-token": csrf,
    })
    fields.update(overrides)
    return {name: value for name, value in fields.items() if value is not None}


async def open_form(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(LINK_PATH + token)


async def send_form(client: httpx.AsyncClient, token: str, fields: dict[str, str]) -> httpx.Response:
    return await client.post(LINK_PATH + token, data=fields)


def load_requests(engine: Engine) -> list[EvaluationRequest]:
    with engine.session_factory() as session:
        return list(session.scalars(select(EvaluationRequest).order_by(EvaluationRequest.id)))


def evaluation_submissions(engine: Engine) -> list[Submission]:
    with engine.session_factory() as session:
        return list(session.scalars(select(Submission).where(Submission.kind == "evaluation")))


def outbox_texts(engine: Engine, chat_id: str) -> list[str]:
    with engine.session_factory() as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == chat_id).order_by(OutboxMessage.id))
        return [row.payload["text"] for row in rows]
