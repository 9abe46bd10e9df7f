"""The schema of ``flows/nudges.yaml``: scheduled reminder rules, checked when the flows load.

Each rule has a ``type`` (the condition it watches) and an ``audience``. Its
threshold is ``after`` or ``within``, a duration such as ``7d`` or ``48h``.
It also sets the minimum gap between two of its nudges to the same person,
whether it ``repeats``, and a message ``template``. A template may use only the
placeholders its type provides, and it must use ``{next_step}`` and
``{due_date}``: a reminder that names one concrete task and its date works,
a generic "keep going" does not.

``repeats: false`` sends a rule's nudge once per occasion: once per inactive
spell (``no_activity``), per change request, per item (target dates), per
level, or per waiting submission (``review_waiting``). With ``repeats: true``
the nudge comes again after ``min_gap`` for as long as the condition holds.
"""

from __future__ import annotations

import re
import string
import zoneinfo
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from bot.catalog import ID_PATTERN

DURATION_PATTERN = re.compile(r"^(\d{1,4})\s*([dh])$")


def parse_duration(value: Any) -> timedelta:
    """Read ``7d`` (days) or ``48h`` (hours) as a timedelta.

    Raises:
        pydantic_core.PydanticCustomError: anything else, such as a bare number whose unit is unclear.
    """
    if isinstance(value, timedelta):
        return value
    match = DURATION_PATTERN.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise PydanticCustomError(
            "duration", "{value} is not a duration; write a whole number of days or hours such as 7d or 48h",
            {"value": repr(value)},
        )
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(days=amount) if unit == "d" else timedelta(hours=amount)


