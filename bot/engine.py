"""The core's entry point: handle one inbound event in one database transaction.

``Engine.handle`` claims the event's (platform, update_id), loads and locks the
learner, runs the conversation, and writes the state change and every outbound
message together. Nothing is delivered until the transaction has committed, so
a crash in between sends nothing and a redelivered update changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TypeVar

from sqlalchemy import bindparam, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from bot import commands, dialog, nudge_commands, review
from bot.config import Settings
from bot.conversation import Conversation
from bot.events import InboundEvent, OutboundMessage
from bot.flows import Flows
from bot.metrics import UPDATE_FAILURES, UPDATE_RETRIES, UPDATES_HANDLED
from bot.models import OutboxMessage, ProcessedUpdate
from bot.turn import Turn
from bot.validate import clean_text

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
DATABASE_UNAVAILABLE = (OperationalError, IntegrityError, PoolTimeoutError)
"""Failures that :meth:`Engine.handle` raises, because handling the same update again later can succeed."""

T = TypeVar("T")

# Built once, on the tables rather than the mapped classes, because the ORM's INSERT path is
# slow: moving these two statements to the tables cut the Python calls per message by about a
# fifth (cProfile of the core benchmark's script).
_PROCESSED = ProcessedUpdate.__table__
_OUTBOX = OutboxMessage.__table__
_CLAIM_VALUES = {"platform": bindparam("platform"), "update_id": bindparam("update_id"),
                 "handled_at": bindparam("handled_at")}
_CLAIMS = {
    "sqlite": sqlite.insert(_PROCESSED).values(_CLAIM_VALUES).on_conflict_do_nothing()
    .returning(_PROCESSED.c.update_id),
    "postgresql": postgresql.insert(_PROCESSED).values(_CLAIM_VALUES).on_conflict_do_nothing()
    .returning(_PROCESSED.c.update_id),
}
_INSERT_OUTBOX = insert(_OUTBOX).returning(_OUTBOX.c.id, sort_by_parameter_order=True)


@dataclass(frozen=True)
class HandledEvent:
    """The outcome of one event: whether it was new, and the outbox ids written for it.

    ``action_expired`` is True when the event's button press chose nothing, because
    it belonged to a step already done, so an adapter does not mark the
    pressed button as the user's choice.
    """

    duplicate: bool
    outbox_ids: tuple[int, ...] = ()
    messages: tuple[OutboundMessage, ...] = ()
    action_expired: bool = False


def clean_names(event: InboundEvent) -> InboundEvent:
    """Clean the user's display name and the start parameter as typed text is cleaned, on one line.

    Both come from the platform as the user set them and are stored (a
    reviewer's name with a decision), and PostgreSQL rejects text with NUL.
    """
    display_name = " ".join(clean_text(event.display_name).split()) if event.display_name else None
    start_parameter = clean_text(event.start_parameter) if event.start_parameter else None
    if display_name == event.display_name and start_parameter == event.start_parameter:
        return event
    return replace(event, display_name=display_name or None, start_parameter=start_parameter or None)


class Engine:
    """Platform-neutral handling of inbound events; adapters call :meth:`handle`."""

    def __init__(self, flows: Flows, settings: Settings, session_factory: sessionmaker[Session],
                 clock: Callable[[], datetime] | None = None) -> None:
        self.flows = flows
        self.settings = settings
        self.session_factory = session_factory
        self.conversation = Conversation(flows)
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.handled_hooks: list[Callable[[InboundEvent, HandledEvent], None]] = []
        """Called after each new event's transaction has committed, for example to queue its delivery."""

    def handle(self, event: InboundEvent) -> HandledEvent:
        """Handle ``event`` once; retry on a lost race with another worker.

        Any other failure, such as a bug in a step, is logged and rolls back
        everything the event did. The user is then asked to send it again
        (``internal_error``), and the update stays unclaimed, so a
        redelivery is handled afresh.

        Raises:
            sqlalchemy.exc.OperationalError: the database stayed unavailable.
            sqlalchemy.exc.IntegrityError: the update still conflicted with another worker after retries.
            sqlalchemy.exc.TimeoutError: no database connection was free in time.
        """
        try:
            _, handled = self._run_with_retries(event, self._route)
        except DATABASE_UNAVAILABLE:
            raise
        except Exception as failure:
            logger.exception("update %s:%s from %s failed; nothing was kept", event.platform, event.update_id,
                             event.user_key)
            try:
                handled = self._write_failure_notice(event)
            except Exception:
                logger.exception("the failure notice for update %s:%s was not written", event.platform,
                                 event.update_id)
                raise failure from None
        return handled

    def _write_failure_notice(self, event: InboundEvent) -> HandledEvent:
        """Write only the ``internal_error`` reply for a failed event, in a transaction of its own."""
        message = OutboundMessage(
            platform=event.platform,
            chat_id=event.chat_id,
            text=self.flows.texts("internal_error"),
            ephemeral_user=event.user_id if event.chat_type == "group" else None,
        )
        with self.session_factory() as session:
            with session.begin():
                outbox_id = session.scalars(_INSERT_OUTBOX, [self._outbox_row(message, self.clock())]).one()
        handled = HandledEvent(duplicate=False, outbox_ids=(outbox_id,), messages=(message,))
        self._run_handled_hooks(event, handled)
        return handled

    def run(self, event: InboundEvent, work: Callable[[Turn], T]) -> tuple[T | None, HandledEvent]:
        """Run ``work`` for an event from outside the chats, such as a web form, as :meth:`handle` would.

        Claiming the event, ``work`` and the outbox rows of the messages it made
        share one transaction, so an event with an already claimed
        (platform, update_id) runs nothing and returns ``(None, duplicate)``.

        Raises:
            sqlalchemy.exc.OperationalError: the database stayed unavailable.
        """
        return self._run_with_retries(event, work)

    def _run_with_retries(self, event: InboundEvent, work: Callable[[Turn], T]) -> tuple[T | None, HandledEvent]:
        event = clean_names(event)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return self._handle_once(event, work)
            except (IntegrityError, OperationalError) as exc:
                if attempt == MAX_ATTEMPTS:
                    UPDATE_FAILURES.labels(event.platform).inc()
                    raise
                UPDATE_RETRIES.labels(event.platform).inc()
                logger.warning("update %s:%s conflicted (%s); retrying, attempt %d",
                               event.platform, event.update_id, type(exc).__name__, attempt + 1)
        raise AssertionError("unreachable")

    def read_only(self, event: InboundEvent, reader: Callable[[Turn], T]) -> tuple[T, tuple[OutboundMessage, ...]]:
        """Run ``reader`` on a turn for ``event`` and roll everything back.

        The event is not claimed and nothing is written or sent; the replies the
        reader made are returned for the adapter to show at once (for example
        why a form cannot open). Adapters use it to ask the core a question
        before they act, such as which rubric a change-request form shows.
        """
        with self.session_factory() as session:
            transaction = session.begin()
            try:
                turn = Turn(session=session, flows=self.flows, settings=self.settings, event=event, now=self.clock())
                result = reader(turn)
            finally:
                transaction.rollback()
        return result, tuple(turn.messages)

    def _handle_once(self, event: InboundEvent, work: Callable[[Turn], T]) -> tuple[T | None, HandledEvent]:
        started = time.perf_counter()
        now = self.clock()
        with self.session_factory() as session:
            with session.begin():
                if not self._claim(session, event, now):
                    logger.info("update %s:%s already handled; ignored", event.platform, event.update_id,
                                extra={"platform": event.platform, "update_id": event.update_id, "duplicate": True})
                    UPDATES_HANDLED.labels(event.platform, "duplicate").inc()
                    return None, HandledEvent(duplicate=True)
                turn = Turn(session=session, flows=self.flows, settings=self.settings, event=event, now=now)
                result = work(turn)
                rows = [self._outbox_row(message, now) for message in turn.messages]
                outbox_ids = tuple(session.scalars(_INSERT_OUTBOX, rows).all()) if rows else ()
                learner_id = turn.learner.id if turn.learner is not None else None
                new_state = turn.learner.state if turn.learner is not None else None
            self._run_after_commit(event, turn)

        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.info(
            "update %s:%s handled: user=%s learner=%s state=%s->%s replies=%d in %.1f ms",
            event.platform, event.update_id, event.user_key, learner_id, turn.previous_state, new_state,
            len(rows), elapsed_ms,
            extra={"platform": event.platform, "update_id": event.update_id, "user": event.user_key,
                   "learner_id": learner_id, "state_from": turn.previous_state, "state_to": new_state,
                   "replies": len(rows), "duration_ms": round(elapsed_ms, 1)},
        )
        UPDATES_HANDLED.labels(event.platform, "new").inc()
        handled = HandledEvent(duplicate=False, outbox_ids=outbox_ids, messages=tuple(turn.messages),
                               action_expired=turn.action_expired)
        self._run_handled_hooks(event, handled)
        return result, handled

    @staticmethod
    def _run_after_commit(event: InboundEvent, turn: Turn) -> None:
        """Run the turn's after-commit steps; the event is committed, so a failing step is logged and the rest run."""
        for callback in turn.after_commit:
            try:
                callback()
            except Exception:
                logger.exception("an after-commit step of update %s:%s failed", event.platform, event.update_id)

    def _run_handled_hooks(self, event: InboundEvent, handled: HandledEvent) -> None:
        """Call each hook; the event is committed, so a failing hook is logged and the rest still run."""
        for hook in self.handled_hooks:
            try:
                hook(event, handled)
            except Exception:
                logger.exception("hook %r failed after update %s:%s", hook, event.platform, event.update_id)

    def _claim(self, session: Session, event: InboundEvent, now: datetime) -> bool:
        """Record the update as handled; False when it already was (a redelivery)."""
        values = {"platform": event.platform, "update_id": event.update_id[:128], "handled_at": now}
        statement = _CLAIMS.get(session.bind.dialect.name)
        if statement is None:
            session.execute(insert(ProcessedUpdate).values(**values))
            return True
        return session.execute(statement, values).scalar() is not None

    def _route(self, turn: Turn) -> None:
        event = turn.event
        if event.action and event.action.startswith(review.ACTION_PREFIX):
            review.handle_action(turn, event.action)
            return
        if event.action and event.action.startswith(nudge_commands.ACTION_PREFIX):
            nudge_commands.handle_action(turn, event.action)
            return
        if event.edited:
            self._route_edited(turn)
            return
        is_reviewer = self.settings.is_reviewer(event.user_key)
        if is_reviewer and event.text is not None and not event.text.startswith("/") and review.has_open_draft(turn):
            review.handle_draft_text(turn, event.text[: self.settings.max_message_chars])
            return
        if event.chat_type == "group":
            self._route_group(turn)
            return
        if self._is_staff(event) and not self._has_learner_record(turn):
            if not self._route_staff(turn):
                return
        dialog.handle(turn, self.conversation)

    def _route_edited(self, turn: Turn) -> None:
        """Tell the user that an edit changes nothing, and show a learner their current step again.

        An edit must not become an answer or a reviewer's feedback, because the
        first version was already handled and may have moved the learner on.
        An edit from someone without a learner record, such as a learner who
        used /forget and then edited an old message, creates no record.
        """
        event = turn.event
        if event.chat_type == "group":
            return
        if not self._has_learner_record(turn):
            # This wording names no learner step, so it fits staff and former learners alike.
            turn.reply(turn.t("edit_ignored_staff"))
            return
        dialog.handle(turn, self.conversation)

    def _is_staff(self, event: InboundEvent) -> bool:
        return self.settings.is_reviewer(event.user_key) or self.settings.is_coordinator(event.user_key)

    def _has_learner_record(self, turn: Turn) -> bool:
        learner, _ = dialog.load_learner(turn, create=False)
        return learner is not None

    def _route_staff(self, turn: Turn) -> bool:
        """Serve a reviewer or coordinator who is not a learner; True passes the event to the learner flow."""
        text = (turn.event.text or "").strip()
        parsed = commands.parse_command(text) if text else None
        if parsed is not None and parsed[0] == "start":
            return True
        if parsed is not None and parsed[0] == "cancel" and review.cancel_draft(turn):
            return False
        if parsed is not None and self._run_staff_command(turn, *parsed):
            return False
        turn.reply(turn.t("staff_welcome"))
        return False

    def _run_staff_command(self, turn: Turn, name: str, argument: str) -> bool:
        user_key = turn.event.user_key
        if name in commands.REVIEWER_COMMANDS and self.settings.is_reviewer(user_key):
            commands.REVIEWER_COMMANDS[name](turn, None, argument)
            return True
        if name in commands.COORDINATOR_COMMANDS and self.settings.is_coordinator(user_key):
            commands.COORDINATOR_COMMANDS[name](turn, None, argument)
            return True
        if name == "help":
            commands.cmd_help(turn, None, argument)
            return True
        return False

    def _route_group(self, turn: Turn) -> None:
        """In a group, only reviewer commands are answered; other chatter is not for the bot."""
        text = (turn.event.text or "").strip()
        parsed = commands.parse_command(text) if text else None
        if parsed is None:
            return
        name, argument = parsed
        if name == "cancel" and review.cancel_draft(turn):
            return
        if name in commands.REVIEWER_COMMANDS or name in commands.COORDINATOR_COMMANDS:
            if not self._run_staff_command(turn, name, argument):
                logger.warning("group command /%s rejected: %s has no reviewer or coordinator role", name, turn.event.user_key)
                turn.reply(turn.t("review_not_reviewer"), ephemeral=True)

    @staticmethod
    def _outbox_row(message: OutboundMessage, now: datetime) -> dict:
        """Return the outbox row for ``message``, as parameters of an INSERT."""
        return dict(
            platform=message.platform,
            chat_id=message.chat_id,
            learner_id=message.learner_id,
            kind=message.kind,
            ref=message.ref,
            edit_ref=message.edit_ref,
            payload=message.to_payload(),
            status="pending",
            attempts=0,
            created_at=now,
            available_at=now,
        )
