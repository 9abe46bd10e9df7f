"""A scripted cohort for the fault tests: learners answer their plan, submit a reflection, a reviewer approves.

The same Telegram updates can be handled serially by an in-process engine
(:func:`serial_outcome`), which gives the state each learner must end in
whatever the workers did with them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import func, select, text

from bot.app import build_engine
from bot.config import load_settings
from bot.events import InboundEvent
from bot.models import BadgeAward, Learner, OutboxMessage, PathwayItem, Submission
from tests.bot.scripted import REFLECTION, plan_answers
from tests.scale.bot_api import BotApi
from tests.scale.cluster import REVIEWER_ID, Database, WebhookDriver

FIRST_ITEM = "use-career-services"
QUESTION_STATES = (
    "consent", "name", "email", "campus", "timezone", "interests", "target_role", "values", "transferable_skills",
    "ratings.collaboration", "ratings.creative-problem-solving", "ratings.critical-thinking", "ratings.empathy",
    "ratings.initiative", "ratings.intercultural-fluency", "ratings.oral-communication", "ratings.resilience",
    "skills_to_develop", "target_date", "experience",
)


def plan_texts(user_id: int) -> list[str]:
    """The messages of a learner who starts and answers every plan question, with a few mistakes on the way."""
    answers = plan_answers(name=f"Learner {user_id}", email=f"learner{user_id}@example.edu")
    texts = ["/start"]
    for state in QUESTION_STATES:
        if state == "email":
            texts.append("not an email address")
        if state == "ratings.empathy":
            texts.append("eleven")
        texts.append(answers[state])
    texts.append("/progress")
    return texts


async def run_journey(driver: WebhookDriver, database: Database, user_id: int) -> int:
    """Answer the plan and submit a reflection for the first item; return the submission id."""
    for message in plan_texts(user_id):
        await driver.deliver(driver.message(user_id, message))
    item_id = await asyncio.to_thread(database.item_id, user_id, FIRST_ITEM)
    await driver.deliver(driver.message(user_id, "/submit"))
    await driver.deliver(driver.press(user_id, f"submit_item:{item_id}"))
    if await asyncio.to_thread(database.state, user_id) == "submit_kind":
        await driver.deliver(driver.press(user_id, "submit_kind:reflection"))
    if await asyncio.to_thread(database.state, user_id) == "submit_input":
        await driver.deliver(driver.message(user_id, REFLECTION))
    await driver.deliver(driver.press(user_id, "submit_confirm:send"))
    submission_id = await asyncio.to_thread(database.submission_id, user_id)
    assert submission_id is not None, f"learner {user_id} has no submission"
    return submission_id


async def approve(driver: WebhookDriver, submission_id: int) -> None:
    await driver.deliver(driver.press(REVIEWER_ID, f"rv:a:{submission_id}"))


def to_event(update: dict) -> InboundEvent:
    """Convert an update as the Telegram adapter does, for the serial reference run."""
    if "message" in update:
        message = update["message"]
        command, _, argument = message["text"].partition(" ")
        return InboundEvent(
            platform="telegram", user_id=str(message["from"]["id"]), chat_id=str(message["chat"]["id"]),
            update_id=str(update["update_id"]), text=message["text"], chat_type="private",
            display_name=message["from"]["first_name"],
            start_parameter=argument.strip() or None if command == "/start" else None,
            received_at=datetime.fromtimestamp(message["date"], timezone.utc),
        )
    query = update["callback_query"]
    return InboundEvent(
        platform="telegram", user_id=str(query["from"]["id"]), chat_id=str(query["message"]["chat"]["id"]),
        update_id=str(update["update_id"]), action=query["data"], chat_type="private",
        display_name=query["from"]["first_name"], received_at=datetime.now(timezone.utc),
    )


def learner_outcomes(session) -> dict[str, tuple]:
    """Per Telegram user: state, plan answers, pathway item keys, and replies written, by platform user id."""
    outcomes = {}
    for learner in session.scalars(select(Learner).where(Learner.platform == "telegram")):
        items = tuple(sorted(session.scalars(select(PathwayItem.item_key).where(PathwayItem.learner_id == learner.id))))
        replies = session.scalar(select(func.count()).select_from(OutboxMessage)
                                 .where(OutboxMessage.learner_id == learner.id))
        outcomes[learner.platform_user_id] = (learner.state, learner.answers, items, replies)
    return outcomes


def serial_outcome(updates: list[dict], directory: Path) -> dict[str, tuple]:
    """Handle ``updates`` one after the other in one process on SQLite and return :func:`learner_outcomes`."""
    settings = load_settings(environ={}, data_dir=directory, reviewers=(f"telegram:{REVIEWER_ID}",),
                             reviewer_chats={"telegram": str(REVIEWER_ID)}, coordinators=("telegram:9001",))
    engine = build_engine(settings)
    try:
        for update in updates:
            engine.handle(to_event(update))
        with engine.session_factory() as session:
            return learner_outcomes(session)
    finally:
        engine.session_factory.kw["bind"].dispose()


def outcome_of(database: Database) -> dict[str, tuple]:
    from sqlalchemy.orm import Session

    with Session(database.engine) as session:
        return learner_outcomes(session)


async def wait_until_delivered(database: Database, timeout: float = 90.0) -> None:
    """Wait until no outbox row is pending and no delivery job waits.

    A running job of a killed worker is not waited for: it holds nothing, and
    the worker's heartbeat check queues it again later.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = await asyncio.to_thread(_pending_work, database)
        if pending == (0, 0):
            return
        await asyncio.sleep(0.25)
    raise TimeoutError(f"delivery did not finish within {timeout:.0f} s: {pending} rows and jobs left")


def _pending_work(database: Database) -> tuple[int, int]:
    with database.engine.connect() as connection:
        rows = connection.scalar(select(func.count()).select_from(OutboxMessage)
                                 .where(OutboxMessage.status == "pending"))
        jobs = connection.scalar(text("SELECT count(*) FROM procrastinate_jobs "
                                      "WHERE task_name = 'careerbot.deliver_outbox' AND status = 'todo'"))
    return rows, jobs


def sent_texts(database: Database) -> dict[str, Counter]:
    """Per chat, how many times each text was written to the outbox and marked sent."""
    with database.engine.connect() as connection:
        rows = connection.execute(select(OutboxMessage.chat_id, OutboxMessage.payload, OutboxMessage.status)
                                  .where(OutboxMessage.platform == "telegram")).all()
    texts: dict[str, Counter] = {}
    for chat_id, payload, status in rows:
        assert status == "sent", f"outbox row to {chat_id} is {status}: {payload.get('text', '')[:80]!r}"
        texts.setdefault(chat_id, Counter())[payload.get("text", "")] += 1
    return texts


def received_texts(bot_api: BotApi) -> dict[str, Counter]:
    texts: dict[str, Counter] = {}
    for call in bot_api.messages():
        texts.setdefault(call.chat_id, Counter())[call.text] += 1
    return texts


def awards_and_submissions(database: Database) -> tuple[Counter, Counter]:
    with database.engine.connect() as connection:
        awards = Counter(connection.execute(select(BadgeAward.learner_id, BadgeAward.badge_key)).all())
        submissions = Counter(row[0] for row in connection.execute(
            select(Submission.learner_id).where(Submission.status != "draft")).all())
    return awards, submissions