def format_duration(value: timedelta) -> str:
    """Write a duration the way the rules file does: ``7d`` or ``36h``."""
    hours = int(value.total_seconds() // 3600)
    return f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h"


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

RuleTypeName = Literal[
    "no_activity",
    "changes_requested",
    "target_date_soon",
    "target_date_passed",
    "next_level_not_started",
    "review_waiting",
]

DATE_RULES = ("target_date_soon", "target_date_passed")
REQUIRED_FIELDS = frozenset({"next_step", "due_date"})
LEARNER_FIELDS = frozenset({"name_suffix", "next_step", "level", "due_date"})


@dataclass(frozen=True)
class RuleType:
    """A rule type's condition, audience, threshold field and template placeholders."""

    audience: Literal["learner", "reviewers"]
    threshold: Literal["after", "within"]
    fields: frozenset[str]
    condition: str


RULE_TYPES: dict[str, RuleType] = {
    "no_activity": RuleType(
        "learner", "after", LEARNER_FIELDS | {"days_inactive"},
        "a learner with a plan and an item to do has not written to the bot for 'after'",
    ),
    "changes_requested": RuleType(
        "learner", "after", LEARNER_FIELDS | {"requested_on"},
        "a reviewer requested changes 'after' ago and the learner has not resubmitted",
    ),
    "target_date_soon": RuleType(
        "learner", "within", LEARNER_FIELDS | {"days_left"},
        "an item still to do has its target date 'within' the coming days (today included)",
    ),
    "target_date_passed": RuleType(
        "learner", "after", LEARNER_FIELDS | {"days_overdue"},
        "an item still to do had its target date at least 'after' ago (1d: from the day after)",
    ),
    "next_level_not_started": RuleType(
        "learner", "after", LEARNER_FIELDS | {"approved_level"},
        "a level badge was earned 'after' ago and nothing was submitted for the next level",
    ),
    "review_waiting": RuleType(
        "reviewers", "after", frozenset({"next_step", "due_date", "count", "waiting_since"}),
        "a submission has waited for a review decision for longer than 'after' (sent to the reviewer chat)",
    ),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NudgeRule(_Strict):
    """One rule as written in ``nudges.yaml``."""

    id: str = Field(pattern=ID_PATTERN)
    type: RuleTypeName
    audience: Literal["learner", "reviewers"]
    after: Duration | None = None
    within: Duration | None = None
    min_gap: Duration
    repeats: bool
    template: str = Field(min_length=1, max_length=3000)

    @property
    def kind(self) -> RuleType:
        return RULE_TYPES[self.type]

    @property
    def threshold(self) -> timedelta:
        value = self.after if self.kind.threshold == "after" else self.within
        assert value is not None, "checked when the rules are loaded"
        return value

    def render(self, **values: object) -> str:
        return self.template.format_map(values)


class NudgesSpec(_Strict):
    """The whole ``nudges.yaml``: program-wide settings, then the rules in priority order."""

    timezone: str = Field(
        default="UTC",
        description="IANA time zone for reviewer chats and for learners who did not give theirs",
    )
    max_rule_nudges_per_day: int = Field(
        default=1, ge=1, le=10,
        description="rule nudges one learner receives in any 24 hours; earlier rules in the file come first",
    )
    stalled_after: Duration = Field(
        default=timedelta(days=14), description="inactivity after which reports call a learner stalled"
    )
    rules: list[NudgeRule] = Field(default_factory=list)

    def rule(self, rule_id: str) -> NudgeRule | None:
        return next((rule for rule in self.rules if rule.id == rule_id), None)


EMPTY_NUDGES = NudgesSpec()


def check_nudges(spec: NudgesSpec) -> list[tuple[tuple, str]]:
    """Return the problems a schema cannot express, as (location in the YAML, message) pairs."""
    problems: list[tuple[tuple, str]] = []
    if spec.timezone not in zoneinfo.available_timezones():
        problems.append((("timezone",), f"{spec.timezone!r} is not an IANA time zone name such as 'America/New_York'"))

    seen: set[str] = set()
    for index, rule in enumerate(spec.rules):
        location = ("rules", index)
        kind = rule.kind
        if rule.id in seen:
            problems.append((location + ("id",), f"rule id {rule.id!r} is used twice; give each rule its own id"))
        seen.add(rule.id)

        if rule.audience != kind.audience:
            problems.append(
                (location + ("audience",), f"a {rule.type} rule reminds {kind.audience}; write audience: {kind.audience}")
            )
        problems.extend(_check_threshold(rule, location))
        if rule.min_gap < timedelta(hours=1):
            problems.append((location + ("min_gap",), "min_gap must be at least 1h, so that nobody gets a burst"))
        problems.extend(_check_template(rule, location))
    return problems


def _check_threshold(rule: NudgeRule, location: tuple) -> list[tuple[tuple, str]]:
    expected = rule.kind.threshold
    other = "within" if expected == "after" else "after"
    problems = []
    value = getattr(rule, expected)
    if value is None:
        problems.append((location, f"a {rule.type} rule needs '{expected}' ({rule.kind.condition})"))
    if getattr(rule, other) is not None:
        problems.append((location + (other,), f"a {rule.type} rule takes '{expected}', not '{other}'"))
    if value is not None and rule.type in DATE_RULES and value % timedelta(days=1):
        problems.append((location + (expected,), "target dates are whole days; write the duration in days, such as 3d"))
    if value is not None and rule.type == "target_date_passed" and value < timedelta(days=1):
        problems.append((location + (expected,), "a target date has passed from the day after it; write at least 1d"))
    return problems


def _check_template(rule: NudgeRule, location: tuple) -> list[tuple[tuple, str]]:
    where = location + ("template",)
    allowed = rule.kind.fields
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(rule.template) if name is not None}
    except ValueError as exc:
        return [(where, f"invalid placeholder: {exc}; write a literal brace as {{{{ or }}}}")]
    problems = []
    unknown = names - allowed
    if unknown:
        listing = ", ".join("{" + name + "}" for name in sorted(allowed))
        problems.append((where, f"unknown placeholder(s) {sorted(unknown)}; a {rule.type} template can use: {listing}"))
    missing = REQUIRED_FIELDS - names
    if missing:
        problems.append(
            (where, "the template must name the concrete next step and its date; add "
                    + " and ".join("{" + name + "}" for name in sorted(missing)))
        )
    return problems
