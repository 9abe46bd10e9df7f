"""The pathway catalog: levels, items, evidence rules, rubrics and skill badges.

The catalog is data that a program admin edits in ``flows/catalog.yaml``. These
pydantic models define its schema; :func:`check_catalog` adds the checks that
span several entries (unique ids, references between sections).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"
"""Catalog ids: short, lowercase, dash-separated, so that a button can carry them."""

EvidenceKind = Literal["reflection", "link", "file", "plan"]
"""How a learner may prove an item: written text, a URL, an uploaded file, or
the career action plan that the bot collected (submitted as text)."""

DEFAULT_FILE_TYPES = ["pdf", "docx", "pptx", "png", "jpg", "jpeg", "txt", "md"]
TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Criterion(_Strict):
    """One rubric criterion (or one sub-competency of a skill badge)."""

    id: str = Field(pattern=ID_PATTERN)
    text: str = Field(min_length=1, max_length=500)


class Evidence(_Strict):
    """What evidence an item accepts and within which limits."""

    kinds: list[EvidenceKind] = Field(min_length=1)
    reflection_min_chars: int = Field(default=150, ge=1)
    reflection_max_chars: int = Field(default=4000, ge=1, le=20000)
    file_types: list[str] = Field(default_factory=lambda: list(DEFAULT_FILE_TYPES))
    file_max_bytes: int = Field(default=TELEGRAM_DOWNLOAD_LIMIT, ge=1, le=TELEGRAM_DOWNLOAD_LIMIT)

    @field_validator("file_types")
    @classmethod
    def _lowercase_extensions(cls, value: list[str]) -> list[str]:
        cleaned = [entry.lower().lstrip(".") for entry in value]
        for entry in cleaned:
            if not re.fullmatch(r"[a-z0-9]{1,8}", entry):
                raise ValueError(f"file type {entry!r} is not a file extension such as 'pdf'")
        return cleaned


class Badge(_Strict):
    """A badge as the catalog describes it; Open Badges classes are built from this."""

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=120)
    description: str = Field(min_length=1, max_length=2000)
    image: str | None = Field(
        default=None,
        description="PNG or SVG file of the badge image, relative to the flows folder; default: a drawn badge",
    )
    validity_days: int | None = Field(default=None, ge=1)

    @field_validator("image")
    @classmethod
    def _relative_image_file(cls, value: str | None) -> str | None:
        if value is None:
            return None
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or path.suffix.lower() not in (".png", ".svg"):
            raise ValueError(
                f"image {value!r} must be a .png or .svg file inside the flows folder, such as badges/level-1.png"
            )
        return value



class Item(_Strict):
    """One pathway item: something the learner does and proves with evidence.

    ``slot`` says how the pathway builder uses the item: ``always`` items are on
    every pathway; ``experience`` items only when the learner chose the matching
    experience in their plan; the one ``skill`` item is a placeholder that the
    builder replaces with the skill badge it picks.
    """

    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=1, max_length=120)
    description: str = Field(min_length=1, max_length=2000)
    slot: Literal["always", "experience", "skill"] = "always"
    experience: str | None = None
    evidence: Evidence | None = None
    rubric: list[Criterion] = Field(default_factory=list)
    weight: int = Field(default=1, ge=1, le=10, description="relative share of the timeline")
    supervisor_evaluation: bool = Field(
        default=False,
        description="the learner may ask a work supervisor to evaluate them through a web form "
        "(rated against the catalog's evaluation_rubric)",
    )


class Level(_Strict):
    number: int = Field(ge=1, le=3)
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=120)
    description: str = Field(min_length=1, max_length=2000)
    badge: Badge
    items: list[Item] = Field(min_length=1)


class Skill(_Strict):
    """A 21st Century Skill badge with its four sub-competencies."""

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=80)
    summary: str = Field(
        default="", max_length=300,
        description="one sentence on what the skill is, shown when the learner rates themselves in it",
    )
    description: str = Field(min_length=1, max_length=2000)
    badge: Badge
    subcompetencies: list[Criterion] = Field(min_length=4, max_length=4)
    evidence: Evidence


class RoleProfile(_Strict):
    """How much a family of target roles relies on each skill (0 to 5).

    A learner's stated target role matches a profile when it contains one of
    the profile's keywords (case-insensitive, whole words).
    """

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=120)
    keywords: list[str] = Field(default_factory=list)
    weights: dict[str, int]

    @field_validator("weights")
    @classmethod
    def _weights_in_range(cls, value: dict[str, int]) -> dict[str, int]:
        for skill, weight in value.items():
            if not 0 <= weight <= 5:
                raise ValueError(f"weight for {skill!r} is {weight}; use a whole number from 0 to 5")
        return value


class Option(_Strict):
    """A campus, program or experience type that a learner picks from a list."""

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=120)
    description: str = ""


class RatingLevel(_Strict):
    """One point of the rating scale a work supervisor uses, such as 4 "Exceeds expectations"."""

    value: int = Field(ge=0, le=10)
    label: str = Field(min_length=1, max_length=60)


class EvaluationCriterion(_Strict):
    """One thing a work supervisor rates, with an optional longer explanation."""

    id: str = Field(pattern=ID_PATTERN)
    text: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=500)


class Recommendation(_Strict):
    """One answer to the overall recommendation question of a supervisor evaluation."""

    id: str = Field(pattern=ID_PATTERN)
    label: str = Field(min_length=1, max_length=200)


class EvaluationRubric(_Strict):
    """The supervisor evaluation form: criteria rated on one scale, then an overall recommendation."""

    scale: list[RatingLevel] = Field(min_length=2, max_length=10)
    criteria: list[EvaluationCriterion] = Field(min_length=1, max_length=20)
    recommendations: list[Recommendation] = Field(min_length=2, max_length=6)

    def rating_label(self, value: int) -> str:
        return next(level.label for level in self.scale if level.value == value)

    def recommendation_label(self, recommendation_id: str) -> str:
        return next(entry.label for entry in self.recommendations if entry.id == recommendation_id)


class Program(_Strict):
    name: str = Field(min_length=1, max_length=120)
    description: str = Field(min_length=1, max_length=2000)
    macro_badge: Badge


class Catalog(_Strict):
    program: Program
    campuses: list[Option] = Field(min_length=1)
    experiences: list[Option] = Field(min_length=1)
    levels: list[Level] = Field(min_length=3, max_length=3)
    skills: list[Skill] = Field(min_length=1)
    roles: list[RoleProfile] = Field(min_length=1)
    default_role: str = Field(pattern=ID_PATTERN)
    evaluation_rubric: EvaluationRubric | None = None

    def level(self, number: int) -> Level:
        return next(level for level in self.levels if level.number == number)

    def skill(self, skill_id: str) -> Skill:
        return next(skill for skill in self.skills if skill.id == skill_id)

    def role(self, role_id: str) -> RoleProfile:
        return next(role for role in self.roles if role.id == role_id)

    def all_badges(self) -> list[Badge]:
        badges = [level.badge for level in self.levels]
        badges += [skill.badge for skill in self.skills]
        badges.append(self.program.macro_badge)
        return badges


def check_badge_images(catalog: Catalog, flows_dir: Path) -> list[tuple[tuple, str]]:
    """Return (location, message) for each badge image file that is missing from ``flows_dir``."""
    located = [(("program", "macro_badge", "image"), catalog.program.macro_badge)]
    located += [(("levels", index, "badge", "image"), level.badge) for index, level in enumerate(catalog.levels)]
    located += [(("skills", index, "badge", "image"), skill.badge) for index, skill in enumerate(catalog.skills)]
    problems = []
    for location, badge in located:
        if badge.image is not None and not (flows_dir / badge.image).is_file():
            problems.append((location, f"badge image {badge.image!r} not found in {flows_dir}"))
    return problems


def check_catalog(catalog: Catalog) -> list[tuple[tuple, str]]:
    """Return the cross-reference problems in a catalog as (location, message) pairs.

    The location is a path into the YAML document, so the caller can turn it
    into a line number.
    """
    problems: list[tuple[tuple, str]] = []
    skill_ids = {skill.id for skill in catalog.skills}
    experience_ids = {option.id for option in catalog.experiences}

    numbers = sorted(level.number for level in catalog.levels)
    if numbers != [1, 2, 3]:
        problems.append((("levels",), f"levels must be numbered 1, 2 and 3 once each, not {numbers}"))

    seen_items: dict[str, tuple] = {}
    skill_slots = 0
    for level_index, level in enumerate(catalog.levels):
        for item_index, item in enumerate(level.items):
            location = ("levels", level_index, "items", item_index)
            if item.id in seen_items:
                problems.append((location + ("id",), f"item id {item.id!r} is used twice; give each item its own id"))
            seen_items[item.id] = location
            if item.slot == "skill":
                skill_slots += 1
                if item.evidence is not None or item.rubric:
                    problems.append(
                        (location, "a skill slot takes its evidence rules and rubric from the chosen skill; remove them")
                    )
                continue
            if item.evidence is None:
                problems.append((location, f"item {item.id!r} has no 'evidence'; list the kinds it accepts"))
            if not item.rubric:
                problems.append((location, f"item {item.id!r} has no 'rubric'; give it at least one criterion"))
            if item.slot == "experience" and item.experience not in experience_ids:
                problems.append(
                    (
                        location + ("experience",),
                        f"item {item.id!r} names experience {item.experience!r}; use one of {sorted(experience_ids)}",
                    )
                )
            if item.slot != "experience" and item.experience is not None:
                problems.append((location + ("experience",), "'experience' is only for items with slot: experience"))
    if skill_slots != 1:
        problems.append((("levels",), f"exactly one item must have slot: skill, found {skill_slots}"))
    problems.extend(_check_evaluation_rubric(catalog))

    badge_ids: set[str] = set()
    for badge in catalog.all_badges():
        if badge.id in badge_ids:
            problems.append((("levels",), f"badge id {badge.id!r} is used twice; badge ids must be unique"))
        badge_ids.add(badge.id)

    role_ids = {role.id for role in catalog.roles}
    if catalog.default_role not in role_ids:
        problems.append((("default_role",), f"default_role {catalog.default_role!r} is not one of {sorted(role_ids)}"))
    for role_index, role in enumerate(catalog.roles):
        for skill_id in role.weights:
            if skill_id not in skill_ids:
                problems.append(
                    (("roles", role_index, "weights", skill_id), f"unknown skill {skill_id!r} in role {role.id!r}")
                )

    for section in ("campuses", "experiences", "skills", "roles"):
        ids = [entry.id for entry in getattr(catalog, section)]
        for index, entry_id in enumerate(ids):
            if entry_id in ids[:index]:
                problems.append(((section, index, "id"), f"id {entry_id!r} is used twice in {section}"))
    return problems


def _check_evaluation_rubric(catalog: Catalog) -> list[tuple[tuple, str]]:
    """Check the supervisor evaluation rubric and the items that use it."""
    problems: list[tuple[tuple, str]] = []
    rubric = catalog.evaluation_rubric
    for level_index, level in enumerate(catalog.levels):
        for item_index, item in enumerate(level.items):
            if not item.supervisor_evaluation:
                continue
            location = ("levels", level_index, "items", item_index, "supervisor_evaluation")
            if item.slot == "skill":
                problems.append((location, "a skill slot cannot take a supervisor evaluation; remove the flag"))
            if rubric is None:
                problems.append(
                    (location, f"item {item.id!r} asks for a supervisor evaluation but the catalog has no "
                               "'evaluation_rubric'; add one or remove the flag")
                )
    if rubric is None:
        return problems

    for section, key in (("scale", "value"), ("criteria", "id"), ("recommendations", "id")):
        values = [getattr(entry, key) for entry in getattr(rubric, section)]
        for index, value in enumerate(values):
            if value in values[:index]:
                problems.append(
                    (("evaluation_rubric", section, index, key), f"{key} {value!r} is used twice in {section}")
                )
    return problems
