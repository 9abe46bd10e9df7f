"""Review cards: the message a reviewer decides on, and the reviewer's views of submissions.

A card shows the learner's item, the evidence and the rubric, with buttons
that carry short actions (``rv:a:<submission>`` approves, ``rv:c:<submission>``
starts a change request; :mod:`bot.review` handles them). Each card has the
ref ``submission:<id>``, so the decision can later edit it. /queue and
/review N reply with messages of :data:`VIEW_KIND`, which /forget can find
and withdraw.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from bot import chats
from bot.catalog import Criterion
from bot.events import Button, Document, OutboundMessage
from bot.files import file_path
from bot.models import Learner, OutboxMessage, PathwayItem, ReviewDecision, Submission
from bot.outbox import REDACT_KEY
from bot.pathway import find_item_info
from bot.turn import Turn, verbatim_extra
from bot.validate import parse_number

logger = logging.getLogger(__name__)

ACTION_PREFIX = "rv:"
VIEW_KIND = "review_view"
"""The outbox kind of a /queue or /review N reply, which shows learners' data to a reviewer.

Its text stays in the outbox only until it is sent, and /forget deletes the
unsent ones about the learner (:func:`withdraw_views`).
"""
VIEW_LEARNERS = "learner_ids"


def card_ref(submission_id: int) -> str:
    return f"submission:{submission_id}"


def learner_name(learner: Learner) -> str:
    return learner.name or f"{learner.platform}:{learner.platform_user_id}"


def item_rubric(turn: Turn, item: PathwayItem) -> tuple[Criterion, ...]:
    """Return the item's rubric criteria in order, or none for an item the catalog no longer has."""
    info = find_item_info(turn.flows.catalog, item.item_key)
    return info.rubric if info is not None else ()


def item_title(turn: Turn, item: PathwayItem) -> str:
    """Return the item's title in the catalog, or as stored with the pathway when the catalog no longer has it."""
    info = find_item_info(turn.flows.catalog, item.item_key)
    return info.title if info is not None else item.title


def card_text(turn: Turn, submission: Submission) -> str:
    from bot.evidence import evidence_preview

    learner = submission.learner
    item = submission.item
    rubric = item_rubric(turn, item)
    criteria = "\n".join(f"{number}. {criterion.text}" for number, criterion in enumerate(rubric, start=1))
    history = [line for line, _ in _history(turn, submission)]
    return turn.t(
        "review_card",
        submission_id=submission.id,
        learner=learner_name(learner),
        level=item.level,
        title=item_title(turn, item),
        kind=turn.t(f"kind_{submission.kind}"),
        evidence=evidence_preview(turn, submission),
        criteria=criteria,
        history="\n".join(history) if history else turn.t("review_no_history"),
    )


def _history(turn: Turn, submission: Submission) -> list[tuple[str, str]]:
    """Return each earlier decision on the item as (card line, the reviewer's feedback)."""
    earlier = turn.session.scalars(
        select(ReviewDecision)
        .join(Submission)
        .where(Submission.item_id == submission.item_id, Submission.id != submission.id)
        .order_by(ReviewDecision.decided_at)
    ).all()
    return [
        (turn.t("review_history_line", decision=turn.t(f"decision_{entry.decision}"), reviewer=entry.reviewer_name,
                date=entry.decided_at.date().isoformat(), feedback=entry.feedback or "-"), entry.feedback or "")
        for entry in earlier
    ]


def card_buttons(turn: Turn, submission_id: int) -> tuple[Button, ...]:
    return (
        Button(turn.t("review_approve"), f"{ACTION_PREFIX}a:{submission_id}"),
        Button(turn.t("review_request_changes"), f"{ACTION_PREFIX}c:{submission_id}"),
    )


def card_document(turn: Turn, submission: Submission) -> Document | None:
    if submission.kind != "file" or not submission.file_sha256:
        return None
    return Document(
        filename=submission.file_name or "evidence",
        content_type=submission.file_type or "application/octet-stream",
        path=str(file_path(turn.settings.files_dir, submission.file_sha256)),
    )


def card_extra(turn: Turn, submission: Submission) -> dict:
    """Return the submission id and the evidence text as it appears in the card, so an
    adapter with a message size limit can shorten the evidence and nothing else, and
    the user-written parts of the card (the evidence and earlier feedback) as ``verbatim``."""
    from bot.evidence import evidence_preview

    evidence = evidence_preview(turn, submission)
    feedback = [text for _, text in _history(turn, submission)]
    return {"submission_id": submission.id, "evidence": evidence} | verbatim_extra([evidence, *feedback])


def post_card(turn: Turn, submission: Submission) -> None:
    """Post a pending submission to the reviewer chat of the learner's platform."""
    platform = submission.learner.platform
    chat_id = chats.reviewer_chat(turn.session, turn.settings, platform)
    if chat_id is None:
        logger.warning("no reviewer chat configured for %s; submission %s waits in /queue", platform, submission.id)
        return
    turn.send(
        OutboundMessage(
            platform=platform,
            chat_id=chat_id,
            text=card_text(turn, submission),
            buttons=card_buttons(turn, submission.id),
            ref=card_ref(submission.id),
            document=card_document(turn, submission),
            kind="review_card",
            extra=card_extra(turn, submission),
        )
    )


