"""The personalized pathway: items per level, the chosen experience, the skill badge, reasons, dates."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bot.flows import load_flows
from bot.pathway import MENTION_BONUS, choose_skill, match_role, plan_pathway
from tests.bot.scripted import RATINGS, Chat, approve, find_item

TODAY = date(2026, 3, 15)


@pytest.fixture(scope="module")
def flows():
    return load_flows()


def answers(ratings: dict[str, int] | None = None, **values) -> dict:
    stored = {f"ratings.{skill}": rating for skill, rating in (ratings or RATINGS).items()}
    stored.update({"target_role": "software developer", "skills_to_develop": "", "experience": "project",
                   "target_date": "2028-03-15"})
    stored.update(values)
    return stored


def plan(flows, stored: dict):
    return plan_pathway(flows.catalog, flows.texts, stored, TODAY, "ratings", 5)


def test_match_role_by_keyword(flows):
    assert match_role(flows.catalog, "Software Developer").id == "software-it"
    assert match_role(flows.catalog, "registered nurse in a hospital").id == "health-care"
    assert match_role(flows.catalog, "astronaut").id == flows.catalog.default_role


def test_choose_skill_largest_gap_times_weight(flows):
    choice = choose_skill(flows.catalog, answers(), "ratings", 5)

    # critical-thinking: weight 5 for software roles x (5 + 1 - 2) = 20, the highest score
    assert choice.skill.id == "critical-thinking"
    assert choice.role.id == "software-it"
    assert choice.rating == 2
    assert choice.weight == 5
    assert not choice.mentioned


def test_choose_skill_tie_goes_to_catalog_order(flows):
    flat = {skill: 3 for skill in RATINGS}

    choice = choose_skill(flows.catalog, answers(flat), "ratings", 5)

    # creative-problem-solving and critical-thinking both score 5 x 3 = 15
    assert choice.skill.id == "creative-problem-solving"


def test_choose_skill_mention_bonus(flows):
    flat = {skill: 3 for skill in RATINGS}

    mentioned = choose_skill(flows.catalog, answers(flat, skills_to_develop="critical thinking, mostly"), "ratings", 5)
    too_weak = choose_skill(flows.catalog, answers(flat, skills_to_develop="Oral Communication"), "ratings", 5)

    assert MENTION_BONUS == 3
    assert mentioned.skill.id == "critical-thinking"
    assert mentioned.mentioned
    # oral-communication: 3 x 3 + 3 = 12 stays below creative-problem-solving's 15
    assert too_weak.skill.id == "creative-problem-solving"


def test_choose_skill_role_changes_choice(flows):
    ratings = dict(RATINGS, empathy=2, **{"critical-thinking": 3})

    software = choose_skill(flows.catalog, answers(ratings), "ratings", 5)
    health = choose_skill(flows.catalog, answers(ratings, target_role="nurse"), "ratings", 5)

    assert software.skill.id == "critical-thinking"
    assert health.skill.id == "empathy"


def test_plan_has_three_levels_and_one_experience(flows):
    planned = plan(flows, answers(experience="internship"))
    keys = [entry.info.key for entry in planned]

    assert [entry.info.level for entry in planned] == sorted(entry.info.level for entry in planned)
    assert {entry.info.level for entry in planned} == {1, 2, 3}
    assert "internship-experience" in keys
    assert not {"part-time-job-experience", "project-experience", "volunteering-experience"} & set(keys)
    assert "skill:critical-thinking" in keys
    assert "earn-skill-badge" not in keys
    assert len(keys) == 10


def test_plan_reasons_stated(flows):
    planned = {entry.info.key: entry for entry in plan(flows, answers(experience="volunteering"))}

    assert "Volunteering" in planned["volunteering-experience"].reason
    assert "Level 1" in planned["use-career-services"].reason
    skill_reason = planned["skill:critical-thinking"].reason
    assert "Critical Thinking" in skill_reason
    assert "2/5" in skill_reason
    assert "Software and information technology" in skill_reason


def test_plan_mentioned_skill_reason(flows):
    planned = plan(flows, answers(skills_to_develop="critical thinking"))
    skill = next(entry for entry in planned if entry.info.skill is not None)

    assert skill.reason.startswith("You named Critical Thinking")


def test_plan_dates_spread_to_target(flows):
    planned = plan(flows, answers(target_date="2028-03-15"))
    dates = [entry.target_date for entry in planned]

    assert all(due is not None for due in dates)
    assert dates == sorted(dates)
    assert dates[0] > TODAY
    assert dates[-1] == date(2028, 3, 15)
    assert len(set(dates)) == len(dates)


def test_plan_without_target_date_has_no_dates(flows):
    planned = plan(flows, answers(target_date=None))

    assert all(entry.target_date is None for entry in planned)


def test_pathway_built_when_plan_completes(engine):
    chat = Chat(engine)
    chat.finish_plan(experience="Volunteering")

    texts = chat.joined()
    items = [item for item in chat.learner().items if item.active]

    assert "Your career action plan is complete" in texts
    assert "Your Career Prepared pathway" in texts
    assert "Why: You chose Volunteering" in texts
    assert [item.item_key for item in items if item.level == 2][1] == "volunteering-experience"
    assert items[-1].target_date == date.fromisoformat(chat.learner().answers["target_date"])
    assert all(item.status == "open" and item.reason for item in items)


def test_rebuild_keeps_approved_items(engine):
    chat = Chat(engine)
    chat.finish_plan()
    first = find_item(engine, "ana", "use-career-services")
    approve(engine, chat.submit_reflection("use-career-services"))
    new_date = (date.today() + timedelta(days=400)).isoformat()

    chat.send("/edit target_date")
    chat.send(new_date)
    chat.send("/edit experience")
    chat.send("Internship")
    chat.send("/edit target_role")
    chat.send("registered nurse")
    chat.send("/edit ratings.empathy")
    chat.press("ratings.empathy:1")

    assert "rebuilt your pathway" in chat.joined()
    items = {item.item_key: item for item in chat.learner().items}
    kept = items["use-career-services"]
    assert kept.status == "approved"
    assert kept.active
    assert kept.target_date == first.target_date
    assert items["internship-experience"].active
    assert not items["project-experience"].active
    assert not items["skill:critical-thinking"].active
    assert items["skill:empathy"].active
    assert items["final-self-reflection"].target_date == date.fromisoformat(new_date)
    assert len([item for item in items.values() if item.active]) == 10
    assert chat.state() == "home"
