"""Database tables, in SQLAlchemy 2.0 declarative style.

Every timestamp is timezone-aware UTC. The schema itself is created and
changed by the Alembic migrations in ``bot/migrations``; these classes must
match them (a test compares the two).
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always returned timezone-aware.

    SQLite has no time zone type, so values are normalised to UTC on the way in
    and tagged as UTC on the way out; PostgreSQL stores ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}; pass a timezone-aware value")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Learner(Base):
    """A person on one platform, with their place in the conversation and their plan."""

    __tablename__ = "learners"
    __table_args__ = (UniqueConstraint("platform", "platform_user_id", name="uq_learners_platform_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    platform_user_id: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(64))
    return_state: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    campus: Mapped[str | None] = mapped_column(String(40), index=True)
    timezone: Mapped[str | None] = mapped_column(String(64))
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    consented_at: Mapped[datetime | None]
    plan_completed_at: Mapped[datetime | None]
    reminders_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    unreachable_since: Mapped[datetime | None]
    start_parameter: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    share_name_on_badges: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    share_files_on_badges: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    items: Mapped[list[PathwayItem]] = relationship(
        back_populates="learner", cascade="all, delete-orphan", order_by="PathwayItem.position"
    )
    awards: Mapped[list[BadgeAward]] = relationship(back_populates="learner", cascade="all, delete-orphan")

    @property
    def user_key(self) -> str:
        return f"{self.platform}:{self.platform_user_id}"

    def __repr__(self) -> str:
        return f"Learner(id={self.id}, {self.platform}:{self.platform_user_id}, state={self.state!r})"


class PathwayItem(Base):
    """One item on a learner's personalized pathway.

    ``status`` is ``open``, ``submitted``, ``changes_requested`` or ``approved``.
    An item that a plan change removed keeps its row with ``active`` false, so
    approved work and its history are never lost.
    """

    __tablename__ = "pathway_items"
    __table_args__ = (UniqueConstraint("learner_id", "item_key", name="uq_pathway_items_learner_item"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id", ondelete="CASCADE"), index=True)
    item_key: Mapped[str] = mapped_column(String(64))
    level: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    target_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(24), default="open")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    criteria_met: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    approved_at: Mapped[datetime | None]

    learner: Mapped[Learner] = relationship(back_populates="items")

    def __repr__(self) -> str:
        return f"PathwayItem(id={self.id}, {self.item_key!r}, status={self.status!r})"


class Submission(Base):
    """Evidence for one pathway item: a draft, then a submission awaiting review.

    ``status`` is ``draft``, ``pending``, ``approved`` or ``changes_requested``.
    """

    __tablename__ = "submissions"
    __table_args__ = (Index("ix_submissions_status_submitted", "status", "submitted_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("pathway_items.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24), default="draft")
    text: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(2048))
    file_name: Mapped[str | None] = mapped_column(String(255))
    file_type: Mapped[str | None] = mapped_column(String(128))
    file_size: Mapped[int | None] = mapped_column(Integer)
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]

    item: Mapped[PathwayItem] = relationship()
    learner: Mapped[Learner] = relationship()
    decision: Mapped[ReviewDecision | None] = relationship(back_populates="submission", uselist=False)

    def __repr__(self) -> str:
        return f"Submission(id={self.id}, item_id={self.item_id}, status={self.status!r})"


class ReviewDecision(Base):
    """A reviewer's decision on one submission; the unique key makes the first one win."""

    __tablename__ = "review_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), unique=True
    )
    reviewer_key: Mapped[str] = mapped_column(String(96))
    reviewer_name: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(24))
    criteria: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    feedback: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)

    submission: Mapped[Submission] = relationship(back_populates="decision")

    def __repr__(self) -> str:
        return f"ReviewDecision(submission_id={self.submission_id}, {self.decision!r} by {self.reviewer_key!r})"


