"""The terminal adapter: typed lines to events, replies printed, and a full journey to the macro-badge.

The journey runs twice: through ConsoleChat with in-memory stdin and stdout,
and through ``careerbot chat`` as a subprocess with piped input, one process
per session, learner and reviewer taking turns on the same data folder.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

import bot.config
from adapters import console as console_adapter
from adapters.console import TERMINAL_HELP, ConsoleChat, lists_buttons
from bot.app import build_engine
from bot.config import load_settings
from bot.engine import Engine
from bot.events import Button
from bot.models import BadgeAward, Learner, ReviewDecision, Submission
from bot.pathway import item_info
from tests.bot.scripted import REFLECTION, Chat

CAREERBOT = Path(sys.executable).with_name("careerbot")
SOURCE_ROOT = Path(bot.config.__file__).resolve().parents[1]
CHANGES_ITEM = "explore-career-options"
FEEDBACK = "Please name the two careers you compared and what you learned about each."
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def run_console(engine: Engine, user: str, lines: list[str], name: str | None = None) -> str:
    stdout = io.StringIO()
    ConsoleChat(engine, user, name=name, stdin=io.StringIO("".join(f"{line}\n" for line in lines)),
                stdout=stdout).run()
    return stdout.getvalue()


def plan_lines() -> list[str]:
    target = (date.today() + timedelta(days=730)).isoformat()
    return [
        "1",  # I agree
        "Ana",
        "ana@example.edu",
        "1",  # North Campus
        "europe/london",
        "I enjoy building software that helps people learn.",
        "software developer",
        "Honesty, growth and a team that shares what it knows.",
        "Teamwork from group projects, time management from a part-time job.",
        "3", "4", "2", "5", "3", "4", "2", "3",
        "Resilience and public speaking",
        target,
        "3",  # Project
    ]


def evidence_lines(engine: Engine, item_key: str, attachment: Path) -> list[str]:
    """Lines that submit evidence for the first item offered, which is ``item_key``."""
    kinds = item_info(engine.flows.catalog, item_key).evidence.kinds
    if "plan" in kinds:
        kind, evidence = "plan", []
    elif item_key == CHANGES_ITEM:
        kind, evidence = "link", ["https://example.org/careers-i-compared"]
    elif item_key == "register-job-board":
        kind, evidence = "file", [f"/attach {attachment}"]
    else:
        kind, evidence = "reflection", [REFLECTION]
    choice = [kind] if len(kinds) > 1 else []
    return ["/submit", "1", *choice, *evidence, "1"]  # the last "1" is "Send to reviewers"


def item_keys(engine: Engine, user: str) -> list[str]:
    with engine.session_factory() as session:
        learner = session.scalar(select(Learner).where(Learner.platform_user_id == user))
        return [item.item_key for item in learner.items if item.active]


def submission_ids(engine: Engine) -> dict[str, list[int]]:
    with engine.session_factory() as session:
        rows = session.scalars(select(Submission).order_by(Submission.id)).all()
        found: dict[str, list[int]] = {}
        for row in rows:
            found.setdefault(row.item.item_key, []).append(row.id)
        return found


def journey(engine: Engine, session: Callable[[str, list[str]], str], attachment: Path) -> dict[str, str]:
    """Run the whole journey with ``session(user, lines)`` and return each session's output."""
    outputs = {"plan": session("ana", plan_lines() + ["/pathway"])}
    keys = item_keys(engine, "ana")
    lines = [line for key in keys for line in evidence_lines(engine, key, attachment)]
    outputs["submit"] = session("ana", lines + ["/badges"])

    ids = submission_ids(engine)
    review_lines = ["/queue"]
    for key in keys:
        [submission_id] = ids[key]
        if key == CHANGES_ITEM:
            review_lines += [f"/review {submission_id}", "2", "1", "2", "1", FEEDBACK]
        else:
            review_lines += [f"/review {submission_id}", "1"]
    outputs["review"] = session("reviewer", review_lines)

    outputs["resubmit"] = session("ana", ["/pathway", *evidence_lines(engine, CHANGES_ITEM, attachment)])
    [_, second_id] = submission_ids(engine)[CHANGES_ITEM]
    outputs["second_review"] = session("reviewer", [f"/review {second_id}", "1"])
    outputs["done"] = session("ana", ["/badges"])
    return outputs


