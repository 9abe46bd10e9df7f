"""Supervisor evaluation requests: one-time links, their tokens, and the evaluations they bring back.

A learner (or a coordinator resending for them) creates a request with the
supervisor's details; the supervisor opens ``{public_base_url}/evaluate/<token>``.
The token is 32 random bytes, URL-safe base64 encoded, and only its SHA-256 is
stored, so the database alone cannot open a form. A link works until it
expires, is revoked, or an evaluation was sent with it. An item has at most one
link that works, because a new request revokes the older one.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

from bot import mailer, review_cards
from bot.catalog import EvaluationRubric
from bot.config import Settings
from bot.flows import Flows
from bot.models import EvaluationRequest, Learner, PathwayItem, Submission
from bot.outbox import REDACT_KEY
from bot.pathway import item_info
from bot.turn import Turn

logger = logging.getLogger(__name__)

TOKEN_BYTES = 32
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
"""The shape of ``secrets.token_urlsafe(32)`` output: 43 characters of URL-safe base64."""
LINK_PATH = "/evaluate/"
EVIDENCE_KIND = "evaluation"


class LinkState(enum.Enum):
    """The current state of an evaluation link."""

    VALID = "valid"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    REVOKED = "revoked"


@dataclass(frozen=True)
class SupervisorDetails:
    """The supervisor who evaluates the learner, and the placement they evaluate."""

    name: str
    organization: str
    email: str
    start: date
    end: date


@dataclass(frozen=True)
class EvaluationAnswers:
    """A supervisor's validated form input: a rating per criterion, optional comments, a recommendation."""

    ratings: dict[str, int]
    recommendation: str
    evaluator_name: str
    evaluator_title: str = ""
    comments: dict[str, str] = field(default_factory=dict)
    overall_comment: str = ""

    def to_json(self) -> dict:
        return {
            "ratings": dict(self.ratings),
            "comments": {key: value for key, value in self.comments.items() if value},
            "recommendation": self.recommendation,
            "overall_comment": self.overall_comment,
            "evaluator_name": self.evaluator_name,
            "evaluator_title": self.evaluator_title,
            "consent": True,
        }


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def evaluation_link(settings: Settings, token: str) -> str:
    return settings.public_base_url.rstrip("/") + LINK_PATH + token


def format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def learner_name(flows: Flows, learner: Learner) -> str:
    """Return the learner's name as a supervisor reads it."""
    return learner.name or flows.evaluation_texts("unnamed_learner")


def open_for_evaluation(turn: Turn, item: PathwayItem) -> bool:
    """True for an active item that takes a supervisor evaluation and still needs evidence."""
    from bot.evidence import OPEN_STATUSES  # bot.evidence offers the evaluation, so it imports this module

    return item.active and item.status in OPEN_STATUSES and item_info(turn.flows.catalog, item.item_key).supervisor_evaluation


def supervisor_item(turn: Turn, learner: Learner) -> PathwayItem | None:
    """Return the learner's first item that is open for a supervisor evaluation, or None."""
    return next((item for item in learner.items if open_for_evaluation(turn, item)), None)


# --- creating and revoking links ----------------------------------------------------


def create_request(turn: Turn, learner: Learner, item: PathwayItem, details: SupervisorDetails) -> tuple[EvaluationRequest, str]:
    """Store a new request for ``item`` and return it with its token; an older working link for the item is revoked."""
    for older in outstanding(turn.session, learner_id=learner.id, item_id=item.id):
        revoke(turn, older, "replaced")

    token = secrets.token_urlsafe(TOKEN_BYTES)
    request = EvaluationRequest(
        learner_id=learner.id,
        item_id=item.id,
        token_sha256=hash_token(token),
        status="pending",
        supervisor_name=details.name,
        supervisor_organization=details.organization,
        supervisor_email=details.email,
        placement_start=details.start,
        placement_end=details.end,
        created_by=turn.event.user_key[:96],
        created_at=turn.now,
        expires_at=turn.now + timedelta(days=turn.settings.evaluation_link_days),
    )
    turn.session.add(request)
    turn.session.flush()
    logger.info("evaluation request %s created for learner %s item %s by %s", request.id, learner.id,
                item.item_key, turn.event.user_key)
    return request, token


