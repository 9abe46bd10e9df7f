"""Load and validate a flows directory: conversation, catalog and messages.

``load_flows`` reads every file, collects every problem it finds (not only the
first) and raises :class:`FlowsInvalid` listing them as ``file:line: where:
what``. The loaded :class:`Flows` is immutable and shared by all learners.
"""

from __future__ import annotations

import logging
import string
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bot._yaml import FlowFileError, line_of, load_yaml_file
from bot.catalog import Catalog, check_badge_images, check_catalog
from bot.nudge_rules import EMPTY_NUDGES, NudgesSpec, check_nudges
from bot.questions import ChoiceSpec, ConversationSpec, Question
from bot.texts import EVALUATION_FIELDS, MESSAGE_FIELDS, Texts

logger = logging.getLogger(__name__)

CONVERSATION_FILE = "conversation.yaml"
CATALOG_FILE = "catalog.yaml"
MESSAGES_FILE = "messages.yaml"
NUDGES_FILE = "nudges.yaml"
EVALUATION_FILE = "evaluation.yaml"

# Questions the pathway builder reads, with the kind (and settings) each must have.
PATHWAY_QUESTIONS = {
    "target_role": ("text", {}),
    "skills_to_develop": ("text", {}),
    "target_date": ("date", {}),
    "experience": ("choice", {"choices_from": "experiences"}),
    "ratings": ("rating", {"for_each": "skills"}),
}

# Telegram allows 64 bytes of callback data; a button carries "<state>:<value>".
MAX_BUTTON_BYTES = 64


def default_flows_dir() -> Path:
    """Return the directory of the flows that ship with careerbot."""
    import flows

    return Path(flows.__file__).parent


@dataclass(frozen=True)
class FlowProblem:
    path: Path
    line: int
    where: str
    message: str

    def __str__(self) -> str:
        where = f" {self.where}:" if self.where else ""
        return f"{self.path}:{self.line}:{where} {self.message}"


class FlowsInvalid(Exception):
    """The flows directory has errors; ``problems`` lists each with file and line."""

    def __init__(self, problems: list[FlowProblem]) -> None:
        self.problems = problems
        listing = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{len(problems)} error(s) in the flows:\n{listing}")


@dataclass(frozen=True)
class Flows:
    """Everything careerbot reads from a flows directory, validated."""

    directory: Path
    catalog: Catalog
    questions: tuple[Question, ...]
    texts: Texts
    warnings: tuple[FlowProblem, ...] = field(default=())
    nudges: NudgesSpec = field(default=EMPTY_NUDGES)
    """The reminder rules of ``nudges.yaml`` (none when the file is absent)."""
    evaluation_texts: Texts = field(default_factory=lambda: Texts({}))
    """The words of the supervisor evaluation web page and email."""

    def question(self, state: str) -> Question | None:
        return self._by_state.get(state)

    @property
    def _by_state(self) -> dict[str, Question]:
        cached = self.__dict__.get("_by_state_cache")
        if cached is None:
            cached = {question.state: question for question in self.questions}
            object.__setattr__(self, "_by_state_cache", cached)
        return cached


class _Collector:
    """Gathers problems while the files are checked, one list for all files."""

    def __init__(self) -> None:
        self.errors: list[FlowProblem] = []
        self.warnings: list[FlowProblem] = []

    def add(self, path: Path, document: Any, location: tuple, where: str, message: str) -> None:
        self.errors.append(FlowProblem(path, line_of(document, location), where, message))

    def warn(self, path: Path, document: Any, location: tuple, where: str, message: str) -> None:
        self.warnings.append(FlowProblem(path, line_of(document, location), where, message))

    def add_validation_error(self, path: Path, document: Any, error: ValidationError, describe) -> None:
        for detail in error.errors():
            location = tuple(detail["loc"])
            message = detail["msg"]
            if detail["type"] == "missing":
                message = f"missing field {location[-1]!r}"
            elif detail["type"] == "extra_forbidden":
                message = f"unknown field {location[-1]!r}; check its spelling or remove it"
            self.add(path, document, location, describe(document, location), message)


def _parse(model: type[BaseModel], path: Path, collector: _Collector, describe) -> tuple[Any, Any]:
    try:
        document = load_yaml_file(path)
    except FlowFileError as exc:
        collector.errors.append(FlowProblem(exc.path, exc.line, "", exc.message))
        return None, None
    if not isinstance(document, dict):
        collector.errors.append(FlowProblem(path, 1, "", "the file must contain a mapping at its top level"))
        return document, None
    try:
        return document, model.model_validate(document)
    except ValidationError as exc:
        collector.add_validation_error(path, document, exc, describe)
        return document, None