def check_journey(engine: Engine, outputs: dict[str, str]) -> None:
    plan = outputs["plan"]
    assert "Do you agree?" in plan
    assert "Thank you, Ana! Your career action plan is complete" in plan
    assert "Why: You rated Critical Thinking 2/5" in plan

    assert plan.count("[reviewer channel]") == 0
    submitted = outputs["submit"]
    assert submitted.count("Sent! Your evidence for") == 10
    assert "Link: https://example.org/careers-i-compared" in submitted
    assert "File profile.png (1 KB, SHA-256 " in submitted

    review = outputs["review"]
    assert "You are set up as a reviewer" in review
    assert "10 submission(s) waiting for review" in review
    assert "[reviewer channel] Submission #1 from Ana" in review
    assert "criterion 1 of 3" in review
    assert "write your feedback for submission" in review
    assert review.count("Approved by reviewer at") >= 9

    resubmit = outputs["resubmit"]
    assert "A reviewer asked for changes to Explore career options" in resubmit
    assert FEEDBACK in resubmit
    assert "Describes at least two careers or fields, with something specific learned about each.: Not met" in resubmit
    assert "Names the career assessment taken or the research method used" in resubmit
    assert "[!] Explore career options - changes requested" in resubmit
    assert "Good news: your evidence for Use career services was approved." in resubmit
    assert "You earned the badge: Career Prepared Level 2 - Training and Practice!" in resubmit
    assert "You earned the badge: Career Prepared!" not in resubmit

    second = outputs["second_review"]
    assert "Earlier decisions on this item:\n- Changes requested by reviewer on" in second
    assert FEEDBACK in second

    done = outputs["done"]
    assert "Good news: your evidence for Explore career options was approved." in done
    assert "You earned the badge: Career Prepared Level 1 - Introduction and Foundation!" in done
    assert "You earned the badge: Career Prepared! Type /badges" in done
    assert "(none left; you have earned them all)" in done

    with engine.session_factory() as session:
        submissions = session.scalars(select(Submission).order_by(Submission.id)).all()
        decisions = session.scalars(select(ReviewDecision).order_by(ReviewDecision.id)).all()
        awards = session.scalars(select(BadgeAward)).all()
        assert len(submissions) == 11
        assert [entry.status for entry in submissions].count("approved") == 10
        assert [entry.status for entry in submissions].count("changes_requested") == 1
        assert len(decisions) == 11
        assert all(entry.reviewer_key == "console:reviewer" for entry in decisions)
        change = next(entry for entry in decisions if entry.decision == "changes_requested")
        assert change.feedback == FEEDBACK
        assert change.criteria == {"method-named": True, "careers-compared": False, "fit-explained": True}
        assert sorted(award.kind for award in awards).count("macro") == 1
        assert len(awards) == 9 + 1 + 3 + 1


@pytest.fixture
def attachment(tmp_path: Path) -> Path:
    path = tmp_path / "profile.png"
    path.write_bytes(PNG * 16)
    return path


def test_console_journey_to_macro_badge(engine, attachment):
    outputs = journey(engine, lambda user, lines: run_console(engine, user, lines), attachment)

    check_journey(engine, outputs)