class ReviewDraft(Base):
    """A change request a reviewer has started: criteria judged so far, feedback still to come."""

    __tablename__ = "review_drafts"
    __table_args__ = (UniqueConstraint("reviewer_key", "chat_id", name="uq_review_drafts_reviewer_chat"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reviewer_key: Mapped[str] = mapped_column(String(96))
    chat_id: Mapped[str] = mapped_column(String(64))
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    criteria: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"ReviewDraft({self.reviewer_key!r}, submission_id={self.submission_id})"


class BadgeAward(Base):
    """A badge a learner earned: an item, a level, a skill, or the macro-badge."""

    __tablename__ = "badge_awards"
    __table_args__ = (UniqueConstraint("learner_id", "badge_key", name="uq_badge_awards_learner_badge"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id", ondelete="CASCADE"), index=True)
    badge_key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    awarded_at: Mapped[datetime] = mapped_column(default=utcnow)

    learner: Mapped[Learner] = relationship(back_populates="awards")
    assertion: Mapped[BadgeAssertion | None] = relationship(
        back_populates="award", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"BadgeAward(learner_id={self.learner_id}, {self.badge_key!r})"


class BadgeAssertion(Base):
    """The Open Badges assertion issued for one award, published under its random ``uid``.

    An award waits without an assertion until the learner has an email address.
    ``recipient_hash`` is ``sha256$`` + hex(SHA-256(lowercased email + salt)).
    ``evidence`` is a snapshot taken at issue time of the approved submissions
    (or, for the macro-badge, of the level assertions) that the award rests on.
    """

    __tablename__ = "badge_assertions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    award_id: Mapped[int] = mapped_column(ForeignKey("badge_awards.id", ondelete="CASCADE"), unique=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id", ondelete="CASCADE"), index=True)
    badge_key: Mapped[str] = mapped_column(String(64))
    recipient_hash: Mapped[str] = mapped_column(String(80))
    salt: Mapped[str] = mapped_column(String(64))
    issued_on: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    evidence: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    revocation_reason: Mapped[str | None] = mapped_column(Text)
    revoked_by: Mapped[str | None] = mapped_column(String(96))

    award: Mapped[BadgeAward] = relationship(back_populates="assertion")

    def __repr__(self) -> str:
        return f"BadgeAssertion({self.uid!r}, {self.badge_key!r}, revoked={self.revoked_at is not None})"


class CredentialStatus(Base):
    """An assertion's entry in the revocation status list that its Open Badges 3.0 credential names.

    ``status_list_index`` is the assertion's bit in the W3C Bitstring Status List,
    chosen at random (``bot.status_list``). The row has no foreign key to
    ``badge_assertions``, so it outlives the assertion: when /forget deletes a
    learner's assertions, their rows get ``revoked_at``, and credentials already
    downloaded show as revoked. It stores no personal data, only the random ``uid``.
    """

    __tablename__ = "credential_status"

    status_list_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    assertion_uid: Mapped[str] = mapped_column(String(36), unique=True)
    allocated_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    revocation_reason: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:
        return (f"CredentialStatus({self.status_list_index}, {self.assertion_uid!r}, "
                f"revoked={self.revoked_at is not None})")


class ChatMigration(Base):
    """A chat that the platform moved to a new id, such as a Telegram group upgraded to a supergroup."""

    __tablename__ = "chat_migrations"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    old_chat_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    new_chat_id: Mapped[str] = mapped_column(String(64))
    migrated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"ChatMigration({self.platform}:{self.old_chat_id} -> {self.new_chat_id})"


class ProcessedUpdate(Base):
    """An inbound update already handled; its key turns a redelivery into a no-op.

    ``bot.housekeeping`` deletes rows older than ``processed_update_retention_days``.
    """

    __tablename__ = "processed_updates"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    update_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    handled_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    def __repr__(self) -> str:
        return f"ProcessedUpdate({self.platform}:{self.update_id})"


class OutboxMessage(Base):
    """A message written in the same transaction as the state change that caused it.

    ``status`` is ``pending``, ``sent`` or ``failed``. Delivery happens after
    commit, so a crash before commit sends nothing and one after it resends at
    most the messages not yet marked sent.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "platform", "status", "available_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    learner_id: Mapped[int | None] = mapped_column(ForeignKey("learners.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(24), default="reply")
    ref: Mapped[str | None] = mapped_column(String(64), index=True)
    edit_ref: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    platform_message_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"OutboxMessage(id={self.id}, {self.platform}:{self.chat_id}, status={self.status!r})"


class Nudge(Base):
    """One reminder or coordinator message to one person: the audit trail of nudges.

    ``source`` is ``rule`` (``rule_id`` names the rule of ``nudges.yaml``) or
    ``coordinator`` (``sent_by`` is the coordinator's platform:user_id, and
    ``batch_id`` the segment message it belongs to, if any). A reviewer
    reminder goes to a chat and has no ``learner_id``. ``subject`` is what the
    nudge is about, such as ``item:12``. The delivery result is the status of
    the outbox row ``outbox_id``; a rule nudge withdrawn before delivery,
    because the learner wrote in the meantime, has ``withdrawn_at`` set and no
    outbox row. ``replied_at`` is the learner's first message after it.
    """

    __tablename__ = "nudges"
    __table_args__ = (
        Index("ix_nudges_rule_learner", "rule_id", "learner_id", "available_at"),
        Index("ix_nudges_rule_chat", "rule_id", "chat_id", "available_at"),
        Index("ix_nudges_learner_replied", "learner_id", "replied_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    rule_id: Mapped[str | None] = mapped_column(String(40))
    sent_by: Mapped[str | None] = mapped_column(String(96))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("nudge_batches.id", ondelete="SET NULL"), index=True)
    learner_id: Mapped[int | None] = mapped_column(ForeignKey("learners.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(64), default="")
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    available_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]
    replied_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        origin = self.rule_id if self.source == "rule" else self.sent_by
        return f"Nudge(id={self.id}, {self.source}:{origin} -> {self.platform}:{self.chat_id})"


class NudgeBatch(Base):
    """A coordinator's message to a segment of learners, previewed before it is sent.

    ``status`` is ``preview`` (waiting for the coordinator to confirm),
    ``sent`` or ``cancelled``. ``segment`` is the filter in its normal form;
    the learners are selected again when the coordinator confirms.
    """

    __tablename__ = "nudge_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_by: Mapped[str] = mapped_column(String(96))
    created_by_name: Mapped[str] = mapped_column(String(200))
    segment: Mapped[str] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="preview")
    preview_count: Mapped[int] = mapped_column(Integer, default=0)
    queued_count: Mapped[int] = mapped_column(Integer, default=0)
    skipped_paused: Mapped[int] = mapped_column(Integer, default=0)
    skipped_unreachable: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"NudgeBatch(id={self.id}, {self.segment!r}, status={self.status!r})"


class NudgeRuleState(Base):
    """The stored state of one rule of ``nudges.yaml``: whether it is paused, and its last run."""

    __tablename__ = "nudge_rule_states"

    rule_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_by: Mapped[str | None] = mapped_column(String(96))
    changed_at: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    last_queued: Mapped[int] = mapped_column(Integer, default=0)

    def __repr__(self) -> str:
        return f"NudgeRuleState({self.rule_id!r}, paused={self.paused})"


class EvaluationRequest(Base):
    """A learner's request that their work supervisor evaluate them through a one-time web link.

    Only the SHA-256 of the link's token is stored. ``status`` is ``pending``
    (the link works until ``expires_at``), ``completed`` (the supervisor sent
    the form, and ``submission_id`` is the evidence it became) or ``revoked``
    (``revoked_reason`` says by whom: ``learner``, ``coordinator``, ``resent``
    or ``replaced`` by a newer request for the same item).
    """

    __tablename__ = "evaluation_requests"
    __table_args__ = (Index("ix_evaluation_requests_status_created", "status", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("pathway_items.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    supervisor_name: Mapped[str] = mapped_column(String(200))
    supervisor_organization: Mapped[str] = mapped_column(String(200))
    supervisor_email: Mapped[str] = mapped_column(String(254))
    placement_start: Mapped[date] = mapped_column(Date)
    placement_end: Mapped[date] = mapped_column(Date)
    created_by: Mapped[str] = mapped_column(String(96))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    emailed_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(96))
    revoked_reason: Mapped[str | None] = mapped_column(String(16))
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id", ondelete="SET NULL"))
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    learner: Mapped[Learner] = relationship()
    item: Mapped[PathwayItem] = relationship()

    def __repr__(self) -> str:
        return f"EvaluationRequest(id={self.id}, learner_id={self.learner_id}, status={self.status!r})"
