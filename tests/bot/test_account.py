"""What learners do with their own record: /export, /forget, /stop and /start."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from bot import outbox
from bot.events import Attachment
from bot.files import file_path
from bot.models import BadgeAward, Learner, OutboxMessage, PathwayItem, ReviewDecision, ReviewDraft, Submission
from tests.bot.scripted import Chat, approve, find_item

TABLES = (Learner, PathwayItem, Submission, ReviewDecision, ReviewDraft, BadgeAward)


def count(engine, model, *conditions) -> int:
    with engine.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model).where(*conditions))


def send_file(chat: Chat, item_key: str, data: bytes) -> int:
    item = find_item(chat.engine, chat.user, item_key)
    chat.send("/submit")
    chat.press(f"submit_item:{item.id}")
    chat.press("submit_kind:file")
    chat.send(attachment=Attachment(filename="proof.pdf", content_type="application/pdf", size=len(data), data=data))
    chat.press("submit_confirm:send")
    with chat.engine.session_factory() as session:
        return session.scalar(select(func.max(Submission.id)))


@pytest.fixture
def ana(engine) -> Chat:
    chat = Chat(engine)
    chat.finish_plan()
    return chat


def test_export_contains_everything(engine, ana):
    first = ana.submit_reflection("use-career-services")
    approve(engine, first)
    Chat(engine, "reviewer").press(f"rv:c:{ana.submit_reflection('register-job-board')}")

    messages = ana.send("/export")

    document = messages[0].document
    assert messages[0].text == "Here is everything careerbot stores about you."
    assert document.filename == "careerbot-export.json"
    assert document.content_type == "application/json"
    record = json.loads(document.content)
    assert record["name"] == "Ana"
    assert record["email"] == "ana@example.edu"
    assert record["campus"] == "north-campus"
    assert record["timezone"] == "Europe/London"
    assert record["consented_at"]
    assert record["answers"]["target_role"] == "software developer"
    assert record["answers"]["ratings.critical-thinking"] == 2
    assert len([item for item in record["pathway"] if item["active"]]) == 10
    assert record["pathway"][0]["reason"]
    assert [entry["status"] for entry in record["submissions"]] == ["approved", "pending"]
    assert record["submissions"][0]["decision"]["decision"] == "approved"
    assert record["submissions"][0]["text"].startswith("I met a career adviser")
    assert [badge["name"] for badge in record["badges"]] == ["Use career services"]
    assert "Next step" in ana.texts()[-1]


def test_export_keeps_unicode(engine):
    chat = Chat(engine)
    chat.finish_plan(name="王小明 سارة")

    record = json.loads(chat.send("/export")[0].document.content)

    assert record["name"] == "王小明 سارة"


def test_forget_asks_confirmation(ana):
    ana.send("/forget")

    assert ana.state() == "forget_confirm"
    assert "cannot be undone" in ana.texts()[0]
    assert [button.action for button in ana.last.messages[0].buttons] == [
        "forget_confirm:delete", "forget_confirm:keep"]


def test_forget_keep_returns_to_question(engine):
    chat = Chat(engine)
    chat.answer_until("values")
    chat.send("/forget")

    chat.send("maybe")
    assert chat.state() == "forget_confirm"
    chat.press("forget_confirm:keep")

    assert chat.texts()[0] == "Nothing was deleted."
    assert chat.state() == "values"
    assert "What matters most to you" in chat.texts()[-1]
    assert count(engine, Learner) == 1


def test_forget_keep_during_edit_resumes_edit(ana):
    ana.send("/edit 2")
    assert ana.state() == "email"
    ana.send("/forget")

    ana.press("forget_confirm:keep")

    assert ana.state() == "email"
    assert "Your current answer: ana@example.edu" in ana.texts()[-1]
    ana.send("new@example.edu")
    assert ana.state() == "home"
    assert ana.learner().email == "new@example.edu"
    assert ana.learner().context.get("editing") is None


def test_forget_deletes_everything(engine, ana, settings):
    data = b"%PDF-1.4 ana's confirmation"
    first = send_file(ana, "use-career-services", data)
    approve(engine, first)
    second = ana.submit_reflection("register-job-board")
    Chat(engine, "reviewer").press(f"rv:c:{second}")
    bo = Chat(engine, "bo")
    bo.finish_plan(name="Bo")
    stored = file_path(settings.files_dir, file_digest(engine, first))
    assert stored.exists()

    ana.send("/forget")
    messages = ana.press("forget_confirm:delete")

    assert "Everything about you has been deleted" in messages[-1].text
    for model in TABLES:
        assert count(engine, model, *owner_filter(model, bo)) == count(engine, model), model.__name__
    assert count(engine, OutboxMessage, OutboxMessage.chat_id == "ana", OutboxMessage.learner_id.is_not(None)) == 0
    assert not stored.exists()
    assert bo.learner() is not None
    ana.send("hello again")
    assert "I'm careerbot" in ana.texts()[0]
    assert ana.state() == "consent"


def test_forget_scrubs_review_cards(engine, ana):
    submission_id = ana.submit_reflection("use-career-services")
    with engine.session_factory.begin() as session:
        card = session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "review_card"))
        card.status = "sent"
        card.platform_message_id = "m-1"

    ana.send("/forget")
    messages = ana.press("forget_confirm:delete")

    with engine.session_factory() as session:
        payloads = [row.payload for row in session.scalars(select(OutboxMessage))]
    assert not any("Ana" in json.dumps(payload) for payload in payloads)
    assert not any("career adviser" in json.dumps(payload) for payload in payloads)
    edit = next(message for message in messages if message.edit_ref == f"submission:{submission_id}")
    assert edit.chat_id == "reviewers"
    assert f"Submission #{submission_id} was withdrawn" in edit.text
    Chat(engine, "reviewer").press(f"rv:a:{submission_id}")
    assert count(engine, ReviewDecision) == 0


def reviewer_views_of(engine, submission_id: int) -> None:
    """A reviewer lists the queue and opens the submission in a private chat with the bot."""
    reviewer = Chat(engine, "reviewer", display_name="Rita")
    reviewer.send("/queue")
    reviewer.send(f"/review {submission_id}")


def payloads_mentioning(engine, *words: str) -> list[dict]:
    with engine.session_factory() as session:
        payloads = [row.payload for row in session.scalars(select(OutboxMessage))]
    return [payload for payload in payloads if any(word in json.dumps(payload) for word in words)]


def test_forget_scrubs_sent_reviewer_views(engine, ana):
    submission_id = ana.submit_reflection("use-career-services")
    reviewer_views_of(engine, submission_id)
    for outbox_id, _ in outbox.claim_pending(engine.session_factory, "console"):
        outbox.mark_sent(engine.session_factory, outbox_id, platform_message_id=f"m-{outbox_id}")

    ana.send("/forget")
    ana.press("forget_confirm:delete")

    assert payloads_mentioning(engine, "Ana", "career adviser") == []


def test_forget_drops_pending_reviewer_views(engine, ana):
    submission_id = ana.submit_reflection("use-career-services")
    reviewer_views_of(engine, submission_id)

    ana.send("/forget")
    ana.press("forget_confirm:delete")

    assert payloads_mentioning(engine, "Ana", "career adviser") == []
    assert count(engine, OutboxMessage, OutboxMessage.chat_id == "reviewer") == 0


def test_reviewer_view_kept_for_other_learner(engine, ana):
    submission_id = ana.submit_reflection("use-career-services")
    bo = Chat(engine, "bo")
    bo.finish_plan(name="Bo")
    bo.submit_reflection("use-career-services")
    reviewer_views_of(engine, submission_id)

    bo.send("/forget")
    bo.press("forget_confirm:delete")

    with engine.session_factory() as session:
        [view] = session.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == "reviewer")).all()
    assert view.payload["text"].startswith(f"Submission #{submission_id} from Ana")


def test_forget_unsent_card_never_delivered(engine, ana):
    ana.submit_reflection("use-career-services")

    ana.send("/forget")
    ana.press("forget_confirm:delete")

    assert count(engine, OutboxMessage, OutboxMessage.chat_id == "reviewers") == 0


def test_forget_keeps_file_still_used(engine, ana, settings):
    data = b"%PDF-1.4 shared template"
    bo = Chat(engine, "bo")
    bo.finish_plan(name="Bo")
    first = send_file(ana, "use-career-services", data)
    send_file(bo, "use-career-services", data)
    stored = file_path(settings.files_dir, file_digest(engine, first))

    ana.send("/forget")
    ana.press("forget_confirm:delete")
    assert stored.exists()

    bo.send("/forget")
    bo.press("forget_confirm:delete")
    assert not stored.exists()


def test_forget_deletes_draft_file(engine, ana, settings):
    item = find_item(engine, "ana", "use-career-services")
    data = b"%PDF-1.4 draft only"
    ana.send("/submit")
    ana.press(f"submit_item:{item.id}")
    ana.press("submit_kind:file")
    ana.send(attachment=Attachment(filename="draft.pdf", content_type="application/pdf", size=len(data), data=data))
    with engine.session_factory() as session:
        digest = session.scalar(select(Submission.file_sha256))

    ana.send("/forget")
    ana.press("forget_confirm:delete")

    assert not file_path(settings.files_dir, digest).exists()


def test_forget_before_consent(engine):
    chat = Chat(engine)
    chat.send("hi")

    chat.send("/forget")
    chat.press("forget_confirm:delete")

    assert count(engine, Learner) == 0


def test_stop_and_start_toggle_reminders(ana):
    ana.send("/stop")
    assert ana.learner().reminders_paused
    assert "Reminders are paused" in ana.texts()[0]
    assert ana.state() == "home"

    ana.send("/start")
    assert not ana.learner().reminders_paused
    assert ana.texts()[0] == "Reminders are back on."

    ana.send("/start")
    assert ana.texts()[0] == "Welcome back, Ana! Here is where we left off."


def test_stop_mid_question_keeps_place(engine):
    chat = Chat(engine)
    chat.answer_until("values")

    chat.send("/stop")

    assert chat.learner().reminders_paused
    assert chat.state() == "values"
    assert "What matters most to you" in chat.texts()[-1]


def test_start_parameter_stored(engine):
    chat = Chat(engine)
    chat.answer_until("name")

    chat.send("/start campus-fair-2026")

    assert chat.learner().start_parameter == "campus-fair-2026"


def file_digest(engine, submission_id: int) -> str:
    with engine.session_factory() as session:
        return session.get(Submission, submission_id).file_sha256


def owner_filter(model, chat: Chat) -> tuple:
    """Rows that belong to ``chat``'s learner, for the tables that name a learner."""
    learner_id = chat.learner().id
    if model is Learner:
        return (Learner.id == learner_id,)
    if model in (PathwayItem, Submission, BadgeAward):
        return (model.learner_id == learner_id,)
    if model is ReviewDecision:
        return (ReviewDecision.submission_id.in_(select(Submission.id).where(Submission.learner_id == learner_id)),)
    return (ReviewDraft.submission_id.in_(select(Submission.id).where(Submission.learner_id == learner_id)),)