def test_cli_chat_journey_to_macro_badge(tmp_path, attachment):
    data_dir = tmp_path / "cli-data"
    config = tmp_path / "careerbot.yaml"
    config.write_text("reviewers: [console:reviewer]\nreviewer_chats: {console: reviewers}\n", encoding="utf-8")
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CAREERBOT_")}
    environ["PYTHONPATH"] = str(SOURCE_ROOT)  # run the code under test, whichever checkout it is in

    def session(user: str, lines: list[str]) -> str:
        result = subprocess.run(
            [str(CAREERBOT), "chat", "--user", user, "--config", str(config), "--data-dir", str(data_dir)],
            input="".join(f"{line}\n" for line in lines), capture_output=True, text=True, env=environ,
            timeout=120, check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return result.stdout

    session("ana", [])  # creates the database
    engine = build_engine(load_settings(config, environ={}, data_dir=data_dir))
    try:
        check_journey(engine, journey(engine, session, attachment))
    finally:
        engine.session_factory.kw["bind"].dispose()


# --- converting lines and printing replies ------------------------------------------------


def console(engine: Engine, user: str = "ana") -> tuple[ConsoleChat, io.StringIO]:
    stdout = io.StringIO()
    return ConsoleChat(engine, user, stdin=io.StringIO(""), stdout=stdout), stdout


def test_number_picks_last_buttons(engine):
    chat, stdout = console(engine)
    chat.handle(chat.to_event("hello"))

    event = chat.to_event("2")

    assert "  1) I agree\n  2) No, not now\n" in stdout.getvalue()
    assert event.action == "consent:decline"
    assert event.text is None


def test_listed_choices_printed_once(engine):
    Chat(engine).finish_plan()
    chat, stdout = console(engine)

    chat.handle(chat.to_event("/submit"))
    event = chat.to_event("2")

    output = stdout.getvalue()
    assert "1. Level 1: Use career services" in output
    assert "  1) Level 1: Use career services" not in output
    assert event.action == chat.last_buttons[1].action


@pytest.mark.parametrize("text, listed", [
    ("Pick one:\n1. Alpha\n2. Beta gamma delta", True),
    ("Pick one:\n1. Alpha\n2. Beta", True),
    ("Pick one:\n1. Alpha", False),
    ("Pick one:\n1. Beta\n2. Alpha", False),
    ("Alpha\nBeta", False),
])
def test_lists_buttons_cases(text, listed):
    buttons = (Button("Alpha", "a"), Button("Beta", "b"))

    assert lists_buttons(text, buttons) is listed


@pytest.mark.parametrize("line", ["3", "0", "²", "9" * 5000, "1.5"])
def test_other_numbers_are_text(engine, line):
    chat, _ = console(engine)
    chat.handle(chat.to_event("hello"))

    event = chat.to_event(line)

    assert event.action is None
    assert event.text == line


def test_number_without_buttons_is_text(engine):
    chat, _ = console(engine)

    assert chat.to_event("1").text == "1"


def test_attach_reads_file(engine, attachment):
    chat, _ = console(engine)

    event = chat.to_event(f"/attach {attachment}")

    assert event.attachment.filename == "profile.png"
    assert event.attachment.content_type == "image/png"
    assert event.attachment.data == attachment.read_bytes()
    assert event.attachment.size == len(attachment.read_bytes())


def test_attach_missing_file(engine, tmp_path):
    chat, stdout = console(engine)

    event = chat.to_event(f"/attach {tmp_path / 'nothing.pdf'}")

    assert "No file at" in stdout.getvalue()
    assert event is None


def test_attach_missing_file_gets_one_reply(engine, tmp_path):
    Chat(engine).finish_plan()

    output = run_console(engine, "ana", [f"/attach {tmp_path / 'nothing.pdf'}", "/attach"])

    assert output.count("(terminal) No file at") == 2
    assert engine.flows.texts("invalid_empty") not in output


def test_help_lists_terminal_commands(engine):
    Chat(engine).finish_plan()

    output = run_console(engine, "ana", ["/help"])

    assert output.rstrip().endswith(TERMINAL_HELP)


class IdleInput(io.StringIO):
    """Standard input where the user types nothing until ``typed`` is set, then leaves."""

    def __init__(self) -> None:
        super().__init__()
        self.typed = threading.Event()

    def readline(self, *args) -> str:
        self.typed.wait(10)
        return ""


def test_idle_session_prints_decision(engine, monkeypatch):
    monkeypatch.setattr(console_adapter, "POLL_SECONDS", 0.02)
    ana = Chat(engine)
    ana.finish_plan()
    submission_id = ana.submit_reflection("use-career-services")
    stdin, stdout = IdleInput(), io.StringIO()
    session = ConsoleChat(engine, "ana", stdin=stdin, stdout=stdout)
    runner = threading.Thread(target=session.run, kwargs={"live": True})
    runner.start()

    Chat(engine, "reviewer").press(f"rv:a:{submission_id}")
    deadline = time.monotonic() + 10
    while "was approved" not in stdout.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    stdin.typed.set()
    runner.join(10)

    assert "Good news: your evidence for Use career services was approved." in stdout.getvalue()
    assert not runner.is_alive()


def test_attach_prefix_is_text(engine):
    chat, _ = console(engine)

    event = chat.to_event("/attachment please")

    assert event.text == "/attachment please"
    assert event.attachment is None


def test_reviewer_number_picks_card_button(engine):
    Chat(engine).finish_plan()
    submission_id = Chat(engine).submit_reflection("use-career-services")

    output = run_console(engine, "reviewer", ["1"])

    assert "[reviewer channel] Submission #1 from Ana" in output
    assert "Approved by reviewer at" in output
    with engine.session_factory() as session:
        assert session.get(Submission, submission_id).status == "approved"


def test_learner_does_not_see_reviewer_channel(engine):
    Chat(engine).finish_plan()
    Chat(engine).submit_reflection("use-career-services")

    output = run_console(engine, "ana", [])

    assert "[reviewer channel]" not in output
    assert "Welcome back, Ana!" in output


def test_export_saved_to_data_dir(engine, settings):
    Chat(engine).finish_plan()

    output = run_console(engine, "ana", ["/export"])

    saved = list((settings.data_dir / "exports" / "ana").glob("*-careerbot-export.json"))
    assert len(saved) == 1
    assert f"careerbot-export.json saved to {saved[0]}" in output
    assert '"name": "Ana"' in saved[0].read_text(encoding="utf-8")


def test_forget_deletes_saved_exports(engine, settings):
    Chat(engine).finish_plan()
    Chat(engine, "ana/b").finish_plan()
    run_console(engine, "ana/b", ["/export"])

    run_console(engine, "ana", ["/export", "/forget", "1"])

    exports = settings.data_dir / "exports"
    assert not (exports / "ana").exists()
    assert len(list((exports / "ana%2Fb").glob("*-careerbot-export.json"))) == 1


def test_quit_stops_reading(engine):
    output = run_console(engine, "ana", ["/quit", "1"])

    assert "Do you agree?" in output
    with engine.session_factory() as session:
        assert session.scalar(select(Learner.consented_at)) is None


def test_replies_marked_sent(engine):
    from bot import outbox

    run_console(engine, "ana", ["1", "Ana"])

    assert outbox.claim_pending(engine.session_factory, "console", chat_id="ana") == []


def test_ephemeral_for_other_user_not_printed(engine):
    chat, stdout = console(engine, "bo")
    Chat(engine, "ana").answer_until("name")
    Chat(engine, "ana", chat_id="bo").press("rv:a:1")

    chat.deliver()

    assert "Only configured reviewers" not in stdout.getvalue()


# --- nasty piped input ----------------------------------------------------------------------


NASTY_LINES = ["", "   ", "/", "/nope", "/attach", "/attach /nonexistent", "/attach /", "x" * 30000, "\x00\x1b[2J",
               "1", "Zoë 😀 <b>&amp;</b>", "/back", "/skip", "99", "-1", "0", "1.5", "/plan", "/forget", "2"]


@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_cli_chat_survives_nasty_input(tmp_path, encoding):
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CAREERBOT_")}
    environ.update(PYTHONPATH=str(SOURCE_ROOT), PYTHONIOENCODING=encoding)
    typed = "".join(f"{line}\n" for line in NASTY_LINES).encode("utf-8") + b"Zo\xeb\xff\n/plan\n"

    result = subprocess.run(
        [str(CAREERBOT), "chat", "--user", "ana", "--data-dir", str(tmp_path / "data")],
        input=typed, capture_output=True, env=environ, timeout=120, check=False,
    )

    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert b"Traceback" not in result.stderr
    assert b"Traceback" not in result.stdout
    last_question = result.stdout.rsplit(b"\nQuestion ", 1)[-1]
    assert last_question.startswith(b"3 of 20\n\nWhat is your email address?")
