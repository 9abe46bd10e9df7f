"""What a learner can see and do about their own record: progress, export, deletion."""

from __future__ import annotations

import json
from dataclasses import replace
import logging

from sqlalchemy import delete, select

from bot import badges, evaluation_requests, status_list
from bot.conversation import FORGET_CONFIRM, Conversation
from bot.events import Button, Document
from bot.files import delete_file
from bot.models import BadgeAssertion, OutboxMessage, ReviewDecision, ReviewDraft, Submission
from bot.questions import ChoiceSpec
from bot.review_cards import withdraw_cards, withdraw_views
from bot.turn import Turn
from bot.validate import InvalidInput, match_choice

logger = logging.getLogger(__name__)

STATUS_MARKS = {"approved": "[x]", "submitted": "[~]", "changes_requested": "[!]", "open": "[ ]"}


def next_item(turn: Turn):
    """The first active item still to do (not approved, not waiting for review)."""
    return next(
        (item for item in turn.learner.items if item.active and item.status in ("open", "changes_requested")),
        None,
    )


def next_step_text(turn: Turn) -> str:
    """The learner's next step from home: the next item, or that everything is sent or done."""
    item = next_item(turn)
    if item is None:
        waiting = any(entry.active and entry.status == "submitted" for entry in turn.learner.items)
        return turn.t("home_waiting" if waiting else "home_all_done")
    key = "home_next_changes" if item.status == "changes_requested" else "home_next"
    return turn.t(key, title=item.title, level=item.level,
                  target_date=item.target_date.isoformat() if item.target_date else "-")


def home_prompt(turn: Turn, conversation: Conversation) -> None:
    """Say what to do next from home: the next item and how to submit for it."""
    buttons = ()
    if next_item(turn) is not None:
        buttons = (Button(turn.t("button_submit"), "home:submit"), Button(turn.t("button_pathway"), "home:pathway"))
    turn.reply(next_step_text(turn), buttons)


def pathway_levels(turn: Turn) -> list[tuple[str, list[str]]]:
    """Each level's heading with its progress, and the lines of its items with their reasons."""
    levels = []
    for level in turn.flows.catalog.levels:
        items = [item for item in turn.learner.items if item.active and item.level == level.number]
        done = sum(1 for item in items if item.status == "approved")
        heading = turn.t("pathway_level", number=level.number, name=level.name, done=done, total=len(items))
        lines = []
        for item in items:
            lines.append(
                turn.t("pathway_item", mark=STATUS_MARKS.get(item.status, "[ ]"), title=item.title,
                       status=turn.t(f"status_{item.status}"),
                       target_date=item.target_date.isoformat() if item.target_date else "-")
            )
            lines.append(turn.t("pathway_reason", reason=item.reason))
        levels.append((heading, lines))
    return levels


def pathway_text(turn: Turn) -> str:
    lines = [turn.t("pathway_header")]
    for heading, item_lines in pathway_levels(turn):
        lines.append("")
        lines.append(heading)
        lines.extend(item_lines)
    lines.append("")
    lines.append(turn.t("pathway_legend"))
    return "\n".join(lines)


def badges_text(turn: Turn) -> str:
    earned, left = badges.badge_lines(turn, turn.learner)
    parts = [turn.t("badges_earned_header")]
    parts.extend(earned or [turn.t("badges_none_yet")])
    parts.append("")
    parts.append(turn.t("badges_left_header"))
    parts.extend(left or [turn.t("badges_none_left")])
    return "\n".join(parts)


def export_document(turn: Turn, conversation: Conversation) -> Document:
    """Everything stored about the learner, as JSON."""
    learner = turn.learner
    submissions = turn.session.scalars(
        select(Submission).where(Submission.learner_id == learner.id).order_by(Submission.id)
    ).all()
    record = {
        "platform": learner.platform,
        "platform_user_id": learner.platform_user_id,
        "name": learner.name,
        "email": learner.email,
        "campus": learner.campus,
        "timezone": learner.timezone,
        "consented_at": _iso(learner.consented_at),
        "created_at": _iso(learner.created_at),
        "reminders_paused": learner.reminders_paused,
        "conversation_state": learner.state,
        "answers": learner.answers,
        "pathway": [
            {"item": item.item_key, "title": item.title, "level": item.level, "status": item.status,
             "active": item.active, "target_date": item.target_date.isoformat() if item.target_date else None,
             "reason": item.reason}
            for item in learner.items
        ],
        "submissions": [_submission_record(submission) for submission in submissions],
        "evaluation_requests": evaluation_requests.export_records(turn.session, learner.id),
        "badges": [
            {"badge": award.badge_key, "name": award.name, "kind": award.kind, "awarded_at": _iso(award.awarded_at)}
            for award in learner.awards
        ],
    }
    content = json.dumps(record, indent=2, ensure_ascii=False).encode()
    return Document(filename="careerbot-export.json", content_type="application/json", content=content)


