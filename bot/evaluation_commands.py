"""Coordinator commands for supervisor evaluation links: list the waiting ones, resend one, revoke one.

``/evaluations`` lists links that no evaluation has used and nobody revoked,
expired ones included, because those are the ones a coordinator may resend.
``/resend_evaluation N`` replaces link N with a new link (a new token and a
new expiry) and sends it to the learner; ``/revoke_evaluation N`` cancels it
and tells the learner. The engine runs these only for configured
coordinators, and each command checks the role again.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from bot import evaluation_requests as requests
from bot.models import EvaluationRequest, Learner
from bot.supervisor import send_link
from bot.turn import Turn
from bot.validate import parse_number

logger = logging.getLogger(__name__)

LIST_LIMIT = 20
"""Lines one /evaluations reply lists; 20 lines stay well under Telegram's 4096 characters."""


def _learner_label(learner: Learner) -> str:
    return learner.name or learner.user_key


def _is_coordinator(turn: Turn) -> bool:
    if turn.settings.is_coordinator(turn.event.user_key):
        return True
    logger.warning("evaluation command rejected for %s: not a coordinator", turn.event.user_key)
    turn.reply(turn.t("not_coordinator"))
    return False


def cmd_evaluations(turn: Turn, conversation, argument: str) -> bool:
    """/evaluations: list the links still waiting for a supervisor, oldest first."""
    if not _is_coordinator(turn):
        return False
    total = turn.session.scalar(
        select(func.count()).select_from(EvaluationRequest).where(EvaluationRequest.status == "pending")
    ) or 0
    if total == 0:
        turn.reply(turn.t("evaluations_empty"))
        return False

    lines = [turn.t("evaluations_header", count=total)]
    for request in requests.outstanding(turn.session, limit=LIST_LIMIT):
        expiry_key = "evaluations_expired" if request.expires_at <= turn.now else "evaluations_expires"
        lines.append(
            turn.t("evaluations_line", request_id=request.id, learner=_learner_label(request.learner),
                   supervisor=request.supervisor_name, organization=request.supervisor_organization,
                   email=request.supervisor_email, created=request.created_at.date().isoformat(),
                   expiry=turn.t(expiry_key, date=requests.format_time(request.expires_at)))
        )
    turn.reply("\n".join(lines))
    return False


def cmd_resend_evaluation(turn: Turn, conversation, argument: str) -> bool:
    """/resend_evaluation N: replace link N with a new one and send that to the learner (and supervisor)."""
    if not _is_coordinator(turn):
        return False
    request = _find_waiting(turn, argument, "resend_evaluation")
    if request is None:
        return False
    if not requests.open_for_evaluation(turn, request.item):
        # A new link for an item that no longer takes an evaluation would open on the "cancelled" page.
        turn.reply(turn.t("evaluation_item_closed", request_id=request.id, learner=_learner_label(request.learner)))
        return False

    new_request, token = requests.resend(turn, request)
    link = requests.evaluation_link(turn.settings, token)
    learner = new_request.learner
    send_link(
        turn, learner,
        turn.t("learner_evaluation_resent", name=new_request.supervisor_name,
               organization=new_request.supervisor_organization, link=link,
               expires=requests.format_time(new_request.expires_at)),
        link,
    )
    text = turn.t("evaluation_resent", old_id=request.id, new_id=new_request.id, learner=_learner_label(learner))
    if requests.email_link(turn, new_request, link):
        text += " " + turn.t("evaluation_resent_emailed", email=new_request.supervisor_email)
    turn.reply(text)
    return False


def cmd_revoke_evaluation(turn: Turn, conversation, argument: str) -> bool:
    """/revoke_evaluation N: cancel link N and tell the learner."""
    if not _is_coordinator(turn):
        return False
    request = _find_waiting(turn, argument, "revoke_evaluation")
    if request is None:
        return False

    requests.revoke(turn, request, "coordinator")
    turn.send_to_learner(request.learner, turn.t("learner_evaluation_revoked", name=request.supervisor_name))
    turn.reply(turn.t("evaluation_revoked_by_coordinator", request_id=request.id,
                      learner=_learner_label(request.learner)))
    return False


def _find_waiting(turn: Turn, argument: str, command: str) -> EvaluationRequest | None:
    """Load and lock the waiting request numbered in ``argument``, or explain what to type."""
    number = parse_number(argument)
    if number is None:
        turn.reply(turn.t("evaluation_command_usage", command=command))
        return None
    request = turn.session.scalar(
        select(EvaluationRequest).where(EvaluationRequest.id == number).with_for_update()
    )
    if request is None or request.status != "pending":
        turn.reply(turn.t("evaluation_not_found", request_id=number))
        return None
    return request
