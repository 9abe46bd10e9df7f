"""Learners and reviewers after a program admin changed the flows between two runs of the bot."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from bot.app import build_engine
from bot.config import load_settings
from bot.engine import Engine
from bot.flows import default_flows_dir
from bot.models import ReviewDecision
from tests.bot.scripted import Chat, find_item, latest_submission

REMOVED = ("use-career-services", "explore-career-options")


def flows_without_items(tmp_path: Path, removed: tuple[str, ...]) -> Path:
    """Copy the shipped flows and delete the Level 1 items ``removed`` from the catalog."""
    target = tmp_path / "flows"
    shutil.copytree(default_flows_dir(), target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    catalog_path = target / "catalog.yaml"
    catalog = yaml.safe_load(catalog_path.read_text(encoding="utf-8"))
    level = catalog["levels"][0]
    level["items"] = [item for item in level["items"] if item["id"] not in removed]
    catalog_path.write_text(yaml.safe_dump(catalog, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return target


@pytest.fixture
def make_engine(tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    """Build engines on one data folder, as restarts of the bot with other flows would."""
    built: list[Engine] = []

    def make(flows_dir: Path | None = None) -> Engine:
        settings = load_settings(environ={}, data_dir=tmp_path / "data", flows_dir=flows_dir,
                                 reviewers=("console:reviewer",), reviewer_chats={"console": "reviewers"})
        built.append(build_engine(settings))
        return built[-1]

    yield make
    for engine in built:
        engine.session_factory.kw["bind"].dispose()


@pytest.fixture
def before_and_after(make_engine, tmp_path) -> tuple[Engine, Engine]:
    """An engine on the shipped flows, and one restarted after two Level 1 items were deleted."""
    before = make_engine()
    return before, make_engine(flows_without_items(tmp_path, REMOVED))


def assert_answered(messages) -> None:
    assert messages
    assert messages[-1].text.strip()
    assert "Traceback" not in "\n".join(message.text for message in messages)


@pytest.mark.parametrize("text", ["hello", "/pathway", "/badges", "/submit", "/plan", "/export", "/help"])
def test_removed_item_learner_commands_answered(before_and_after, text):
    before, after = before_and_after
    Chat(before).finish_plan()

    chat = Chat(after)
    messages = chat.send(text)

    assert_answered(messages)
    assert chat.state() in ("home", "submit_item")


def test_removed_item_not_offered_for_evidence(before_and_after):
    before, after = before_and_after
    Chat(before).finish_plan()
    removed_ids = {find_item(before, "ana", key).id for key in REMOVED}

    chat = Chat(after)
    chat.send("/submit")

    offered = {button.action for button in chat.last.messages[-1].buttons}
    assert offered
    assert not offered & {f"submit_item:{item_id}" for item_id in removed_ids}
    for item_id in removed_ids:
        assert_answered(chat.press(f"submit_item:{item_id}"))
        assert chat.state() == "submit_item"


def start_submission(engine: Engine, item_key: str) -> tuple[Chat, int]:
    """Finish the plan and choose ``item_key`` for evidence; return the chat and the item id."""
    ana = Chat(engine)
    ana.finish_plan()
    item = find_item(engine, "ana", item_key)
    ana.send("/submit")
    ana.press(f"submit_item:{item.id}")
    assert ana.state() == "submit_kind"
    return ana, item.id


def test_removed_item_mid_submission_returns_home(before_and_after):
    before, after = before_and_after
    start_submission(before, REMOVED[0])

    chat = Chat(after)
    messages = chat.send("reflection")

    assert_answered(messages)
    assert chat.state() == "home"
    assert messages[0].text == after.flows.texts("submit_item_gone")


def test_removed_item_draft_survives(before_and_after):
    before, after = before_and_after
    ana, item_id = start_submission(before, REMOVED[0])
    ana.press("submit_kind:reflection")
    ana.send("x" * 300)
    assert ana.state() == "submit_confirm"

    chat = Chat(after)
    assert_answered(chat.press("submit_confirm:send"))

    assert chat.state() == "home"
    assert latest_submission(after, item_id).status == "draft"


@pytest.mark.parametrize("decide", ["approve", "request_changes"])
def test_removed_item_pending_submission_decided(before_and_after, decide):
    before, after = before_and_after
    ana = Chat(before)
    ana.finish_plan()
    submission_id = ana.submit_reflection(REMOVED[0])

    reviewer = Chat(after, "reviewer", display_name="Rita")
    assert_answered(reviewer.send("/queue"))
    assert_answered(reviewer.send(f"/review {submission_id}"))
    if decide == "approve":
        messages = reviewer.press(f"rv:a:{submission_id}")
    else:
        assert_answered(reviewer.press(f"rv:c:{submission_id}"))
        messages = reviewer.send("Please add the date of your appointment.")

    assert_answered(messages)
    with after.session_factory() as session:
        decision = session.scalar(select(ReviewDecision).where(ReviewDecision.submission_id == submission_id))
    assert decision is not None
    assert decision.decision == ("approved" if decide == "approve" else "changes_requested")
    learner_notices = [message for message in messages if message.chat_id == "ana"]
    assert learner_notices


def test_removed_item_badge_still_listed(before_and_after):
    before, after = before_and_after
    ana = Chat(before)
    ana.finish_plan()
    submission_id = ana.submit_reflection(REMOVED[0])
    Chat(before, "reviewer").press(f"rv:a:{submission_id}")

    chat = Chat(after)
    messages = chat.send("/badges")

    assert_answered(messages)
    assert "Use career services" in messages[0].text


def test_removed_skill_badge_item_answered(make_engine, tmp_path):
    before = make_engine()
    ana = Chat(before)
    ana.finish_plan()
    skill_item = next(item for item in ana.learner().items if item.item_key.startswith("skill:"))
    target = tmp_path / "flows"
    shutil.copytree(default_flows_dir(), target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    catalog_path = target / "catalog.yaml"
    catalog = yaml.safe_load(catalog_path.read_text(encoding="utf-8"))
    skill_id = skill_item.item_key.removeprefix("skill:")
    catalog["skills"] = [skill for skill in catalog["skills"] if skill["id"] != skill_id]
    for role in catalog.get("roles", []):
        role.get("weights", {}).pop(skill_id, None)
    catalog_path.write_text(yaml.safe_dump(catalog, sort_keys=False, allow_unicode=True), encoding="utf-8")
    after = make_engine(target)

    chat = Chat(after)
    for text in ("/badges", "/pathway", "/submit"):
        assert_answered(chat.send(text))


def flows_without_question(tmp_path: Path, question_id: str) -> Path:
    """Copy the shipped flows and delete the question ``question_id`` from the conversation."""
    target = tmp_path / "flows-without-question"
    shutil.copytree(default_flows_dir(), target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    conversation_path = target / "conversation.yaml"
    conversation = yaml.safe_load(conversation_path.read_text(encoding="utf-8"))
    conversation["questions"] = [question for question in conversation["questions"] if question["id"] != question_id]
    conversation_path.write_text(yaml.safe_dump(conversation, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return target


@pytest.mark.parametrize("text", ["Honesty and growth.", "", "/skip", "/help", None])
def test_removed_question_learner_moves_on(make_engine, tmp_path, text):
    before = make_engine()
    Chat(before).answer_until("values")
    after = make_engine(flows_without_question(tmp_path, "values"))

    chat = Chat(after)
    messages = chat.send(text, opened=text is None)

    assert_answered(messages)
    assert chat.state() == "transferable_skills"
    assert "values" not in chat.learner().answers
    assert "transferable_skills" not in chat.learner().answers
    assert "Question " in messages[-1].text


def test_removed_question_answer_not_reused(make_engine, tmp_path):
    before = make_engine()
    Chat(before).answer_until("values")
    after = make_engine(flows_without_question(tmp_path, "values"))

    chat = Chat(after)
    messages = chat.send("Honesty and growth.")

    assert messages[0].text == after.flows.texts("question_removed")
    assert chat.learner().answers.get("transferable_skills") is None


def test_removed_question_forget_keep(make_engine, tmp_path):
    before = make_engine()
    ana = Chat(before)
    ana.answer_until("values")
    ana.send("/forget")
    assert ana.state() == "forget_confirm"
    after = make_engine(flows_without_question(tmp_path, "values"))

    chat = Chat(after)
    messages = chat.press("forget_confirm:keep")

    assert_answered(messages)
    assert chat.state() == "transferable_skills"


def test_removed_question_mid_edit_returns_home(make_engine, tmp_path):
    before = make_engine()
    ana = Chat(before)
    ana.finish_plan()
    ana.send("/edit values")
    assert ana.state() == "values"
    after = make_engine(flows_without_question(tmp_path, "values"))

    chat = Chat(after)
    messages = chat.send("Honesty and growth.")

    assert_answered(messages)
    assert chat.state() == "home"
    assert chat.learner().context.get("editing") is None
