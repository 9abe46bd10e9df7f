"""The learner's side of supervisor evaluations: /supervisor, the details detour, and revoking a link.

The detour asks for the supervisor's name, organization and email and the
placement's start and end dates, one step per state, then shows them and
creates the one-time link. The answers are kept in the learner's context
under ``supervisor`` until the link exists, so /cancel and a restart keep them.
"""

from __future__ import annotations

import logging
from datetime import date

from bot import evaluation_requests as requests
from bot.conversation import (
    HOME,
    PLACEMENT_END,
    PLACEMENT_START,
    SUPERVISOR_CONFIRM,
    SUPERVISOR_EMAIL,
    SUPERVISOR_NAME,
    SUPERVISOR_ORGANIZATION,
    Conversation,
)
from bot.events import Button, OutboundMessage
from bot.models import EvaluationRequest, Learner, PathwayItem
from bot.questions import ChoiceSpec
from bot.turn import Turn
from bot.validate import InvalidInput, check_email, check_length, match_choice, parse_date

logger = logging.getLogger(__name__)

CONTEXT_KEY = "supervisor"
NAME_MAX_CHARS = 200
ORGANIZATION_MAX_CHARS = 200
START_MAX_YEARS_AGO = 10
END_MAX_YEARS_AHEAD = 2

STEP_FIELDS = {
    SUPERVISOR_NAME: "name",
    SUPERVISOR_ORGANIZATION: "organization",
    SUPERVISOR_EMAIL: "email",
    PLACEMENT_START: "start",
    PLACEMENT_END: "end",
}
STEP_PROMPTS = {
    SUPERVISOR_NAME: "supervisor_ask_name",
    SUPERVISOR_ORGANIZATION: "supervisor_ask_organization",
    SUPERVISOR_EMAIL: "supervisor_ask_email",
    PLACEMENT_START: "supervisor_ask_start",
    PLACEMENT_END: "supervisor_ask_end",
}


def _draft(turn: Turn) -> dict:
    return dict(turn.learner.context.get(CONTEXT_KEY) or {})


def _save_draft(turn: Turn, draft: dict | None) -> None:
    context = {key: value for key, value in turn.learner.context.items() if key != CONTEXT_KEY}
    if draft is not None:
        context[CONTEXT_KEY] = draft
    turn.learner.context = context


def working_links(turn: Turn, item: PathwayItem) -> list[EvaluationRequest]:
    return [
        request
        for request in requests.outstanding(turn.session, learner_id=turn.learner.id, item_id=item.id)
        if request.expires_at > turn.now
    ]


# --- /supervisor ------------------------------------------------------------------------


def cmd_supervisor(turn: Turn, conversation: Conversation, argument: str) -> bool:
    """/supervisor [new|revoke]: ask for the supervisor's details, show the waiting link, or revoke it."""
    from bot.commands import in_detour, leave_detour

    word = argument.strip().casefold()
    if turn.learner.plan_completed_at is None:
        turn.reply(turn.t("finish_plan_first"))
        return True
    if word == "revoke":
        revoke_own(turn)
        return True
    if word not in ("", "new"):
        turn.reply(turn.t("supervisor_usage"))
        return True
    item = requests.supervisor_item(turn, turn.learner)
    if item is None:
        turn.reply(turn.t("supervisor_no_item"))
        return True
    waiting = working_links(turn, item)
    if word == "" and waiting:
        latest = waiting[-1]
        turn.reply(turn.t("supervisor_pending", name=latest.supervisor_name,
                          organization=latest.supervisor_organization,
                          expires=requests.format_time(latest.expires_at)))
        return True

    if in_detour(turn):
        leave_detour(turn, conversation)
    start(turn, conversation, item)
    return False


def start(turn: Turn, conversation: Conversation, item: PathwayItem) -> None:
    """Enter the details detour for ``item``; details kept from last time go straight to the check."""
    draft = _draft(turn)
    if draft.get("item_id") != item.id:
        draft = {"item_id": item.id}
    _save_draft(turn, draft)
    turn.learner.context = {
        key: value for key, value in turn.learner.context.items() if key not in ("submit_item_id", "submit_kind")
    }
    turn.reply(turn.t("supervisor_intro", title=item.title))

    if all(draft.get(name) for name in STEP_FIELDS.values()):
        conversation.fire(turn.learner, "review_supervisor")
    else:
        conversation.fire(turn.learner, "ask_supervisor")
    prompt(turn, conversation)


def revoke_own(turn: Turn) -> None:
    """/supervisor revoke: revoke every link of the learner that an evaluation has not used yet."""
    waiting = requests.outstanding(turn.session, learner_id=turn.learner.id)
    if not waiting:
        turn.reply(turn.t("supervisor_nothing_to_revoke"))
        return
    for request in waiting:
        requests.revoke(turn, request, "learner")
        turn.reply(turn.t("supervisor_revoked", name=request.supervisor_name))


# --- the details detour -------------------------------------------------------------------


def prompt(turn: Turn, conversation: Conversation) -> None:
    """Ask for the detail of the learner's current step, or show all of them for the check."""
    state = turn.learner.state
    if state == SUPERVISOR_CONFIRM:
        prompt_confirm(turn, conversation)
        return
    lines = [turn.t(STEP_PROMPTS[state])]
    current = _draft(turn).get(STEP_FIELDS[state])
    if current:
        lines.append(turn.t("edit_current_answer", answer=current))
    turn.reply("\n\n".join(lines))