def _describe_location(document: Any, location: tuple) -> str:
    """Name the entry an error is about, such as ``question 'email'`` or ``item 'job-board'``."""
    node = document
    name = ""
    for index, step in enumerate(location):
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            name = f"{step_kind(location, index)} {node['id']!r}"
    return name


def step_kind(location: tuple, index: int) -> str:
    """Name the kind of entry at ``location[index]``: a list index takes the name of its list."""
    step = location[index]
    parent = location[index - 1] if isinstance(step, int) and index > 0 else step
    return {
        "questions": "question",
        "items": "item",
        "levels": "level",
        "skills": "skill",
        "roles": "role",
        "campuses": "campus",
        "experiences": "experience",
        "rules": "rule",
    }.get(str(parent), str(parent))


def _expand_questions(spec: ConversationSpec, catalog: Catalog) -> list[Question]:
    questions: list[Question] = []
    for entry in spec.questions:
        choices: tuple[ChoiceSpec, ...] = tuple(entry.choices)
        if entry.choices_from is not None:
            options = getattr(catalog, entry.choices_from)
            choices = tuple(ChoiceSpec(value=option.id, label=option.name[:60]) for option in options)
        if entry.kind == "timezone":
            choices = tuple(
                ChoiceSpec(value=name, label=name.split("/")[-1].replace("_", " ")) for name in spec.common_timezones
            )
        common = entry.model_dump(exclude={"id", "choices", "choices_from", "for_each"})
        if entry.for_each == "skills":
            for skill in catalog.skills:
                prompt = (entry.prompt.replace("{skill}", skill.name)
                          .replace("{skill_summary}", skill.summary)
                          .replace("{skill_description}", skill.description))
                common_for_skill = {**common, "prompt": prompt, "label": f"{entry.label}: {skill.name}"}
                questions.append(
                    Question(
                        state=f"{entry.id}.{skill.id}",
                        spec_id=entry.id,
                        choices=choices,
                        skill_id=skill.id,
                        **common_for_skill,
                    )
                )
        else:
            questions.append(Question(state=entry.id, spec_id=entry.id, choices=choices, **common))
    return questions


def _check_conversation(
    spec: ConversationSpec, document: Any, path: Path, collector: _Collector
) -> None:
    seen: set[str] = set()
    known_zones = zoneinfo.available_timezones()
    for index, entry in enumerate(spec.questions):
        location = ("questions", index)
        where = f"question {entry.id!r}"
        if entry.id in seen:
            collector.add(path, document, location + ("id",), where, "question id is used twice; ids must be unique")
        seen.add(entry.id)

        needs_choices = entry.kind in ("choice", "consent")
        has_choices = bool(entry.choices) or entry.choices_from is not None
        if needs_choices and not has_choices:
            collector.add(path, document, location, where, f"a {entry.kind} question needs 'choices' or 'choices_from'")
        if not needs_choices and has_choices:
            collector.add(path, document, location, where, f"a {entry.kind} question takes no 'choices'; remove them")
        if entry.kind == "consent" and {choice.value for choice in entry.choices} != {"agree", "decline"}:
            collector.add(path, document, location + ("choices",), where, "a consent question needs the choice values 'agree' and 'decline'")
        if entry.kind == "consent" and entry.optional:
            collector.add(path, document, location + ("optional",), where, "consent cannot be optional")
        if entry.for_each and entry.kind != "rating":
            collector.add(path, document, location + ("for_each",), where, "'for_each: skills' only works with kind: rating")
        if entry.kind == "rating" and not entry.min_rating < entry.max_rating:
            collector.add(path, document, location, where, "min_rating must be below max_rating")
        if entry.min_length > entry.max_length:
            collector.add(path, document, location, where, "min_length must not exceed max_length")
        if entry.profile_field is not None and entry.section != "profile":
            collector.add(path, document, location, where, "a question with profile_field belongs to section: profile")
        for choice_index, choice in enumerate(entry.choices):
            button = f"{entry.id}:{choice.value}"
            if len(button.encode()) > MAX_BUTTON_BYTES:
                collector.add(
                    path, document, location + ("choices", choice_index), where,
                    f"choice value {choice.value!r} makes a button of {len(button.encode())} bytes; "
                    f"shorten it so that question id and value fit in {MAX_BUTTON_BYTES}",
                )
        if "{" in entry.prompt and entry.for_each is None:
            collector.warn(path, document, location + ("prompt",), where, "braces in a prompt are shown as written")

    for index, zone in enumerate(spec.common_timezones):
        if zone not in known_zones:
            collector.add(path, document, ("common_timezones", index), "", f"{zone!r} is not an IANA time zone name such as 'Europe/London'")
    if spec.questions and spec.questions[0].kind != "consent":
        collector.add(path, document, ("questions", 0), f"question {spec.questions[0].id!r}", "the first question must be the consent question (kind: consent)")
    by_id = {entry.id: entry for entry in spec.questions}
    for question_id, (kind, extra) in PATHWAY_QUESTIONS.items():
        entry = by_id.get(question_id)
        if entry is None:
            collector.add(path, document, ("questions",), "", f"missing question {question_id!r} (kind: {kind}); the pathway builder reads it")
        elif entry.kind != kind or any(getattr(entry, name) != value for name, value in extra.items()):
            wanted = ", ".join([f"kind: {kind}"] + [f"{name}: {value}" for name, value in extra.items()])
            collector.add(path, document, ("questions", spec.questions.index(entry)), f"question {question_id!r}", f"the pathway builder needs {wanted}")
    if sum(1 for entry in spec.questions if entry.kind == "consent") > 1:
        collector.add(path, document, ("questions",), "", "only one consent question is allowed")


