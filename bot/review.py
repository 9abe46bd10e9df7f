"""Reviewers: decisions, and change requests with feedback (the cards are in :mod:`bot.review_cards`).

Buttons carry short actions: ``rv:a:<submission>`` approves,
``rv:c:<submission>`` starts a change request, and
``rv:m:<submission>:<criterion number>:<1 or 0>`` judges one rubric criterion
met or not met. A change request is kept as a :class:`ReviewDraft` for that
reviewer in that chat until the written feedback arrives, so in a busy group
each reviewer's reply is tied to their own request.

Platforms with forms (Slack modals) ask for every criterion and the feedback
at once: ``rv:f:<submission>:<one 1 or 0 per criterion>`` with the feedback as
the event's text decides the change request in one step (:func:`decide_with`).

The first decision on a submission wins: the decision row has a unique key on
the submission, and the submission row is locked while deciding.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from bot import assertions, badges, chats
from bot.events import Button, OutboundMessage
from bot.models import ReviewDecision, ReviewDraft, Submission
from bot.review_cards import (
    ACTION_PREFIX,
    card_extra,
    card_ref,
    card_text,
    decision_stamp,
    item_rubric,
    item_title,
    load_submission,
)
from bot.turn import Turn
from bot.validate import InvalidInput, check_length, clean_text, parse_number

logger = logging.getLogger(__name__)

FORM_VERB = "f"
FEEDBACK_MAX_CHARS = 4000
MET_WORDS = {"met", "yes", "y", "1"}
NOT_MET_WORDS = {"not met", "no", "n", "0", "2"}


# --- actions ----------------------------------------------------------------------


def handle_action(turn: Turn, action: str) -> None:
    """Handle a reviewer's button press (or typed equivalent)."""
    parts = action[len(ACTION_PREFIX):].split(":")
    if len(parts) < 2 or parse_number(parts[1]) is None:
        logger.warning("malformed review action %r from %s", action, turn.event.user_key)
        turn.reply(turn.t("button_expired"), ephemeral=True)
        return
    verb, submission_id = parts[0], int(parts[1])
    if verb == FORM_VERB:
        _handle_form(turn, submission_id, parts[2:])
        return

    submission = _decidable_submission(turn, submission_id)
    if submission is None:
        return

    if verb == "a":
        decide(turn, submission, "approved", {}, "")
    elif verb == "c":
        _start_change_request(turn, submission)
    elif verb == "m" and len(parts) == 4 and parse_number(parts[2]) is not None and parts[3] in ("0", "1"):
        _judge_criterion(turn, submission, int(parts[2]), parts[3] == "1")
    else:
        logger.warning("unknown review action %r from %s", action, turn.event.user_key)
        turn.reply(turn.t("button_expired"), ephemeral=True)


def _decidable_submission(turn: Turn, submission_id: int) -> Submission | None:
    """Load and lock the submission if this user may decide on it now; otherwise reply why not."""
    if not turn.settings.is_reviewer(turn.event.user_key):
        logger.warning("review action by non-reviewer %s on submission %s", turn.event.user_key, submission_id)
        turn.reply(turn.t("review_not_reviewer"), ephemeral=True)
        return None
    submission = load_submission(turn, submission_id, lock=True)
    if submission is None or submission.status == "draft":
        turn.reply(turn.t("review_not_found", submission_id=submission_id), ephemeral=True)
        return None
    if submission.learner.user_key == turn.event.user_key:
        logger.warning("reviewer %s tried to decide on their own submission %s", turn.event.user_key, submission_id)
        turn.reply(turn.t("review_own_submission"), ephemeral=True)
        return None
    if submission.decision is not None:
        _already_decided(turn, submission)
        return None
    return submission


def _already_decided(turn: Turn, submission: Submission) -> None:
    decision = submission.decision
    turn.reply(
        turn.t("review_already_decided", submission_id=submission.id, reviewer=decision.reviewer_name,
               decision=turn.t(f"decision_{decision.decision}"), time=decision_stamp(decision)),
        ephemeral=True,
    )


def _find_draft(turn: Turn) -> ReviewDraft | None:
    return turn.session.scalar(
        select(ReviewDraft).where(
            ReviewDraft.reviewer_key == turn.event.user_key, ReviewDraft.chat_id == turn.event.chat_id
        )
    )


