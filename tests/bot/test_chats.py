"""Chat migrations and unreachable learners, and how the outbox treats them."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select

from bot import chats, outbox
from bot.models import ChatMigration, Learner, OutboxMessage, PathwayItem, ReviewDraft, Submission
from tests.conftest import make_event


def add_row(engine, chat_id: str, *, learner_id: int | None = None, status: str = "pending") -> int:
    now = datetime.now(timezone.utc)
    with engine.session_factory() as session, session.begin():
        row = OutboxMessage(platform="console", chat_id=chat_id, learner_id=learner_id, payload={"text": "hi"},
                            status=status, attempts=0, kind="reply", created_at=now, available_at=now)
        session.add(row)
        session.flush()
        return row.id


def learner_id(engine, user: str) -> int:
    with engine.session_factory() as session:
        return session.scalar(select(Learner.id).where(Learner.platform_user_id == user))


def test_record_migration_moves_pending_rows(engine):
    pending = add_row(engine, "-100")
    sent = add_row(engine, "-100", status="sent")

    moved = chats.record_migration(engine.session_factory, "console", "-100", "-200")

    assert moved == 1
    with engine.session_factory() as session:
        assert session.get(OutboxMessage, pending).chat_id == "-200"
        assert session.get(OutboxMessage, sent).chat_id == "-100"


def test_record_migration_repeated_is_noop(engine):
    chats.record_migration(engine.session_factory, "console", "-100", "-200")

    assert chats.record_migration(engine.session_factory, "console", "-100", "-200") == 0
    with engine.session_factory() as session:
        assert len(session.scalars(select(ChatMigration)).all()) == 1


def test_record_migration_moves_open_drafts(engine):
    engine.handle(make_event("ana", "/start"))
    with engine.session_factory() as session, session.begin():
        item = PathwayItem(learner_id=learner_id(engine, "ana"), item_key="use-career-services", level=1,
                           position=1, title="Use career services")
        session.add(item)
        session.flush()
        submission = Submission(learner_id=item.learner_id, item_id=item.id, kind="reflection", status="pending")
        session.add(submission)
        session.flush()
        session.add(ReviewDraft(reviewer_key="console:reviewer", chat_id="-100", submission_id=submission.id,
                                criteria={}))

    chats.record_migration(engine.session_factory, "console", "-100", "-200")

    with engine.session_factory() as session:
        assert session.scalar(select(ReviewDraft.chat_id)) == "-200"


def test_reviewer_chat_follows_migrations(engine, settings):
    configured = settings.model_copy(update={"reviewer_chats": {"console": "-100"}})
    chats.record_migration(engine.session_factory, "console", "-100", "-200")
    chats.record_migration(engine.session_factory, "console", "-200", "-300")

    with engine.session_factory() as session:
        assert chats.reviewer_chat(session, configured, "console") == "-300"
        assert chats.reviewer_chat(session, configured, "slack") is None
        assert chats.current_chat_id(session, "slack", "-100") == "-100"


def test_migration_loop_stops(engine):
    chats.record_migration(engine.session_factory, "console", "-1", "-2")
    chats.record_migration(engine.session_factory, "console", "-2", "-1")

    with engine.session_factory() as session:
        assert chats.current_chat_id(session, "console", "-1") in ("-1", "-2")


def test_unreachable_learner_rows_wait(engine):
    engine.handle(make_event("ana", "/start"))
    ana = learner_id(engine, "ana")
    for outbox_id, _ in outbox.claim_pending(engine.session_factory, "console"):
        outbox.mark_sent(engine.session_factory, outbox_id)
    waiting = add_row(engine, "ana", learner_id=ana)
    other = add_row(engine, "reviewers")

    assert chats.mark_unreachable(engine.session_factory, "console", "ana")
    assert [row_id for row_id, _ in outbox.claim_pending(engine.session_factory, "console")] == [other]

    assert chats.mark_reachable(engine.session_factory, "console", "ana")
    assert [row_id for row_id, _ in outbox.claim_pending(engine.session_factory, "console")] == [waiting, other]


def test_unreachable_cleared_when_learner_writes(engine):
    engine.handle(make_event("ana", "/start"))
    chats.mark_unreachable(engine.session_factory, "console", "ana")

    engine.handle(make_event("ana", "I agree"))

    with engine.session_factory() as session:
        assert session.scalar(select(Learner.unreachable_since)) is None


def test_mark_unknown_user_returns_false(engine):
    assert not chats.mark_unreachable(engine.session_factory, "console", "nobody")
    assert not chats.mark_reachable(engine.session_factory, "console", "nobody")
