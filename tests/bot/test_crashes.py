"""Engine.handle when a step fails: the learner hears about it and nothing half-done is kept."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bot import dialog, review
from bot.events import Attachment
from bot.files import file_path
from bot.models import Learner, OutboxMessage, ProcessedUpdate
from tests.bot.scripted import Chat, find_item
from tests.conftest import make_event


def count(engine, model) -> int:
    with engine.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def crash_after(monkeypatch, module, name: str, error: Exception) -> None:
    """Make ``module.name`` do its work and then raise ``error``, as a bug after a state change would."""
    real = getattr(module, name)

    def run_then_fail(*args, **kwargs):
        real(*args, **kwargs)
        raise error

    monkeypatch.setattr(module, name, run_then_fail)


def test_handler_crash_answers_and_keeps_nothing(engine, monkeypatch, caplog):
    chat = Chat(engine)
    chat.answer_until("values")
    outbox_before = count(engine, OutboxMessage)
    updates_before = count(engine, ProcessedUpdate)
    crash_after(monkeypatch, dialog, "handle", RuntimeError("simulated crash after the state changed"))

    handled = engine.handle(make_event("ana", "Honesty", update_id="crash-1"))

    assert not handled.duplicate
    [apology] = handled.messages
    assert apology.text == engine.flows.texts("internal_error")
    assert apology.chat_id == "ana"
    assert apology.ephemeral_user is None
    assert len(handled.outbox_ids) == 1
    assert count(engine, OutboxMessage) == outbox_before + 1
    assert count(engine, ProcessedUpdate) == updates_before
    assert chat.state() == "values"
    assert "values" not in chat.learner().answers
    assert "Traceback" not in apology.text
    assert any(record.levelno == logging.ERROR and record.exc_info for record in caplog.records)


def test_handler_crash_redelivery_handled_again(engine, monkeypatch):
    chat = Chat(engine)
    chat.answer_until("values")
    crash_after(monkeypatch, dialog, "handle", RuntimeError("simulated crash"))
    engine.handle(make_event("ana", "Honesty", update_id="crash-2"))
    monkeypatch.undo()

    retried = engine.handle(make_event("ana", "Honesty", update_id="crash-2"))

    assert not retried.duplicate
    assert chat.learner().answers["values"] == "Honesty"
    assert chat.state() == "transferable_skills"


def test_group_crash_answer_is_ephemeral(engine, monkeypatch):
    ana = Chat(engine)
    ana.finish_plan()
    submission_id = ana.submit_reflection("use-career-services")
    crash_after(monkeypatch, review, "handle_action", KeyError("simulated"))

    handled = engine.handle(make_event("reviewer", action=f"rv:a:{submission_id}", chat_id="reviewers",
                                       chat_type="group"))

    [apology] = handled.messages
    assert apology.chat_id == "reviewers"
    assert apology.ephemeral_user == "reviewer"


def test_database_unavailable_still_raises(engine, monkeypatch):
    chat = Chat(engine)
    chat.answer_until("values")
    updates_before = count(engine, ProcessedUpdate)
    outbox_before = count(engine, OutboxMessage)
    unavailable = OperationalError("SELECT 1", {}, Exception("database is locked"))
    crash_after(monkeypatch, dialog, "handle", unavailable)

    with pytest.raises(OperationalError):
        engine.handle(make_event("ana", "Honesty"))

    assert count(engine, ProcessedUpdate) == updates_before
    assert count(engine, OutboxMessage) == outbox_before
    assert chat.state() == "values"


def test_file_delete_failure_after_forget_logged(engine, settings, caplog):
    chat = Chat(engine)
    chat.finish_plan()
    item = find_item(engine, "ana", "use-career-services")
    chat.send("/submit")
    chat.press(f"submit_item:{item.id}")
    chat.press("submit_kind:file")
    data = b"%PDF-1.4 proof"
    chat.send(attachment=Attachment(filename="proof.pdf", content_type="application/pdf", size=len(data), data=data))
    stored = next(path for path in settings.files_dir.rglob("*") if path.is_file())
    stored.unlink()
    stored.mkdir()
    chat.send("/forget")

    messages = chat.press("forget_confirm:delete")

    assert messages[-1].text == engine.flows.texts("forget_done")
    assert count(engine, Learner) == 0
    assert file_path(settings.files_dir, stored.name) == stored
    assert stored.is_dir()
    failures = [record.exc_info[1] for record in caplog.records if record.levelno == logging.ERROR and record.exc_info]
    assert [type(failure) for failure in failures] == [IsADirectoryError]
    assert stored.name in str(failures[0])
