"""Drive the real engine as chat users: send text, press buttons, read the replies.

The helpers build events as an adapter would and read state back from the
database, so tests stay short and say what the learner did, not how.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from bot.engine import Engine, HandledEvent
from bot.events import OutboundMessage
from bot.models import Learner, PathwayItem, Submission
from tests.conftest import make_event

REFLECTION = (
    "I met a career adviser on Monday 3 March at the North Campus career centre. "
    "She showed me how to tailor my resume to each posting and how to prepare for "
    "a behavioural interview with the STAR method. Next week I will rewrite my resume "
    "for two internship postings and book a mock interview. "
) * 3
"""A reflection long enough for every item of the shipped catalog (about 800 characters)."""

RATINGS = {
    "collaboration": 3,
    "creative-problem-solving": 4,
    "critical-thinking": 2,
    "empathy": 5,
    "initiative": 3,
    "intercultural-fluency": 4,
    "oral-communication": 2,
    "resilience": 3,
}


def target_date(days: int = 730) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


def plan_answers(**overrides: str) -> dict[str, str]:
    """Typed answers to every question of the shipped conversation, by state."""
    answers = {
        "consent": "I agree",
        "name": "Ana",
        "email": "ana@example.edu",
        "campus": "North Campus",
        "timezone": "Europe/London",
        "interests": "I enjoy building software that helps people learn.",
        "target_role": "software developer",
        "values": "Honesty, growth and a team that shares what it knows.",
        "transferable_skills": "Teamwork from group projects, time management from a part-time job.",
        "skills_to_develop": "Resilience and public speaking",
        "target_date": target_date(),
        "experience": "Project",
    }
    answers.update({f"ratings.{skill}": str(rating) for skill, rating in RATINGS.items()})
    answers.update(overrides)
    return answers


class Chat:
    """One user talking to the engine in a private chat (or a given chat)."""

    def __init__(self, engine: Engine, user: str = "ana", *, chat_id: str | None = None,
                 display_name: str | None = None, chat_type: str = "private") -> None:
        self.engine = engine
        self.user = user
        self.chat_id = chat_id or user
        self.display_name = display_name
        self.chat_type = chat_type
        self.last: HandledEvent | None = None

    def send(self, text: str | None = None, **fields) -> list[OutboundMessage]:
        """Send one event and return the messages the engine wrote for it."""
        fields.setdefault("chat_type", self.chat_type)
        if self.display_name is not None:
            fields.setdefault("display_name", self.display_name)
        event = make_event(self.user, text, chat_id=self.chat_id, **fields)
        self.last = self.engine.handle(event)
        return list(self.last.messages)

    def press(self, action: str) -> list[OutboundMessage]:
        return self.send(action=action)

    def texts(self, messages: list[OutboundMessage] | None = None) -> list[str]:
        messages = self.last.messages if messages is None else messages
        return [message.text for message in messages]

    def joined(self) -> str:
        return "\n---\n".join(self.texts())

    def learner(self) -> Learner | None:
        return load_learner(self.engine, self.user)

    def state(self) -> str | None:
        learner = self.learner()
        return learner.state if learner is not None else None

    def answer_until(self, stop_state: str | None = None, **overrides: str) -> None:
        """Answer the plan questions in order, stopping before ``stop_state``."""
        answers = plan_answers(**overrides)
        if self.learner() is None:
            self.send("hello")
        for question in self.engine.flows.questions:
            if question.state == stop_state:
                return
            self.send(answers[question.state])

    def finish_plan(self, **overrides: str) -> None:
        self.answer_until(None, **overrides)
        assert self.state() == "home", self.joined()

    def submit_reflection(self, item_key: str, text: str = REFLECTION) -> int:
        """Submit a reflection for ``item_key`` and return the submission id."""
        item = find_item(self.engine, self.user, item_key)
        self.send("/submit")
        self.press(f"submit_item:{item.id}")
        if self.state() == "submit_kind":
            self.press("submit_kind:reflection")
        if self.state() == "submit_input":
            self.send(text)
        assert self.state() == "submit_confirm", self.joined()
        self.press("submit_confirm:send")
        assert self.state() == "home", self.joined()
        return latest_submission(self.engine, item.id).id


def load_learner(engine: Engine, user: str) -> Learner | None:
    with engine.session_factory() as session:
        learner = session.scalar(select(Learner).where(Learner.platform_user_id == user))
        if learner is not None:
            learner.items, learner.awards  # load both while the session is open
        return learner


def find_item(engine: Engine, user: str, item_key: str) -> PathwayItem:
    learner = load_learner(engine, user)
    return next(item for item in learner.items if item.item_key == item_key)


def active_items(engine: Engine, user: str) -> list[PathwayItem]:
    return [item for item in load_learner(engine, user).items if item.active]


def latest_submission(engine: Engine, item_id: int) -> Submission:
    with engine.session_factory() as session:
        return session.scalars(
            select(Submission).where(Submission.item_id == item_id).order_by(Submission.id.desc())
        ).first()


def approve(engine: Engine, submission_id: int, reviewer: str = "reviewer") -> list[OutboundMessage]:
    return Chat(engine, reviewer, display_name=reviewer.title()).press(f"rv:a:{submission_id}")