def _start_change_request(turn: Turn, submission: Submission) -> None:
    draft = _find_draft(turn)
    if draft is None:
        draft = ReviewDraft(reviewer_key=turn.event.user_key, chat_id=turn.event.chat_id)
        turn.session.add(draft)
    draft.submission_id = submission.id
    draft.criteria = {}
    draft.started_at = turn.now
    turn.session.flush()
    _ask_next(turn, draft, submission)


def _ask_next(turn: Turn, draft: ReviewDraft, submission: Submission) -> None:
    """Ask about the first criterion not yet judged, or for the feedback when all are."""
    rubric = item_rubric(turn, submission.item)
    who = turn.event.display_name or turn.event.user_id
    for number, criterion in enumerate(rubric, start=1):
        if criterion.id not in draft.criteria:
            buttons = (
                Button(turn.t("review_met"), f"{ACTION_PREFIX}m:{submission.id}:{number}:1"),
                Button(turn.t("review_not_met"), f"{ACTION_PREFIX}m:{submission.id}:{number}:0"),
            )
            turn.reply(
                turn.t("review_ask_criterion", reviewer=who, submission_id=submission.id, number=number,
                       total=len(rubric), criterion=criterion.text),
                buttons,
            )
            return
    turn.reply(turn.t("review_ask_feedback", reviewer=who, submission_id=submission.id), expect_reply=True)


def _judge_criterion(turn: Turn, submission: Submission, number: int, met: bool) -> None:
    draft = _find_draft(turn)
    if draft is None or draft.submission_id != submission.id:
        turn.reply(turn.t("button_expired"), ephemeral=True)
        return
    rubric = item_rubric(turn, submission.item)
    if not 1 <= number <= len(rubric):
        turn.reply(turn.t("button_expired"), ephemeral=True)
        return
    draft.criteria = {**draft.criteria, rubric[number - 1].id: met}
    _ask_next(turn, draft, submission)


def has_open_draft(turn: Turn) -> bool:
    return turn.settings.is_reviewer(turn.event.user_key) and _find_draft(turn) is not None


def cancel_draft(turn: Turn) -> bool:
    draft = _find_draft(turn)
    if draft is None:
        return False
    turn.session.delete(draft)
    turn.reply(turn.t("review_change_request_cancelled", submission_id=draft.submission_id))
    return True


def handle_draft_text(turn: Turn, text: str) -> None:
    """Take typed input for the reviewer's open change request: a criterion answer or the feedback."""
    text = clean_text(text)
    draft = _find_draft(turn)
    submission = load_submission(turn, draft.submission_id, lock=True)
    if submission is None or submission.decision is not None:
        turn.session.delete(draft)
        if submission is not None:
            _already_decided(turn, submission)
        return
    rubric = item_rubric(turn, submission.item)
    pending = [criterion for criterion in rubric if criterion.id not in draft.criteria]
    if pending:
        folded = text.strip().casefold()
        if folded in MET_WORDS or folded in NOT_MET_WORDS:
            draft.criteria = {**draft.criteria, pending[0].id: folded in MET_WORDS}
        else:
            turn.reply(turn.t("review_criterion_invalid"))
        _ask_next(turn, draft, submission)
        return
    try:
        feedback = check_length(text, 1, FEEDBACK_MAX_CHARS)
    except InvalidInput:
        turn.reply(turn.t("review_feedback_invalid", maximum=FEEDBACK_MAX_CHARS))
        return
    criteria = dict(draft.criteria)
    turn.session.delete(draft)
    decide(turn, submission, "changes_requested", criteria, feedback)


# --- change requests from a form -------------------------------------------------


@dataclass(frozen=True)
class ChangeRequestForm:
    """What a change-request form asks about: the item's title and its rubric criteria, in order."""

    submission_id: int
    title: str
    criteria: tuple[str, ...]


def change_request_target(action: str) -> int | None:
    """Return the submission id of a "request changes" button's action, or None for any other action."""
    prefix = f"{ACTION_PREFIX}c:"
    rest = action[len(prefix):] if action.startswith(prefix) else ""
    return int(rest) if rest.isdigit() else None


def form_action(submission_id: int, criteria_met: Sequence[bool]) -> str:
    """Build the action of a submitted change-request form; the feedback travels as the event's text."""
    results = "".join("1" if met else "0" for met in criteria_met)
    return f"{ACTION_PREFIX}{FORM_VERB}:{submission_id}:{results}"


def change_request_form(turn: Turn, submission_id: int) -> ChangeRequestForm | None:
    """Return the form for this reviewer's change request, or None after replying why they can't decide."""
    submission = _decidable_submission(turn, submission_id)
    if submission is None:
        return None
    rubric = item_rubric(turn, submission.item)
    title = item_title(turn, submission.item)
    return ChangeRequestForm(submission.id, title, tuple(criterion.text for criterion in rubric))


