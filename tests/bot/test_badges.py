"""Badges: item, level, skill and the macro-badge, each awarded once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.models import BadgeAward
from tests.bot.scripted import Chat, active_items, approve


@pytest.fixture
def ana(engine) -> Chat:
    chat = Chat(engine)
    chat.finish_plan()
    return chat


def awards(engine) -> list[tuple[str, str]]:
    with engine.session_factory() as session:
        rows = session.scalars(select(BadgeAward).order_by(BadgeAward.id)).all()
        return [(row.kind, row.badge_key) for row in rows]


def earned_notices(messages) -> list[str]:
    return [message.text for message in messages if message.kind == "badge"]


def approve_items(engine, chat: Chat, keys: list[str]) -> list:
    messages = []
    for key in keys:
        messages = approve(engine, chat.submit_reflection(key))
    return messages


def level_keys(engine, level: int) -> list[str]:
    return [item.item_key for item in active_items(engine, "ana") if item.level == level]


def test_item_badge_on_approval(engine, ana):
    messages = approve(engine, ana.submit_reflection("use-career-services"))

    assert awards(engine) == [("item", "item:use-career-services")]
    assert earned_notices(messages) == ["You earned the badge: Use career services! Type /badges to see all your badges."]


def test_level_badge_when_level_complete(engine, ana):
    keys = level_keys(engine, 1)

    approve_items(engine, ana, keys[:-1])
    assert not any(kind == "level" for kind, _ in awards(engine))
    messages = approve_items(engine, ana, keys[-1:])

    assert ("level", "introduction-and-foundation") in awards(engine)
    assert "You earned the badge: Career Prepared Level 1 - Introduction and Foundation!" in "\n".join(
        earned_notices(messages))


def test_level_badge_ignores_inactive_items(engine, ana):
    ana.send("/edit experience")
    ana.send("Internship")
    keys = level_keys(engine, 2)

    approve_items(engine, ana, keys)

    assert "project-experience" not in keys
    assert ("level", "training-and-practice") in awards(engine)


def test_skill_badge_for_skill_item(engine, ana):
    approve_items(engine, ana, ["skill:critical-thinking"])

    assert awards(engine) == [("skill", "skill-critical-thinking")]


def test_macro_badge_after_three_levels(engine, ana):
    for level in (1, 2):
        approve_items(engine, ana, level_keys(engine, level))
    assert not any(kind == "macro" for kind, _ in awards(engine))

    messages = approve_items(engine, ana, level_keys(engine, 3))

    kinds = [kind for kind, _ in awards(engine)]
    assert kinds.count("level") == 3
    assert kinds.count("macro") == 1
    assert kinds.count("skill") == 1
    assert kinds.count("item") == 9
    assert earned_notices(messages)[-1] == "You earned the badge: Career Prepared! Type /badges to see all your badges."
    ana.send("/badges")
    assert "(none left; you have earned them all)" in ana.texts()[0]
    assert "You have completed every item on your pathway" in ana.texts()[-1]


def test_badges_awarded_once(engine, ana):
    approve_items(engine, ana, level_keys(engine, 2))
    ana.send("/edit experience")
    ana.send("Internship")

    messages = approve_items(engine, ana, ["internship-experience"])

    keys = [key for _, key in awards(engine)]
    assert keys.count("training-and-practice") == 1
    assert keys.count("item:internship-experience") == 1
    assert len(set(keys)) == len(keys)
    assert earned_notices(messages) == ["You earned the badge: Start an internship! Type /badges to see all your badges."]


def test_badges_command_lists_earned_and_left(engine, ana):
    approve(engine, ana.submit_reflection("use-career-services"))

    ana.send("/badges")

    text = ana.texts()[0]
    earned, left = text.split("Still to earn")
    assert "- Use career services (earned " in earned
    assert "- Career Prepared\n" in left
    assert "- 21st Century Skill - Critical Thinking" in left
    assert "Explore career options" in left