def _load_messages(path: Path, collector: _Collector, fields: dict[str, frozenset[str]]) -> dict[str, str]:
    try:
        document = load_yaml_file(path)
    except FlowFileError as exc:
        collector.errors.append(FlowProblem(exc.path, exc.line, "", exc.message))
        return {}
    return _check_messages(document, path, collector, fields)



def _check_messages(document: Any, path: Path, collector: _Collector,
                    fields: dict[str, frozenset[str]] = MESSAGE_FIELDS) -> dict[str, str]:
    templates: dict[str, str] = {}
    if not isinstance(document, dict):
        return templates
    formatter = string.Formatter()
    for key, template in document.items():
        if key not in fields:
            collector.warn(path, document, (key,), f"message {key!r}", "careerbot never sends this message; check the key's spelling")
            continue
        if not isinstance(template, str) or not template.strip():
            collector.add(path, document, (key,), f"message {key!r}", "the message must be non-empty text")
            continue
        try:
            names = {name for _, name, _, _ in formatter.parse(template) if name is not None}
        except ValueError as exc:
            collector.add(path, document, (key,), f"message {key!r}", f"invalid placeholder: {exc}; write a literal brace as {{{{ or }}}}")
            continue
        unknown = names - fields[key]
        if unknown:
            allowed = ", ".join(sorted("{" + name + "}" for name in fields[key])) or "none"
            collector.add(
                path, document, (key,), f"message {key!r}",
                f"unknown placeholder(s) {sorted(unknown)}; this message can use: {allowed}",
            )
            continue
        templates[key] = template
    line = getattr(document, "line", 1)
    for key in sorted(set(fields) - set(document)):
        collector.errors.append(FlowProblem(path, line, f"message {key!r}", "missing; add this key with its text"))
    return templates


def _load_nudges(path: Path, collector: _Collector) -> NudgesSpec:
    """Load and check the reminder rules; a flows folder without the file has none."""
    if not path.exists():
        return EMPTY_NUDGES
    document, spec = _parse(NudgesSpec, path, collector, _describe_location)
    if spec is None:
        return EMPTY_NUDGES
    for location, message in check_nudges(spec):
        collector.add(path, document, location, _describe_location(document, location), message)
    return spec


def load_flows(directory: Path | str | None = None) -> Flows:
    """Load and validate the flows in ``directory`` (the shipped ones by default).

    Raises:
        FlowsInvalid: any file has errors; all of them are listed.
    """
    directory = Path(directory) if directory is not None else default_flows_dir()
    collector = _Collector()
    if not directory.is_dir():
        raise FlowsInvalid([FlowProblem(directory, 0, "", "flows directory not found")])

    catalog_path = directory / CATALOG_FILE
    catalog_doc, catalog = _parse(Catalog, catalog_path, collector, _describe_location)
    if catalog is not None:
        for location, message in check_catalog(catalog) + check_badge_images(catalog, directory):
            collector.add(catalog_path, catalog_doc, location, _describe_location(catalog_doc, location), message)

    conversation_path = directory / CONVERSATION_FILE
    conversation_doc, conversation = _parse(ConversationSpec, conversation_path, collector, _describe_location)
    if conversation is not None:
        _check_conversation(conversation, conversation_doc, conversation_path, collector)

    templates = _load_messages(directory / MESSAGES_FILE, collector, MESSAGE_FIELDS)
    evaluation_templates = _load_messages(directory / EVALUATION_FILE, collector, EVALUATION_FIELDS)

    nudges = _load_nudges(directory / NUDGES_FILE, collector)

    if collector.errors:
        raise FlowsInvalid(collector.errors)

    assert catalog is not None and conversation is not None
    questions = tuple(_expand_questions(conversation, catalog))
    for problem in collector.warnings:
        logger.warning("flows: %s", problem)
    return Flows(
        directory=directory,
        catalog=catalog,
        questions=questions,
        texts=Texts(templates),
        warnings=tuple(collector.warnings),
        nudges=nudges,
        evaluation_texts=Texts(evaluation_templates),
    )