def _handle_form(turn: Turn, submission_id: int, fields: list[str]) -> None:
    # An item without rubric criteria (deleted from the catalog since) gives an empty result string.
    if len(fields) != 1 or set(fields[0]) - {"0", "1"}:
        logger.warning("malformed change-request form from %s on submission %s", turn.event.user_key, submission_id)
        turn.reply(turn.t("button_expired"), ephemeral=True)
        return
    decide_with(turn, submission_id, [result == "1" for result in fields[0]], turn.event.text or "")


def decide_with(turn: Turn, submission_id: int, criteria_met: Sequence[bool], feedback: str) -> None:
    """Request changes in one step: every criterion judged, in rubric order, and the feedback.

    The same checks as a button apply: only reviewers, never on one's own
    submission, and the first decision wins.
    """
    submission = _decidable_submission(turn, submission_id)
    if submission is None:
        return
    rubric = item_rubric(turn, submission.item)
    if len(criteria_met) != len(rubric):
        logger.warning("change-request form from %s judged %d of %d criteria of submission %s",
                       turn.event.user_key, len(criteria_met), len(rubric), submission_id)
        turn.reply(turn.t("button_expired"), ephemeral=True)
        return
    try:
        feedback = check_length(clean_text(feedback), 1, FEEDBACK_MAX_CHARS)
    except InvalidInput:
        turn.reply(turn.t("review_form_feedback_invalid", maximum=FEEDBACK_MAX_CHARS), ephemeral=True)
        return

    draft = _find_draft(turn)
    if draft is not None and draft.submission_id == submission.id:
        turn.session.delete(draft)
    criteria = {criterion.id: met for criterion, met in zip(rubric, criteria_met)}
    decide(turn, submission, "changes_requested", criteria, feedback)


# --- deciding ---------------------------------------------------------------------


def decide(turn: Turn, submission: Submission, decision: str, criteria: dict, feedback: str) -> None:
    """Store the decision, update the item, tell the learner, award badges and update the card."""
    item = submission.item
    learner = submission.learner
    rubric = item_rubric(turn, item)
    if decision == "approved":
        criteria = {criterion.id: True for criterion in rubric}
    reviewer_name = turn.event.display_name or turn.event.user_id
    record = ReviewDecision(
        submission_id=submission.id,
        reviewer_key=turn.event.user_key,
        reviewer_name=reviewer_name[:200],
        decision=decision,
        criteria=criteria,
        feedback=feedback,
        decided_at=turn.now,
    )
    turn.session.add(record)
    submission.decision = record
    submission.status = decision
    item.criteria_met = {**item.criteria_met, **{key: True for key, met in criteria.items() if met}}
    if decision == "approved":
        item.status = "approved"
        item.approved_at = turn.now
    else:
        item.status = "changes_requested"
    turn.session.flush()
    logger.info("submission %s %s by %s", submission.id, decision, turn.event.user_key)

    if decision == "approved":
        turn.send_to_learner(learner, turn.t("learner_item_approved", title=item.title))
        earned = badges.award_for_item(turn, learner, item)
        for name in earned:
            turn.send_to_learner(learner, turn.t("learner_badge_earned", name=name), kind="badge")
        if earned:
            assertions.issue_pending(turn, learner)
    else:
        results = "\n".join(
            turn.t("criterion_result", criterion=criterion.text,
                   result=turn.t("review_met") if criteria.get(criterion.id) else turn.t("review_not_met"))
            for criterion in rubric
        )
        turn.send_to_learner(
            learner, turn.t("learner_changes_requested", title=item.title, feedback=feedback, criteria=results),
            verbatim=[feedback],
        )

    decided = turn.t("review_decided_by", decision=turn.t(f"decision_{decision}"), reviewer=reviewer_name,
                     time=decision_stamp(record))
    chat_id = chats.reviewer_chat(turn.session, turn.settings, learner.platform)
    if chat_id is not None:
        turn.send(
            OutboundMessage(
                platform=learner.platform,
                chat_id=chat_id,
                text=card_text(turn, submission) + "\n\n" + decided,
                edit_ref=card_ref(submission.id),
                kind="card_update",
                extra=card_extra(turn, submission),
            )
        )
    if turn.event.chat_id != chat_id or turn.event.platform != learner.platform:
        turn.reply(decided)
