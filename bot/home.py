"""A learner's home screen as plain data: the pathway by level, badges earned and the next step.

Adapters with a screen of their own beside the chat (Slack's App Home) lay this
out and refresh it when something changes. Every line comes from the messages,
like every reply, so a program admin words it in ``flows/messages.yaml``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from bot import account
from bot.dialog import load_learner
from bot.models import Learner
from bot.turn import Turn


@dataclass(frozen=True)
class LevelProgress:
    """One level: its heading with the count done, then one line per item and its reason."""

    heading: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class LearnerHome:
    """Content of one user's home screen; ``levels`` is empty until their pathway is built."""

    platform: str
    user_id: str
    title: str
    intro: str
    levels: tuple[LevelProgress, ...] = ()
    legend: str = ""
    badges: str = ""
    next_step: str = ""


def learner_home(turn: Turn, learner_id: int | None = None) -> LearnerHome:
    """Build the home screen of the event's user, or of learner ``learner_id`` when given.

    Someone who is not a learner gets the greeting, and reviewers and
    coordinators a list of what they can do. A learner still answering the
    plan gets how many questions they have answered.
    """
    event = turn.event
    if learner_id is not None:
        learner = turn.session.get(Learner, learner_id)
    else:
        learner, _ = load_learner(turn, create=False)
    title = turn.t("pathway_header")

    if learner is None:
        staff = turn.settings.is_reviewer(event.user_key) or turn.settings.is_coordinator(event.user_key)
        return LearnerHome(event.platform, event.user_id, title, turn.t("staff_welcome" if staff else "greeting"))
    turn.learner = learner
    if learner.plan_completed_at is None:
        questions = turn.flows.questions
        answered = sum(1 for question in questions if question.state in learner.answers)
        intro = turn.t("pathway_not_ready", answered=answered, total=len(questions))
        return LearnerHome(learner.platform, learner.platform_user_id, title, intro, badges=account.badges_text(turn))

    levels = tuple(LevelProgress(heading, tuple(lines)) for heading, lines in account.pathway_levels(turn))
    return LearnerHome(
        platform=learner.platform,
        user_id=learner.platform_user_id,
        title=title,
        intro="",
        levels=levels,
        legend=turn.t("pathway_legend"),
        badges=account.badges_text(turn),
        next_step=account.next_step_text(turn),
    )


def learner_user_ids(turn: Turn, learner_ids: Iterable[int]) -> dict[int, str]:
    """Map learner ids to their user ids on the event's platform, to find whose home screen changed."""
    rows = turn.session.execute(
        select(Learner.id, Learner.platform_user_id)
        .where(Learner.id.in_(list(learner_ids)), Learner.platform == turn.event.platform)
    )
    return {learner_id: user_id for learner_id, user_id in rows}