def _submission_record(submission: Submission) -> dict:
    decision = submission.decision
    return {
        "id": submission.id,
        "item": submission.item.item_key,
        "kind": submission.kind,
        "status": submission.status,
        "text": submission.text,
        "url": submission.url,
        "file_name": submission.file_name,
        "file_size": submission.file_size,
        "file_sha256": submission.file_sha256,
        "submitted_at": _iso(submission.submitted_at),
        "decision": None if decision is None else {
            "decision": decision.decision,
            "reviewer": decision.reviewer_name,
            "criteria": decision.criteria,
            "feedback": decision.feedback,
            "decided_at": _iso(decision.decided_at),
        },
    }


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


# --- /forget ---------------------------------------------------------------------


def _forget_choices(turn: Turn) -> tuple[ChoiceSpec, ...]:
    return (
        ChoiceSpec(value="delete", label=turn.t("forget_yes")),
        ChoiceSpec(value="keep", label=turn.t("forget_no")),
    )


def start_forget(turn: Turn, conversation: Conversation) -> None:
    """/forget: remember where the learner was and ask for confirmation."""
    if turn.learner.state != FORGET_CONFIRM:
        turn.learner.return_state = turn.learner.state
    conversation.jump(turn.learner, FORGET_CONFIRM)
    prompt_forget(turn, conversation)


def prompt_forget(turn: Turn, conversation: Conversation) -> None:
    buttons = [Button(choice.label, f"{FORGET_CONFIRM}:{choice.value}") for choice in _forget_choices(turn)]
    turn.reply(turn.t("forget_confirm"), buttons)


def handle_forget(turn: Turn, conversation: Conversation, text: str | None) -> str:
    """Delete everything on "delete"; return "deleted", "kept" or "invalid"."""
    try:
        chosen = match_choice(text or "", _forget_choices(turn)).value
    except InvalidInput as problem:
        turn.reply(turn.t(problem.key, **problem.values))
        prompt_forget(turn, conversation)
        return "invalid"
    if chosen == "keep":
        turn.reply(turn.t("forget_kept"))
        return "kept"
    forget(turn)
    return "deleted"


def forget(turn: Turn) -> None:
    """Delete the learner, their submissions, decisions, badges and files, in this transaction.

    Their badges' entries in the revocation status list stay, marked revoked, so that
    credentials downloaded before show as revoked to a verifier.
    """
    learner = turn.learner
    assertion_uids = turn.session.scalars(select(BadgeAssertion.uid).where(BadgeAssertion.learner_id == learner.id))
    status_list.mark_revoked(turn.session, assertion_uids, turn.now, status_list.FORGOTTEN_REASON)
    digests = set(
        turn.session.scalars(
            select(Submission.file_sha256).where(Submission.learner_id == learner.id, Submission.file_sha256.is_not(None))
        )
    )
    submission_ids = select(Submission.id).where(Submission.learner_id == learner.id)
    withdraw_cards(turn, list(turn.session.scalars(submission_ids)))
    withdraw_views(turn, learner.id)
    turn.session.execute(delete(ReviewDraft).where(ReviewDraft.submission_id.in_(submission_ids)))
    turn.session.execute(delete(ReviewDecision).where(ReviewDecision.submission_id.in_(submission_ids)))
    turn.session.execute(delete(Submission).where(Submission.learner_id == learner.id))
    turn.session.execute(delete(OutboxMessage).where(OutboxMessage.learner_id == learner.id))
    turn.session.delete(learner)
    turn.session.flush()

    still_used = set(
        turn.session.scalars(select(Submission.file_sha256).where(Submission.file_sha256.in_(digests)))
    ) if digests else set()
    files_dir = turn.settings.files_dir
    # NOTE: files are stored once per content, so another learner who uploads the
    # same bytes between this commit and the deletion keeps a submission whose file is gone.
    for digest in digests - still_used:
        turn.after_commit.append(lambda digest=digest: delete_file(files_dir, digest))
    logger.info("learner %s deleted their data (%d files)", learner.id, len(digests - still_used))

    turn.learner = None
    turn.messages = [replace(message, learner_id=None) for message in turn.messages]
    turn.reply(turn.t("forget_done"))