def handle_step(turn: Turn, conversation: Conversation, text: str | None, attachment) -> None:
    """Check and store one detail, then ask for the next."""
    state = turn.learner.state
    draft = _draft(turn)
    try:
        value = parse_step(turn, state, text or "", draft)
    except InvalidInput as problem:
        logger.warning("supervisor detail rejected: learner=%s step=%s reason=%s", turn.learner.id, state, problem.key)
        turn.reply(turn.t(problem.key, **problem.values))
        prompt(turn, conversation)
        return
    draft[STEP_FIELDS[state]] = value
    _save_draft(turn, draft)
    conversation.fire(turn.learner, "supervisor_next")
    prompt(turn, conversation)


def parse_step(turn: Turn, state: str, text: str, draft: dict) -> str:
    """Check the answer to one step; return it as stored (dates in ISO format)."""
    if state == SUPERVISOR_NAME:
        return check_length(" ".join(text.split()), 2, NAME_MAX_CHARS)
    if state == SUPERVISOR_ORGANIZATION:
        return check_length(" ".join(text.split()), 2, ORGANIZATION_MAX_CHARS)
    if state == SUPERVISOR_EMAIL:
        return check_email(text)
    today = turn.learner_today()
    if state == PLACEMENT_START:
        start_date = parse_date(text, month_end=False)
        if start_date > today:
            raise InvalidInput("invalid_placement_start_future", today=today.isoformat())
        if start_date.year < today.year - START_MAX_YEARS_AGO:
            raise InvalidInput("invalid_placement_start_old", years=START_MAX_YEARS_AGO)
        return start_date.isoformat()
    end_date = parse_date(text, month_end=True)
    start_date = date.fromisoformat(draft["start"])
    if end_date < start_date:
        raise InvalidInput("invalid_placement_end_before_start", start=start_date.isoformat())
    if end_date.year > today.year + END_MAX_YEARS_AHEAD:
        raise InvalidInput("invalid_placement_end_far", years=END_MAX_YEARS_AHEAD)
    return end_date.isoformat()


def _confirm_choices(turn: Turn) -> tuple[ChoiceSpec, ...]:
    return (
        ChoiceSpec(value="create", label=turn.t("supervisor_create")),
        ChoiceSpec(value="change", label=turn.t("supervisor_change")),
        ChoiceSpec(value="later", label=turn.t("supervisor_not_now")),
    )


def _draft_item(turn: Turn) -> PathwayItem | None:
    item_id = _draft(turn).get("item_id")
    return next((item for item in turn.learner.items if item.id == item_id), None)


def prompt_confirm(turn: Turn, conversation: Conversation) -> None:
    draft = _draft(turn)
    item = _draft_item(turn)
    buttons = [Button(choice.label, f"{SUPERVISOR_CONFIRM}:{choice.value}") for choice in _confirm_choices(turn)]
    turn.reply(
        turn.t("supervisor_confirm", title=item.title if item is not None else "-", name=draft.get("name"),
               organization=draft.get("organization"), email=draft.get("email"), start=draft.get("start"),
               end=draft.get("end")),
        buttons,
    )


def handle_confirm(turn: Turn, conversation: Conversation, text: str | None, attachment) -> None:
    """Create the link, go back to the first detail, or keep the details for later."""
    try:
        chosen = match_choice(text or "", _confirm_choices(turn)).value
    except InvalidInput as problem:
        turn.reply(turn.t(problem.key, **problem.values))
        prompt_confirm(turn, conversation)
        return
    if chosen == "change":
        conversation.fire(turn.learner, "ask_supervisor")
        prompt(turn, conversation)
        return
    if chosen == "later":
        conversation.fire(turn.learner, "done")
        turn.reply(turn.t("supervisor_kept"))
        return
    create_link(turn, conversation)


def create_link(turn: Turn, conversation: Conversation) -> None:
    """Create the request from the confirmed details and give the learner the link."""
    draft = _draft(turn)
    item = _draft_item(turn)
    conversation.fire(turn.learner, "done")
    if item is None or not requests.open_for_evaluation(turn, item):
        _save_draft(turn, None)
        turn.reply(turn.t("supervisor_no_item"))
        return

    details = requests.SupervisorDetails(
        name=draft["name"],
        organization=draft["organization"],
        email=draft["email"],
        start=date.fromisoformat(draft["start"]),
        end=date.fromisoformat(draft["end"]),
    )
    request, token = requests.create_request(turn, turn.learner, item, details)
    _save_draft(turn, None)

    link = requests.evaluation_link(turn.settings, token)
    text = turn.t("supervisor_link_ready", name=details.name, link=link,
                  expires=requests.format_time(request.expires_at))
    send_link(turn, turn.learner, text, link)
    if requests.email_link(turn, request, link):
        turn.reply(turn.t("supervisor_link_emailed", email=details.email))
    assert turn.learner.state == HOME


def send_link(turn: Turn, learner: Learner, text: str, link: str) -> None:
    """Send a message with an evaluation link to the learner's chat; the outbox drops the link once it is delivered."""
    turn.send(
        OutboundMessage(
            platform=learner.platform,
            chat_id=learner.chat_id,
            text=text,
            learner_id=learner.id,
            kind="notice",
            extra=requests.link_message_extra(link),
        )
    )


HANDLERS = {
    SUPERVISOR_NAME: handle_step,
    SUPERVISOR_ORGANIZATION: handle_step,
    SUPERVISOR_EMAIL: handle_step,
    PLACEMENT_START: handle_step,
    PLACEMENT_END: handle_step,
    SUPERVISOR_CONFIRM: handle_confirm,
}

PROMPTS = {state: prompt for state in HANDLERS}
