"""Build a learner's personalized pathway from their career action plan.

The pathway holds every ``always`` item of the three levels, the Level 2
experience item matching the experience the learner chose, and one 21st
Century Skill badge for Level 3. The skill is the one with the highest score
``role weight x (max rating + 1 - self-rating)``, plus a bonus when the learner
named the skill among the skills to develop; ties go to the lower self-rating,
then to catalog order. Target dates are spread from today to the learner's
target date in proportion to each item's weight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy.orm import Session

from bot.catalog import Catalog, Criterion, Evidence, RoleProfile, Skill
from bot.models import Learner, PathwayItem
from bot.texts import Texts

SKILL_PREFIX = "skill:"
MENTION_BONUS = 3


@dataclass(frozen=True)
class ItemInfo:
    """What the catalog says about a pathway item, for a skill badge too."""

    key: str
    level: int
    title: str
    description: str
    evidence: Evidence
    rubric: tuple[Criterion, ...]
    weight: int
    skill: Skill | None = None
    supervisor_evaluation: bool = False


def item_info(catalog: Catalog, item_key: str) -> ItemInfo:
    """Look up an item by its pathway key (catalog item id, or ``skill:<skill id>``).

    Raises:
        KeyError: the catalog has no such item or skill.
    """
    if item_key.startswith(SKILL_PREFIX):
        skill_id = item_key[len(SKILL_PREFIX):]
        skill = next((entry for entry in catalog.skills if entry.id == skill_id), None)
        slot = next((item for level in catalog.levels for item in level.items if item.slot == "skill"), None)
        if skill is None or slot is None:
            raise KeyError(item_key)
        level = next(level for level in catalog.levels if slot in level.items)
        return ItemInfo(
            key=item_key,
            level=level.number,
            title=skill.badge.name,
            description=skill.description,
            evidence=skill.evidence,
            rubric=tuple(skill.subcompetencies),
            weight=slot.weight,
            skill=skill,
        )
    for level in catalog.levels:
        for item in level.items:
            if item.id == item_key:
                assert item.evidence is not None
                return ItemInfo(
                    key=item.id,
                    level=level.number,
                    title=item.title,
                    description=item.description,
                    evidence=item.evidence,
                    rubric=tuple(item.rubric),
                    weight=item.weight,
                    supervisor_evaluation=item.supervisor_evaluation,
                )
    raise KeyError(item_key)


def find_item_info(catalog: Catalog, item_key: str) -> ItemInfo | None:
    """Look up an item like :func:`item_info`; None when the catalog no longer has it.

    A pathway is stored when it is built, so it can keep items that an admin
    has since deleted from the catalog.
    """
    try:
        return item_info(catalog, item_key)
    except KeyError:
        return None


def match_role(catalog: Catalog, target_role: str) -> RoleProfile:
    """Pick the role profile whose keywords occur most often in the stated target role."""
    words = set(re.findall(r"[\w+#]+", target_role.casefold()))
    folded = target_role.casefold()
    best: RoleProfile | None = None
    best_hits = 0
    for role in catalog.roles:
        hits = sum(1 for keyword in role.keywords if (keyword in words if " " not in keyword else keyword in folded))
        if hits > best_hits:
            best, best_hits = role, hits
    return best if best is not None else catalog.role(catalog.default_role)


@dataclass(frozen=True)
class SkillChoice:
    skill: Skill
    role: RoleProfile
    rating: int | None
    weight: int
    mentioned: bool


def choose_skill(catalog: Catalog, answers: dict, rating_prefix: str, max_rating: int) -> SkillChoice:
    """Choose the Level 3 skill badge from the self-ratings, the target role and the skills to develop."""
    role = match_role(catalog, str(answers.get("target_role", "")))
    to_develop = str(answers.get("skills_to_develop", "")).casefold()
    ranked = []
    for order, skill in enumerate(catalog.skills):
        rating = answers.get(f"{rating_prefix}.{skill.id}")
        gap = max_rating + 1 - rating if isinstance(rating, int) else 1
        weight = role.weights.get(skill.id, 0)
        mentioned = skill.name.casefold() in to_develop
        score = max(weight, 1) * gap + (MENTION_BONUS if mentioned else 0)
        ranked.append((-score, rating if isinstance(rating, int) else max_rating, order, skill, weight, mentioned))
    ranked.sort(key=lambda entry: entry[:3])
    _, _, _, skill, weight, mentioned = ranked[0]
    rating = answers.get(f"{rating_prefix}.{skill.id}")
    return SkillChoice(skill, role, rating if isinstance(rating, int) else None, weight, mentioned)


@dataclass(frozen=True)
class PlannedItem:
    info: ItemInfo
    reason: str
    target_date: date | None


def plan_pathway(catalog: Catalog, texts: Texts, answers: dict, today: date, rating_prefix: str,
                 max_rating: int) -> list[PlannedItem]:
    """Return the ordered items of a learner's pathway with their reasons and target dates."""
    experience_id = answers.get("experience")
    experience_name = next((option.name for option in catalog.experiences if option.id == experience_id), "")
    choice = choose_skill(catalog, answers, rating_prefix, max_rating)

    chosen: list[tuple[ItemInfo, str]] = []
    for level in sorted(catalog.levels, key=lambda entry: entry.number):
        for item in level.items:
            if item.slot == "experience" and item.experience != experience_id:
                continue
            if item.slot == "skill":
                info = item_info(catalog, SKILL_PREFIX + choice.skill.id)
                chosen.append((info, _skill_reason(texts, choice, max_rating)))
                continue
            info = item_info(catalog, item.id)
            if item.slot == "experience":
                reason = texts("reason_experience", experience=experience_name)
            else:
                reason = texts("reason_always", level=level.number, level_name=level.name)
            chosen.append((info, reason))

    target = _parse_date(answers.get("target_date"))
    total_weight = sum(info.weight for info, _ in chosen)
    planned: list[PlannedItem] = []
    elapsed = 0
    for info, reason in chosen:
        elapsed += info.weight
        due = None
        if target is not None and target > today:
            due = today + timedelta(days=round((target - today).days * elapsed / total_weight))
        planned.append(PlannedItem(info, reason, due))
    return planned


def _skill_reason(texts: Texts, choice: SkillChoice, max_rating: int) -> str:
    values = {
        "skill": choice.skill.name,
        "role": choice.role.name,
        "rating": choice.rating if choice.rating is not None else "-",
        "max_rating": max_rating,
        "weight": choice.weight,
    }
    key = "reason_skill_mentioned" if choice.mentioned else "reason_skill"
    return texts(key, **values)


def _parse_date(value: object) -> date | None:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def rebuild_pathway(session: Session, learner: Learner, planned: list[PlannedItem]) -> None:
    """Bring the stored pathway in line with ``planned``, keeping approved work.

    Items no longer planned are deactivated, not deleted, so their submissions
    and decisions stay in the history; an approved item keeps its target date.
    """
    existing = {item.item_key: item for item in learner.items}
    wanted = {entry.info.key for entry in planned}
    for position, entry in enumerate(planned):
        item = existing.get(entry.info.key)
        if item is None:
            item = PathwayItem(item_key=entry.info.key, status="open", criteria_met={})
            learner.items.append(item)
        item.level = entry.info.level
        item.position = position
        item.title = entry.info.title
        item.reason = entry.reason
        item.active = True
        if item.status != "approved":
            item.target_date = entry.target_date
    for key, item in existing.items():
        if key not in wanted:
            item.active = False
            item.position = len(planned) + item.position
    session.flush()
