"""Awarding badges when items are approved.

An approved item earns its item badge, or, for the chosen 21st Century Skill,
the skill badge once every sub-competency has been judged met. A level badge
follows when every active item of the level is approved, and the macro-badge
when all three level badges are earned. The unique key on (learner, badge)
makes each award happen once.
"""

from __future__ import annotations

import logging

from bot.models import BadgeAward, Learner, PathwayItem
from bot.pathway import find_item_info
from bot.turn import Turn

logger = logging.getLogger(__name__)

ITEM_PREFIX = "item:"


def _award(turn: Turn, learner: Learner, key: str, kind: str, name: str) -> bool:
    if any(award.badge_key == key for award in learner.awards):
        return False
    learner.awards.append(BadgeAward(badge_key=key, kind=kind, name=name, awarded_at=turn.now))
    logger.info("badge awarded: learner=%s badge=%s", learner.id, key)
    return True


def award_for_item(turn: Turn, learner: Learner, item: PathwayItem) -> list[str]:
    """Award what the approval of ``item`` earns; return the names of the new badges."""
    catalog = turn.flows.catalog
    info = find_item_info(catalog, item.item_key)
    earned: list[str] = []

    if info is None:
        logger.warning("item %s of learner %s is not in the catalog; it earns no badge", item.item_key, learner.id)
    elif info.skill is not None:
        if _award(turn, learner, info.skill.badge.id, "skill", info.skill.badge.name):
            earned.append(info.skill.badge.name)
    elif _award(turn, learner, ITEM_PREFIX + item.item_key, "item", info.title):
        earned.append(info.title)

    level = next((entry for entry in catalog.levels if entry.number == item.level), None)
    level_items = [entry for entry in learner.items if entry.active and entry.level == item.level]
    if level is not None and level_items and all(entry.status == "approved" for entry in level_items):
        if _award(turn, learner, level.badge.id, "level", level.badge.name):
            earned.append(level.badge.name)

    level_badges = {entry.badge.id for entry in catalog.levels}
    earned_keys = {award.badge_key for award in learner.awards}
    macro = catalog.program.macro_badge
    if level_badges <= earned_keys and _award(turn, learner, macro.id, "macro", macro.name):
        earned.append(macro.name)
    return earned


def badge_lines(turn: Turn, learner: Learner) -> tuple[list[str], list[str]]:
    """Return (earned, still to earn) lines for /badges, levels and skill first."""
    catalog = turn.flows.catalog
    awards = {award.badge_key: award for award in learner.awards}
    earned: list[str] = []
    left: list[str] = []

    def note(key: str, name: str) -> None:
        award = awards.get(key)
        if award is not None:
            earned.append(turn.t("badge_earned_line", name=name, date=award.awarded_at.date().isoformat()))
        else:
            left.append(turn.t("badge_left_line", name=name))

    note(catalog.program.macro_badge.id, catalog.program.macro_badge.name)
    for level in catalog.levels:
        note(level.badge.id, level.badge.name)
    for item in learner.items:
        if not item.active:
            continue
        info = find_item_info(catalog, item.item_key)
        if info is None:
            note(ITEM_PREFIX + item.item_key, item.title)
        elif info.skill is not None:
            note(info.skill.badge.id, info.skill.badge.name)
        else:
            note(ITEM_PREFIX + item.item_key, info.title)
    return earned, left