def withdraw_cards(turn: Turn, submission_ids: list[int]) -> None:
    """Remove a deleted learner's data from the review cards of ``submission_ids``.

    Cards and card updates not yet sent are deleted. A card already sent keeps
    its outbox row, with the text replaced by a notice, so that an adapter can
    still find the platform message and edit it to show the notice.
    """
    refs = {card_ref(submission_id): submission_id for submission_id in submission_ids}
    if not refs:
        return
    rows = turn.session.scalars(
        select(OutboxMessage).where(or_(OutboxMessage.ref.in_(refs), OutboxMessage.edit_ref.in_(refs)))
    ).all()
    for row in rows:
        if row.ref not in refs or row.status != "sent":
            turn.session.delete(row)
            continue
        notice = turn.t("review_card_withdrawn", submission_id=refs[row.ref])
        row.payload = {"text": notice}
        turn.send(OutboundMessage(platform=row.platform, chat_id=row.chat_id, text=notice, edit_ref=row.ref,
                                  kind="card_update"))


def withdraw_views(turn: Turn, learner_id: int) -> None:
    """Delete the unsent /queue and /review N replies that show this learner; sent ones no longer hold text."""
    pending = turn.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == VIEW_KIND, OutboxMessage.status == "pending")
    ).all()
    for row in pending:
        if learner_id in (row.payload.get("extra") or {}).get(VIEW_LEARNERS, ()):
            turn.session.delete(row)


def _reply_view(turn: Turn, text: str, learners: Sequence[Learner], buttons: tuple[Button, ...] = (),
                document: Document | None = None, verbatim: Sequence[str] = ()) -> None:
    """Reply to a reviewer with text that shows ``learners``' data, as a message of :data:`VIEW_KIND`.

    ``verbatim`` lists the user-written parts of ``text``, as in :meth:`Turn.reply`.
    """
    turn.send(
        OutboundMessage(
            platform=turn.event.platform,
            chat_id=turn.event.chat_id,
            text=text,
            buttons=buttons,
            document=document,
            learner_id=turn.learner.id if turn.learner is not None else None,
            kind=VIEW_KIND,
            extra={REDACT_KEY: [text], VIEW_LEARNERS: sorted({learner.id for learner in learners})}
            | verbatim_extra(verbatim),
        )
    )


def load_submission(turn: Turn, submission_id: int, *, lock: bool = False) -> Submission | None:
    query = (
        select(Submission)
        .where(Submission.id == submission_id)
        .options(selectinload(Submission.decision), selectinload(Submission.learner))
    )
    if lock:
        query = query.with_for_update()
    return turn.session.scalar(query)


# --- commands ---------------------------------------------------------------------


def show_queue(turn: Turn) -> None:
    """/queue: list the submissions waiting for a decision, oldest first."""
    pending = turn.session.scalars(
        select(Submission)
        .where(Submission.status == "pending")
        .order_by(Submission.submitted_at)
        .limit(50)
        .options(selectinload(Submission.learner), selectinload(Submission.item))
    ).all()
    if not pending:
        turn.reply(turn.t("review_queue_empty"))
        return
    lines = [turn.t("review_queue_header", count=len(pending))]
    for submission in pending:
        lines.append(
            turn.t("review_queue_line", submission_id=submission.id, learner=learner_name(submission.learner),
                   title=submission.item.title, date=submission.submitted_at.date().isoformat())
        )
    _reply_view(turn, "\n".join(lines), [submission.learner for submission in pending])


def show_card(turn: Turn, argument: str) -> None:
    """/review N: show one submission with its rubric and the decision buttons."""
    submission_id = parse_number(argument)
    if submission_id is None:
        turn.reply(turn.t("review_usage"))
        return
    submission = load_submission(turn, submission_id)
    if submission is None or submission.status == "draft":
        turn.reply(turn.t("review_not_found", submission_id=submission_id))
        return
    buttons = card_buttons(turn, submission.id) if submission.status == "pending" else ()
    _reply_view(turn, card_text(turn, submission) + decided_suffix(turn, submission), [submission.learner], buttons,
                document=card_document(turn, submission), verbatim=card_extra(turn, submission).get("verbatim", ()))


def decided_suffix(turn: Turn, submission: Submission) -> str:
    decision = submission.decision
    if decision is None:
        return ""
    return "\n\n" + turn.t("review_decided_by", decision=turn.t(f"decision_{decision.decision}"),
                           reviewer=decision.reviewer_name, time=decision_stamp(decision))


def decision_stamp(decision: ReviewDecision) -> str:
    return decision.decided_at.strftime("%Y-%m-%d %H:%M UTC")