def resend(turn: Turn, request: EvaluationRequest) -> tuple[EvaluationRequest, str]:
    """Replace ``request`` with a new one for the same supervisor: a new token and expiry, the old link revoked."""
    revoke(turn, request, "resent")
    details = SupervisorDetails(request.supervisor_name, request.supervisor_organization, request.supervisor_email,
                                request.placement_start, request.placement_end)
    return create_request(turn, request.learner, request.item, details)


def revoke(turn: Turn, request: EvaluationRequest, reason: str) -> None:
    request.status = "revoked"
    request.revoked_at = turn.now
    request.revoked_by = turn.event.user_key[:96]
    request.revoked_reason = reason
    turn.session.flush()
    logger.info("evaluation request %s revoked (%s) by %s", request.id, reason, turn.event.user_key)


def outstanding(session: Session, *, learner_id: int | None = None, item_id: int | None = None,
                limit: int | None = None) -> list[EvaluationRequest]:
    """Requests still waiting for the supervisor (expired ones included), oldest first."""
    query = (
        select(EvaluationRequest)
        .where(EvaluationRequest.status == "pending")
        .order_by(EvaluationRequest.created_at, EvaluationRequest.id)
        .options(selectinload(EvaluationRequest.learner), selectinload(EvaluationRequest.item))
    )
    if learner_id is not None:
        query = query.where(EvaluationRequest.learner_id == learner_id)
    if item_id is not None:
        query = query.where(EvaluationRequest.item_id == item_id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def email_link(turn: Turn, request: EvaluationRequest, link: str) -> bool:
    """Email ``link`` to the supervisor after the transaction commits; False when no SMTP server is configured.

    NOTE: the email is sent inside the event's handling, after commit, so a
    slow mail server delays the reply to the learner by up to
    ``mailer.TIMEOUT_SECONDS``. A failed email is logged and not retried,
    and the learner still has the link to forward.
    """
    settings = turn.settings
    if settings.smtp_url is None:
        return False
    texts = turn.flows.evaluation_texts
    values = {
        "supervisor": request.supervisor_name,
        "learner": learner_name(turn.flows, request.learner),
        "organization": request.supervisor_organization,
        "program": turn.flows.catalog.program.name,
        "link": link,
        "expires": format_time(request.expires_at),
    }
    subject = texts("email_subject", **values)
    body = texts("email_body", **values)
    request_id, to_address, to_name, session = request.id, request.supervisor_email, request.supervisor_name, turn.session

    def send() -> None:
        try:
            mailer.send_email(settings, to_address, to_name, subject, body)
        except mailer.EmailError as exc:
            logger.error("evaluation request %s: %s", request_id, exc)
            return
        try:
            with session.begin():
                session.execute(
                    update(EvaluationRequest).where(EvaluationRequest.id == request_id).values(emailed_at=turn.now)
                )
        except SQLAlchemyError:
            logger.exception("evaluation request %s: the email went out but emailed_at was not stored", request_id)

    turn.after_commit.append(send)
    return True


def link_message_extra(link: str) -> dict:
    """Return the ``extra`` of a chat message that carries ``link``, so the outbox drops the link once it is delivered."""
    return {REDACT_KEY: [link]}


def export_records(session: Session, learner_id: int) -> list[dict]:
    """Return the learner's evaluation requests for their data export, without the token's hash."""
    requests = session.scalars(
        select(EvaluationRequest).where(EvaluationRequest.learner_id == learner_id).order_by(EvaluationRequest.id)
    )
    return [
        {
            "id": request.id,
            "item": request.item.item_key,
            "status": request.status,
            "supervisor_name": request.supervisor_name,
            "supervisor_organization": request.supervisor_organization,
            "supervisor_email": request.supervisor_email,
            "placement_start": request.placement_start.isoformat(),
            "placement_end": request.placement_end.isoformat(),
            "created_at": request.created_at.isoformat(),
            "expires_at": request.expires_at.isoformat(),
            "emailed_at": request.emailed_at.isoformat() if request.emailed_at else None,
            "completed_at": request.completed_at.isoformat() if request.completed_at else None,
            "revoked_at": request.revoked_at.isoformat() if request.revoked_at else None,
            "revoked_reason": request.revoked_reason,
            "submission_id": request.submission_id,
        }
        for request in requests
    ]


# --- opening a link -----------------------------------------------------------------


def find_by_token(session: Session, token: str, now: datetime, *, lock: bool = False
                  ) -> tuple[LinkState, EvaluationRequest | None]:
    """Look up the request a link token opens, and what the link can do now.

    Only a ``VALID`` state comes with the request. For every other state the
    caller gets None, so it cannot show anything of the learner by mistake.
    """
    if not TOKEN_PATTERN.fullmatch(token):
        return LinkState.UNKNOWN, None
    query = select(EvaluationRequest).where(EvaluationRequest.token_sha256 == hash_token(token))
    if lock:
        query = query.with_for_update()
    request = session.scalar(query)
    if request is None:
        return LinkState.UNKNOWN, None
    if request.status == "completed":
        return LinkState.USED, None
    if request.status == "revoked" or not request.item.active:
        return LinkState.REVOKED, None
    if request.expires_at <= now:
        return LinkState.EXPIRED, None
    return LinkState.VALID, request


# --- receiving an evaluation ----------------------------------------------------------


def record_evaluation(turn: Turn, token: str, answers: EvaluationAnswers) -> LinkState:
    """Turn a supervisor's answers into a pending submission, tell the learner, and post it to the reviewers.

    The link is checked again under a row lock, because it may have been used,
    revoked or expired since the form was shown. Returns the link's state:
    ``VALID`` when the evaluation was recorded, else why it was not.
    """
    state, request = find_by_token(turn.session, token, turn.now, lock=True)
    if request is None:
        logger.warning("evaluation form sent with a link that is %s", state.value)
        return state

    item = request.item
    learner = request.learner
    submission = Submission(
        learner_id=learner.id,
        item_id=item.id,
        kind=EVIDENCE_KIND,
        status="pending",
        text=evidence_text(turn, request, answers),
        created_at=turn.now,
        submitted_at=turn.now,
    )
    turn.session.add(submission)
    # NOTE: an evaluation that arrives after the item was approved (on other
    # evidence) still goes to the reviewers, and a change request on it
    # reopens the approved item.
    if item.status != "approved":
        item.status = "submitted"
    turn.session.flush()
    request.status = "completed"
    request.completed_at = turn.now
    request.submission_id = submission.id
    request.response = answers.to_json()
    turn.session.flush()
    logger.info("evaluation request %s completed: submission %s for learner %s item %s", request.id, submission.id,
                learner.id, item.item_key)

    turn.send_to_learner(learner, turn.t("learner_evaluation_arrived", name=request.supervisor_name, title=item.title))
    review_cards.post_card(turn, submission)
    return LinkState.VALID


def evidence_text(turn: Turn, request: EvaluationRequest, answers: EvaluationAnswers) -> str:
    """Format the evaluation as plain text for the review card, the learner's export and the item's history."""
    rubric: EvaluationRubric = turn.flows.catalog.evaluation_rubric
    maximum = max(level.value for level in rubric.scale)
    lines = []
    for criterion in rubric.criteria:
        value = answers.ratings[criterion.id]
        lines.append(turn.t("evaluation_rating_line", criterion=criterion.text, value=value, maximum=maximum,
                            label=rubric.rating_label(value)))
        comment = answers.comments.get(criterion.id)
        if comment:
            lines.append(turn.t("evaluation_rating_comment", comment=comment))
    average = sum(answers.ratings.values()) / len(answers.ratings)
    return turn.t(
        "evaluation_evidence",
        date=format_time(turn.now),
        evaluator=answers.evaluator_name,
        job_title=answers.evaluator_title or "-",
        organization=request.supervisor_organization,
        supervisor=request.supervisor_name,
        email=request.supervisor_email,
        start=request.placement_start.isoformat(),
        end=request.placement_end.isoformat(),
        ratings="\n".join(lines),
        average=f"{average:.1f}",
        maximum=maximum,
        recommendation=rubric.recommendation_label(answers.recommendation),
        comment=answers.overall_comment or turn.t("evaluation_no_comment"),
    )
