"""The schema of ``flows/conversation.yaml``: the onboarding and plan questions.

Questions are asked in file order. Each one names how its answer is checked
(``kind``) and where it is stored. A question with ``for_each: skills`` is
expanded into one question per skill of the catalog, so the eight self-ratings
stay one entry in the file.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

QUESTION_ID_PATTERN = r"^[a-z][a-z0-9_]{0,23}$"

QuestionKind = Literal["consent", "text", "email", "choice", "rating", "date", "timezone"]

ProfileField = Literal["name", "email", "campus", "timezone"]
"""Answers that are also learner columns, so that reports and segments can query them."""


class ChoiceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    value: str = Field(pattern=r"^[A-Za-z0-9_./+-]{1,40}$")
    label: str = Field(min_length=1, max_length=60)


class QuestionSpec(BaseModel):
    """One question as written in the YAML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=QUESTION_ID_PATTERN)
    kind: QuestionKind
    prompt: str = Field(min_length=1, max_length=3000)
    section: Literal["profile", "plan"] = "plan"
    label: str = Field(min_length=1, max_length=80, description="short name shown in /plan and /edit")
    optional: bool = False
    profile_field: ProfileField | None = None
    min_length: int = Field(default=1, ge=1)
    max_length: int = Field(default=500, ge=1, le=4000)
    choices: list[ChoiceSpec] = Field(default_factory=list)
    choices_from: Literal["campuses", "experiences"] | None = None
    for_each: Literal["skills"] | None = None
    min_rating: int = 1
    max_rating: int = 5
    max_years_ahead: int = Field(default=10, ge=1, le=50)
    help: str | None = Field(default=None, max_length=1000)


class ConversationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    questions: list[QuestionSpec] = Field(min_length=1)
    common_timezones: list[str] = Field(default_factory=list)


class Question(BaseModel):
    """A question after expansion: what the engine asks, with its choices resolved.

    ``state`` is the conversation state that asks it; ``answer_key`` is where the
    answer lives in the learner's stored answers (for ratings, ``ratings.<skill>``).
    """

    model_config = ConfigDict(frozen=True)

    state: str
    spec_id: str
    kind: QuestionKind
    prompt: str
    label: str
    section: str
    optional: bool
    profile_field: str | None
    min_length: int
    max_length: int
    choices: tuple[ChoiceSpec, ...]
    min_rating: int
    max_rating: int
    max_years_ahead: int
    help: str | None
    skill_id: str | None = None
